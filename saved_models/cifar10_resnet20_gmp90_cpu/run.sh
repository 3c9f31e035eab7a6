#!/usr/bin/env bash
# Reduced-budget CIFAR-10 (JPEG copy) run on one core: ResNet-20 dense, then one-shot Global MP 90%.
set -euo pipefail
cd /work/main
PY=.venv/bin/python
DATA=/work/shared/data/cifar10-jpeg.tar.gz
taskset -c 0 $PY launchers/cifar10.py --preset=cpu_resnet20_dense --data_dir=$DATA \
  --threads=1 --verbose=2 --workdir=runs/cifar10_resnet20_dense_cpu
taskset -c 0 $PY launchers/cifar10.py --preset=cpu_resnet20_gmp90 --data_dir=$DATA \
  --threads=1 --verbose=2 --pretrained=runs/cifar10_resnet20_dense_cpu \
  --workdir=runs/cifar10_resnet20_gmp90_cpu --export_tflite
echo ALL DONE
