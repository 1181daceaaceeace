"""Reproduce results/bench/: data-generation and training-step benchmarks on this machine.

  python results/bench/reproduce.py [--quick]     # run the benchmarks, then write the tables
  python results/bench/reproduce.py --report      # the tables from the recorded lines

Runs `python -m snipjax.bench data` and `python -m snipjax.bench train` and writes every JSON line they print
to results/bench/<machine>.jsonl together with the command, the machine and the date; results/bench/<machine>.md
tabulates them. <machine> is `cpu<cores>` on a CPU and the device kind on an accelerator.

- CPU: batch 64, one data worker: the paper's 1-D model, and a 1-D model with d 256, 4 layers, 8 heads.
  Beside them: the ratios against the official code that `side_by_side.py` measured in one run on one
  machine (side_by_side.jsonl), never numbers taken on another machine.
- GPU / TPU (one prepared run): the paper's 1-D and 10-D configs at their batch size, in bfloat16 and float32,
  with a data worker per core but one; the table shows MFU and the data share of a step (the wait for the
  next batch over the wait plus the step).
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

from snipjax.data.files import atomic_write, write_text

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]

D256 = ["--config=configs/snip_1d_paper.py", "--config.batch_size=64", "--config.model.d_model=256",
        "--config.model.n_layers=4", "--config.model.n_heads=8", "--config.model.d_ff=1024",
        "--config.model.latent_dim=256", "--steps=5", "--config.data.workers=1"]
CPU_TRAIN_CASES = {
    "train paper 1-D": ["--config=configs/snip_1d_paper.py", "--config.batch_size=64", "--steps=3",
                        "--config.data.workers=1"],
    "train d256 4 layers": [*D256, "--profile=2"],
    # Before the symbol sequences were cut to their batch's longest: every step pads them to 200.
    "train d256 4 layers, symbols padded to 200": [*D256, "--config.length_bucket=0"],
    "train tiny": ["--config=configs/tiny.py", "--steps=20", "--config.data.workers=1"],
}


def train_cases(backend: str, cores: int) -> dict[str, list[str]]:
    """The training benchmarks for a backend ('cpu', 'gpu', 'tpu') on a host with `cores` CPU cores."""
    if backend == "cpu":
        return CPU_TRAIN_CASES
    workers = f"--config.data.workers={max(cores - 1, 1)}"  # one core feeds the device
    return {f"train {name} {dtype}": [f"--config=configs/{file}", f"--config.model.dtype={dtype}", workers,
                                      "--steps=30"]
            for name, file in (("paper 1-D", "snip_1d_paper.py"), ("paper 10-D", "snip_10d_paper.py"))
            for dtype in ("bfloat16", "float32")}


def machine_tag(backend: str, device_kind: str, cores: int) -> str:
    if backend == "cpu":
        return f"cpu{cores}"
    return "".join(c if c.isalnum() else "-" for c in device_kind.lower()).strip("-")


def run(args: list[str]) -> list[dict]:
    command = [sys.executable, "-m", "snipjax.bench", *args]
    out = subprocess.run(command, cwd=ROOT, check=True, capture_output=True, text=True).stdout
    shown = " ".join(["python", "-m", "snipjax.bench", *args])
    return [{"command": shown, **json.loads(line)} for line in out.splitlines() if line.startswith("{")]


def side_by_side_lines() -> list[str]:
    path = HERE / "side_by_side.jsonl"
    if not path.exists():
        return []
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    m = rows[0]["machine"]
    lines = ["", f"## Against the official code, side by side ({m['date']})", "",
             "`python results/bench/side_by_side.py --official CHECKOUT --official-python PYTHON`: each case run by "
             "both codes back to back on one machine (data: one core, batches of 64, "
             f"{len(rows[0]['snipjax'].get('rounds', [0]))} alternating turns of each code; train: batch 64, data "
             "generation included); "
             f"{m['processor']}, {m['cpu_count']} cores, JAX {m['jax']}, torch {m['torch']}, "
             f"official commit {str(m['official_commit'])[:7]}. The 1-minute load average is recorded with each "
             "case: other jobs slow both codes, not necessarily equally.", "",
             "| case | snipjax samples/s | official samples/s | ratio | load average |", "|---|---|---|---|---|"]
    lines += [f"| {r['name']} | {r['snipjax_samples_per_s']:.2f} | {r['official_samples_per_s']:.2f} | "
              f"**{r['ratio']:.2f}x** | {r['load_average_1m']:.1f} |" for r in rows]
    return lines


def write_report(tag: str) -> str:
    rows = [json.loads(line) for line in (HERE / f"{tag}.jsonl").read_text().splitlines() if line.strip()]
    info = rows[0]["machine"]
    device = f"{info['device_kind']}, " if info.get("device_kind", "cpu") != "cpu" else ""
    lines = [f"# Benchmarks on {device}{info['processor']}, {info['cpu_count']} cores ({info['date']})", "",
             "Regenerate with `python results/bench/reproduce.py`; raw lines in "
             f"`{tag}.jsonl`. Data share: the wait for the next batch over the wait plus the step.", "",
             "| benchmark | workers | snipjax samples/s | per core | step ms | data share | MFU | command |",
             "|---|---|---|---|---|---|---|---|"]
    for row in rows:
        workers = row.get("workers", row.get("config", {}).get("data_workers", ""))
        per_core = row.get("samples_per_s_per_core", "")
        step = data = mfu = ""
        if "step_ms" in row:
            step = f"{row['step_ms']:.1f}"
            data = f"{row['data_ms'] / (row['data_ms'] + row['step_ms']):.1%}"
            mfu = f"{row['mfu']:.1%}" if row.get("mfu") is not None else ""
        lines.append(f"| {row['name']} | {workers} | {row['samples_per_s']:.1f} | {per_core} | {step} | {data} | "
                     f"{mfu} | `{row['command']}` |")
    for row in rows:
        if "profile" in row:
            p = row["profile"]
            lines += ["", f"Where the time of a `{row['name']}` step goes (`--profile {p['steps']}`, symbols cut to "
                      f"{p['symbol_length']}): share of the traced op time by kind of compiled op, "
                      f"{p['op_ms'] / p['steps']:.0f} ms of op time per step (ops on both cores add up).", "",
                      "| op kind | share |", "|---|---|"]
            lines += [f"| {kind} | {share:.1%} |" for kind, share in p["shares"].items()]
    text = "\n".join(lines + side_by_side_lines()) + "\n"
    write_text(HERE / f"{tag}.md", text)
    return text


def backend_and_device() -> tuple[str, str]:
    """JAX's backend and first device kind, asked in a child process: a GPU client in this process would hold
    the memory the benchmarks need."""
    probe = "import jax; print(jax.default_backend()); print(jax.devices()[0].device_kind)"
    backend, device_kind = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True,
                                          text=True).stdout.strip().splitlines()[-2:]
    return backend, device_kind


def main(argv: list[str]) -> int:
    (backend, device_kind), cores = backend_and_device(), os.cpu_count() or 1
    tag = machine_tag(backend, device_kind, cores)
    if "--report" in argv:
        print(write_report(tag))
        return 0
    quick = "--quick" in argv
    rows = [{**r, "name": f"data {r['name']}"} for r in run(["data", "--seconds", "3" if quick else "10"])]
    for name, args in train_cases(backend, cores).items():
        if quick and name != "train tiny":
            continue
        rows += [{"name": name, **r} for r in run(["train", *args])]
    info = {"date": datetime.date.today().isoformat(), "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(), "cpu_count": cores,
            "device_kind": device_kind if backend != "cpu" else "cpu"}
    with atomic_write(HERE / f"{tag}.jsonl") as f:
        for row in rows:
            f.write(json.dumps({**row, "machine": info}) + "\n")
    print(write_report(tag))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
