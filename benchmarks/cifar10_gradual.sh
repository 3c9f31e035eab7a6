#!/usr/bin/env bash
# Gradual Global MP from scratch: ResNet-20 to 90% on CIFAR-10, cubic schedule from 10% to
# 60% of training with a mask update every 50 steps. Reduced budget: 4 epochs on a fixed
# 20,000-image subset, float32, one thread. Copies the run dir to saved_models/ and
# regenerates the README table.
set -euo pipefail
cd "$(dirname "$0")/.."
source benchmarks/cifar10_lib.sh
launch r20_gradual90 --preset=cpu_resnet20_gradual90_20k --threads=1
keep r20_gradual90 cifar10_resnet20_gradual90_cpu
$PY benchmarks/cifar10_table.py --write README.md
