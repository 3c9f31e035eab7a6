#!/usr/bin/env bash
# ResNet-32: one-shot Global MP vs tfmot's prune_low_magnitude at 90% and 95%, from the
# dense ResNet-32 of benchmarks/cifar10_resnet32_dense.sh, same schedule and budget (reduced:
# 1 epoch of fine-tuning, float32, one thread per run, side by side). Copies the run dirs
# to saved_models/, draws the per-layer comparison and regenerates the README table.
set -euo pipefail
cd "$(dirname "$0")/.."
source benchmarks/cifar10_lib.sh
for s in 90 95; do
  for m in global tfmot; do
    launch r32_gmp${s}_$m --preset=cpu_resnet32_gmp$s --epochs=1 --threads=1 \
      --pretrained=saved_models/cifar10_resnet32_dense_cpu --layer_distribution=$m &
  done
  wait
  for m in global tfmot; do keep r32_gmp${s}_$m cifar10_resnet32_gmp${s}_${m}_1ep_cpu; done
  d=saved_models/cifar10_resnet32_gmp${s}_
  plot_pair ${d}global_1ep_cpu ${d}tfmot_1ep_cpu layer_sparsity_vs_tfmot.png "Global MP" \
    "tfmot prune_low_magnitude" "ResNet-32, ${s}% one-shot: remaining weights per layer"
  $PY benchmarks/cifar10_table.py --write README.md
done
