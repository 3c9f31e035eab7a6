"""Per-layer sparsity report of a wrapped or stripped model, and its plot."""

import dataclasses
import json

import numpy as np

from tf_globalmp import distributions
from tf_globalmp import masks
from tf_globalmp import weights as weights_lib


@dataclasses.dataclass(frozen=True)
class LayerRow:
    name: str
    shape: tuple
    weights: int
    nonzero: int
    macs: int | None = None  # dense multiply-adds (`sparsity_report(..., flops=True)`)

    @property
    def sparsity(self):
        return 1.0 - self.nonzero / self.weights if self.weights else 0.0

    @property
    def remaining_macs(self):
        """Multiply-adds left at this density (None without FLOPs)."""
        return None if self.macs is None else (1.0 - self.sparsity) * self.macs

    def to_dict(self):
        data = {
            "name": self.name,
            "shape": list(self.shape),
            "weights": self.weights,
            "nonzero": self.nonzero,
            "sparsity": self.sparsity,
        }
        if self.macs is not None:
            data.update(macs=self.macs, remaining_macs=self.remaining_macs)
        return data


@dataclasses.dataclass(frozen=True)
class SparsityReport:
    """Rows per prunable weight plus the global row (`total`)."""

    rows: tuple
    total: LayerRow

    def to_dict(self):
        data = {"layers": [r.to_dict() for r in self.rows], "global": self.total.to_dict()}
        if self.flops_pruned is not None:
            data["flops_pruned"] = self.flops_pruned
        return data

    def to_json(self, indent=2):
        return json.dumps(self.to_dict(), indent=indent)

    @property
    def flops_pruned(self):
        """The paper's "FLOPs pruned" of the prunable layers (None without FLOPs)."""
        if self.total.macs is None or not self.total.macs:
            return None
        return 1.0 - sum(r.remaining_macs for r in self.rows) / self.total.macs

    def to_table(self):
        width = max([len(r.name) for r in self.rows] + [len("layer"), len(self.total.name)])
        flops = self.total.macs is not None
        head = f"{'layer':<{width}}  {'shape':<20} {'weights':>10} {'nonzero':>10} {'sparsity':>9}"
        if flops:
            head += f" {'MACs':>14} {'remaining MACs':>15}"
        lines = [head, "-" * len(head)]
        for r in self.rows + (self.total,):
            if r is self.total:
                lines.append("-" * len(lines[0]))
                remaining = sum(row.remaining_macs for row in self.rows) if flops else None
            else:
                remaining = r.remaining_macs
            shape = "x".join(str(d) for d in r.shape) if r.shape else "-"
            line = (f"{r.name:<{width}}  {shape:<20} {r.weights:>10d} {r.nonzero:>10d} "
                    f"{100 * r.sparsity:>8.2f}%")
            if flops:
                line += f" {r.macs:>14,d} {remaining:>15,.0f}"
            lines.append(line)
        if flops:
            lines.append(f"FLOPs pruned (prunable layers): {100 * self.flops_pruned:.2f}%")
        return "\n".join(lines)

    def __str__(self):
        return self.to_table()


def _row(name, effective):
    return LayerRow(
        name=name,
        shape=tuple(int(d) for d in effective.shape),
        weights=int(effective.size),
        nonzero=int(np.count_nonzero(effective)),
    )


def named_prunable_arrays(model, prunable=None, exclude=None):
    """[(label, array)] of the prunable weights `weights.prunable_weights_of_model`
    lists (the pruner's set): weight * mask when wrapped, the weight as it is for a
    plain model (row order of `sparsity_report`)."""
    return [(pw.label, pw.effective())
            for pw in weights_lib.prunable_weights_of_model(model, prunable, exclude)]


def prunable_arrays(model):
    """The arrays of `named_prunable_arrays`, without names."""
    return [array for _, array in named_prunable_arrays(model)]


