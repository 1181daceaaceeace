"""Reproduce results/sr/: symbolic regression with the CPU-trained SR model, by direct decoding.

  python -m snipjax.tasks.sr.train --config configs/sr/cpu.py --workdir runs/sr_cpu \
      --config.pretrained=runs/pretrain_cpu_1d_tokens               # the model (about 2 hours on 2 cores)
  python results/sr/reproduce.py [--checkpoint runs/sr_cpu] [--generated 200]
  python results/sr/reproduce.py lso [--iterations 10]             # direct decoding against GWO, ES, CMA-ES
  python results/sr/reproduce.py report                             # README.md and r2.png from results.json

Fits `SNIPRegressor` (refit constants, best fit R² kept) with the official decoding (2 samples at temperature
0.1) and with a beam of 10, on
- held-out generated expressions: the first `--generated` samples of the training program's evaluation seed
  stream (never trained on), scored by R² on their 200 points;
- the SRBench Feynman problems of 1 and 2 variables: 1,000 points uniform in the formula's ranges (seed 0),
  the official 75/25 split (random_state 14423), scored by R² on the test quarter; beside each, the test R²
  of the published SNIP (with LSO, 10-D model) from its result file in published/.

`lso` runs the benchmark runner (`python -m snipjax.tasks.sr.srbench`) without latent optimization, with
GWO, with ES and with CMA-ES, on the same Feynman problems and on the Nguyen set, into lso/*.csv (a rerun resumes), and
records the commands in lso.json; the README summarizes the CSVs as they stand.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE.parent))  # results/common.py

from common import machine, pyplot  # noqa: E402

from snipjax.data.files import atomic_write, write_text  # noqa: E402
from snipjax.tasks.sr import search  # noqa: E402

DECODINGS = {"sample": {"decoding": "sample", "optimizer": None},
             "beam10": {"decoding": "beam", "beam_size": 10, "optimizer": None}}
SPLIT_SEED = 14423  # the official train/test split (LSO_eval.py)


def shown(model) -> str:
    """The fitted formula as sympy prints it, constants to 4 digits."""
    import sympy

    return str(sympy.N(model.sympy(), 4))


def feynman_rows(checkpoint: str, max_features: int, decoding: dict) -> list[dict]:
    from sklearn.model_selection import train_test_split

    from snipjax.data import benchmarks
    from snipjax.tasks.sr.regressor import SNIPRegressor, r2_score

    published = {row["problem"]: row for row in csv.DictReader(open(HERE / "published" / "feynman_snip.csv"))}
    rows = []
    for problem in benchmarks.srbench_feynman(max_features=max_features):
        X, y = problem.sample(1000, seed=0)
        X_fit, X_test, y_fit, y_test = train_test_split(X, y, test_size=0.25, random_state=SPLIT_SEED)
        start = time.perf_counter()
        model = SNIPRegressor(checkpoint=checkpoint, **decoding).fit(X_fit, y_fit)
        seconds = time.perf_counter() - start
        rows.append({"problem": problem.name, "formula": problem.formula, "n_features": len(problem.features),
                     "predicted": shown(model), "r2_fit": model.equations_[0].r2,
                     "r2_test": r2_score(y_test, model.predict(X_test)), "complexity": model.equations_[0].complexity,
                     "seconds": seconds, "snip_published_r2_test": float(published[problem.name]["r2_predict"]),
                     "snip_published_complexity": float(published[problem.name]["_complexity_predict"])})
        print(f"  {problem.name}: test R² {rows[-1]['r2_test']:.4f}  {rows[-1]['predicted']}", flush=True)
    return rows


def generated_rows(checkpoint: str, count: int, decoding: dict) -> list[dict]:
    import snipjax
    from snipjax.data.samples import as_spec, generate_sample
    from snipjax.task_data import EVAL_SEED_OFFSET
    from snipjax.tasks.sr.regressor import SNIPRegressor

    config, _ = snipjax.load(checkpoint)
    spec = as_spec(config.data)
    rows = []
    for index in range(count):
        sample = generate_sample(spec, config.seed + EVAL_SEED_OFFSET, index)
        if np.ptp(sample.y) == 0:
            continue  # a constant function: no regression problem (the regressor refuses it)
        start = time.perf_counter()
        model = SNIPRegressor(checkpoint=checkpoint, **decoding).fit(sample.x, sample.y)
        rows.append({"index": index, "dim": sample.dim, "truth": str(sample.expression),
                     "predicted": shown(model), "r2_fit": model.equations_[0].r2,
                     "complexity": model.equations_[0].complexity, "truth_complexity": sample.expression.n_nodes,
                     "seconds": time.perf_counter() - start})
    return rows


def summary(rows: list[dict], key: str) -> dict:
    r2 = np.array([row[key] for row in rows])
    return {"problems": len(rows), "share_r2_above_0.99": float(np.mean(r2 > 0.99)),
            "share_r2_above_0.999": float(np.mean(r2 > 0.999)), "median_r2": float(np.median(r2)),
            "mean_complexity": float(np.mean([row["complexity"] for row in rows])),
            "median_seconds": float(np.median([row["seconds"] for row in rows]))}


def run(args) -> None:
    import snipjax

    config, _ = snipjax.load(args.checkpoint)
    metrics = [json.loads(line) for line in open(Path(args.checkpoint) / "metrics.jsonl")]
    evaluation = [m for m in metrics if m.get("split") == "eval"][-1]
    results = {"command": " ".join(["python", "results/sr/reproduce.py", *sys.argv[1:]]),
               "date": datetime.date.today().isoformat(), "machine": machine(), "checkpoint": args.checkpoint,
               "max_dim": config.data.max_dim, "teacher_forced": evaluation, "runs": {}}
    for name, decoding in DECODINGS.items():
        print(f"{name}: held-out generated expressions", flush=True)
        generated = generated_rows(args.checkpoint, args.generated, decoding)
        print(f"{name}: Feynman problems of at most {config.data.max_dim} variables", flush=True)
        feynman = feynman_rows(args.checkpoint, config.data.max_dim, decoding)
        results["runs"][name] = {"decoding": decoding, "generated": summary(generated, "r2_fit"),
                                 "feynman": summary(feynman, "r2_test"),
                                 "feynman_published_snip": summary(
                                     [{**r, "r2_test": r["snip_published_r2_test"],
                                       "complexity": r["snip_published_complexity"], "seconds": np.nan}
                                      for r in feynman], "r2_test"),
                                 "generated_rows": generated, "feynman_rows": feynman}
        write_text(HERE / "results.json", json.dumps(results, indent=1))
    report()


def report() -> None:
    results = json.loads((HERE / "results.json").read_text())
    teacher = results["teacher_forced"]
    lines = [
        "# Symbolic regression at CPU scale (direct decoding, no LSO)", "",
        "Generated by `results/sr/reproduce.py` from `results.json`; do not edit by hand.", "",
        f"- Command: `{results['command']}` on {results['date']}",
        f"- Machine: {results['machine']['processor']}, {results['machine']['cpu_count']} cores, "
        f"{results['machine']['platform']}, JAX {results['machine']['jax']}",
        f"- Model: `{results['checkpoint']}` (configs/sr/cpu.py on the CPU-pretrained encoder, Dmax "
        f"{results['max_dim']}); held-out teacher-forced token accuracy {teacher['token_accuracy']:.3f}, "
        f"expressions entirely right {teacher['sequence_accuracy']:.3f}.", "",
        "| decoding | problems | n | R² > 0.99 | R² > 0.999 | median R² | mean complexity | median s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, run in results["runs"].items():
        for group, label in (("generated", "held-out generated (fit R²)"),
                             ("feynman", "Feynman ≤ 2 variables (test R²)"),
                             ("feynman_published_snip", "same problems, published SNIP + LSO")):
            s = run[group]
            seconds = "–" if s["median_seconds"] != s["median_seconds"] else f"{s['median_seconds']:.2f}"
            lines.append(f"| {name if group != 'feynman_published_snip' else 'paper'} | {label} | "
                         f"{s['problems']} | {s['share_r2_above_0.99']:.3f} | {s['share_r2_above_0.999']:.3f} | "
                         f"{s['median_r2']:.3f} | {s['mean_complexity']:.1f} | {seconds} |")
    lines += ["", "Feynman problems, official decoding:", "",
              "| problem | formula | test R² | published SNIP test R² | predicted |", "|---|---|---|---|---|"]
    for row in results["runs"]["sample"]["feynman_rows"]:
        lines.append(f"| {row['problem']} | `{row['formula']}` | {row['r2_test']:.4f} | "
                     f"{row['snip_published_r2_test']:.4f} | `{row['predicted'][:80]}` |")
    if (HERE / "lso.json").exists():
        record = json.loads((HERE / "lso.json").read_text())
        lines += ["", "## Latent space optimization at CPU scale", "",
                  f"`{record['command']}` on {record['date']} ({record['machine']['processor']}, "
                  f"{record['machine']['cpu_count']} cores): at most {record['iterations']} iterations of 50 "
                  "latents (the paper runs 80), test R² on the official 75/25 split; per-problem rows in lso/.", "",
                  "| problems | search | n | R² > 0.99 | R² > 0.999 | median R² | mean complexity | median s |",
                  "|---|---|---|---|---|---|---|---|"]
        from snipjax.tasks.sr import srbench

        published = f"published SNIP (10-D model, GPU, up to 80 iterations)={HERE / 'published' / 'feynman_snip.csv'}"
        for name in record["runs"]:
            out = HERE / "lso" / f"{name}.csv"
            if not out.exists():
                continue
            problems, search = name.split("_", 1)
            # What has finished so far (a rerun resumes); beside the Feynman runs, the published SNIP file's
            # rows for the same problems (10-D model, 80 iterations, on a GPU).
            summaries = srbench.summary(str(out), [published] if name == "feynman_direct" else [])
            for label, s in summaries.items():
                if label == "out":
                    continue
                lines.append(f"| {problems} | {search if label == 'ours' else label} | {s['problems']} | "
                             f"{s['share_r2_above_0.99']:.3f} | {s['share_r2_above_0.999']:.3f} | "
                             f"{s['median_r2']:.3f} | {s['mean_complexity']:.1f} | {s['median_seconds']:.1f} |")
    lines += ["", "![R² of the fits](r2.png)"]
    if (HERE / "interpolation.json").exists():
        record = json.loads((HERE / "interpolation.json").read_text())
        lines += ["", "## Latent interpolation", "",
                  f"`{record['command']}` on {record['date']}: the formulas decoded (a beam of one, constants as "
                  f"decoded) along the straight path from the latent of `{record['source']}` to that of "
                  f"`{record['target']}`.", "", "| t | decoded |", "|---|---|"]
        lines += [f"| {row['t']:.2f} | `{row['formula']}` |" for row in record["path"]]
        lines += ["", "![interpolation](interpolation.png)"]
    write_text(HERE / "README.md", "\n".join(lines) + "\n")

    plt = pyplot()
    figure, axis = plt.subplots(figsize=(6, 4))
    for name, run in results["runs"].items():
        for group, key, style in (("generated_rows", "r2_fit", "-"), ("feynman_rows", "r2_test", "--")):
            r2 = np.sort(np.clip([row[key] for row in run[group]], -1, 1))
            axis.step(r2, 1 - np.arange(len(r2)) / len(r2), style, where="post",
                      label=f"{name}, {'generated (fit)' if group == 'generated_rows' else 'Feynman (test)'}")
    axis.axvline(0.99, color="grey", lw=0.8)
    axis.set_xlabel("R²")
    axis.set_ylabel("share of problems with R² ≥ x")
    axis.set_xlim(-1, 1)
    axis.legend(fontsize=8)
    figure.tight_layout()
    with atomic_write(HERE / "r2.png", "wb") as png:
        figure.savefig(png, format="png", dpi=120)


LSO_PROBLEMS = {"feynman": ["--formulas", "feynman", "--max-features", "2"],
                "nguyen": ["--formulas", "classic:Nguyen-", "--max-features", "2"]}


def lso(arguments: list[str]) -> None:
    from snipjax.tasks.sr import srbench

    parser = argparse.ArgumentParser(prog="python results/sr/reproduce.py lso")
    parser.add_argument("--checkpoint", default="runs/sr_cpu")
    parser.add_argument("--iterations", type=int, default=10, help="latent optimization iterations at most")
    args = parser.parse_args(arguments)
    (HERE / "lso").mkdir(exist_ok=True)
    record = {"command": " ".join(["python", "results/sr/reproduce.py", "lso", *arguments]),
              "date": datetime.date.today().isoformat(), "machine": machine(), "checkpoint": args.checkpoint,
              "iterations": args.iterations, "runs": {}}
    for problems, selection in LSO_PROBLEMS.items():
        for optimizer in (None, *search.OPTIMIZERS):
            name = f"{problems}_{optimizer or 'direct'}"
            out = HERE / "lso" / f"{name}.csv"
            command = ["--checkpoint", args.checkpoint, *selection, "--iterations", str(args.iterations),
                       "--out", str(out.relative_to(ROOT)), "--optimizer", optimizer or "none"]
            record["runs"][name] = "python -m snipjax.tasks.sr.srbench " + " ".join(command)
            write_text(HERE / "lso.json", json.dumps(record, indent=1))
            print(f"{name}: {record['runs'][name]}", flush=True)
            srbench.main(command)
    if (HERE / "results.json").exists():
        report()


def main() -> None:
    if sys.argv[1:2] == ["report"]:
        report()
        return
    if sys.argv[1:2] == ["lso"]:
        lso(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default="runs/sr_cpu")
    parser.add_argument("--generated", type=int, default=200, help="held-out generated expressions")
    run(parser.parse_args())


if __name__ == "__main__":
    main()
