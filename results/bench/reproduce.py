"""Reproduce results/bench/: data-generation and training-step benchmarks on this machine.

  python results/bench/reproduce.py [--quick]

Runs `python -m snipjax.bench data` and `python -m snipjax.bench train` on the configurations that the
official PyTorch code was timed with on a 2-core CPU (batch 64: the paper's 1-D model, and a 1-D model with
d 256, 4 layers, 8 heads), and writes every JSON line they print to results/bench/<machine>.jsonl together
with the command, the machine and the date, plus results/bench/<machine>.md, a table beside the official
numbers.
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

# Samples/s of the official PyTorch code on a 2-core CPU, data generation included (the project's reference
# measurements: 115 and 29 samples/s for data alone at Dmax 1 and 10).
OFFICIAL = {"data dmax1_normalized": 115.0, "data dmax10": 29.0, "train paper 1-D": 1.35, "train d256 4 layers": 10.3}

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


def main(argv: list[str]) -> int:
    quick = "--quick" in argv
    rows = [{**r, "name": f"data {r['name']}"} for r in run(["data", "--seconds", "3" if quick else "10"])]
    for name, args in TRAIN_CASES.items():
        if quick and name != "train tiny":
            continue
        workers = ["--config.data.workers=1"]
        rows += [{"name": name, **r} for r in run(["train", *args, *workers])]
    info = {"date": datetime.date.today().isoformat(), "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(), "cpu_count": os.cpu_count()}
    tag = f"cpu{os.cpu_count()}"
    with open(HERE / f"{tag}.jsonl", "w") as f:
        for row in rows:
            f.write(json.dumps({**row, "machine": info}) + "\n")
    lines = [f"# Benchmarks on {info['processor']}, {info['cpu_count']} cores ({info['date']})", "",
             "Regenerate with `python results/bench/reproduce.py`; raw lines in "
             f"`{tag}.jsonl`.", "",
             "| benchmark | workers | snipjax samples/s | per core | official samples/s | command |",
             "|---|---|---|---|---|---|"]
    for row in rows:
        workers = row.get("workers", row.get("config", {}).get("data_workers", ""))
        per_core = row.get("samples_per_s_per_core", "")
        official = OFFICIAL.get(row["name"], "")
        if row["name"].startswith("data") and workers != 1:
            official = ""
        lines.append(f"| {row['name']} | {workers} | {row['samples_per_s']:.1f} | {per_core} | {official} | "
                     f"`{row['command']}` |")
    (HERE / f"{tag}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
