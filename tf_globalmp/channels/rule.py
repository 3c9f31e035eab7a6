"""Global channel pruning through the one pruning driver: a `mask_rule` and the wrapping.

`prune_low_magnitude_global(model, schedule, granularity="channel")` lands in
`prune_channels`: the model's channel groups are found (`channels.graph`), every
layer holding a weight with prunable channels is wrapped in tfmot's
`PruneLowMagnitude` -- kernels *and* their biases and BatchNorm gamma/beta/moving
statistics, so the wrappers mask them in the forward pass and `apply_masks()` (the
callback, after every batch) keeps whole pruned groups exactly zero -- and the
driver's `mask_rule` is a `ChannelMaskRule`. Schedules, `UpdateGlobalPruningStep`,
`GlobalPruner`, checkpoints and `strip_pruning` are the unstructured path's.

The schedule's sparsity is the fraction of channel groups removed:
`round(sparsity * n_groups)` exactly (see `channels.select` for the unit, the
scores and Minimum Threshold), or, with `channel_multiple` > 1, that selection with
every layer's kept width rounded to a multiple (`budget.round_widths`). Each update
also reports (absl log, `last_costs`) the producer channels, kernel weights and kernel
FLOPs removed.
"""

import types

import numpy as np
from absl import logging

from tf_globalmp import _compat
from tf_globalmp import driver
from tf_globalmp import guards
from tf_globalmp import schedules
from tf_globalmp import weights as weights_lib
from tf_globalmp import wrapping
from tf_globalmp.channels import budget
from tf_globalmp.channels import graph as graph_lib
from tf_globalmp.channels import select

DISTRIBUTIONS = ("global", "uniform")


