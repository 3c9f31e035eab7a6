#!/usr/bin/env bash
# ResNet-32: one-shot Global MP vs tfmot's prune_low_magnitude at 90% and 95% from the dense
# ResNet-32 of benchmarks/cifar10_resnet32_dense.sh, the same budget for both (presets
# cpu_resnet32_gmp{90,95} and cpu_resnet32_gmp{90,95}_tfmot: 20 fine-tuning epochs), one
# run at a time on one thread. Resumable like the dense run. Copies the run dirs to
# saved_models/, draws the per-layer comparison and regenerates the README table.
# The committed 1-epoch rows: presets cpu_resnet32_gmp{90,95}[_tfmot]_1ep from the
# 12-epoch dense model saved_models/cifar10_resnet32_dense_12ep_cpu (preset
# cpu_resnet32_dense_12ep); their seed repeats: cifar10_resnet32_1ep_seeds.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
source benchmarks/cifar10_lib.sh
for s in 90 95; do
  for m in global tfmot; do
    preset=cpu_resnet32_gmp$s; [ $m = tfmot ] && preset+=_tfmot
    launch cifar10_resnet32_gmp${s}_${m}_cpu --preset=$preset --threads=1 \
      --pretrained=saved_models/cifar10_resnet32_dense_cpu
    keep cifar10_resnet32_gmp${s}_${m}_cpu cifar10_resnet32_gmp${s}_${m}_cpu
  done
  d=saved_models/cifar10_resnet32_gmp${s}_
  plot_pair ${d}global_cpu ${d}tfmot_cpu layer_sparsity_vs_tfmot.png "Global MP" \
    "tfmot prune_low_magnitude" "ResNet-32, ${s}% one-shot: remaining weights per layer"
  $PY benchmarks/cifar10_table.py --write README.md
done
