# Helpers for the CIFAR-10 result scripts (sourced, not run): run a launcher job with its
# resumable state and log outside the work tree ($RUNS/<name>, $RUNS/<name>.log; re-running
# continues), keep a finished run dir in saved_models/, draw a per-layer plot.
PY=${PY:-.venv/bin/python}
DATA=${DATA:-../shared/data/cifar10-jpeg.tar.gz}
RUNS=${RUNS:-$HOME/.cache/tf_globalmp/runs}
mkdir -p "$RUNS"
launch() {  # run name, launcher flags... (execution flags here; the recipe is the preset)
  local name=$1; shift
  $PY launchers/cifar10.py --verbose=2 --checkpoint_every_steps=50 --data_dir=$DATA \
    --workdir="$RUNS/$name" "$@" >> "$RUNS/$name.log" 2>&1
}
keep() {  # run name, saved_models name (the finished run dir is copied)
  rm -rf saved_models/$2
  cp -r "$RUNS/$1" saved_models/$2
}
plot_pair() {  # first run dir, second run dir, png (in the first), labels..., title
  $PY -c 'import sys, tf_globalmp as t; a, b, png, la, lb, title = sys.argv[1:]
t.plot_layer_sparsity(t.load_model(a), a + "/" + png, compare=t.load_model(b),
                      labels=(la, lb), title=title)' "$@"
}
