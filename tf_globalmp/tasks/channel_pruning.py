"""What a task runner adds for `granularity="channel"` (CIFAR-10, ImageNet): the
wrapping, the per-epoch sparsity in channel groups, the shrunk model and its metrics."""

import dataclasses
import os

from absl import logging

from tf_globalmp import flops
from tf_globalmp import prune
from tf_globalmp.channels import rule as rule_lib
from tf_globalmp.channels import select
from tf_globalmp.channels import shrink as shrink_lib


def enabled(config):
    return config.mode != "dense" and getattr(config, "granularity", "weight") == "channel"


def resolve(config, load_pretrained):
    """`config` with the sparsity that reaches `config.flops_target` on the pretrained
    weights (`load_pretrained()` -> the plain model; a copy of the config; unchanged
    without a FLOPs target)."""
    if not enabled(config) or config.flops_target is None:
        return config
    sparsity = rule_lib.sparsity_for_flops(
        load_pretrained(), config.flops_target, config.min_channels, config.channel_score,
        distribution=getattr(config, "layer_distribution", "global"),
        channel_multiple=config.channel_multiple)
    logging.info("flops_target %.4f: channel sparsity %.6f (score %s)",
                 config.flops_target, sparsity, config.channel_score)
    return dataclasses.replace(config, sparsity=sparsity)


def wrap(model, config, schedule, distribution):
    """`prune_low_magnitude_global(..., granularity="channel")` with the config's fields."""
    return prune.prune_low_magnitude_global(
        model, schedule, granularity="channel", min_channels=config.min_channels,
        channel_score=config.channel_score, distribution=distribution,
        channel_multiple=config.channel_multiple)


def epoch_log_options(model, config):
    """Keyword arguments for `EpochLog`: sparsity as the fraction of groups removed."""
    if not enabled(config):
        return {}
    return {"sparsity": rule_lib.channel_rule(model).mask_sparsity}


def target_sparsity(model, config):
    """The group fraction the run ends at: round(sparsity * groups) / groups (global,
    exact), else what the masks hold (uniform, or widths rounded to a multiple)."""
    rule = rule_lib.channel_rule(model)
    if rule.distribution != "global" or rule.channel_multiple > 1:
        return rule.mask_sparsity()
    return select.n_remove_for(rule.n_groups, config.sparsity) / rule.n_groups


def finish(model, stripped):
    """(shrunk model, metrics entries, {file name: writer}) of a channel-pruned run."""
    rule = rule_lib.channel_rule(model)
    costs = rule.mask_costs()
    shrunk = shrink_lib.shrink(stripped)
    metrics = {
        "granularity": "channel",
        "channel_sparsity": rule.mask_sparsity(),
        "min_channels": rule.min_channels,
        "channel_score": rule.score,
        "channel_multiple": rule.channel_multiple,
        "channel_groups": costs.groups,
        "channel_groups_removed": costs.removed_fraction("groups"),
        "channels_removed": costs.removed_fraction("channels"),
        "kernel_weights_removed": costs.removed_fraction("weights"),
        "kernel_flops_removed": costs.removed_fraction("flops"),
        "shrunk_parameters": int(shrunk.count_params()),
        "shrunk_flops": flops.flops_report(shrunk).dense,
    }

    def write_shrunk(path):
        shrunk.save(path)
        return {"shrunk_keras_bytes": os.path.getsize(path)}

    return shrunk, metrics, {"model_shrunk.keras": write_shrunk}
