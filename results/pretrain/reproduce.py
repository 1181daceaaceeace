"""Reproduce results/pretrain/: a small 1-D SNIP pretrained on the CPU, with its retrieval curve.

  python results/pretrain/reproduce.py [--workdir=runs/pretrain_cpu_1d] [--config.key=value ...]
  python results/pretrain/reproduce.py --report-only   # redraw curve.png and README.md from the recorded run

Runs the training program on configs/cpu_1d.py, then writes, next to this script: metrics.jsonl (the run's
own log), metrics.json (command, config, machine, date, wall time, final and best held-out retrieval),
curve.png (held-out retrieval in both directions and the loss, against the step) and README.md.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
CONFIG = "configs/cpu_1d.py"


def machine() -> dict:
    import jax

    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "python": platform.python_version(), "jax": jax.__version__,
            "devices": [str(d) for d in jax.devices()]}


def read_metrics(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def plot(rows: list[dict], eval_size: int, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    evals = [r for r in rows if r["split"] == "eval"]
    train = [r for r in rows if r["split"] == "train"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    steps = [r["step"] for r in evals]
    for k, style in ((1, "-"), (5, ":")):
        left.plot(steps, [r[f"top{k}_n2s"] for r in evals], "o" + style, color="C0", label=f"top-{k} numeric → symbolic")
        left.plot(steps, [r[f"top{k}_s2n"] for r in evals], "s" + style, color="C1", label=f"top-{k} symbolic → numeric")
        left.axhline(k / eval_size, color="gray", ls=style, label=f"top-{k} chance ({k}/{eval_size})")
    left.set(xlabel="step", ylabel=f"accuracy ({eval_size}-way, held out)", title="Held-out cross-modal retrieval")
    left.set_ylim(0, None)
    left.legend(fontsize=8)
    right.plot([r["step"] for r in train], [r["loss"] for r in train], label="train (in-batch)")
    right.plot(steps, [r["loss"] for r in evals], "o", label=f"held out ({eval_size}-way)")
    right.set(xlabel="step", ylabel="symmetric InfoNCE loss", title="Contrastive loss")
    right.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=120)


def report(summary: dict, rows: list[dict]) -> None:
    """curve.png and README.md from the run's summary and metrics."""
    eval_size = summary["config"]["eval_size"]
    plot(rows, eval_size, HERE / "curve.png")
    final, best = summary["final_eval"], summary["best_eval"]
    m = summary["machine"]

    def cells(r):
        return " | ".join(f"{r[k]:.3f}" for k in ("top1_n2s", "top1_s2n", "top5_n2s", "top5_s2n"))

    (HERE / "README.md").write_text(f"""# A first pretraining result on the CPU

Written by `reproduce.py` from `metrics.json` and `metrics.jsonl`; regenerate with
`python results/pretrain/reproduce.py` (train and report) or `--report-only` (report from the recorded run).

- command: `{summary["command"]}` (config `{summary["config_file"]}`, full config in `metrics.json`)
- machine: {m["processor"]}, {m["cpu_count"]} cores, {m["platform"]}, Python {m["python"]}, JAX {m["jax"]}
- date: {summary["date"]}; wall time {summary["wall_time_s"] / 60:.1f} min

Held-out {eval_size}-way retrieval (pairs from a seed stream the run never trains on):

| step | top-1 n→s | top-1 s→n | top-5 n→s | top-5 s→n |
|---|---|---|---|---|
| chance | {1 / eval_size:.3f} | {1 / eval_size:.3f} | {5 / eval_size:.3f} | {5 / eval_size:.3f} |
| {best["step"]} (best) | {cells(best)} |
| {final["step"]} (final) | {cells(final)} |

![curve](curve.png)
""")


def main(argv: list[str]) -> int:
    if argv == ["--report-only"]:
        report(json.loads((HERE / "metrics.json").read_text()), read_metrics(HERE / "metrics.jsonl"))
        return 0
    workdir = "runs/pretrain_cpu_1d"
    overrides = []
    for arg in argv:
        if arg.startswith("--workdir="):
            workdir = arg.split("=", 1)[1]
        else:
            overrides.append(arg)
    shutil.rmtree(ROOT / workdir, ignore_errors=True)  # a fresh run, not a resumed one
    command = [sys.executable, "-m", "snipjax.train", f"--config={CONFIG}", f"--workdir={workdir}", *overrides]
    shown = " ".join(["python", *command[1:]])
    print(f"running: {shown}", flush=True)
    start = time.time()
    subprocess.run(command, cwd=ROOT, check=True)
    wall = time.time() - start

    rows = read_metrics(ROOT / workdir / "metrics.jsonl")
    config = json.loads((ROOT / workdir / "config.json").read_text())
    evals = [r for r in rows if r["split"] == "eval"]
    best = max(evals, key=lambda r: r["top1_n2s"] + r["top1_s2n"])
    shutil.copy(ROOT / workdir / "metrics.jsonl", HERE / "metrics.jsonl")
    summary = {
        "command": shown, "config_file": CONFIG, "config": config, "machine": machine(),
        "date": datetime.date.today().isoformat(), "wall_time_s": round(wall, 1),
        "chance_top1": 1 / config["eval_size"], "final_eval": evals[-1], "best_eval": best,
    }
    (HERE / "metrics.json").write_text(json.dumps(summary, indent=2) + "\n")
    report(summary, rows)
    final = evals[-1]
    print(f"final held-out {config['eval_size']}-way top-1: numeric→symbolic {final['top1_n2s']:.3f}, "
          f"symbolic→numeric {final['top1_s2n']:.3f} (chance {1 / config['eval_size']:.4f}); wall {wall / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
