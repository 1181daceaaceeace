"""Checkpoints of training runs and exported weights."""

import os
import signal

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from snipjax import checkpoint, parallel


@pytest.fixture
def mesh():
    return parallel.make_mesh(ml_collections.ConfigDict({"data": -1, "fsdp": 2}))


def make_state(mesh, value=1.0):
    params = {"kernel": jnp.full((64, 8), value), "bias": jnp.arange(8.0) * value}
    state = {"step": jnp.int32(7), "params": params, "opt_state": ({"mu": params}, jnp.int32(7))}
    return jax.device_put(state, parallel.shard_by_shape(mesh, state, fsdp_min_size=256))


def abstract(state):
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), state)


def test_restores_the_state_its_layout_and_the_data_position(tmp_path, mesh):
    state = make_state(mesh, 2.0)
    saver = checkpoint.Checkpointer(tmp_path, save_every=1, keep=2)
    assert saver.save(7, state, data_step=7)
    saver.close()

    restorer = checkpoint.Checkpointer(tmp_path, save_every=1, keep=2)
    restored, data_step = restorer.restore_or_init(abstract(state), init=lambda: pytest.fail("should restore"))
    restorer.close()
    assert data_step == 7
    jax.tree.map(np.testing.assert_array_equal, jax.device_get(restored), jax.device_get(state))
    assert restored["params"]["kernel"].sharding == state["params"]["kernel"].sharding
    assert "fsdp" in restored["params"]["kernel"].sharding.spec


def test_initializes_when_there_is_no_checkpoint(tmp_path, mesh):
    checkpointer = checkpoint.Checkpointer(tmp_path, save_every=1, keep=2)
    state, data_step = checkpointer.restore_or_init(None, init=lambda: "fresh")
    checkpointer.close()
    assert (state, data_step) == ("fresh", 0)


def test_saves_every_k_steps_and_keeps_the_last_n(tmp_path, mesh):
    state = make_state(mesh)
    checkpointer = checkpoint.Checkpointer(tmp_path, save_every=2, keep=2)
    saved = [step for step in range(1, 8) if checkpointer.save(step, state, data_step=step)]
    assert checkpointer.save(7, state, data_step=7, force=True)
    checkpointer.close()
    assert saved == [2, 4, 6]
    assert sorted(int(name) for name in os.listdir(tmp_path)) == [6, 7]


def test_a_state_of_another_shape_is_refused_with_advice(tmp_path, mesh):
    saver = checkpoint.Checkpointer(tmp_path, save_every=1, keep=2)
    saver.save(1, make_state(mesh), data_step=1)
    saver.close()
    other = abstract(make_state(mesh))
    other["params"]["kernel"] = jax.ShapeDtypeStruct((32, 8), jnp.float32)
    other["params"]["extra"] = jax.ShapeDtypeStruct((8,), jnp.float32)
    checkpointer = checkpoint.Checkpointer(tmp_path, save_every=1, keep=2)
    with pytest.raises(ValueError, match="does not fit the train state this config builds.*config.json"):
        checkpointer.restore_or_init(other, init=lambda: None)
    checkpointer.close()


def test_sigterm_asks_the_run_to_stop_and_close_restores_the_handler(tmp_path):
    previous = signal.getsignal(signal.SIGTERM)
    checkpointer = checkpoint.Checkpointer(tmp_path, save_every=10, keep=1)
    assert not checkpointer.stop_requested(1)
    os.kill(os.getpid(), signal.SIGTERM)
    assert checkpointer.stop_requested(2)
    checkpointer.close()
    assert signal.getsignal(signal.SIGTERM) is previous


def test_export_and_workdir_load_the_same_params(tmp_path, mesh):
    config = ml_collections.ConfigDict({"model": {"d_model": 8}, "data": {"max_dim": 1}})
    state = make_state(mesh, 3.0)
    checkpoint.export_params(tmp_path / "export", config, state["params"])
    checkpoint.write_config(tmp_path / "run", config)
    saver = checkpoint.Checkpointer(tmp_path / "run" / "checkpoints", save_every=1, keep=3)
    saver.save(5, make_state(mesh, 1.0), data_step=5)
    saver.save(9, state, data_step=9)
    saver.close()
    expected = jax.device_get(state["params"])
    for path in ("export", "run"):
        loaded_config, params = checkpoint.load_params(tmp_path / path)
        assert loaded_config == config
        assert jax.tree.structure(params) == jax.tree.structure(expected)
        jax.tree.map(np.testing.assert_array_equal, params, expected)
        assert all(isinstance(leaf, np.ndarray) for leaf in jax.tree.leaves(params))


