"""Contrastive pretraining of SNIP.

  python -m snipjax.train --config configs/tiny.py --workdir /tmp/snip_tiny [--config.batch_size=64 ...]

Restores from WORKDIR/checkpoints if a checkpoint is there, else starts fresh. Writes WORKDIR/config.json,
WORKDIR/metrics.jsonl and TensorBoard events under WORKDIR/tb, and prints a progress line every
`log_every` steps. Several processes (a TPU pod, SLURM, local CPU processes: see launch/README.md) run the
same command; add --detect_cluster, or --coordinator_address/--num_processes/--process_id.
"""

from __future__ import annotations

import datetime
import json
import os
import time

import jax
import numpy as np
import tensorboardX
from etils import epath
from absl import app, flags, logging
from ml_collections import config_flags

from snipjax import checkpoint, parallel
from snipjax.data.pipeline import BatchProducer, make_batch
from snipjax.train_step import make_steps, model_inputs

EVAL_SEED_OFFSET = 1_000_003  # held-out pairs come from their own seed stream, disjoint from training's


class MetricWriter:
    """Metrics as JSON lines (WORKDIR/metrics.jsonl) and TensorBoard scalars (WORKDIR/tb), from process 0."""

    def __init__(self, workdir: str):
        self._active = jax.process_index() == 0
        if self._active:
            self._jsonl = open(os.path.join(workdir, "metrics.jsonl"), "a")
            self._tb = tensorboardX.SummaryWriter(os.path.join(workdir, "tb"))

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


def progress_line(step: int, total_steps: int, m: dict[str, float]) -> str:
    eta = datetime.timedelta(seconds=round(m["eta_s"]))
    return (f"step {step:>{len(str(total_steps))}}/{total_steps} | loss {m['loss']:.4f} | "
            f"top1 n→s {m['top1_n2s']:.3f} s→n {m['top1_s2n']:.3f} | {m['samples_per_s']:.1f} samples/s | "
            f"data {m['data_ms']:.1f} ms step {m['step_ms']:.1f} ms | ETA {eta}")


def check_config(config) -> None:
    """Raise if the batch sizes cannot be split over this job's devices."""
    devices = jax.device_count()
    for name in ("batch_size", "eval_size"):
        if config[name] % devices:
            raise ValueError(f"config.{name}={config[name]} must be a multiple of the {devices} devices, since "
                             f"every device takes an equal share: set --config.{name} to a multiple of {devices}")


# What decides the data stream and the train state: a resumed run must keep these to continue exactly.
RESUME_KEYS = ("seed", "batch_size", "data", "model", "loss", "optim.kind")


def check_resumable(config, workdir: str) -> None:
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
        if dotted == "data":
            cfg.pop("workers", None)  # the number of workers does not change the samples
        return cfg

    changed = [key for key in RESUME_KEYS if value(stored, key) != value(config, key)]
    if changed:
        raise ValueError(
            f"{workdir} holds a run with a different {', '.join(changed)} (see its config.json); resuming it "
            "would not continue the same data stream and state: use a new --workdir, or the stored config")


def held_out_batch(config, mesh) -> dict[str, jax.Array]:
    """The fixed evaluation pairs: indices 0..eval_size-1 of the seed stream seed + EVAL_SEED_OFFSET."""
    per_process = config.eval_size // jax.process_count()
    start = jax.process_index() * per_process
    local = make_batch(config.data, config.seed + EVAL_SEED_OFFSET, np.arange(start, start + per_process))
    return parallel.global_batch(mesh, model_inputs(local))


def evaluate(steps, state, eval_batch, writer: MetricWriter) -> dict[str, float]:
    """Retrieval among the held-out pairs (eval_size-way, both directions), logged and returned."""
    step = int(state["step"])
    evaluation = {k: float(v) for k, v in jax.device_get(steps.evaluate(state["params"], eval_batch)).items()}
    writer.write(step, "eval", evaluation)
    if jax.process_index() == 0:
        logging.info("eval at step %d (%d-way retrieval): %s", step, len(eval_batch["symbols"]),
                     " ".join(f"{k} {v:.4f}" for k, v in evaluation.items()))
    return evaluation


def train_and_evaluate(config, workdir: str) -> dict[str, float]:
    """Train to `config.total_steps` (resuming from `workdir`), evaluating as it goes; returns the last eval."""
    check_config(config)
    check_resumable(config, workdir)
    mesh = parallel.make_mesh(config.mesh)
    steps = make_steps(config, mesh)
    checkpoint.write_config(workdir, config)
    checkpointer = checkpoint.Checkpointer(os.path.join(workdir, checkpoint.CHECKPOINTS_DIR),
                                           config.checkpoint_every, config.keep_checkpoints)
    state, start = checkpointer.restore_or_init(steps.abstract_state,
                                                lambda: steps.init(jax.random.key(config.seed)))
    logging.info("%s at step %d of %d on %d devices (mesh %s), %d processes", "resumed" if start else "started",
                 start, config.total_steps, jax.device_count(), dict(mesh.shape), jax.process_count())
    writer = MetricWriter(workdir)
    eval_batch = held_out_batch(config, mesh)
    producer = BatchProducer(config.data, config.seed, config.batch_size, jax.process_index(),
                             jax.process_count(), start_step=start, workers=config.data.workers)
    window = TrainWindow(config.batch_size)
    evaluation = {}
    try:
        for data_step in range(start, config.total_steps):
            tick = time.perf_counter()
            _, local = producer.next()
            batch = parallel.global_batch(mesh, model_inputs(local))
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
                    logging.info(progress_line(step, config.total_steps, summary))
            if step % config.eval_every == 0 or last:
                evaluation = evaluate(steps, state, eval_batch, writer)
            if step % config.checkpoint_every == 0 or last:
                window.resolve()  # a non-finite loss must stop the run before its state is saved
            checkpointer.save(step, state, data_step=step, force=last)
            if stop:
                logging.warning("stopping at step %d on SIGTERM after saving; rerun the same command to resume",
                                step)
                break
        if start >= config.total_steps:  # a finished run: report where it ended
            evaluation = evaluate(steps, state, eval_batch, writer)
    finally:
        producer.close()
        checkpointer.close()
        writer.close()
    return evaluation


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


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}")
    logging.get_absl_logger().addFilter(_quiet_orbax)
    parallel.initialize_distributed(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value,
                                    _DETECT_CLUSTER.value)
    train_and_evaluate(_CONFIG.value, _WORKDIR.value)


if __name__ == "__main__":
    flags.mark_flags_as_required(["config", "workdir"])
    app.run(main)
