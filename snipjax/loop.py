"""The one training loop every task runs: pretraining, property prediction, decoder training.

  loop.run(make_task, config, workdir)   # make_task(config, mesh) -> snipjax.task.Task

Restores from WORKDIR/checkpoints if a checkpoint is there, else starts fresh. Writes WORKDIR/config.json,
WORKDIR/metrics.jsonl (one JSON object per log line, `split` `train` or `eval`) and TensorBoard events under
WORKDIR/tb, and prints a progress line every `log_every` steps. A resumed run first drops the log records of
the steps after its checkpoint, so every step is logged once. `cli(train_and_evaluate)` is the `python -m`
entry point of a task program: --config, --workdir and the multi-process flags.

The config keys the loop reads: seed, batch_size, total_steps, log_every, eval_every, checkpoint_every,
keep_checkpoints, optim (snipjax.optim), mesh (snipjax.parallel).
"""

from __future__ import annotations

import datetime
import json
import logging as std_logging
import os
import sys
import time
from typing import Callable

import jax
import numpy as np
import tensorboardX
from absl import app, flags, logging
from etils import epath
from ml_collections import config_flags

from snipjax import checkpoint, parallel
from snipjax.config import one_line, parse_flags
from snipjax.data.files import atomic_write
from snipjax.task import Steps, Task, global_batch, make_steps


class MetricWriter:
    """Metrics as JSON lines (WORKDIR/metrics.jsonl) and TensorBoard scalars (WORKDIR/tb), from process 0.

    Opened at `start_step`, it forgets what an earlier process logged after that step (the steps a resumed
    run repeats): the JSON lines are cut there and TensorBoard purges the later events.
    """

    def __init__(self, workdir: str, start_step: int):
        self._active = jax.process_index() == 0
        if self._active:
            path = os.path.join(workdir, "metrics.jsonl")
            if os.path.exists(path):
                with open(path) as f:
                    kept = [line for line in f if _logged_step(line) <= start_step]
                with atomic_write(path) as f:
                    f.writelines(kept)
            self._jsonl = open(path, "a")
            self._tb = tensorboardX.SummaryWriter(os.path.join(workdir, "tb"), purge_step=start_step + 1)

    def write(self, step: int, split: str, metrics: dict[str, float]) -> None:
        if not self._active:
            return
        self._jsonl.write(json.dumps({"step": step, "split": split, **metrics}) + "\n")
        self._jsonl.flush()
        for name, value in metrics.items():
            self._tb.add_scalar(f"{split}/{name}", value, step)

    def close(self) -> None:
        if self._active:
            self._jsonl.close()
            self._tb.close()


def _logged_step(line: str) -> float:
    """The step of a metrics.jsonl line; infinity for a blank line or one a killed run cut short, so both
    are dropped with the steps after the checkpoint."""
    try:
        return json.loads(line)["step"]
    except (ValueError, KeyError, TypeError):
        return float("inf")


class TrainWindow:
    """Train metrics and timings since the last log line.

    Each update's metrics are read one update late (`add` resolves the previous one), so the host queues the
    next update before it waits on the device; a non-finite loss still stops the run naming its update.
    """

    def __init__(self, global_batch_size: int):
        self.global_batch_size = global_batch_size
        self._pending = None
        self._restart()

    def _restart(self) -> None:
        self._rows: list[dict] = []
        self._data_s = 0.0
        self._start = time.perf_counter()

    def add(self, step: int, metrics, data_s: float) -> None:
        self.resolve()
        self._pending = (step, metrics)
        self._data_s += data_s

    def resolve(self) -> None:
        if self._pending is None:
            return
        step, metrics = self._pending
        self._pending = None
        metrics = {k: float(v) for k, v in jax.device_get(metrics).items()}
        if not np.isfinite(metrics["loss"]):
            first = (step - 1) * self.global_batch_size
            raise FloatingPointError(
                f"non-finite loss {metrics['loss']} at update {step} (data step {step - 1}: global samples "
                f"{first}..{first + self.global_batch_size - 1}); the run stops here, its last checkpoint is "
                "intact: lower optim.lr or raise warmup, or inspect these samples with make_batch")
        self._rows.append(metrics)

    def summary(self, remaining_steps: int) -> dict[str, float]:
        """Mean metrics over the window plus throughput; starts a new window."""
        self.resolve()
        n = len(self._rows)
        wall = time.perf_counter() - self._start
        summary = {k: float(np.mean([row[k] for row in self._rows])) for k in self._rows[0]}
        summary.update(samples_per_s=n * self.global_batch_size / wall, data_ms=1e3 * self._data_s / n,
                       step_ms=1e3 * (wall - self._data_s) / n, eta_s=remaining_steps * wall / n)
        self._restart()
        return summary


