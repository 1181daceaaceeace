"""Mesh, shardings and multi-device / multi-process equivalence of the training computation."""

import json
import os
import socket
import subprocess
import sys

import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from snipjax import checkpoint, models, parallel
from snipjax.data.pipeline import make_batch
from snipjax.task import make_steps
from snipjax.task_data import MODEL_INPUTS, model_inputs
from snipjax.tasks import pretrain
from snipjax.tasks.pretrain import make_loss_fn, pretraining_task
from training_helpers import read_metrics, small_config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def mesh_config(data, fsdp):
    return ml_collections.ConfigDict({"data": data, "fsdp": fsdp})


def host_batch(config, step=0):
    indices = np.arange(step * config.batch_size, (step + 1) * config.batch_size)
    local = make_batch(config.data, config.seed, indices)
    return model_inputs(local)


def assert_trees_close(actual, expected, rtol=1e-5):
    """Every entry within rtol of the tree's scale (its largest magnitude): summing in another order moves
    entries that nearly cancel, or that are zero up to rounding (the gradient of a bias before a softmax),
    by a few ulps of the large entries, not of their own."""
    actual, expected = jax.device_get(actual), jax.device_get(expected)
    scale = max(float(np.max(np.abs(e), initial=0.0)) for e in jax.tree.leaves(expected))
    jax.tree.map(lambda a, e: np.testing.assert_allclose(a, e, rtol=rtol, atol=rtol * scale), actual, expected)


def comparable_params(params):
    """The params without the pooling scores' biases: a softmax ignores a shift of its inputs, so their
    gradient is zero up to rounding, and Adam scales that noise up to updates of order lr."""
    flat = flax.traverse_util.flatten_dict(jax.device_get(params))
    return {path: value for path, value in flat.items() if path[-3:] != ("pool", "score", "bias")}


def assert_metrics_close(actual, expected):
    """The continuous metrics to rtol 1e-5. Retrieval accuracies are left out: they jump when float noise of
    1e-7 in the latents reorders near-tied candidates, as at initialization."""
    for name in expected:
        if not name.startswith("top"):
            np.testing.assert_allclose(actual[name], expected[name], rtol=1e-5, atol=1e-7, err_msg=name)


def test_mesh_takes_the_remaining_devices():
    mesh = parallel.make_mesh(mesh_config(-1, 2))
    assert dict(mesh.shape) == {"data": 4, "fsdp": 2}
    assert mesh.axis_types == (jax.sharding.AxisType.Auto,) * 2


@pytest.mark.parametrize("data, fsdp", [(3, 1), (-1, 3), (-1, -1)])
def test_mesh_rejects_shapes_that_do_not_cover_the_devices(data, fsdp):
    with pytest.raises(ValueError, match="mesh"):
        parallel.make_mesh(mesh_config(data, fsdp))


def test_fsdp_splits_the_largest_divisible_axis_of_large_matrices():
    mesh = parallel.make_mesh(mesh_config(4, 2))
    shapes = {"embedding": (1001, 64), "kernel": (64, 256), "small": (8, 8), "bias": (4096,), "step": ()}
    tree = {k: jax.ShapeDtypeStruct(s, jnp.float32) for k, s in shapes.items()}
    specs = {k: s.spec for k, s in parallel.shard_by_shape(mesh, tree, fsdp_min_size=1000).items()}
    assert specs == {"embedding": P(None, "fsdp"), "kernel": P(None, "fsdp"), "small": P(None, None),
                     "bias": P(None), "step": P()}
    replicated = parallel.shard_by_shape(parallel.make_mesh(mesh_config(-1, 1)), tree, fsdp_min_size=1)
    assert all(s.is_fully_replicated for s in replicated.values())


def test_global_batch_splits_rows_over_all_devices():
    mesh = parallel.make_mesh(mesh_config(4, 2))
    rows = np.arange(16 * 3, dtype=np.int32).reshape(16, 3)
    batch = parallel.global_batch(mesh, {"rows": rows})["rows"]
    assert batch.sharding.spec == P(("data", "fsdp"))
    assert {shard.data.shape for shard in batch.addressable_shards} == {(2, 3)}
    np.testing.assert_array_equal(np.asarray(batch), rows)
    with pytest.raises(ValueError, match="8 devices"):
        parallel.global_batch(mesh, {"rows": rows[:12]})


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["infonce", "clip", "siglip"])
def test_loss_and_grads_on_8_devices_equal_1_device(kind):
    config = small_config(**{"loss.kind": kind})
    model = models.make_snip(config)
    loss_and_grads = jax.value_and_grad(make_loss_fn(model, kind), has_aux=True)
    batch = host_batch(config)
    params = jax.jit(lambda key: model.init(key, *(batch[k] for k in MODEL_INPUTS))["params"])(
        jax.random.key(0))

    def on_mesh(mesh):
        replicated = parallel.replicated(mesh)
        fn = jax.jit(loss_and_grads, in_shardings=(replicated, parallel.batch_sharding(mesh)))
        return jax.device_get(fn(jax.device_put(params, replicated), parallel.global_batch(mesh, batch)))

    (loss_8, metrics_8), grads_8 = on_mesh(parallel.make_mesh(mesh_config(-1, 1)))
    (loss_1, metrics_1), grads_1 = on_mesh(parallel.make_mesh(mesh_config(1, 1), jax.devices()[:1]))
    np.testing.assert_allclose(loss_8, loss_1, rtol=1e-5)
    assert_metrics_close(metrics_8, metrics_1)
    assert_trees_close(grads_8, grads_1)


