"""Compile a step for a TPU slice or GPU hosts that are not here, and say whether it fits and how fast it can be.

  python -m snipjax.compile --config configs/tpu_pod_10d.py --target v4-32 [--step train] [--config.k=v ...]
  python -m snipjax.compile --config configs/sr/paper.py --target h100x1 --step decode

The step is the one the run would execute: the task's jitted train step (pretraining, property prediction or
decoder training, by the config), the SR model's cached decoding step of batch_size sequences, or one call (10
Levenberg–Marquardt steps) of the LSO constant refit of batch_size formulas, built by
the same code for the target's devices (`snipjax.accelerators`: libtpu describes a TPU slice, the CUDA plugin
a GPU host), so kernels are chosen for the target (`snipjax.parallel.kernels_for`) and the batch is sharded
over its chips. Prints one JSON object: per-chip memory (arguments, outputs, temporaries, total, HBM, share),
FLOPs per chip (XLA's cost analysis where the backend gives one, else the analytic count), bytes of each kind
of collective in the program, a roofline step time from the chip's peak FLOP/s and HBM bandwidth, and the MFU
ceiling. A step that does not fit gets one line naming the memory needed, the memory there is and the largest
global batch that fits (by bisection over multiples of the chip count), and exits 1. Symbol sequences are
compiled at their full padded length (`data.max_len`), the most a batch can need.
"""

from __future__ import annotations

import json
import math
import re
import sys
import time

import jax
import jax.numpy as jnp
import ml_collections
from absl import flags
from ml_collections import config_flags

from snipjax import accelerators, models, parallel
from snipjax.config import one_line, parse_flags
from snipjax.data.tokens import power_of_two
from snipjax.models import flops
from snipjax.task import make_steps
from snipjax.task_data import example_inputs

STEPS = ("train", "decode", "refit")
# The refit compiled: formulas of up to 64 tokens and 8 constants on the regressor's 1024 points, 10 steps a call.
REFIT_SHAPE = {"length": 64, "constants": 8, "points": 1024, "depth": 16, "steps": 10}
GiB = 2**30

# A TPU compile that runs out of memory says how much it needed, in one of two forms: "Used 82.31G of 31.25G
# hbm", or "the total memory required for HLO temporaries (22.39G) exceeds available HBM (15.75G)".
_TPU_OOM = re.compile(r"(?:Used|temporaries \() ?([\d.]+)([KMGT])\)? (?:of|exceeds available HBM \() ?"
                      r"([\d.]+)([KMGT])")
_UNITS = {"K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}
# A collective in optimized HLO: `%name = <result shape(s)> all-gather(...`; async pairs are counted at `-done`.
_COLLECTIVE = re.compile(r"= (.+?) (all-reduce|all-gather|reduce-scatter|all-to-all|collective-permute)"
                         r"(-start|-done)?\(")
_ARRAY = re.compile(r"\b(pred|[su](?:8|16|32|64)|f8e\w+|bf16|f16|f32|f64|c64|c128)\[([\d,]*)\]")
_BYTES = {"pred": 1, "s8": 1, "u8": 1, "s16": 2, "u16": 2, "bf16": 2, "f16": 2, "s32": 4, "u32": 4, "f32": 4,
          "s64": 8, "u64": 8, "f64": 8, "c64": 8, "c128": 16}


class DoesNotFit(Exception):
    """The compiler refused the step for want of memory; `needed` and `available` bytes per chip."""

    def __init__(self, needed: int, available: int):
        super().__init__(f"needs {needed / GiB:.2f} GiB per chip, {available / GiB:.2f} GiB are there")
        self.needed, self.available = needed, available


def memory_refusal(message: str) -> tuple[int, int] | None:
    """(needed, available) bytes per chip from a TPU compiler's out-of-memory message, else None."""
    match = _TPU_OOM.search(message)
    if match is None:
        return None
    return (int(float(match.group(1)) * _UNITS[match.group(2)]),
            int(float(match.group(3)) * _UNITS[match.group(4)]))


def collective_bytes(hlo_text: str) -> dict[str, int]:
    """Bytes of the results of each kind of collective in a compiled program's text (one device's program)."""
    totals: dict[str, int] = {}
    for line in hlo_text.splitlines():
        match = _COLLECTIVE.search(line)
        if not match or match.group(3) == "-start":
            continue
        size = sum(math.prod(int(d) for d in filter(None, dims.split(","))) * _BYTES.get(dtype, 1)
                   for dtype, dims in _ARRAY.findall(match.group(1)))
        totals[match.group(2)] = totals.get(match.group(2), 0) + size
    return totals


def _task_maker(config):
    """The task the config describes (property prediction, decoder training or pretraining): its builder, the
    code a run of it compiles."""
    if "property" in config:
        from snipjax.tasks.property import property_task
        return property_task
    if "decoder" in config.model:
        from snipjax.tasks.sr.train import sr_task
        return sr_task
    from snipjax.tasks.pretrain import pretraining_task
    return pretraining_task


def _standalone(config) -> ml_collections.ConfigDict:
    """The config without pretrained checkpoints: the architecture comes from config.model alone, so that any
    host can compile it (a checkpoint's architecture must match it)."""
    config = ml_collections.ConfigDict(config.to_dict())
    for key in ("pretrained", "pretrained_sr"):
        if config.get(key):
            config[key] = ""
    return config


def _lower_train(config, mesh):
    task = _task_maker(config)(config, mesh)
    steps = make_steps(task, config, mesh)
    batch = parallel.batch_sharding(mesh)
    example = {k: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=batch) for k, s in task.example_batch.items()}
    return steps.train.lower(steps.abstract_state, example)


