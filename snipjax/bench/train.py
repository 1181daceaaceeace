"""Training-step benchmark: samples/s, step and data time, model FLOPs, MFU and peak memory.

  python -m snipjax.bench train --config configs/tiny.py [--steps 20] [--peak 1e12] [--profile 2]
      [--config.key=value ...]

Runs the real train step on the real data producer (config.data.workers processes), timing each step's
data wait and compute apart after one warm-up step. `--profile N` then traces N more steps with
jax.profiler and adds where their time went: the share of each kind of compiled op (XLA's fusions, dots,
copies; numbered instances summed) and the trace file, for Perfetto or TensorBoard.
"""

from __future__ import annotations

import collections
import glob
import gzip
import json
import re
import resource
import sys
import tempfile
import time

import jax
import numpy as np
from absl import flags
from ml_collections import config_flags

from snipjax import accelerators, parallel
from snipjax.config import parse_flags
from snipjax.data.pipeline import BatchProducer
from snipjax.models.flops import model_flops_per_step
from snipjax.task import global_batch, make_steps
from snipjax.tasks.pretrain import pretraining_task


def _peak_memory() -> tuple[int, str]:
    stats = [device.memory_stats() or {} for device in jax.local_devices()]
    if all("peak_bytes_in_use" in s for s in stats):
        return max(s["peak_bytes_in_use"] for s in stats), "device peak_bytes_in_use (max over local devices)"
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "host max RSS"


# A compiled op's name in a trace ('ynn_fusion.402', 'copy_bitcast_fusion', 'dot'), not the runtime's or
# Python's frames around it.
_OP_NAME = re.compile(r"^([a-z][a-z0-9_\-]*?)(\.\d+)?$")


def op_time_shares(trace_dir: str, top: int = 12) -> dict:
    """Share of the traced op time per kind of op (instance numbers dropped), from a perfetto trace."""
    path = sorted(glob.glob(f"{trace_dir}/**/*.trace.json.gz", recursive=True))[-1]
    with gzip.open(path) as f:
        events = json.load(f)["traceEvents"]
    totals = collections.Counter()
    for event in events:
        match = _OP_NAME.match(event.get("name", "")) if event.get("ph") == "X" else None
        if match:
            totals[match.group(1)] += event["dur"]
    total = sum(totals.values())
    return {"op_ms": total / 1e3, "trace": path,
            "shares": {kind: round(t / total, 4) for kind, t in totals.most_common(top)}}


def run(config, steps: int = 20, peak_flops: float | None = None, profile_steps: int = 0) -> dict:
    """Benchmark `steps` train steps of `config` after a warm-up step; `peak_flops` per device overrides the
    table (needed for MFU on CPUs and unlisted chips); `profile_steps` more steps are traced."""
    mesh = parallel.make_mesh(config.mesh)
    task = pretraining_task(config, mesh)
    compiled = make_steps(task, config, mesh)
    state = compiled.init(jax.random.key(config.seed))
    producer = BatchProducer(config.data, config.seed, config.batch_size, jax.process_index(),
                             jax.process_count(), workers=config.data.workers)
    # One executable per symbol length (config.length_bucket), compiled outside the timed steps.
    executables = {}

    def next_batch():
        return global_batch(task, mesh, producer.next()[1])

    def executable(batch):
        length = batch["symbols"].shape[1]
        if length not in executables:
            executables[length] = compiled.train.lower(state, batch).compile()
        return executables[length]

    try:
        batch = next_batch()
        state, metrics = executable(batch)(state, batch)
        jax.block_until_ready(metrics)
        data_s, step_s, lengths = [], [], []
        for _ in range(steps):
            tick = time.perf_counter()
            batch = next_batch()
            data_s.append(time.perf_counter() - tick)
            train = executable(batch)
            tick = time.perf_counter()
            state, metrics = train(state, batch)
            jax.block_until_ready(metrics)
            step_s.append(time.perf_counter() - tick)
            lengths.append(batch["symbols"].shape[1])
        profile = None
        if profile_steps:
            batch = next_batch()
            train = executable(batch)
            trace_dir = tempfile.mkdtemp(prefix="snipjax_profile_")
            with jax.profiler.trace(trace_dir, create_perfetto_trace=True):
                for _ in range(profile_steps):
                    state, metrics = train(state, batch)
                    jax.block_until_ready(metrics)
            profile = {"steps": profile_steps, "symbol_length": batch["symbols"].shape[1],
                       **op_time_shares(trace_dir)}
    finally:
        producer.close()

    device = jax.devices()[0]
    chip = accelerators.chip_of(device.device_kind)
    peak = peak_flops or (chip.peak_flops[config.model.dtype] if chip else None)
    # Per timed step: its symbol length decides the work.
    flops = float(np.mean([model_flops_per_step(config, length) for length in lengths]))
    costs = {length: executable.cost_analysis() for length, executable in executables.items()}
    xla_flops = [float(costs[length]["flops"]) for length in lengths if costs[length] and "flops" in costs[length]]
    step_time = float(np.mean(step_s))
    memory, memory_source = _peak_memory()
    return {
        "config": {"d_model": config.model.d_model, "n_layers": config.model.n_layers,
                   "max_dim": config.data.max_dim, "batch_size": config.batch_size, "dtype": config.model.dtype,
                   "loss": config.loss.kind, "mesh": dict(mesh.shape), "data_workers": config.data.workers},
        "device_kind": device.device_kind, "devices": jax.device_count(), "steps": steps,
        "samples_per_s": steps * config.batch_size / (sum(data_s) + sum(step_s)),
        "step_ms": 1e3 * step_time, "data_ms": 1e3 * float(np.mean(data_s)),
        "model_flops_per_step": flops,
        # XLA's count of the partitioned program that one device runs (its share plus replicated work). It counts
        # a loop body once, so it does not count layers run in row blocks (CPU; snipjax.models.row_blocks).
        "xla_flops_per_device_step": (float(np.mean(xla_flops)) if len(xla_flops) == len(lengths) and not
                                      parallel.kernels_for(config, mesh).row_block_steps(config.batch_size)
                                      else None),
        "symbol_lengths": lengths,
        "peak_flops_per_device": peak,
        "mfu": flops / (step_time * peak * jax.device_count()) if peak else None,
        "peak_memory_bytes": int(memory), "peak_memory_source": memory_source,
        "final_loss": float(metrics["loss"]),
        **({"profile": profile} if profile else {}),
    }


def main(argv: list[str]) -> int:
    """`python -m snipjax.bench train ...`: prints run()'s result as one JSON line."""
    flag_values = flags.FlagValues()  # own flag set: importable next to snipjax.train's flags
    config_flag = config_flags.DEFINE_config_file("config", None, "A configs/<name>.py file.",
                                                  flag_values=flag_values)
    steps = flags.DEFINE_integer("steps", 20, "Timed steps after one warm-up step.", lower_bound=1,
                                 flag_values=flag_values)
    peak = flags.DEFINE_float("peak", None, "Peak FLOP/s per device, for MFU on unlisted devices.",
                              flag_values=flag_values)
    profile = flags.DEFINE_integer("profile", 0, "Steps to trace with jax.profiler after the timed ones.",
                                   lower_bound=0, flag_values=flag_values)
    parse_flags(flag_values, ["bench train", *argv], __doc__)
    if config_flag.value is None:
        print("error: --config configs/<name>.py is required", file=sys.stderr)
        return 2
    print(json.dumps(run(config_flag.value, steps.value, peak.value, profile.value)), flush=True)
    return 0
