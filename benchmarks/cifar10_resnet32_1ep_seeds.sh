#!/usr/bin/env bash
# The committed 1-epoch ResNet-32 comparison (one-shot Global MP vs tfmot's
# prune_low_magnitude at 90% and 95%, presets cpu_resnet32_gmp{90,95}[_tfmot]_1ep, from the
# 12-epoch dense model) repeated with seeds 1 and 2 (seed 0 is the committed run without a
# suffix), one run at a time on one thread. Resumable: finished runs are skipped, a stopped
# one continues from its state in $RUNS. Copies each finished run dir to
# saved_models/cifar10_resnet32_gmp<s>_<method>_1ep_seed<N>_cpu and regenerates the README
# tables (mean +- std over the three seeds).
set -euo pipefail
cd "$(dirname "$0")/.."
source benchmarks/cifar10_lib.sh
for seed in 1 2; do
  for s in 90 95; do
    for m in global tfmot; do
      preset=cpu_resnet32_gmp${s}_1ep; [ $m = tfmot ] && preset=cpu_resnet32_gmp${s}_tfmot_1ep
      name=cifar10_resnet32_gmp${s}_${m}_1ep_seed${seed}_cpu
      launch $name --preset=$preset --threads=1 --seed=$seed \
        --pretrained=saved_models/cifar10_resnet32_dense_12ep_cpu
      keep $name $name
    done
  done
done
$PY benchmarks/cifar10_table.py --write README.md
