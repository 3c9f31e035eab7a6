#!/usr/bin/env bash
# Dense ResNet-32 on CIFAR-10 (JPEG copy), the short-budget recipe of preset
# cpu_resnet32_dense (40 epochs, one-cycle-like cosine with warmup, label smoothing,
# bfloat16; tf_globalmp/configs.py says why), one thread. Resumable: re-running continues
# from $RUNS/cifar10_resnet32_dense_cpu. Copies the finished run dir to saved_models/ and
# regenerates the README table. The committed 12-epoch run:
# saved_models/cifar10_resnet32_dense_12ep_cpu (preset cpu_resnet32_dense_12ep).
set -euo pipefail
cd "$(dirname "$0")/.."
source benchmarks/cifar10_lib.sh
launch cifar10_resnet32_dense_cpu --preset=cpu_resnet32_dense --threads=1
keep cifar10_resnet32_dense_cpu cifar10_resnet32_dense_cpu
$PY benchmarks/cifar10_table.py --write README.md