class ChannelMaskRule:
    """`mask_rule(weights, sparsity, names)` keeping whole channel groups.

    Args:
      graph: the model's `channels.graph.ChannelGraph`.
      labels: id(variable) -> the pruner's label of that variable (its name in
        `names`), for the variables that are wrapped.
      min_channels: every producing layer keeps at least this many output channels.
      score: "relative" (default), "mean", "l1" or "l2" (see `channels.select`).
      distribution: "global" (one threshold over all groups, exact count) or
        "uniform" (baseline: every layer removes the same fraction of its groups).
      channel_multiple: kept widths rounded to multiples of it (`budget.round_widths`;
        1: off, the count is exact).
    """

    log_name = "Channel pruning"

    def __init__(self, graph, labels, min_channels=1, score=select.DEFAULT_SCORE,
                 distribution="global", channel_multiple=1):
        select.check_score(score)
        budget.check_multiple(channel_multiple)
        if distribution not in DISTRIBUTIONS:
            raise ValueError(f"channel distribution must be one of {DISTRIBUTIONS}, "
                             f"got {distribution!r}")
        select.forced_groups(np.zeros(0), (), min_channels)  # validates min_channels
        self.n_groups = graph.n_groups
        self.kernels = list(graph.kernels)
        self.params = list(graph.params)
        self.layer_groups = graph.producer_groups()
        self.layer_names = [name for name, _ in graph.layer_groups]
        self.label = {spec.name: labels[id(graph.variables[spec.name])]
                      for spec in graph.specs() if id(graph.variables[spec.name]) in labels}
        self.min_channels = int(min_channels)
        self.score = score
        self.distribution = distribution
        self.channel_multiple = int(channel_multiple)
        self._held = None  # (sparsity, keep) of the last rounded selection
        self.last_costs = None
        self.last_keep = None
        self.achieved_sparsity = None
        self._variables = {spec.name: graph.variables[spec.name] for spec in graph.specs()}
        self._masks = {}  # spec name -> mask variable (`attach`)

    def attach(self, wrappers):
        """Remembers the wrappers' mask variables (for `kept_from_masks`)."""
        by_weight = {id(w): m for wrapper in wrappers for w, m, _ in wrapper.pruning_vars}
        self._masks = {name: by_weight[id(v)] for name, v in self._variables.items()
                       if id(v) in by_weight}

    def kept_from_masks(self):
        """Bool keep per group as the masks hold it now: a group is pruned when every
        masked entry along its indices is 0 (read after a restore, before any update)."""
        alive = np.zeros(self.n_groups, bool)
        seen = np.zeros(self.n_groups, bool)
        for spec in self.kernels + self.params:
            mask = self._masks.get(spec.name)
            if mask is None or getattr(spec, "role", None) == "slice":
                continue
            value = mask.numpy() != 0
            axes = spec.axes() if isinstance(spec, select.KernelSpec) else \
                [(spec.axis, spec.groups)]
            for axis, groups in axes:
                other = tuple(a for a in range(value.ndim) if a != axis)
                live = value.any(axis=other) if other else value
                valid = groups >= 0
                seen[groups[valid]] = True
                alive[groups[valid & live]] = True
        return alive | ~seen

    def mask_sparsity(self, model=None):
        """Fraction of channel groups the masks remove now (`model` is ignored: the
        signature of `tasks.epoch_logs.EpochLog`'s `sparsity`)."""
        keep = self.kept_from_masks()
        return (self.n_groups - int(keep.sum())) / self.n_groups if self.n_groups else 0.0

    def mask_costs(self):
        """`select.Costs` of the masks as they are now."""
        return select.costs(self.kept_from_masks(), self.kernels, self.layer_groups)

    def scores(self, arrays):
        """Group scores from {label: array} (kernels not given score nothing)."""
        given = [(s, arrays[self.label[s.name]]) for s in self.kernels
                 if self.label.get(s.name) in arrays]
        return select.group_scores([s for s, _ in given], [a for _, a in given],
                                   self.n_groups, self.score)

    def keep(self, arrays, sparsity):
        """Bool keep per group at `sparsity` for the weights {label: array}.

        With `channel_multiple` > 1 the selection is made once per sparsity and held
        while the sparsity stays the same: rounding is not idempotent (a selection made
        again on the masked weights can round some layer the other way), so repeated
        updates of a one-shot schedule would otherwise move the mask. A new rule (a
        restored run) makes it once more from the masked weights.
        """
        if self._held is not None and self._held[0] == float(sparsity):
            return self._held[1].copy()
        scores = self.scores(arrays)
        if self.distribution == "uniform":
            keep = select.uniform_keep(scores, sparsity, self.layer_groups, self.min_channels)
        else:
            n_remove = select.n_remove_for(self.n_groups, sparsity)
            keep = select.select_groups(scores, n_remove, self.layer_groups, self.min_channels)
            if self.n_groups - int(keep.sum()) != n_remove:
                raise RuntimeError(
                    f"channel pruning removed {self.n_groups - int(keep.sum())} groups, "
                    f"target was {n_remove}: this is a bug, please report it")
        if self.channel_multiple > 1:
            keep = budget.round_widths(keep, scores, self.layer_groups, self.channel_multiple,
                                       self.min_channels)
            self._held = (float(sparsity), keep.copy())
        return keep

    def __call__(self, weights, sparsity, names):
        arrays = {name: np.asarray(w) for name, w in zip(names, weights)}
        keep = self.keep(arrays, sparsity)
        by_label = {}
        for spec in self.kernels:
            if spec.name in self.label:
                by_label[self.label[spec.name]] = select.kernel_mask(spec, keep)
        for spec in self.params:
            if spec.name in self.label and spec.role != "slice":
                by_label[self.label[spec.name]] = select.param_mask(spec, keep)
        masks = [by_label.get(name, np.ones(np.shape(arrays[name]), bool)) for name in names]
        self._record(keep, sparsity)
        return masks

    def _record(self, keep, sparsity):
        costs = select.costs(keep, self.kernels, self.layer_groups)
        changed = self.last_keep is None or not np.array_equal(keep, self.last_keep)
        self.last_costs, self.last_keep = costs, keep
        self.achieved_sparsity = costs.removed_fraction("groups")
        if changed:
            logging.info(
                "Channel pruning (%s, score %s, min_channels %d, channel_multiple %d) at "
                "sparsity %.4f: removed %d of %d channel groups, %d of %d channels, %.4f of "
                "kernel weights, %.4f of kernel FLOPs", self.distribution, self.score,
                self.min_channels, self.channel_multiple, float(sparsity),
                costs.groups - costs.groups_kept, costs.groups,
                costs.channels - costs.channels_kept, costs.channels,
                costs.removed_fraction("weights"), costs.removed_fraction("flops"))

    def layer_table(self):
        """[(layer, output channels, kept)] of the producers at the last update."""
        keep = self.last_keep if self.last_keep is not None else np.ones(self.n_groups, bool)
        rows = []
        for name, groups in zip(self.layer_names, self.layer_groups):
            kept = int(np.sum(groups < 0)) + int(keep[groups[groups >= 0]].sum())
            rows.append((name, len(groups), kept))
        return rows

    def __repr__(self):
        return (f"ChannelMaskRule(groups={self.n_groups}, min_channels={self.min_channels}, "
                f"score={self.score!r}, distribution={self.distribution!r}, "
                f"channel_multiple={self.channel_multiple})")


