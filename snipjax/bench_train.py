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

from snipjax import parallel
from snipjax.config import parse_flags
from snipjax.data.pipeline import BatchProducer
from snipjax.data.tokens import point_width
from snipjax.models.blocked import row_block_steps
from snipjax.train import pretraining_task
from snipjax.train_step import global_batch, make_steps

# Dense peak FLOP/s per chip by device kind and compute dtype. JAX runs float32 matmuls on TF32 tensor cores
# on Hopper GPUs and on bfloat16 passes on TPUs by default, so those are the float32 peaks here (an H100's
# plain float32 peak without tensor cores is 67e12).
PEAK_FLOPS = {
    "H100": {"bfloat16": 989e12, "float32": 495e12},
    "H200": {"bfloat16": 989e12, "float32": 495e12},
    "TPU v4": {"bfloat16": 275e12, "float32": 275e12},
    "TPU v5 lite": {"bfloat16": 197e12, "float32": 197e12},  # v5e
    "TPU v5p": {"bfloat16": 459e12, "float32": 459e12},
    "TPU v5": {"bfloat16": 459e12, "float32": 459e12},  # v5p reports itself as "TPU v5"
}


def peak_flops_per_device(device_kind: str, dtype: str) -> float | None:
    """The known peak of a device kind such as 'NVIDIA H100 80GB HBM3' or 'TPU v4', else None."""
    for name in sorted(PEAK_FLOPS, key=len, reverse=True):  # 'TPU v5 lite' before 'TPU v5'
        if name in device_kind:
            return PEAK_FLOPS[name][dtype]
    return None


def model_flops_per_step(config, symbol_len: int | None = None) -> float:
    """Training FLOPs of one global batch with symbol sequences of `symbol_len` positions (default
    config.data.max_len), counted analytically (MaxText's convention): the matmuls of both encoders, attention
    scores and values, pooling and the two B×B similarity matrices, times 3 for the forward and backward
    passes. Embedding lookups, norms and softmaxes are not counted."""
    m = config.model
    symbol_len = config.data.max_len if symbol_len is None else symbol_len
    d, latent = m.d_model, m.latent_dim

    def encoder(tokens: int) -> float:
        per_layer = 2 * tokens * (4 * d * d + 2 * d * m.d_ff) + 4 * tokens * tokens * d
        pool = 4 * tokens * d + 2 * d * latent  # scores + weighted sum, then the bottleneck
        return m.n_layers * per_layer + pool

    width = point_width(config.data.max_dim) * m.float_emb_dim  # concatenated float-token embeddings of a point
    embedder = 2 * config.data.n_points * (width * width + width * d)
    per_pair = embedder + encoder(config.data.n_points) + encoder(symbol_len)
    similarity = 2 * 2 * config.batch_size**2 * latent
    return 3.0 * (config.batch_size * per_pair + similarity)


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
    task = pretraining_task(config)
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
    peak = peak_flops or peak_flops_per_device(device.device_kind, config.model.dtype)
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
        # a loop body once, so it does not count layers run in row blocks (CPU; snipjax.models.blocked).
        "xla_flops_per_device_step": (float(np.mean(xla_flops)) if len(xla_flops) == len(lengths)
                                      and not row_block_steps(config.batch_size) else None),
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
    steps = flags.DEFINE_integer("steps", 20, "Timed steps after one warm-up step.", flag_values=flag_values)
    peak = flags.DEFINE_float("peak", None, "Peak FLOP/s per device, for MFU on unlisted devices.",
                              flag_values=flag_values)
    profile = flags.DEFINE_integer("profile", 0, "Steps to trace with jax.profiler after the timed ones.",
                                   flag_values=flag_values)
    parse_flags(flag_values, ["bench train", *argv])
    if config_flag.value is None:
        print("error: --config configs/<name>.py is required", file=sys.stderr)
        return 2
    print(json.dumps(run(config_flag.value, steps.value, peak.value, profile.value)), flush=True)
    return 0