def _lower_decode(config, mesh):
    """One cached decoding step of config.batch_size sequences, cache data.max_len positions long."""
    from snipjax.tasks.sr.decoding import model_step

    model = models.make_sr_model(config, parallel.kernels_for(config, mesh))
    rows, length = config.batch_size, config.data.max_len
    points = example_inputs(config, 1)["points"]
    params = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros(points.shape, points.dtype),
                            jnp.zeros((1, 2), jnp.int32), jnp.array([2]))["params"]
    memory = jax.ShapeDtypeStruct((rows, config.model.decoder.memory_length, config.model.d_model),
                                  models.snip.COMPUTE_DTYPES[config.model.dtype])
    tokens, position = jax.ShapeDtypeStruct((rows,), jnp.int32), jax.ShapeDtypeStruct((), jnp.int32)

    def step(params, cache, memory, tokens, position):
        return model_step(model, params, memory, length)(cache, tokens, position)

    cache = jax.eval_shape(step, params, {}, memory, tokens, position)[1]
    shardings = parallel.shard_by_shape(mesh, params, config.mesh.fsdp_min_size)
    rows_sharded = parallel.batch_sharding(mesh)
    cache_shardings = jax.tree.map(lambda _: rows_sharded, cache)
    jitted = jax.jit(step, in_shardings=(shardings, cache_shardings, rows_sharded, rows_sharded,
                                         parallel.replicated(mesh)),
                     out_shardings=(rows_sharded, cache_shardings), donate_argnums=1)
    return jitted.lower(params, cache, memory, tokens, position)


def _lower_refit(config, mesh):
    """One call of the LSO constant refit (Levenberg–Marquardt, `snipjax.tasks.sr.constants.refit_steps`) of
    config.batch_size formulas, split over the chips, all vmapped side by side as on an accelerator."""
    from snipjax.tasks.sr import constants

    shape, rows = REFIT_SHAPE, config.batch_size
    programs = [jax.ShapeDtypeStruct((rows, shape["length"]), jnp.int32) for _ in range(3)]
    state = jax.eval_shape(constants.init_state, jax.ShapeDtypeStruct((rows, shape["constants"]), jnp.float32))
    columns = power_of_two(config.data.max_dim, smallest=2)  # as fit_constants pads x
    x = jax.ShapeDtypeStruct((shape["points"], columns), jnp.float32)
    y = weight = jax.ShapeDtypeStruct((shape["points"],), jnp.float32)
    vectorize = constants.vectorize_for(mesh.devices.flat[0].platform, rows)
    rows_sharded, replicated = parallel.batch_sharding(mesh), parallel.replicated(mesh)

    def refit(state, codes, positions, slots, x, y, weight):
        return constants.refit_steps(state, codes, positions, slots, x, y, weight, depth=shape["depth"],
                                     n_steps=shape["steps"], vectorize=vectorize)

    state_shardings = jax.tree.map(lambda _: rows_sharded, state)
    jitted = jax.jit(refit, in_shardings=(state_shardings, *[rows_sharded] * 3, *[replicated] * 3),
                     out_shardings=state_shardings, donate_argnums=0)
    return jitted.lower(state, *programs, x, y, weight)


