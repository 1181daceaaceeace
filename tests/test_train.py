"""The training program: the real loop on a shrunken config, exact resume, stops, configs."""

import glob
import importlib.util
import json
import os
import signal
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from snipjax import accelerators, checkpoint, loop, models, parallel
from snipjax.bench import train as bench_train
from snipjax.data import tokens
from snipjax.data.pipeline import make_batch
from snipjax.models import flops
from snipjax.task import make_steps
from snipjax.task_data import MODEL_INPUTS, example_inputs, model_inputs
from snipjax.tasks import pretrain
from snipjax.tasks.pretrain import make_loss_fn, pretraining_task
from training_helpers import least_squares_task, read_metrics, small_config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def saved_steps(workdir):
    return sorted(int(os.path.basename(d)) for d in glob.glob(os.path.join(workdir, "checkpoints", "*")))


def assert_same_records(actual, expected):
    assert sorted(actual) == sorted(expected)
    for step in expected:
        for name in expected[step]:
            np.testing.assert_allclose(actual[step][name], expected[step][name], rtol=1e-6, err_msg=(step, name))


@pytest.mark.slow
def test_training_program_runs_and_writes_its_outputs(tmp_path):
    evaluation = pretrain.train_and_evaluate(small_config(), str(tmp_path))
    records = read_metrics(tmp_path)
    assert sorted(records) == [1, 2, 3, 4, 5, 6]
    assert all(np.isfinite(r["loss"]) and r["grad_norm"] > 0 for r in records.values())
    assert {"learning_rate", "top1_n2s", "top1_s2n", "top5_n2s", "top5_s2n"} <= records[6].keys()
    assert sorted(read_metrics(tmp_path, "eval")) == [3, 6]
    assert read_metrics(tmp_path, "eval")[6] == evaluation
    assert evaluation.keys() >= {"loss", "top1_n2s", "top5_n2s", "top1_s2n", "top5_s2n"}
    assert saved_steps(tmp_path) == [2, 4, 6]
    assert glob.glob(str(tmp_path / "tb" / "events.out.tfevents.*"))
    assert checkpoint.read_config(tmp_path) == small_config()
    # Run again, the run is finished: no training, the same evaluation.
    assert pretrain.train_and_evaluate(small_config(), str(tmp_path)) == evaluation
    assert sorted(read_metrics(tmp_path)) == [1, 2, 3, 4, 5, 6]
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert sum(json.loads(line)["split"] == "eval" for line in lines) == 2  # the rerun logged nothing


def test_symbol_padding_is_cut_to_the_longest_rounded_up_to_the_bucket():
    assert tokens.bucketed_length(np.array([5, 33, 17]), 16, 200) == 48
    assert tokens.bucketed_length(np.array([5, 32]), 16, 200) == 32
    assert tokens.bucketed_length(np.array([5, 195]), 16, 200) == 200  # never beyond what the data is padded to
    assert tokens.bucketed_length(np.array([5, 33]), 0, 200) == 200  # 0: no cutting
    batch = {"symbols": np.ones((2, 64), np.int32), "symbol_len": np.array([3, 40], np.int32)}
    assert tokens.trim_symbols(batch, 48)["symbols"].shape == (2, 48)
    with pytest.raises(ValueError, match="cannot cut symbol sequences of up to 40 tokens to 32"):
        tokens.trim_symbols(batch, 32)


@pytest.mark.slow
def test_a_run_with_cut_symbol_padding_equals_one_padded_to_max_len(tmp_path):
    """Every batch cut to its bucket (48 or 64 of max_len 96 here) gives the run a step padded to 96 gives,
    with the official unmasked pooling (masked pooling ignores padding anyway: tests/test_models.py)."""
    runs = {}
    for bucket in (0, 16):
        config = small_config(**{"length_bucket": bucket, "data.max_len": 96, "model.max_positions": 96})
        pretrain.train_and_evaluate(config, str(tmp_path / str(bucket)))
        runs[bucket] = read_metrics(tmp_path / str(bucket)), read_metrics(tmp_path / str(bucket), "eval")
    task = pretraining_task(config, parallel.make_mesh(config.mesh))
    first = task.trim(model_inputs(make_batch(config.data, 0, np.arange(16))), lambda n: n)
    assert first["symbols"].shape[1] < 96  # the bucketed run did cut
    for cut, padded in zip(runs[16], runs[0]):
        assert sorted(cut) == sorted(padded)
        for step in padded:
            for name in ("loss", "top1_n2s", "top1_s2n"):
                np.testing.assert_allclose(cut[step][name], padded[step][name], rtol=2e-5, err_msg=(step, name))


