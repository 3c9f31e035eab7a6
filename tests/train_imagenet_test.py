"""ImageNet training glue without a strategy: mixed precision, compile, chief logic."""

import types

import numpy as np
import pytest

import tf_globalmp
import tf_keras as keras

from tf_globalmp import configs
from tf_globalmp import controller
from tf_globalmp import optim
from tf_globalmp import schedules
from tf_globalmp import wrapping
from tf_globalmp.data import imagenet as imagenet_data
from tf_globalmp.tasks import common
from tf_globalmp.tasks import imagenet as imagenet_task


def _resolver(task_type, task_id, cluster):
    return types.SimpleNamespace(
        cluster_resolver=types.SimpleNamespace(
            task_type=task_type, task_id=task_id,
            cluster_spec=lambda: types.SimpleNamespace(as_dict=lambda: cluster)))


def test_chief_is_the_chief_or_worker_0_without_one():
    assert common.is_chief(types.SimpleNamespace())
    assert common.is_chief(_resolver(None, None, {}))
    assert common.is_chief(_resolver("worker", 0, {"worker": ["a", "b"]}))
    assert not common.is_chief(_resolver("worker", 1, {"worker": ["a", "b"]}))
    assert common.is_chief(_resolver("chief", 0, {"chief": ["c"], "worker": ["a"]}))
    assert not common.is_chief(_resolver("worker", 0, {"chief": ["c"], "worker": ["a"]}))


@pytest.mark.slow  # about 40-60 s each on the busy 2-core CPU
@pytest.mark.parametrize("precision", ["mixed_float16", "mixed_bfloat16"])
def test_mixed_precision_keeps_pruning_in_float32_and_trains(precision):
    config = configs.imagenet_config(
        "cpu_fake_mobilenet_v1_oneshot90_mt", model="mobilenet_v2", image_size=32,
        batch_size=2, eval_batch_size=2, steps_per_epoch=2, precision=precision,
        weight_decay=1e-4, verbose=0)
    train_ds, _, info = imagenet_data.load(config)
    model = imagenet_task.build_model(config, info, 2)
    imagenet_task.compile_model(model, config, 2)
    assert keras.mixed_precision.global_policy().name == "float32"  # restored
    assert model.output.dtype == "float32"
    assert isinstance(model.optimizer, keras.mixed_precision.LossScaleOptimizer) == (
        precision == "mixed_float16")
    wrappers = wrapping.collect_wrappers(model)
    assert all(w.dtype == "float32" and m.dtype == "float32"
               for wr in wrappers for w, m, _ in wr.pruning_vars)
    decayed = optim.decayed_weights(model)
    assert decayed and not any("bias" in w.name or "batch_norm" in w.name or
                               "gamma" in w.name for w in decayed)
    pruner = controller.GlobalPruner(model)
    result = pruner.prune_to(schedules.sparsity_at(pruner.schedule, 0)[1], step=0)
    model.fit(train_ds, epochs=1, steps_per_epoch=2, verbose=0,
              callbacks=[controller.UpdateGlobalPruningStep()])
    assert pruner.layer_kept() == list(result.layer_kept)  # the one-shot mask stays fixed
    kept = sum(int(np.count_nonzero(w.numpy() * m.numpy()))
               for wr in wrappers for w, m, _ in wr.pruning_vars)
    assert kept <= result.kept and np.isfinite(model.evaluate(train_ds.take(1), verbose=0)[0])


def test_gradual_rows_prune_cubically_from_epoch_20_to_79():
    config = configs.imagenet_config("paper_resnet50_gradual90", data_dir="/d")
    steps = config.train_examples // config.batch_size  # 5004
    schedule = common.pruning_schedule(config, steps)
    assert (schedule.begin_step, schedule.end_step, schedule.frequency, schedule.power) == (
        20 * steps, 79 * steps, steps, 3)
    assert (schedule.initial_sparsity, schedule.final_sparsity) == (0.0, 0.9)