@pytest.mark.slow
def test_fsdp_equals_replicated():
    """Gradients, metrics and trained parameters with FSDP-sharded parameters equal replicated ones."""
    config = small_config(**{"mesh.fsdp": 2, "mesh.fsdp_min_size": 1024})
    fsdp_mesh, replicated_mesh = parallel.make_mesh(config.mesh), parallel.make_mesh(mesh_config(-1, 1))
    fsdp_steps = make_steps(pretraining_task(config, fsdp_mesh), config, fsdp_mesh)
    replicated_steps = make_steps(pretraining_task(config, replicated_mesh), config, replicated_mesh)
    fsdp_state = fsdp_steps.init(jax.random.key(0))
    split = [leaf.sharding.spec for leaf in jax.tree.leaves(fsdp_state["params"]) if "fsdp" in leaf.sharding.spec]
    assert split, "some matrices should be split over 'fsdp'"
    replicated_state = replicated_steps.init(jax.random.key(0))
    assert_trees_close(fsdp_state["params"], replicated_state["params"], rtol=0)

    loss_and_grads = jax.value_and_grad(make_loss_fn(models.make_snip(config), config.loss.kind), has_aux=True)
    batch = host_batch(config)
    fsdp_grads = jax.jit(loss_and_grads)(fsdp_state["params"], parallel.global_batch(fsdp_mesh, batch))[1]
    replicated_grads = jax.jit(loss_and_grads)(replicated_state["params"],
                                               parallel.global_batch(replicated_mesh, batch))[1]
    assert_trees_close(fsdp_grads, replicated_grads)

    for step in range(2):
        fsdp_state, fsdp_metrics = fsdp_steps.train(fsdp_state, parallel.global_batch(fsdp_mesh,
                                                                                     host_batch(config, step)))
        replicated_state, replicated_metrics = replicated_steps.train(
            replicated_state, parallel.global_batch(replicated_mesh, host_batch(config, step)))
        assert_metrics_close(jax.device_get(fsdp_metrics), jax.device_get(replicated_metrics))
    assert [leaf.sharding.spec for leaf in jax.tree.leaves(fsdp_state["params"])
            if "fsdp" in leaf.sharding.spec] == split
    assert_trees_close(comparable_params(fsdp_state["params"]), comparable_params(replicated_state["params"]))


CONFIG_FILE = '''
import json
import ml_collections

def get_config():
    return ml_collections.ConfigDict(json.loads({config_json!r}))
'''


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_processes_with_4_devices_each_equal_one_process_with_8(tmp_path):
    config = small_config(total_steps=3, eval_every=3, checkpoint_every=3)
    config_file = tmp_path / "config.py"
    config_file.write_text(CONFIG_FILE.format(config_json=config.to_json()))
    port = free_port()
    env = dict(os.environ, JAX_PLATFORMS="cpu", JAX_NUM_CPU_DEVICES="4")
    processes = [subprocess.Popen(
        [sys.executable, "-m", "snipjax.train", f"--config={config_file}", f"--workdir={tmp_path / 'multi'}",
         f"--coordinator_address=localhost:{port}", "--num_processes=2", f"--process_id={i}"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for i in range(2)]
    for process in processes:
        output, _ = process.communicate(timeout=600)
        assert process.returncode == 0, output[-3000:]

    pretrain.train_and_evaluate(config, str(tmp_path / "single"))
    multi, single = read_metrics(tmp_path / "multi"), read_metrics(tmp_path / "single")
    assert sorted(multi) == sorted(single) == [1, 2, 3]
    for step in single:
        assert_metrics_close(multi[step], single[step])
    assert_metrics_close(read_metrics(tmp_path / "multi", "eval")[3], read_metrics(tmp_path / "single", "eval")[3])
    assert_trees_close(comparable_params(checkpoint.load_params(tmp_path / "multi")[1]),
                       comparable_params(checkpoint.load_params(tmp_path / "single")[1]))
    assert json.loads((tmp_path / "multi" / "config.json").read_text()) == config.to_dict()
