"""benchmarks/channels.py, run as a script on the tiny CIFAR-10 sample (it defines absl
flags, so it is not imported here): the tables it writes agree with the shrunk models
it made (accuracies on 50 images are meaningless; the structure is what is checked)."""

import os
import re
import subprocess
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = os.path.join(ROOT, "tests", "testdata", "cifar10_tiny")


def _rows(text, first_cell):
    return [[c.strip() for c in line.strip("|").split("|")]
            for line in text.splitlines() if line.startswith(f"| {first_cell} |")]


def test_tiny_run_writes_seed_and_width_tables_that_match_its_models(tmp_path):
    import tf_globalmp  # noqa: F401  (selects tf-keras first)
    from tf_globalmp import runs

    out, workdir = tmp_path / "B.md", tmp_path / "w"
    done = subprocess.run(
        [sys.executable, os.path.join(ROOT, "benchmarks", "channels.py"), "--data_dir", TINY,
         "--workdir", str(workdir), "--models", "resnet20", "--flops_targets", "0.3",
         "--scores", "relative", "--multiples", "16", "--seeds", "1", "--epochs", "1",
         "--max_train_examples", "50", "--repeats", "2", "--batches", "1",
         "--out", str(out)], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    text = out.read_text()

    # --seeds covers the channel_multiple row too (seeds 0 and 1).
    seeded = {r[1]: r[3] for r in _rows(text, "resnet20") if len(r) == 6}
    assert seeded == {"channel_relative": "0, 1", "channel_relative_x16": "0, 1",
                      "uniform_l1": "0, 1"}

    # The width table: one column per channel row, the widths of its shrunk model.
    header = next(line for line in text.splitlines() if line.startswith("| layer |"))
    columns = [c.strip() for c in header.strip("|").split("|")][1:]
    assert columns == ["dense", "channel_relative @30.00", "channel_relative_x16 @30.00",
                       "uniform_l1 @30.00"]
    table = {r[0]: [int(c) for c in r[1:]] for r in (
        [c.strip() for c in line.strip("|").split("|")] for line in text.splitlines()
        if re.match(r"\| (stem|stage|fc)", line))}
    assert len(table) == 20  # 19 convolutions and the classifier; no shortcut layers
    for index, name in enumerate(["channel_relative_30", "channel_relative_x16_30",
                                  "uniform_l1_30"], start=1):
        shrunk = runs.load_model(str(workdir / "resnet20" / name / "model_shrunk.keras"))
        widths = {layer.name: layer.kernel.shape[-1] for layer in shrunk.layers
                  if hasattr(layer, "kernel")}
        assert {layer: row[index] for layer, row in table.items()} == widths
    dense, x16 = (np.array([row[i] for row in table.values()]) for i in (0, 2))
    assert np.all(x16 <= dense) and np.all((x16 % 16 == 0) | (x16 == dense))
    assert np.any(x16 < dense)
