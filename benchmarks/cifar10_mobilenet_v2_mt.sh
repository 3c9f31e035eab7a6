#!/usr/bin/env bash
# MobileNet-V2 (CIFAR) at 98% one-shot Global MP, with and without MT 0.02%: the paper's
# layer collapse. Reduced budget (float32 on this 2-core CPU): a dense model trained 4
# epochs on a fixed 20,000-image subset, then each pruned model fine-tuned 2 epochs on
# the same subset, the two runs side by side with one thread each. Copies the run dirs
# to saved_models/ (the dense model.keras, ~9 MB, stays in $RUNS), draws the per-layer
# comparison and regenerates the README table.
set -euo pipefail
cd "$(dirname "$0")/.."
source benchmarks/cifar10_lib.sh
launch mnv2_dense --preset=cpu_mobilenet_v2_dense_20k
run() {  # run name, preset
  launch $1 --preset=$2 --threads=1 --pretrained="$RUNS/mnv2_dense"
}
run mnv2_gmp98 cpu_mobilenet_v2_gmp98_20k &
run mnv2_gmp98_mt cpu_mobilenet_v2_gmp98_mt_20k &
wait
keep mnv2_dense cifar10_mobilenet_v2_dense_cpu
rm saved_models/cifar10_mobilenet_v2_dense_cpu/model.keras
keep mnv2_gmp98 cifar10_mobilenet_v2_gmp98_cpu
keep mnv2_gmp98_mt cifar10_mobilenet_v2_gmp98_mt_cpu
d=saved_models/cifar10_mobilenet_v2_gmp98
plot_pair ${d}_mt_cpu ${d}_cpu layer_sparsity_mt_vs_none.png "Global MP + MT 0.02%" \
  "Global MP" "MobileNet-V2 CIFAR, 98% one-shot: remaining weights per layer"
$PY benchmarks/cifar10_table.py --write README.md
