"""Which weights are pruned, and why not: `prunable=` / `exclude=` and the coverage table.

Backend-neutral (no Keras import). Each front-end's policy (tf-keras: `registry`,
Keras 3: `keras3.prunable_kernels`) lists *every* weight of a model once as a
`Candidate`: its label, the chain of layers that holds it (from the model's child
down to the layer that owns the variable), and `skip`, the policy's reason not to
prune it (None: prunable by default). This module then applies the user's choice
and builds the table that wrapping logs, so both Kerases choose and report alike.

A choice (`prunable=` or `exclude=`) is one item or a list of items, each

- a layer name (str): matches every weight held by a layer of that name, at any depth
  (a custom block's name selects everything inside it), or a weight label;
- a layer class: matches weights held by an instance of it at any depth
  (`keras.layers.Embedding`, `keras.layers.MultiHeadAttention`, a custom block);
- a predicate ``(layer, weight) -> bool``, `layer` being the layer that owns the
  variable (for MultiHeadAttention its query/key/value/output EinsumDense, for an
  LSTM its cell).

A weight is pruned iff the policy allows it, it matches `prunable` (when given) and it
does not match `exclude`. Biases, normalization weights and scalars are never pruned.
"""

import dataclasses

from absl import logging

# Why a weight is not pruned: row categories.
PRUNED = "pruned"
NEVER = "never"  # bias, normalization, scalar, non-trainable: by design
USER = "user"  # excluded by the user's prunable= / exclude=
UNSUPPORTED = "unsupported"  # a layer type the policy does not know
DTYPE = "dtype"  # integer (quantized) weight of a prunable layer

# A skipped weight at least this fraction of the model's parameters is a warning.
WARN_FRACTION = 0.01


@dataclasses.dataclass(frozen=True)
class Candidate:
    """One weight of a model as a policy sees it."""

    label: str  # the pruner's and the reports' name for it
    chain: tuple  # layers holding it, outermost first; chain[-1] owns the variable
    weight: object  # the variable
    shape: tuple
    skip: tuple | None = None  # (category, reason) if the policy never prunes it

    @property
    def size(self):
        size = 1
        for d in self.shape:
            size *= int(d)
        return size


@dataclasses.dataclass(frozen=True)
class Row:
    """One line of the coverage table."""

    label: str
    layer: str  # class of the layer owning the weight
    shape: tuple
    size: int
    category: str  # PRUNED, NEVER, USER, UNSUPPORTED or DTYPE
    reason: str

    @property
    def pruned(self):
        return self.category == PRUNED


# ------------------------------------------------------------------ the choice
_NORM_WEIGHTS = ("gamma", "beta", "moving_mean", "moving_variance")


def never_reason(name, size, trainable, is_float, dtype_name, is_norm_layer):
    """(NEVER, reason) for a weight no policy prunes -- normalization, bias, scalar,
    non-trainable, non-float -- else None. Both Kerases' policies ask this first."""
    if is_norm_layer or name in _NORM_WEIGHTS:
        return NEVER, "normalization (never pruned)"
    if "bias" in name:
        return NEVER, "bias (never pruned)"
    if size <= 1:
        return NEVER, "scalar (never pruned)"
    if not trainable:
        return NEVER, "non-trainable (never pruned)"
    if not is_float:
        return NEVER, f"{dtype_name} (never pruned)"
    return None


def normalize(spec, argument, layer_class):
    """`spec` as a tuple of items (None stays None); raises on a bad item.

    `layer_class` is the front-end's Layer base class: a class from the other Keras
    matches nothing and is an error.
    """
    if spec is None:
        return None
    items = tuple(spec) if isinstance(spec, (list, tuple, set, frozenset)) else (spec,)
    for item in items:
        if isinstance(item, str):
            continue
        if isinstance(item, type):
            if not issubclass(item, layer_class):
                raise ValueError(
                    f"{argument}={item.__module__}.{item.__qualname__} is not a "
                    f"{layer_class.__module__.split('.')[0]} layer class (the model's "
                    "Keras); give a layer class, a layer name or a predicate "
                    "(layer, weight) -> bool"
                )
            continue
        if callable(item):
            continue
        raise TypeError(
            f"{argument} items must be layer names, layer classes or predicates "
            f"(layer, weight) -> bool, got {item!r}"
        )
    return items


