"""CMA-ES written here against evosax's, side by side on the LSO ablation's Feynman problems.

  git checkout 56068ae  # the last commit with both: the hand-written one as 'cma', evosax's as 'cma_evosax'
  python results/sr/cma_side_by_side.py --checkpoint runs/sr_tiny [--problems 8] [--iterations 30] [--seeds 0]

Fits `SNIPRegressor` through the SRBench runner's `fit_problem` (1,000 points per problem as the runner samples
them, the official 75/25 split, latent optimization of at most `--iterations` iterations stopping at fit R² 0.99)
on the first `--problems` Feynman problems of 1 and 2 variables, with `--optimizers` in turn on each problem and
seed (interleaved, so load on the machine falls on both alike), after a one-iteration warm-up fit per optimizer
that compiles. Writes cma_side_by_side.jsonl (a row per fit: best fit R², test R², seconds) and
cma_side_by_side.md (per optimizer: share of test R² above 0.99, median test and fit R², median seconds; and the
command, machine, date and commit).

The fits are deterministic (a rerun gave the same R² to the last digit; only seconds move with the machine's
load). evosax's did as well as the hand-written one (test R² above 0.99 in 24 and 25 of 48 fits, better by over
0.001 in 8 fits each way; the medians straddle 0.99 and differ by that one fit), so it replaced it as 'cma'.
"""

from __future__ import annotations

import argparse
import datetime
import json
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # results/common.py

from common import machine  # noqa: E402

from snipjax.data import benchmarks  # noqa: E402
from snipjax.data.files import write_text  # noqa: E402
from snipjax.tasks.sr import benchmark  # noqa: E402

POINTS = 1000


def fit(problem, optimizer: str, seed: int, iterations: int, checkpoint: str) -> dict:
    X, y = problem.sample(POINTS, zlib.crc32(problem.name.encode()))
    args = argparse.Namespace(checkpoint=checkpoint, optimizer=optimizer, iterations=iterations, seed=seed,
                              noise=0.0, verbose=False)
    return benchmark.fit_problem(problem.name, problem.formula, X, y, args, {"optimizer": optimizer, "seed": seed})


def summary(rows: list[dict]) -> dict:
    test = np.array([row["r2_predict"] for row in rows])
    return {"fits": len(rows), "share_test_r2_above_0.99": float(np.mean(test > 0.99)),
            "median_test_r2": float(np.median(test)),
            "median_fit_r2": float(np.median([row["r2_fit"] for row in rows])),
            "median_seconds": float(np.median([row["time"] for row in rows]))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True, help="an SR model")
    parser.add_argument("--optimizers", default="cma,cma_evosax", help="search.OPTIMIZERS names, comma-separated")
    parser.add_argument("--problems", type=int, default=8)
    parser.add_argument("--iterations", type=int, default=30)
    parser.add_argument("--seeds", default="0", help="SNIPRegressor random_state values, comma-separated")
    args = parser.parse_args()
    optimizers, seeds = args.optimizers.split(","), [int(s) for s in args.seeds.split(",")]
    problems = benchmarks.srbench_feynman(max_features=2)[:args.problems]
    for optimizer in optimizers:
        fit(problems[0], optimizer, seeds[0], 1, args.checkpoint)  # compiles
    rows = []
    for problem in problems:
        for seed in seeds:
            for optimizer in optimizers:
                row = fit(problem, optimizer, seed, args.iterations, args.checkpoint)
                rows.append({key: row[key] for key in ("problem", "optimizer", "seed", "r2_fit", "r2_predict", "time")})
                print(json.dumps(rows[-1]), flush=True)
    summaries = {optimizer: summary([row for row in rows if row["optimizer"] == optimizer])
                 for optimizer in optimizers}
    write_text(HERE / "cma_side_by_side.jsonl", "".join(json.dumps(row) + "\n" for row in rows))
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=HERE).stdout.strip()
    header = {"command": "python results/sr/cma_side_by_side.py " + " ".join(sys.argv[1:]),
              "date": datetime.date.today().isoformat(), "commit": commit, "machine": machine()}
    table = ["| optimizer | fits | test R² > 0.99 | median test R² | median fit R² | median seconds |",
             "|---|---|---|---|---|---|"]
    table += [f"| `{name}` | {s['fits']} | {s['share_test_r2_above_0.99']:.2f} | {s['median_test_r2']:.4f} | "
              f"{s['median_fit_r2']:.4f} | {s['median_seconds']:.1f} |" for name, s in summaries.items()]
    per_problem = ["| problem | seed | " + " | ".join(f"`{o}` fit R² / test R² / s" for o in optimizers) + " |",
                   "|---|---|" + "---|" * len(optimizers)]
    for problem in problems:
        for seed in seeds:
            cells = [next(row for row in rows if (row["problem"], row["seed"], row["optimizer"])
                          == (problem.name, seed, optimizer)) for optimizer in optimizers]
            per_problem.append(f"| {problem.name} | {seed} | " + " | ".join(
                f"{c['r2_fit']:.4f} / {c['r2_predict']:.4f} / {c['time']:.1f}" for c in cells) + " |")
    write_text(HERE / "cma_side_by_side.md",
               "# CMA-ES: written here against evosax's, on the LSO ablation\n\n```json\n"
               + json.dumps(header, indent=1) + "\n```\n\n" + "\n".join(table) + "\n\n" + "\n".join(per_problem)
               + "\n")
    print(json.dumps(summaries), flush=True)


if __name__ == "__main__":
    main()