@pytest.mark.slow
def test_train_step_compiles_once():
    config = small_config()
    mesh = parallel.make_mesh(config.mesh)
    steps = make_steps(pretraining_task(config, mesh), config, mesh)
    state = steps.init(jax.random.key(0))
    for step in range(3):
        local = make_batch(config.data, 0, np.arange(step * 16, step * 16 + 16))
        batch = parallel.global_batch(mesh, model_inputs(local))
        state, _ = steps.train(state, batch)
        steps.evaluate(state["params"], {}, batch)
    assert steps.train._cache_size() == 1
    assert steps.evaluate._cache_size() == 1
    assert int(state["step"]) == 3


KILLED_RUN = """
import json, os, signal, sys
import ml_collections
from snipjax import checkpoint
from snipjax.tasks import pretrain

save = checkpoint.Checkpointer.save

def save_or_die(self, step, *args, **kwargs):
    if step == {kill_at}:  # steps after the last checkpoint are done and logged, then the process dies
        self._manager.wait_until_finished()
        os.kill(os.getpid(), signal.SIGKILL)
    return save(self, step, *args, **kwargs)

checkpoint.Checkpointer.save = save_or_die
pretrain.train_and_evaluate(ml_collections.ConfigDict(json.loads(sys.argv[1])), sys.argv[2])
"""


@pytest.mark.slow
def test_run_killed_and_resumed_equals_uninterrupted_run(tmp_path):
    config = small_config(total_steps=7, checkpoint_every=3)
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_RUN.format(kill_at=5), config.to_json(), str(tmp_path / "resumed")],
        cwd=REPO, env=dict(os.environ, JAX_PLATFORMS="cpu", JAX_NUM_CPU_DEVICES="8"),
        capture_output=True, text=True, timeout=600)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert sorted(read_metrics(tmp_path / "resumed")) == [1, 2, 3, 4, 5]
    assert saved_steps(tmp_path / "resumed") == [3]

    pretrain.train_and_evaluate(config, str(tmp_path / "resumed"))  # steps 4 and 5 again, then 6 and 7
    pretrain.train_and_evaluate(config, str(tmp_path / "uninterrupted"))
    logged = [json.loads(line) for line in (tmp_path / "resumed" / "metrics.jsonl").read_text().splitlines()]
    train_steps = [r["step"] for r in logged if r["split"] == "train"]
    assert train_steps == [1, 2, 3, 4, 5, 6, 7]  # the steps after the checkpoint are logged once, in order
    for split in ("train", "eval"):
        assert_same_records(read_metrics(tmp_path / "resumed", split), read_metrics(tmp_path / "uninterrupted", split))
    resumed, uninterrupted = (checkpoint.load_params(tmp_path / run)[1] for run in ("resumed", "uninterrupted"))
    jax.tree.map(np.testing.assert_array_equal, resumed, uninterrupted)


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl-C"])
def test_sigterm_or_ctrl_c_saves_and_stops_at_the_next_step(tmp_path, monkeypatch, signum):
    class TerminatedProducer(pretrain.BatchProducer):
        def next(self):
            if self.step == 2:  # a preemption notice (or Ctrl-C) arrives while update 3 is being prepared
                os.kill(os.getpid(), signum)
            return super().next()

    handlers = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    monkeypatch.setattr(pretrain, "BatchProducer", TerminatedProducer)
    pretrain.train_and_evaluate(small_config(checkpoint_every=100), str(tmp_path))
    assert sorted(read_metrics(tmp_path)) == [1, 2, 3]
    assert saved_steps(tmp_path) == [3]
    assert {s: signal.getsignal(s) for s in handlers} == handlers


def test_non_finite_loss_names_the_update_and_its_samples():
    window = loop.TrainWindow(global_batch_size=32)
    window.add(4, {"loss": np.float32(1.0)}, data_s=0.0)
    window.add(5, {"loss": np.float32(np.nan)}, data_s=0.0)
    with pytest.raises(FloatingPointError, match=r"update 5 \(data step 4: global samples 128\.\.159\)"):
        window.resolve()