def check_names(argument, items, known_names, model_name):
    """Raises ValueError naming every string in `items` that is not in `known_names`."""
    unknown = [i for i in items or () if isinstance(i, str) and i not in known_names]
    if unknown:
        raise ValueError(
            f"{argument} names {unknown} match no layer or weight label of model "
            f"{model_name!r} (its layers: {sorted(n for n in known_names if '/' not in n)})"
        )


def matches(items, candidate):
    """True if any item of the choice selects `candidate` (see the module docstring)."""
    for item in items:
        if isinstance(item, str):
            if item == candidate.label or any(l.name == item for l in candidate.chain):
                return True
        elif isinstance(item, type):
            if any(isinstance(l, item) for l in candidate.chain):
                return True
        elif item(candidate.chain[-1], candidate.weight):
            return True
    return False


def decide(candidate, prunable=None, exclude=None):
    """(category, reason) of one candidate under the normalized user choice."""
    if candidate.skip is not None:
        return candidate.skip
    if exclude and matches(exclude, candidate):
        return USER, "excluded by exclude="
    if prunable is not None and not matches(prunable, candidate):
        return USER, "not selected by prunable="
    return PRUNED, ""


def coverage_rows(candidates, prunable=None, exclude=None):
    """The table: one `Row` per candidate, in the candidates' order."""
    rows = []
    for c in candidates:
        category, reason = decide(c, prunable, exclude)
        rows.append(Row(c.label, type(c.chain[-1]).__name__ if c.chain else "-",
                        tuple(int(d) for d in c.shape), c.size, category, reason))
    return rows


# ------------------------------------------------------------------ the report
def large_skips(rows, fraction=WARN_FRACTION):
    """Rows skipped without the user asking (unsupported layer, integer dtype) that hold
    at least `fraction` of all the model's parameters (the rows' total)."""
    total = sum(r.size for r in rows)
    return [r for r in rows
            if r.category in (UNSUPPORTED, DTYPE) and total and r.size >= fraction * total]


def format_table(rows):
    """The coverage table as text: pruned weights first, then the others with reasons."""
    total = sum(r.size for r in rows)
    pruned = [r for r in rows if r.pruned]
    kept = [r for r in rows if not r.pruned]
    n_pruned = sum(r.size for r in pruned)
    width = max([len(r.label) for r in rows] + [len("weight")])
    kind = max([len(r.layer) for r in rows] + [len("layer")])
    head = f"{'weight':<{width}}  {'layer':<{kind}}  {'shape':<16} {'params':>10}  reason"
    lines = [
        f"prunable: {len(pruned)} weights, {n_pruned:,d} of {total:,d} parameters "
        f"({100 * n_pruned / total if total else 0.0:.1f}%); not pruned: {len(kept)} weights",
        head,
        "-" * len(head),
    ]
    for r in pruned + kept:
        shape = "x".join(str(d) for d in r.shape) or "scalar"
        reason = "pruned" if r.pruned else r.reason
        lines.append(f"{r.label:<{width}}  {r.layer:<{kind}}  {shape:<16} {r.size:>10,d}  {reason}")
    return "\n".join(lines)


def log_coverage(rows, model_name):
    """Logs the table (info) and a warning per large skipped weight; returns the rows."""
    logging.info("Global MP coverage of model %r:\n%s", model_name, format_table(rows))
    total = sum(r.size for r in rows)
    for r in large_skips(rows):
        logging.warning(
            "Global MP does not prune %s (%s, %d parameters, %.1f%% of model %r): %s",
            r.label, r.layer, r.size, 100 * r.size / total, model_name, r.reason,
        )
    return rows