def test_loading_a_directory_without_weights_says_what_it_expects(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        checkpoint.load_params(tmp_path)
    checkpoint.write_config(tmp_path, ml_collections.ConfigDict({"seed": 0}))
    with pytest.raises(FileNotFoundError, match="neither params/"):
        checkpoint.load_params(tmp_path)


def _truncate_data(step_dir):
    """Cut every array data file of a step in half, as a copy or a disk that filled up would."""
    files = [p for p in (step_dir / "state").rglob("*") if p.is_file() and p.parent.name == "d"]
    for path in files:
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return files


def _truncate(step_dir, name):
    path = step_dir / name
    path.write_bytes(path.read_bytes()[:10])


@pytest.mark.parametrize("damage, named", [
    (_truncate_data, "state/"),
    (lambda step_dir: _truncate(step_dir, "state/_METADATA"), "state/_METADATA: unreadable"),
    (lambda step_dir: _truncate(step_dir, "data/metadata"), "data/metadata: unreadable"),
    (lambda step_dir: __import__("shutil").rmtree(step_dir / "state"), "state/ is missing"),
], ids=["data file", "metadata", "data position", "no state"])
def test_a_damaged_checkpoint_is_set_aside_and_the_step_before_resumes(tmp_path, mesh, caplog, damage, named):
    state = make_state(mesh, 2.0)
    saver = checkpoint.Checkpointer(tmp_path, save_every=1, keep=3)
    saver.save(4, state, data_step=4)
    saver.save(6, make_state(mesh, 3.0), data_step=6)
    saver.close()
    damage(tmp_path / "6")
    restorer = checkpoint.Checkpointer(tmp_path, save_every=1, keep=3)
    restored, data_step = restorer.restore_or_init(abstract(state), init=lambda: pytest.fail("should restore"))
    restorer.close()
    assert data_step == 4
    jax.tree.map(np.testing.assert_array_equal, jax.device_get(restored), jax.device_get(state))
    assert sorted(os.listdir(tmp_path)) == ["4", "6.damaged"]  # kept for a look, out of every resume's way
    [warning] = [r.getMessage() for r in caplog.records if "damaged" in r.getMessage()]
    assert warning.startswith(f"checkpoint step 6 is damaged ({named}") and "resuming from the step before" in warning


def test_an_interrupted_save_never_blocks_a_resume(tmp_path, mesh):
    (tmp_path / "8").mkdir()  # a save cut short where the rename is not atomic: the step dir, nothing in it
    checkpointer = checkpoint.Checkpointer(tmp_path, save_every=1, keep=3)
    state, data_step = checkpointer.restore_or_init(abstract(make_state(mesh)), init=lambda: "fresh")
    assert (state, data_step) == ("fresh", 0)
    assert checkpointer.save(8, make_state(mesh), data_step=8)  # the step is free to be saved again
    checkpointer.close()
    assert sorted(os.listdir(tmp_path)) == ["8", "8.damaged"]


def test_loading_a_damaged_checkpoint_names_the_step_and_the_file(tmp_path, mesh):
    config = ml_collections.ConfigDict({"model": {"d_model": 8}})
    checkpoint.write_config(tmp_path / "run", config)
    saver = checkpoint.Checkpointer(tmp_path / "run" / "checkpoints", save_every=1, keep=3)
    saver.save(5, make_state(mesh), data_step=5)
    saver.save(9, make_state(mesh), data_step=9)
    saver.close()
    _truncate(tmp_path / "run" / "checkpoints" / "9", "state/_METADATA")
    with pytest.raises(checkpoint.CheckpointError, match=r"checkpoints/9 is damaged \(state/_METADATA: unreadable.*"
                                                         r"the step before, 5, may be intact"):
        checkpoint.load_params(tmp_path / "run")
    checkpoint.export_params(tmp_path / "export", config, make_state(mesh)["params"])
    _truncate(tmp_path / "export" / "params", "_METADATA")
    with pytest.raises(checkpoint.CheckpointError, match=r"export/params is damaged \("):
        checkpoint.load_params(tmp_path / "export")


@pytest.mark.parametrize("name, message", [
    ("snip-1d.pth", "is a PyTorch checkpoint: convert it once with `python -m snipjax.convert"),
    ("weights.bin", "is a file; snipjax loads a folder"),
])
def test_loading_a_file_says_what_to_load_instead(tmp_path, name, message):
    (tmp_path / name).write_bytes(b"PK\x03\x04")
    with pytest.raises(ValueError, match=message):
        checkpoint.load_params(tmp_path / name)


def test_the_config_is_written_whole_or_not_at_all(tmp_path, monkeypatch):
    checkpoint.write_config(tmp_path, ml_collections.ConfigDict({"seed": 1}))
    before = (tmp_path / "config.json").read_text()
    broken = ml_collections.ConfigDict({"seed": 2})
    monkeypatch.setattr(ml_collections.ConfigDict, "to_json", lambda self, **kwargs: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        checkpoint.write_config(tmp_path, broken)
    assert (tmp_path / "config.json").read_text() == before and os.listdir(tmp_path) == ["config.json"]
