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
mkdir -p runs
for s in 90 95; do
  run r20_gmp${s}_global 0.$s --layer_distribution=global &
  run r20_gmp${s}_tfmot 0.$s --layer_distribution=tfmot &
  wait
  for m in global tfmot; do
    rm -rf saved_models/cifar10_resnet20_gmp${s}_${m}_1ep_cpu
    cp -r runs/r20_gmp${s}_${m} saved_models/cifar10_resnet20_gmp${s}_${m}_1ep_cpu
  done
  $PY - <<PYEOF
import tf_globalmp
a = tf_globalmp.load_model("saved_models/cifar10_resnet20_gmp${s}_global_1ep_cpu")
b = tf_globalmp.load_model("saved_models/cifar10_resnet20_gmp${s}_tfmot_1ep_cpu")
tf_globalmp.plot_layer_sparsity(
    a, "saved_models/cifar10_resnet20_gmp${s}_global_1ep_cpu/layer_sparsity_vs_tfmot.png",
    compare=b, labels=("Global MP", "tfmot prune_low_magnitude"),
    title="ResNet-20, ${s}% one-shot: remaining weights per layer")
PYEOF
done
run r20_gmp98_global 0.98 &
run r20_gmp98_global_mt 0.98 --min_weights_fraction=0.0002 &
wait
for m in global global_mt; do
  rm -rf saved_models/cifar10_resnet20_gmp98_${m}_1ep_cpu
  cp -r runs/r20_gmp98_${m} saved_models/cifar10_resnet20_gmp98_${m}_1ep_cpu
done
$PY - <<PYEOF
import tf_globalmp
a = tf_globalmp.load_model("saved_models/cifar10_resnet20_gmp98_global_mt_1ep_cpu")
b = tf_globalmp.load_model("saved_models/cifar10_resnet20_gmp98_global_1ep_cpu")
tf_globalmp.plot_layer_sparsity(
    a, "saved_models/cifar10_resnet20_gmp98_global_mt_1ep_cpu/layer_sparsity_mt_vs_none.png",
    compare=b, labels=("Global MP + MT 0.02%", "Global MP"),
    title="ResNet-20, 98% one-shot: remaining weights per layer")
PYEOF
$PY benchmarks/cifar10_table.py --write README.md
