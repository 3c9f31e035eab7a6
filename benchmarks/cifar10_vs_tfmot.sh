#!/usr/bin/env bash
# One-shot Global MP vs tfmot's prune_low_magnitude (one threshold per layer, tfmot's own
# code path) from the same dense ResNet-20, same schedule and budget (reduced: 1 epoch of
# fine-tuning, float32, one thread per run, two runs side by side on the 2-core CPU);
# then 98% with and without MT 0.02%. Copies the run dirs to saved_models/, draws the
# per-layer comparison and regenerates the README table.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
DATA=${DATA:-../shared/data/cifar10-jpeg.tar.gz}
DENSE=saved_models/cifar10_resnet20_dense_cpu
run() {  # run dir, sparsity, extra flags...
  local dir=$1 sparsity=$2; shift 2
  $PY launchers/cifar10.py --preset=cpu_resnet20_gmp90 --nomixed_bfloat16 --epochs=1 \
    --sparsity=$sparsity --pretrained=$DENSE --threads=1 --verbose=2 \
    --checkpoint_every_steps=50 --data_dir=$DATA --workdir=runs/$dir "$@" > runs/$dir.log 2>&1
}
keep() {  # run -> saved_models/cifar10_resnet20_<run>_1ep_cpu (the finished run dir)
  rm -rf saved_models/cifar10_resnet20_$1_1ep_cpu
  cp -r runs/r20_$1 saved_models/cifar10_resnet20_$1_1ep_cpu
}
plot_pair() {  # first run, second run (saved_models/cifar10_resnet20_<run>), png, labels, title
  $PY -c 'import sys, tf_globalmp as t; a, b, png, la, lb, title = sys.argv[1:]
d = "saved_models/cifar10_resnet20_"
t.plot_layer_sparsity(t.load_model(d + a), d + a + "/" + png, compare=t.load_model(d + b),
                      labels=(la, lb), title=title)' "$@"
}
mkdir -p runs
for s in 90 95; do
  run r20_gmp${s}_global 0.$s --layer_distribution=global &
  run r20_gmp${s}_tfmot 0.$s --layer_distribution=tfmot &
  wait
  keep gmp${s}_global; keep gmp${s}_tfmot
  plot_pair gmp${s}_global_1ep_cpu gmp${s}_tfmot_1ep_cpu layer_sparsity_vs_tfmot.png \
    "Global MP" "tfmot prune_low_magnitude" "ResNet-20, ${s}% one-shot: remaining weights per layer"
done
run r20_gmp98_global 0.98 &
run r20_gmp98_global_mt 0.98 --min_weights_fraction=0.0002 &
wait
keep gmp98_global; keep gmp98_global_mt
plot_pair gmp98_global_mt_1ep_cpu gmp98_global_1ep_cpu layer_sparsity_mt_vs_none.png \
  "Global MP + MT 0.02%" "Global MP" "ResNet-20, 98% one-shot: remaining weights per layer"
$PY benchmarks/cifar10_table.py --write README.md