def _units(graph):
    """id(layer) -> (layer, [variables with prunable channels, in layer order])."""
    chosen = {id(v) for v in graph.prunable_variables()}
    units = {}
    for name, variable in graph.variables.items():
        if id(variable) in chosen:
            layer = graph.owners[name]
            units.setdefault(id(layer), (layer, []))
    for key, (layer, out) in units.items():
        out.extend(v for v in layer.weights if id(v) in chosen)
    return units


def check_feasible(graph, sparsity, min_channels, score=select.DEFAULT_SCORE):
    """ValueError if `min_channels` leaves fewer than round(sparsity * groups) groups
    removable (with the model's current weights)."""
    arrays = [graph.variables[s.name].numpy() for s in graph.kernels]
    scores = select.group_scores(graph.kernels, arrays, graph.n_groups, score)
    forced = select.forced_groups(scores, graph.producer_groups(), min_channels)
    n_remove = select.n_remove_for(graph.n_groups, sparsity)
    removable = graph.n_groups - int(forced.sum())
    if n_remove > removable:
        raise ValueError(
            f"min_channels={min_channels} keeps {int(forced.sum())} of {graph.n_groups} "
            f"channel groups: the schedule's sparsity {sparsity} (removing {n_remove}) is "
            f"infeasible; the largest feasible sparsity is {removable / graph.n_groups:.4f}")


def prune_channels(model, pruning_schedule, min_channels=1,
                   channel_score=select.DEFAULT_SCORE, exclude=None, distribution="global",
                   channel_multiple=1):
    """`prune_low_magnitude_global(..., granularity="channel")` (see the module doc)."""
    _compat.check_tf_keras_model(model)
    schedules.validate_schedule(pruning_schedule)
    select.check_score(channel_score)
    budget.check_multiple(channel_multiple)
    if distribution not in DISTRIBUTIONS:
        raise ValueError(f"distribution must be one of {DISTRIBUTIONS} with "
                         f"granularity='channel', got {distribution!r}")
    if not model.built:
        raise ValueError(f"model {model.name!r} is not built: give its first layer an input "
                         "shape, call model.build(input_shape), or call it on a batch first")
    graph = graph_lib.analyze(model, exclude)
    if graph.n_groups == 0:
        raise ValueError(f"model {model.name!r} has no prunable channel group (every channel "
                         "reaches an output or a layer that is not pruned through)")
    if distribution == "global":
        check_feasible(graph, schedules.max_sparsity(pruning_schedule), min_channels,
                       channel_score)
    wrap_pass = wrapping.Wrapping(pruning_schedule, _units(graph), frozenset())
    with model.distribute_strategy.scope():
        wrapped = wrap_pass(model)
    wrappers = wrapping.collect_wrappers(wrapped)
    labels = {id(pw.weight): pw.label for pw in weights_lib.of_wrappers(wrappers)}
    rule = ChannelMaskRule(graph, labels, min_channels, channel_score, distribution,
                           channel_multiple)
    rule.attach(wrappers)
    logging.info(
        "Channel pruning of %r: %d channel groups over %d producer channels (%d layers), "
        "%d weights wrapped in %d layers", model.name, graph.n_groups,
        sum(int(np.sum(g >= 0)) for g in graph.producer_groups()), len(graph.layer_groups),
        len(labels), len(wrappers))
    setattr(wrapped, wrapping.OPTIONS_ATTR, driver.PruningOptions(mask_rule=rule))
    guards.install(wrapped)  # fit needs UpdateGlobalPruningStep
    object.__setattr__(wrapped, "save", types.MethodType(_refuse_save, wrapped))
    return wrapped