def test_progress_line_shows_loss_accuracy_throughput_and_eta():
    window = loop.TrainWindow(global_batch_size=32)
    window.add(1, {"loss": 2.5, "top1_n2s": 0.25, "top1_s2n": 0.125}, data_s=0.001)
    shown = (("top1_n2s", "top1 n→s"), ("top1_s2n", "top1 s→n"))
    line = loop.progress_line(10, 300, window.summary(remaining_steps=290), shown)
    assert line.startswith("step  10/300 | loss 2.5000 | top1 n→s 0.250 | top1 s→n 0.125 | ")
    assert "samples/s" in line and "data 1.0 ms" in line and "ETA" in line


def test_batch_that_does_not_split_over_devices_is_refused():
    with pytest.raises(ValueError, match="multiple of the 8 devices"):
        loop.check_batch_sizes({"batch_size": 12}, jax.device_count())


CONFIGS = sorted(glob.glob(os.path.join(REPO, "configs", "*.py")))


@pytest.mark.parametrize("path", CONFIGS, ids=os.path.basename)
def test_config_builds_and_its_docstring_starts_with_its_launch_command(path, monkeypatch):
    monkeypatch.syspath_prepend(REPO)  # configs run from the repository root and may import each other
    spec = importlib.util.spec_from_file_location("config_module", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    config = module.get_config()
    models.make_snip(config)  # validates the model and loss fields
    command = next(line.strip() for line in module.__doc__.splitlines()[1:] if line.strip())
    assert os.path.relpath(path, REPO) in command and ("snipjax.train" in command or "launch/" in command)


@pytest.mark.slow
def test_benchmark_reports_throughput_flops_mfu_and_a_profile_in_bfloat16():
    config = small_config(**{"model.dtype": "bfloat16"})
    result = bench_train.run(config, steps=2, peak_flops=1e12, profile_steps=1)
    assert result["steps"] == 2 and result["samples_per_s"] > 0 and result["step_ms"] > 0
    assert np.isfinite(result["final_loss"]) and result["xla_flops_per_device_step"] > 0
    assert len(result["symbol_lengths"]) == 2 and max(result["symbol_lengths"]) <= config.data.max_len
    np.testing.assert_allclose(result["mfu"], result["model_flops_per_step"] / (
        result["step_ms"] / 1e3 * 1e12 * 8), rtol=1e-9)
    assert result["peak_memory_bytes"] > 0
    profile = result["profile"]
    assert profile["op_ms"] > 0 and os.path.exists(profile["trace"])
    assert 0.5 < sum(profile["shares"].values()) <= 1 + 1e-6
    assert all(bench_train._OP_NAME.match(kind) for kind in profile["shares"])


def test_profile_counts_compiled_ops_by_kind_and_not_the_frames_around_them():
    kinds = {name: (m.group(1) if (m := bench_train._OP_NAME.match(name)) else None)
             for name in ("ynn_fusion.402", "copy_bitcast_fusion", "dot", "loop_add_fusion.3",
                          "ThunkExecutor::Execute", "$api.py:2479 block_until_ready", "end: ynn_fusion",
                          "PjitFunction(jit(train_step))")}
    assert kinds == {"ynn_fusion.402": "ynn_fusion", "copy_bitcast_fusion": "copy_bitcast_fusion", "dot": "dot",
                     "loop_add_fusion.3": "loop_add_fusion", "ThunkExecutor::Execute": None,
                     "$api.py:2479 block_until_ready": None, "end: ynn_fusion": None,
                     "PjitFunction(jit(train_step))": None}


def test_analytic_flops_agree_with_xla_on_one_device():
    config = small_config(batch_size=8)
    model = models.make_snip(config)
    inputs = {k: jnp.zeros(s.shape, s.dtype) for k, s in example_inputs(config, config.batch_size).items()}
    params = jax.eval_shape(model.init, jax.random.key(0), *(inputs[k] for k in MODEL_INPUTS))["params"]
    loss_and_grads = jax.jit(jax.value_and_grad(make_loss_fn(model, config.loss.kind), has_aux=True))
    xla_flops = loss_and_grads.lower(params, inputs).compile().cost_analysis()["flops"]
    # The analytic count leaves out norms, softmaxes and other elementwise work, large at width 32.
    assert 0.7 < flops.model_flops_per_step(config) / xla_flops <= 1.0


@pytest.mark.parametrize("kind, dtype, peak", [
    ("NVIDIA H100 80GB HBM3", "bfloat16", 989e12), ("NVIDIA H200", "float32", 495e12),
    ("TPU v4", "bfloat16", 275e12), ("TPU v5 lite", "bfloat16", 197e12), ("TPU v5p", "bfloat16", 459e12),
    ("cpu", "float32", None)])
def test_known_peaks_are_found_by_device_kind(kind, dtype, peak):
    chip = accelerators.chip_of(kind)
    assert (chip.peak_flops[dtype] if chip else None) == peak


def test_resuming_with_a_config_that_changes_the_data_stream_is_refused(tmp_path):
    config = small_config()
    (tmp_path / "checkpoints").mkdir()
    checkpoint.write_config(str(tmp_path), config)
    other_workers = small_config(**{"data.workers": config.data.workers + 1, "total_steps": config.total_steps + 5})
    keys = pretraining_task(config, parallel.make_mesh(config.mesh)).resume_keys
    loop.check_resumable(other_workers, str(tmp_path), keys)  # workers and length may change
    with pytest.raises(ValueError, match="seed, batch_size"):
        loop.check_resumable(small_config(seed=config.seed + 1, batch_size=2 * config.batch_size),
                                str(tmp_path), keys)


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", *args], cwd=REPO, capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, JAX_PLATFORMS="cpu"))


@pytest.mark.parametrize("args, message", [
    (("snipjax.train", "--config=configs/tiny.py", "--workdir=/tmp/x", "--config.batch_sise=8"),
     'unknown config key \'batch_sise\' Did you mean "batch_size"'),
    (("snipjax.train", "--config=configs/missing.py", "--workdir=/tmp/x"), "No such file or directory"),
    (("snipjax.train", "--config=configs/tiny.py", "--workdir=/tmp/x", "--config.batch_size=many"),
     "invalid literal for int()"),
    (("snipjax.tasks.property", "--config=configs/property/cpu.py", "--workdir=/tmp/x", "--config.mode=thawed"),
     "config.mode='thawed' is unknown"),
    (("snipjax.bench", "train", "--config=configs/missing.py"), "No such file or directory"),
])
def test_command_line_mistakes_get_one_line_and_a_nonzero_status(args, message):
    result = run_cli(*args)
    assert result.returncode == 2
    assert result.stderr.startswith("error: ") and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_help_exits_zero_and_unwritable_output_is_named(tmp_path):
    assert run_cli("snipjax.bench", "--help").returncode == 0
    blocked = tmp_path / "file"
    blocked.write_text("")
    result = run_cli("snipjax.data", "--n", "1", "--out", str(blocked / "samples.jsonl"))
    assert result.returncode == 1 and f"cannot write --out {blocked / 'samples.jsonl'}" in result.stderr


def test_the_shared_loop_trains_any_task_with_frozen_parameters(tmp_path):
    """A task of a few lines (least squares with a frozen offset) gets the loop's checkpoints, metrics and
    evaluation; the frozen part stays bit-identical and outside the optimizer."""
    task = least_squares_task(offset=3.0)
    config = small_config(total_steps=60, log_every=20, eval_every=30, checkpoint_every=30)
    config.optim.update(kind="adamw_cosine", lr=0.1, warmup_steps=5)
    evaluation = loop.run(lambda config, mesh: task, config, str(tmp_path))
    assert evaluation["loss"] < 0.05 and sorted(read_metrics(tmp_path, "eval")) == [30, 60]
    state = checkpoint._restore_as_numpy(tmp_path / "checkpoints" / "60" / checkpoint.STATE)
    assert state["frozen"]["offset"] == 3.0 and "offset" not in str(jax.tree_util.tree_structure(state["opt_state"]))
    np.testing.assert_allclose(state["params"]["w"], [1.0, -2.0, 0.5], atol=0.1)


def test_a_config_file_loads_with_the_configs_it_builds_on():
    from snipjax.config import load_config_file

    # A config one folder down imports from configs/ too (loaded first: a load puts the root on sys.path).
    assert load_config_file(os.path.join(REPO, "configs", "property", "cpu.py")).property == "ncr"
    config = load_config_file(os.path.join(REPO, "configs", "cpu_10d.py"))  # cpu_10d ← cpu_1d ← tiny
    assert config.data.max_dim == 10 and config.model.point_input == "values" and config.model.d_model == 64
