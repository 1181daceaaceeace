"""Which accelerator configs fit which targets, and how fast they could run: results/bench/compile.{jsonl,md}.

  python results/bench/compile_table.py --gpu-python /path/to/venv-with-cuda/bin/python   # compile, then tabulate
  python results/bench/compile_table.py --report                                           # tabulate the recorded lines

Each accelerator config against the targets it is meant for and one size smaller, by `python -m snipjax.compile`
on this host (no accelerator needed): TPU cases with this interpreter (needs the `tpu` extra), GPU cases with
--gpu-python (a venv with the `cuda` extra). Per case: fits or not, per-chip memory, FLOPs per chip, the roofline
step time, samples/s at 40% MFU and the hours to the paper's 61.4M pairs (240k steps of 256) at 40% MFU.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))

from results.common import machine  # noqa: E402
from snipjax import accelerators  # noqa: E402
from snipjax.config import load_config_file  # noqa: E402
from snipjax.data import files  # noqa: E402

JSONL, TABLE = HERE / "compile.jsonl", HERE / "compile.md"
MFU = 0.4
GiB = 2**30

# (config, step, targets): the targets it is meant for, then one size smaller.
CASES = [
    ("configs/snip_1d_paper.py", "train", ["h100x1", "v5e-1"]),
    ("configs/snip_10d_paper.py", "train", ["h100x1", "v5e-1"]),
    ("configs/gpu_1d.py", "train", ["h100x8", "h100x1"]),
    ("configs/tpu_pod_10d.py", "train", ["v4-32", "v4-16"]),
    ("configs/sr/paper.py", "train", ["h100x1", "v5e-1"]),
    ("configs/sr/paper.py", "decode", ["h100x1", "v5e-1"]),
    ("configs/sr/paper.py", "refit", ["h100x1", "v5e-1"]),
]


def compile_case(config: str, step: str, target: str, gpu_python: str | None) -> dict:
    command = ["-m", "snipjax.compile", f"--config={config}", f"--target={target}", f"--step={step}", "--nobisect"]
    python = gpu_python if accelerators.target(target).platform == "gpu" else sys.executable
    record = {"config": config, "step": step, "target": target,
              "command": "python " + " ".join(command), "date": datetime.date.today().isoformat()}
    if python is None:
        return {**record, "skipped": "no --gpu-python given"}
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    done = subprocess.run([python, *command], cwd=ROOT, env=env, capture_output=True, text=True)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if not lines:
        return {**record, "error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "no output"}
    return {**record, **json.loads(lines[-1])}


def _row(r: dict) -> str:
    name = f"`{Path(r['config']).relative_to('configs').with_suffix('')}` {r['step']}"
    if "skipped" in r or "error" in r:
        return f"| {name} | {r['target']} | {r.get('skipped') or r.get('error')} | | | | | | | |"
    if not r["fits"]:
        return (f"| {name} | {r['target']} | **no**: needs {r['needed_per_chip'] / GiB:.1f} GiB of "
                f"{r['available_per_chip'] / GiB:.1f} | | | | | | | |")
    m, roofline = r["memory_per_chip"], r["roofline"]
    # Without bytes accessed (deviceless GPU compiles) the roofline is compute alone: no MFU ceiling to give.
    bounded = roofline["memory_s"] is not None
    step = (f"{1e3 * roofline['step_s']:.2f} ms ({roofline['bound'] if bounded else 'compute only'})"
            if roofline["step_s"] else "")
    ceiling = f"{100 * r['mfu_ceiling']:.0f}%" if bounded and r["mfu_ceiling"] else ""
    samples, hours = "", ""
    if r["step"] == "train":
        rate = MFU * r["peak_flops_per_chip"] * r["global_batch"] / r["model_flops_per_chip"]  # samples/s
        total_steps = load_config_file(ROOT / r["config"]).total_steps
        samples, hours = f"{rate:,.0f}", f"{total_steps * r['global_batch'] / rate / 3600:.1f} h"
    flops = f"{r['flops_per_chip'] / 1e12:.3f} T ({r['flops_source']})" if r["flops_per_chip"] else ""
    return (f"| {name} | {r['target']} | yes | {m['total'] / GiB:.2f} / {m['available'] / GiB:.1f} GiB "
            f"({100 * m['share']:.0f}%) | {flops} | {step} | "
            f"{ceiling} | {samples} | {hours} | {r['compile_s']:.0f} s |")


def report(records: list[dict], host: dict) -> str:
    lines = [
        "# Compiled for targets that are not here",
        "",
        "Written by `python results/bench/compile_table.py` (commands per row in compile.jsonl). Compiled on "
        f"{host['processor']} with {host['cpu_count']} cores, JAX {host['jax']}, on {records[0]['date']}; no "
        "accelerator was used. Memory is XLA's per-chip buffer assignment (arguments + outputs - donated + "
        "temporaries) against the chip's memory (a GPU's: JAX's preallocated 75%); FLOPs per chip are XLA's "
        "cost analysis where the backend gives it (TPU), else the analytic count; the roofline step is the "
        "larger of FLOPs / peak and XLA's bytes accessed / HBM bandwidth (TPU; compute alone on GPU, whose "
        "deviceless cost analysis gives no bytes, so no MFU ceiling there); the MFU ceiling is model FLOPs / "
        "(peak x roofline step). Samples/s and hours (to the config's total_steps: the paper's 61.4M pairs for "
        "the pretraining configs, 1M steps of 64 for the SR training) assume 40% MFU. The decode rows are one "
        "cached decoding step of batch-size sequences, the refit rows one call (10 Levenberg-Marquardt steps) "
        "of the constant refit of batch-size formulas. Symbol sequences are compiled at their full 200 "
        "positions, the most a batch needs. TPU compiles of the 10-D pod config took 6 to 8 minutes here.",
        "",
        "| config, step | target | fits | memory per chip | FLOPs per chip | roofline step | MFU ceiling | "
        "samples/s at 40% MFU | to total_steps at 40% MFU | compile |",
        "|---|---|---|---|---|---|---|---|---|---|",
        *[_row(r) for r in records],
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gpu-python", help="an interpreter whose environment has the cuda extra")
    parser.add_argument("--report", action="store_true", help="only tabulate the recorded lines")
    parser.add_argument("--step", choices=("train", "decode", "refit"), help="only the cases of this step "
                        "(their lines replace the recorded ones)")
    args = parser.parse_args()
    recorded = [json.loads(line) for line in JSONL.read_text().splitlines()] if JSONL.exists() else []
    if not args.report:
        host = machine()
        fresh = {}
        for config, step, targets in CASES:
            for target in targets if args.step in (None, step) else ():
                record = {**compile_case(config, step, target, args.gpu_python), "machine": host}
                print(json.dumps(record), flush=True)
                fresh[config, step, target] = record
        kept = {(r["config"], r["step"], r["target"]): r for r in recorded}
        kept.update(fresh)
        order = [(config, step, target) for config, step, targets in CASES for target in targets]
        recorded = [kept[key] for key in order if key in kept]
        files.write_text(JSONL, "".join(json.dumps(r) + "\n" for r in recorded))
    files.write_text(TABLE, report(recorded, recorded[0]["machine"]))


if __name__ == "__main__":
    main()