def progress_line(step: int, total_steps: int, m: dict[str, float],
                  shown: tuple[tuple[str, str], ...] = ()) -> str:
    """`step | loss | <the task's metrics, as (name, label) pairs> | samples/s | data and step ms | ETA`."""
    eta = datetime.timedelta(seconds=round(m["eta_s"]))
    task = "".join(f" | {label} {m[name]:.3f}" for name, label in shown if name in m)
    return (f"step {step:>{len(str(total_steps))}}/{total_steps} | loss {m['loss']:.4f}{task} | "
            f"{m['samples_per_s']:.1f} samples/s | data {m['data_ms']:.1f} ms step {m['step_ms']:.1f} ms | "
            f"ETA {eta}")


BATCH_SIZE_KEYS = ("batch_size", "eval_size", "eval_batch_size")  # config keys split over all devices
LOOP_COUNTS = (*BATCH_SIZE_KEYS, "total_steps", "log_every", "eval_every", "checkpoint_every", "keep_checkpoints")


def check_loop_settings(config, workdir: str) -> None:
    """Raise naming the first of the loop's counts that is not a positive integer (the seed: not negative), or
    a workdir that is a file."""
    for name, low in [*((name, 1) for name in LOOP_COUNTS), ("seed", 0)]:
        value = config.get(name)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < low):
            kind = "a positive integer" if low else "an integer >= 0"
            raise ValueError(f"config.{name}={value!r} must be {kind}: set --config.{name}")
    if os.path.exists(workdir) and not os.path.isdir(workdir):
        raise ValueError(f"--workdir {workdir} is a file; a run writes a folder (config, checkpoints, metrics): "
                         "choose another --workdir")


def check_batch_sizes(sizes: dict[str, int], devices: int) -> None:
    """Raise if a batch size cannot be split over `devices` devices."""
    for name, size in sizes.items():
        if size % devices:
            raise ValueError(f"config.{name}={size} must be a multiple of the {devices} devices, since every "
                             f"device takes an equal share: set --config.{name} to a multiple of {devices}")


def check_resumable(config, workdir: str, keys: tuple[str, ...]) -> None:
    """Refuse to resume a run in `workdir` with a config that changes its data stream or its state."""
    if not (epath.Path(workdir) / checkpoint.CHECKPOINTS_DIR).exists():
        return
    try:
        stored = checkpoint.read_config(workdir)
    except FileNotFoundError:
        return

    def value(cfg, dotted):
        for part in dotted.split("."):
            cfg = cfg.get(part) if hasattr(cfg, "get") else None
        cfg = cfg.to_dict() if hasattr(cfg, "to_dict") else cfg
        if isinstance(cfg, dict):
            cfg.pop("workers", None)  # the number of data workers does not change the samples
        return cfg

    changed = [key for key in keys if value(stored, key) != value(config, key)]
    if changed:
        raise ValueError(
            f"{workdir} holds a run with a different {', '.join(changed)} (see its config.json); resuming it "
            "would not continue the same data stream and state: use a new --workdir, or the stored config")


def evaluate(task: Task, steps: Steps, state, eval_batches: list, writer: MetricWriter | None) -> dict[str, float]:
    """The task's held-out evaluation of `state`, logged (unless `writer` is None) and returned."""
    step = int(state["step"])
    outputs = [jax.device_get(steps.evaluate(state["params"], state.get("frozen", {}), batch))
               for batch in eval_batches]
    evaluation = {k: float(v) for k, v in task.summarize(outputs).items()}
    if writer is not None:
        writer.write(step, "eval", evaluation)
    if jax.process_index() == 0:
        logging.info("eval at step %d: %s", step, " ".join(f"{k} {v:.4f}" for k, v in evaluation.items()))
    return evaluation