def _refuse_save(model, *args, **kwargs):
    raise ValueError(
        f"model {model.name!r} is wrapped with granularity='channel': its BatchNorm and "
        "bias wrappers do not load back from a .keras/SavedModel/h5 file. To save a "
        "checkpoint: model.save_weights(path) or tf.train.Checkpoint(model=model), then "
        "build and wrap the same model again and restore it. To save the final model: "
        "tf_globalmp.strip_pruning(model).save(path), or the smaller "
        "tf_globalmp.shrink(tf_globalmp.strip_pruning(model)).save(path).")


def channel_rule(model):
    """The `ChannelMaskRule` of a model wrapped with granularity="channel", or None."""
    options = getattr(model, wrapping.OPTIONS_ATTR, None)
    rule = getattr(options, "mask_rule", None)
    return rule if isinstance(rule, ChannelMaskRule) else None


def check_unstructured_defaults(**given):
    """ValueError naming an unstructured-only option given with granularity="channel"."""
    defaults = dict(min_weights=0, min_weights_fraction=None, redistribution="global",
                    mask_rule=None, prunable=None)
    for name, value in given.items():
        if value != defaults[name]:
            hint = " (use min_channels=)" if name.startswith("min_weights") else (
                " (use exclude=)" if name == "prunable" else "")
            raise ValueError(f"{name} does not apply with granularity='channel'{hint}, "
                             f"got {name}={value!r}")


def sparsity_for_flops(model, flops_fraction, min_channels=1,
                       channel_score=select.DEFAULT_SCORE, exclude=None,
                       distribution="global", channel_multiple=1):
    """The `sparsity` that prunes `model` (a plain model, its current weights) to at
    least `flops_fraction` of its kernel FLOPs removed: the smallest channel-group
    fraction in the global order ("global", returned as count / groups, so exactly that
    count is removed), or the smallest per-layer fraction ("uniform"). For one-shot
    pruning at a FLOPs budget: pass it to the schedule of
    `prune_low_magnitude_global(model, ..., granularity="channel")` (with the same
    `channel_multiple`: the counts are searched with the widths rounded)."""
    graph = graph_lib.analyze(model, exclude)
    arrays = [graph.variables[s.name].numpy() for s in graph.kernels]
    scores = select.group_scores(graph.kernels, arrays, graph.n_groups, channel_score)
    layers = graph.producer_groups()
    if distribution == "uniform":
        return budget.uniform_fraction_for_flops(scores, flops_fraction, graph.kernels, layers,
                                                 min_channels, multiple=channel_multiple)
    if distribution != "global":
        raise ValueError(f"distribution must be one of {DISTRIBUTIONS}, got {distribution!r}")
    count = budget.n_remove_for_flops(scores, flops_fraction, graph.kernels, layers,
                                      min_channels, channel_multiple)
    return count / graph.n_groups
