"""CIFAR-10 task and config with granularity="channel" (tiny real data, ResNet-8)."""

import os

import numpy as np
import pytest

import tf_globalmp
from tf_globalmp import configs
from tf_globalmp import models
from tf_globalmp.tasks import cifar10 as cifar10_task

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURE = os.path.join(ROOT, "tests", "testdata", "cifar10_tiny")


def _config(**overrides):
    values = dict(model="resnet8", data_dir=FIXTURE, cache_dir=False, batch_size=25,
                  eval_batch_size=20, epochs=1, verbose=0, threads=1)
    values.update(overrides)
    return configs.cifar10_config(**values)


def test_one_shot_channel_run_writes_the_shrunk_model(tmp_path):
    dense = models.build_cifar("resnet8", 10, (32, 32, 3), 0.0)
    dense.save(tmp_path / "dense.keras")
    config = _config(mode="one_shot", pretrained=str(tmp_path / "dense.keras"),
                     granularity="channel", flops_target=0.4, min_channels=2)
    metrics = cifar10_task.run(config, str(tmp_path / "run"))
    assert metrics["granularity"] == "channel"
    assert metrics["target_sparsity"] == metrics["channel_groups_removed"]
    assert metrics["channel_sparsity"] == metrics["channel_groups_removed"]
    assert metrics["kernel_flops_removed"] >= 0.4
    assert metrics["shrunk_parameters"] < metrics["model_parameters"]
    assert metrics["history"][-1]["sparsity"] == metrics["channel_groups_removed"]
    assert metrics["masks_fixed_during_finetune"]
    masked = tf_globalmp.load_model(str(tmp_path / "run" / "model.keras"))
    shrunk = tf_globalmp.load_model(str(tmp_path / "run" / "model_shrunk.keras"))
    x = np.random.default_rng(0).standard_normal((2, 32, 32, 3)).astype(np.float32)
    a, b = masked(x, training=False).numpy(), shrunk(x, training=False).numpy()
    assert np.max(np.abs(a - b)) <= 1e-5 * np.max(np.abs(a))


@pytest.mark.parametrize("overrides, message", [
    (dict(layer_distribution="erk"), "granularity 'channel' takes a layer distribution"),
    (dict(min_weights=3), "takes min_channels, not min_weights"),
    (dict(min_channels=-1), "min_channels must be an int >= 0"),
    (dict(channel_multiple=0), "channel_multiple must be an int >= 1"),
    (dict(granularity="block"), "granularity must be one of"),
    (dict(flops_target=0.3), "flops_target .* mode must be 'one_shot'"),
    (dict(flops_target=1.0, mode="one_shot", pretrained=ROOT), r"flops_target must be in \(0, 1\)"),
    (dict(granularity="weight", flops_target=0.3), "flops_target needs granularity 'channel'"),
])
def test_channel_config_is_checked(overrides, message):
    with pytest.raises(ValueError, match=message):
        _config(**{"granularity": "channel", **overrides})


def test_config_channel_scores_and_default_are_the_selection_ones():
    import inspect

    import tf_globalmp
    from tf_globalmp.channels import rule
    from tf_globalmp.channels import select
    from tf_globalmp.configs import channels as channel_config

    assert channel_config.CHANNEL_SCORES == select.SCORES
    assert select.DEFAULT_SCORE in select.SCORES
    assert channel_config.ChannelPruning().channel_score == select.DEFAULT_SCORE
    for fn, name in [(tf_globalmp.prune_low_magnitude_global, "channel_score"),
                     (rule.prune_channels, "channel_score"),
                     (rule.sparsity_for_flops, "channel_score"),
                     (select.group_scores, "score")]:
        assert inspect.signature(fn).parameters[name].default == select.DEFAULT_SCORE