def run(make_task: Callable[[object, jax.sharding.Mesh], Task], config, workdir: str) -> dict[str, float]:
    """Train the task `make_task(config, mesh)` to `config.total_steps` (resuming from `workdir`), evaluating as it
    goes, on the mesh of `config.mesh` over all devices; returns the last eval."""
    check_loop_settings(config, workdir)
    mesh = parallel.make_mesh(config.mesh)
    check_batch_sizes({k: config[k] for k in BATCH_SIZE_KEYS if k in config}, mesh.size)
    task = make_task(config, mesh)
    check_resumable(config, workdir, task.resume_keys)
    steps = make_steps(task, config, mesh)
    checkpointer = checkpoint.Checkpointer(os.path.join(workdir, checkpoint.CHECKPOINTS_DIR),
                                           config.checkpoint_every, config.keep_checkpoints)
    try:
        state, start = checkpointer.restore_or_init(steps.abstract_state,
                                                    lambda: steps.init(jax.random.key(config.seed)))
        if start > config.total_steps:
            raise ValueError(f"{workdir} holds a checkpoint at step {start}, past total_steps="
                             f"{config.total_steps}: pass --config.total_steps={start} or more to continue it, "
                             "or use a new --workdir")
    except BaseException:
        checkpointer.close()
        raise
    checkpoint.write_config(workdir, config)  # only now: a run refused above leaves the stored config as it was
    logging.info("%s at step %d of %d on %d devices (mesh %s), %d processes", "resumed" if start else "started",
                 start, config.total_steps, jax.device_count(), dict(mesh.shape), jax.process_count())
    eval_batches = [global_batch(task, mesh, b) for b in task.eval_batches]
    if start >= config.total_steps:  # a finished run: report where it ended, log nothing new
        checkpointer.close()
        evaluation = evaluate(task, steps, state, eval_batches, writer=None)
        if jax.process_index() == 0:
            logging.info(summary_lines(task, workdir, start, config.total_steps, evaluation))
        return evaluation
    writer = MetricWriter(workdir, start)
    producer = task.batches(start)
    window = TrainWindow(config.batch_size)
    evaluation, step = {}, start
    try:
        for data_step in range(start, config.total_steps):
            tick = time.perf_counter()
            _, local = producer.next()
            batch = global_batch(task, mesh, local)
            data_s = time.perf_counter() - tick
            state, metrics = steps.train(state, batch)
            step = data_step + 1  # updates done
            window.add(step, metrics, data_s)
            stop = checkpointer.stop_requested(step)
            last = step == config.total_steps or stop
            if step % config.log_every == 0 or last:
                summary = window.summary(config.total_steps - step)
                writer.write(step, "train", summary)
                if jax.process_index() == 0:
                    logging.info(progress_line(step, config.total_steps, summary, task.progress))
            if step % config.eval_every == 0 or last:
                evaluation = evaluate(task, steps, state, eval_batches, writer)
            if step % config.checkpoint_every == 0 or last:
                window.resolve()  # a non-finite loss must stop the run before its state is saved
            checkpointer.save(step, state, data_step=step, force=last)
            if stop:
                logging.warning("stopping at step %d on SIGTERM or Ctrl-C after saving; rerun the same command "
                                "to resume", step)
                break
    finally:
        producer.close()
        checkpointer.close()
        writer.close()
    if jax.process_index() == 0:
        logging.info(summary_lines(task, workdir, step, config.total_steps, evaluation))
    return evaluation


def summary_lines(task: Task, workdir: str, step: int, total_steps: int, evaluation: dict) -> str:
    """What a run leaves behind and how well it did, for the end of its output."""
    state = "finished" if step >= total_steps else f"stopped at step {step} of {total_steps} (rerun to resume)"
    return "\n".join([
        f"run {state}: {task.headline(evaluation)}",
        f"  checkpoints: {os.path.join(workdir, checkpoint.CHECKPOINTS_DIR)}",
        f"  metrics:     {os.path.join(workdir, 'metrics.jsonl')}",
        f"  TensorBoard: tensorboard --logdir {os.path.join(workdir, 'tb')}",
        f"  load it:     config, params = snipjax.load({workdir!r})",
    ])


_CONFIG = config_flags.DEFINE_config_file("config", None, "A configs/<name>.py file.", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory: checkpoints, metrics, TensorBoard events.")
_COORDINATOR = flags.DEFINE_string("coordinator_address", None,
                                   "host:port of process 0, for several processes without a cluster manager.")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Number of processes (with --coordinator_address).")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "This process's index (with --coordinator_address).")
_DETECT_CLUSTER = flags.DEFINE_bool("detect_cluster", False,
                                    "Join a multi-process job described by the cluster (TPU pod, SLURM, Open MPI).")


def _quiet_orbax(record) -> bool:
    """Keep orbax's warnings but not its per-save INFO chatter, which would bury the progress lines."""
    return record.levelno >= logging.converter.STANDARD_WARNING or "orbax" not in record.pathname


def _no_tpu_probe_line(record) -> bool:
    """JAX logs `Unable to initialize backend 'tpu'` on every machine without one: not news to anyone."""
    return "Unable to initialize backend" not in record.getMessage()


def cli(train_and_evaluate: Callable[[object, str], dict]) -> None:
    """Run `train_and_evaluate(config, workdir)` as a `python -m` program with the shared flags."""

    def main(argv):
        if len(argv) > 1:
            raise app.UsageError(f"unexpected arguments {argv[1:]}")
        logging.get_absl_logger().addFilter(_quiet_orbax)
        std_logging.getLogger("jax._src.xla_bridge").addFilter(_no_tpu_probe_line)
        parallel.initialize_distributed(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value,
                                        _DETECT_CLUSTER.value)
        try:
            train_and_evaluate(_CONFIG.value, _WORKDIR.value)
        except (ValueError, FileNotFoundError, FloatingPointError) as error:
            if flags.FLAGS.verbosity >= 1:  # -v 1: the whole traceback
                raise
            print(f"error: {one_line(error)}  (run with -v 1 for the traceback)", file=sys.stderr)
            return 2

    flags.mark_flags_as_required(["config", "workdir"])
    app.run(main, flags_parser=lambda argv: parse_flags(flags.FLAGS, argv))
