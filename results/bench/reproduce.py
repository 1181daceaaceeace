"""Reproduce results/bench/: data-generation and training-step benchmarks on this machine.

  python results/bench/reproduce.py [--quick]     # run the benchmarks, then write the tables
  python results/bench/reproduce.py --report      # the tables from the recorded lines

Runs `python -m snipjax.bench data` and `python -m snipjax.bench train` (batch 64: the paper's 1-D model, and
a 1-D model with d 256, 4 layers, 8 heads) and writes every JSON line they print to
results/bench/<machine>.jsonl together with the command, the machine and the date. results/bench/<machine>.md
tabulates them, and beside them the ratios against the official code that `side_by_side.py` measured in one
run on one machine (side_by_side.jsonl), never numbers taken on another machine.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]

TRAIN_CASES = {
    "train paper 1-D": ["--config=configs/snip_1d_paper.py", "--config.batch_size=64", "--steps=3"],
    "train d256 4 layers": ["--config=configs/snip_1d_paper.py", "--config.batch_size=64",
                            "--config.model.d_model=256", "--config.model.n_layers=4",
                            "--config.model.n_heads=8", "--config.model.d_ff=1024",
                            "--config.model.latent_dim=256", "--steps=5"],
    "train tiny": ["--config=configs/tiny.py", "--steps=20"],
}


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
             "both codes back to back on one machine (data: one core, batches of 64; train: batch 64, data "
             f"generation included); {m['processor']}, {m['cpu_count']} cores, JAX {m['jax']}, torch {m['torch']}, "
             f"official commit {str(m['official_commit'])[:7]}. The 1-minute load average is recorded with each "
             "case: other jobs slow both codes, not necessarily equally.", "",
             "| case | snipjax samples/s | official samples/s | ratio | load average |", "|---|---|---|---|---|"]
    lines += [f"| {r['name']} | {r['snipjax_samples_per_s']:.2f} | {r['official_samples_per_s']:.2f} | "
              f"**{r['ratio']:.2f}x** | {r['load_average_1m']:.1f} |" for r in rows]
    return lines


def write_report(tag: str) -> str:
    rows = [json.loads(line) for line in (HERE / f"{tag}.jsonl").read_text().splitlines() if line.strip()]
    info = rows[0]["machine"]
    lines = [f"# Benchmarks on {info['processor']}, {info['cpu_count']} cores ({info['date']})", "",
             "Regenerate with `python results/bench/reproduce.py`; raw lines in "
             f"`{tag}.jsonl`.", "",
             "| benchmark | workers | snipjax samples/s | per core | command |",
             "|---|---|---|---|---|"]
    for row in rows:
        workers = row.get("workers", row.get("config", {}).get("data_workers", ""))
        per_core = row.get("samples_per_s_per_core", "")
        lines.append(f"| {row['name']} | {workers} | {row['samples_per_s']:.1f} | {per_core} | `{row['command']}` |")
    text = "\n".join(lines + side_by_side_lines()) + "\n"
    (HERE / f"{tag}.md").write_text(text)
    return text


def main(argv: list[str]) -> int:
    tag = f"cpu{os.cpu_count()}"
    if "--report" in argv:
        print(write_report(tag))
        return 0
    quick = "--quick" in argv
    rows = [{**r, "name": f"data {r['name']}"} for r in run(["data", "--seconds", "3" if quick else "10"])]
    for name, args in TRAIN_CASES.items():
        if quick and name != "train tiny":
            continue
        workers = ["--config.data.workers=1"]
        rows += [{"name": name, **r} for r in run(["train", *args, *workers])]
    info = {"date": datetime.date.today().isoformat(), "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(), "cpu_count": os.cpu_count()}
    with open(HERE / f"{tag}.jsonl", "w") as f:
        for row in rows:
            f.write(json.dumps({**row, "machine": info}) + "\n")
    print(write_report(tag))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