def sparsity_report(model, flops=False, prunable=None, exclude=None):
    """Per-weight rows (name, shape, weights, nonzero, sparsity) and the global row.

    Counts exactly the weights the pruner prunes (`weights.prunable_weights_of_model`):
    for a wrapped model the effective weights (weight * mask) of its wrappers; for a
    stripped or plain model the policy's prunable weights as they are, narrowed by
    `prunable`/`exclude` as given to `prune_low_magnitude_global`. With `flops=True`
    (functional or Sequential models) every row also gets its dense multiply-adds
    and the remaining ones (`tf_globalmp.flops` convention), and the report its
    "FLOPs pruned".
    """
    rows = [_row(name, array) for name, array in named_prunable_arrays(model, prunable, exclude)]
    if not rows:
        raise ValueError(f"model {model.name!r} has no prunable weight to report on")
    if flops:
        from tf_globalmp import flops as flops_lib  # flops imports this module's peers

        macs = {}
        for r in flops_lib.flops_report(model, prunable, exclude).rows:
            if r.weights:  # shared layers: one row per call, summed
                macs[r.name] = macs.get(r.name, 0) + r.macs
        rows = [dataclasses.replace(r, macs=macs.get(r.name, 0)) for r in rows]
    total = LayerRow(
        name="global",
        shape=(),
        weights=sum(r.weights for r in rows),
        nonzero=sum(r.nonzero for r in rows),
        macs=sum(r.macs for r in rows) if flops else None,
    )
    return SparsityReport(rows=tuple(rows), total=total)


def _as_report(model_or_report, name):
    if isinstance(model_or_report, SparsityReport):
        return model_or_report
    if hasattr(model_or_report, "layers"):
        return sparsity_report(model_or_report)
    raise TypeError(
        f"{name} must be a SparsityReport or a tf-keras model, got "
        f"{type(model_or_report).__name__}"
    )


def plot_layer_sparsity(model_or_report, path, compare=None, labels=("model", "compare"),
                        log_scale=True, title=None):
    """Saves the paper's figure: remaining (nonzero) weights per layer, one bar each.

    Args:
      model_or_report: a tf-keras model (wrapped or stripped) or a `SparsityReport`.
      path: image file to write (format from the extension, e.g. `.png`, `.pdf`).
      compare: an optional second model/report with the same prunable layers (e.g.
        without MT, or uniform pruning), drawn as a second bar per layer.
      labels: legend labels of the first and the second report.
      log_scale: logarithmic y axis (small and large layers both readable).
      title: figure title; default: the global sparsity of each report.

    Returns `path`. The layer's total weight count is drawn as a thin outline.
    """
    import matplotlib

    matplotlib.use("Agg")  # files only; never needs a display
    from matplotlib import pyplot as plt

    first = _as_report(model_or_report, "model_or_report")
    reports = [first]
    if compare is not None:
        second = _as_report(compare, "compare")
        if len(second.rows) != len(first.rows):
            raise ValueError(
                f"compare has {len(second.rows)} prunable weights, the first report has "
                f"{len(first.rows)}: compare reports of the same architecture"
            )
        reports.append(second)
    count = len(first.rows)
    x = np.arange(count)
    width = 0.8 / len(reports)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.28 * count + 2), 4.0))
    ax.bar(x, [r.weights for r in first.rows], width=0.9, fill=False, edgecolor="0.6",
           linewidth=0.6, label="all weights")
    for i, rep in enumerate(reports):
        ax.bar(x - 0.4 + width * (i + 0.5), [max(r.nonzero, 0) for r in rep.rows],
               width=width, label=f"{labels[i]}: {100 * rep.total.sparsity:.2f}% sparse")
    ax.set_xticks(x)
    ax.set_xticklabels([r.name for r in first.rows], rotation=90, fontsize=6)
    ax.set_ylabel("remaining weights")
    if log_scale:
        ax.set_yscale("log")
    ax.set_title(title or "Remaining weights per layer")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def layer_sparsities(model_or_weights, sparsity, method="global", **mt_options):
    """Per-layer sparsities of `method` at network-wide `sparsity`.

    Args:
      model_or_weights: a tf-keras model (wrapped: its effective weights; plain:
        its prunable kernels, in `sparsity_report` order) or a list of arrays.
      sparsity: network-wide fraction to prune, in [0, 1).
      method: one of `distributions.METHODS`.
      **mt_options: `min_weights`, `min_weights_fraction`, `redistribution` for
        ``"global"`` / ``"random"``.

    Returns a list of floats; ``sum(size_l * (1 - s_l)) == N - round(sparsity * N)``.
    """
    if hasattr(model_or_weights, "layers"):
        weights = prunable_arrays(model_or_weights)
    else:
        weights = [np.asarray(w) for w in model_or_weights]
    sizes = [int(np.size(w)) for w in weights]
    n_keep = masks.n_keep_for(sum(sizes), sparsity)
    counts = distributions.keep_counts(weights, n_keep, method, **mt_options)
    return [1.0 - c / n if n else 0.0 for c, n in zip(counts, sizes)]