def analytic_flops(config, step: str) -> float | None:
    """The step's FLOPs over all chips, counted analytically (None for the refit, whose steps vary)."""
    if step == "refit":
        return None
    if step == "decode":
        return flops.decode_step_flops(config, config.batch_size, config.data.max_len)
    if "decoder" in config.model and "property" not in config:
        return flops.sr_flops_per_step(config)
    return flops.model_flops_per_step(config)


def compile_step(config, target: accelerators.Target, step: str = "train", devices=None) -> dict:
    """Compile `step` of `config` for `target` and analyse it; raises DoesNotFit when it needs more memory per
    chip than the target has."""
    if step not in STEPS:
        raise ValueError(f"--step must be one of {STEPS}, got {step!r}")
    devices = target.devices() if devices is None else devices
    mesh = parallel.make_mesh(config.mesh, devices)
    if config.batch_size < 1 or config.batch_size % mesh.size:
        raise ValueError(f"config.batch_size={config.batch_size} must be a positive multiple of the "
                         f"{mesh.size} chips of {target.name}")
    start = time.perf_counter()
    lowered = {"train": _lower_train, "decode": _lower_decode, "refit": _lower_refit}[step](config, mesh)
    try:
        compiled = lowered.compile()
    except Exception as error:  # XlaRuntimeError: RESOURCE_EXHAUSTED on a TPU
        refusal = memory_refusal(str(error))
        if refusal is None:
            raise
        raise DoesNotFit(*refusal) from None
    compile_s = time.perf_counter() - start
    memory = compiled.memory_analysis()
    usage = {"arguments": memory.argument_size_in_bytes, "outputs": memory.output_size_in_bytes,
             "aliased": memory.alias_size_in_bytes, "temporaries": memory.temp_size_in_bytes}
    usage["total"] = usage["arguments"] + usage["outputs"] - usage["aliased"] + usage["temporaries"]
    usage.update(available=target.usable_memory, hbm=target.chip.hbm_bytes,
                 share=usage["total"] / target.usable_memory)
    if usage["total"] > target.usable_memory:
        raise DoesNotFit(usage["total"], target.usable_memory)
    cost = compiled.cost_analysis() or {}
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    total_flops = analytic_flops(config, step)
    model_flops = None if total_flops is None else total_flops / mesh.size
    xla_flops = cost.get("flops")
    chip_flops, source = (float(xla_flops), "xla") if xla_flops else (model_flops, "analytic")
    # The refit runs in float32 whatever the model's compute dtype.
    peak = target.chip.peak_flops["float32" if step == "refit" else config.model.dtype]
    compute_s = chip_flops / peak if chip_flops else None
    accessed = cost.get("bytes accessed")
    memory_s = float(accessed) / target.chip.hbm_bandwidth if accessed else None
    step_s = max(compute_s or 0.0, memory_s or 0.0) or None
    kernels = parallel.kernels_for(config, mesh)
    program = compiled.as_text()
    return {
        **_case(config, target, step), "mesh": dict(mesh.shape),
        "kernels": {"attention": kernels.attention, "rows_per_block": kernels.rows_per_block},
        "compile_s": round(compile_s, 1), "fits": True, "memory_per_chip": usage,
        "flops_per_chip": chip_flops, "flops_source": source, "model_flops_per_chip": model_flops,
        "bytes_accessed_per_chip": float(accessed) if accessed else None,
        "collective_bytes_per_chip": collective_bytes(program),
        # A layer scanned over row blocks is a loop: a CPU kernel that has no place in an accelerator's step.
        "while_loops": len(re.findall(r" while\(", program)),
        "roofline": {"compute_s": compute_s, "memory_s": memory_s, "step_s": step_s,
                     "bound": "memory" if memory_s and memory_s > (compute_s or 0.0) else "compute"},
        "mfu_ceiling": model_flops / (peak * step_s) if model_flops and step_s else None,
        "peak_flops_per_chip": peak,
    }


