#!/usr/bin/env bash
# One-shot Global MP vs tfmot's prune_low_magnitude (one threshold per layer, tfmot's own
# code path) from the same dense ResNet-20, same schedule and budget (reduced: 1 epoch of
# fine-tuning, float32, one thread per run, two runs side by side on the 2-core CPU);
# then 98% with and without MT 0.02%. Copies the run dirs to saved_models/, draws the
# per-layer comparison and regenerates the README table.
set -euo pipefail
cd "$(dirname "$0")/.."
source benchmarks/cifar10_lib.sh
DENSE=saved_models/cifar10_resnet20_dense_cpu
run() {  # run name r20_<row>: the preset cpu_resnet20_<row>_1ep, one thread
  launch $1 --preset=cpu_resnet20_${1#r20_}_1ep --pretrained=$DENSE --threads=1
}
pair() {  # first run, second run (saved_models/cifar10_resnet20_<run>), png, labels, title
  local d=saved_models/cifar10_resnet20_
  plot_pair $d$1 $d$2 "${@:3}"
}
for s in 90 95; do
  run r20_gmp${s}_global &
  run r20_gmp${s}_tfmot &
  wait
  for m in global tfmot; do keep r20_gmp${s}_$m cifar10_resnet20_gmp${s}_${m}_1ep_cpu; done
  pair gmp${s}_global_1ep_cpu gmp${s}_tfmot_1ep_cpu layer_sparsity_vs_tfmot.png \
    "Global MP" "tfmot prune_low_magnitude" "ResNet-20, ${s}% one-shot: remaining weights per layer"
done
run r20_gmp98_global &
run r20_gmp98_global_mt &
wait
keep r20_gmp98_global cifar10_resnet20_gmp98_global_1ep_cpu
keep r20_gmp98_global_mt cifar10_resnet20_gmp98_global_mt_1ep_cpu
pair gmp98_global_mt_1ep_cpu gmp98_global_1ep_cpu layer_sparsity_mt_vs_none.png \
  "Global MP + MT 0.02%" "Global MP" "ResNet-20, 98% one-shot: remaining weights per layer"
$PY benchmarks/cifar10_table.py --write README.md
