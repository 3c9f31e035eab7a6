#!/usr/bin/env bash
# Dense ResNet-32 on CIFAR-10 at a reduced budget (12 epochs of the paper's 300, cosine LR
# compressed to fit, float32: bfloat16 is emulated on this CPU), all 50,000 training
# images; copies the finished run dir to saved_models/ and regenerates the README table.
set -euo pipefail
cd "$(dirname "$0")/.."
source benchmarks/cifar10_lib.sh
launch r32_dense --preset=cpu_resnet32_dense --epochs=12
keep r32_dense cifar10_resnet32_dense_cpu
$PY benchmarks/cifar10_table.py --write README.md