def _case(config, target: accelerators.Target, step: str) -> dict:
    """What was compiled for what: the first fields of every result."""
    return {"target": target.name, "platform": target.platform, "chip": target.chip.name, "chips": target.chips,
            "slices": target.slices, "step": step, "global_batch": config.batch_size,
            "per_chip_batch": config.batch_size // target.chips, "dtype": config.model.dtype}


def largest_fitting_batch(config, target: accelerators.Target, step: str, devices, needed: int) -> int:
    """The largest global batch below config.batch_size (which needs `needed` bytes per chip) whose step fits,
    0 if none does: a bisection over batches of `unit` rows per chip (8 from 64 rows per chip, a resolution
    of 1/8 at worst, else 1), whose first probe is where memory proportional to the batch would just fit."""
    chips = target.chips
    unit = 8 if config.batch_size // chips >= 64 else 1
    low, high = 0, config.batch_size // (chips * unit)  # in units: `low` fits (or is 0), `high` does not
    guess = int(high * target.usable_memory / needed)
    while high - low > 1:
        middle = guess if low < guess < high else (low + high) // 2
        guess = 0
        trial = ml_collections.ConfigDict(config.to_dict())
        trial.batch_size = middle * chips * unit
        try:
            compile_step(trial, target, step, devices)
            low = middle
        except DoesNotFit:
            high = middle
    return low * chips * unit


def run(config, target_name: str, step: str = "train", bisect: bool = True) -> dict:
    """compile_step, and where the step does not fit, what it needs and (`bisect`) the largest batch that
    fits."""
    config = _standalone(config)
    target = accelerators.target(target_name)
    devices = target.devices()
    try:
        return compile_step(config, target, step, devices)
    except DoesNotFit as missing:
        return {**_case(config, target, step), "fits": False, "needed_per_chip": missing.needed,
                "available_per_chip": missing.available,
                "largest_fitting_batch": (largest_fitting_batch(config, target, step, devices, missing.needed)
                                          if bisect else None)}


def main(argv: list[str]) -> int:
    flag_values = flags.FlagValues()
    config_flag = config_flags.DEFINE_config_file("config", None, "A configs/<name>.py file.",
                                                  flag_values=flag_values)
    target_flag = flags.DEFINE_string("target", None, "A TPU slice (v4-8, v4-32, v5e-16, v5p-128, 2xv5e-16, ...) "
                                      "or GPU hosts (h100x8, 2xh100x8, a100x8, ...).", flag_values=flag_values)
    step_flag = flags.DEFINE_enum("step", "train", STEPS, "The step to compile: the task's train step, the SR "
                                  "model's cached decoding step, or a call of the LSO constant refit.",
                                  flag_values=flag_values)
    bisect = flags.DEFINE_bool("bisect", True, "Where the step does not fit, find the largest batch that does.",
                               flag_values=flag_values)
    parse_flags(flag_values, ["compile", *argv])
    if config_flag.value is None or not target_flag.value:
        print("error: --config configs/<name>.py and --target (e.g. v4-32, h100x8) are required", file=sys.stderr)
        return 2
    try:
        result = run(config_flag.value, target_flag.value, step_flag.value, bisect.value)
    except (ValueError, RuntimeError) as error:
        print(f"error: {one_line(error)}", file=sys.stderr)
        return 2
    print(json.dumps(result), flush=True)
    if not result["fits"]:
        print(f"{target_flag.value}: the {step_flag.value} step of batch {result['global_batch']} needs "
              f"{result['needed_per_chip'] / GiB:.2f} GiB per chip and {result['available_per_chip'] / GiB:.2f} "
              f"GiB are there" + (f"; the largest global batch that fits is {result['largest_fitting_batch']}"
                                  if bisect.value else ""), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
