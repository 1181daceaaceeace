"""Time the official SNIP latent space optimization and snipjax's back to back on this machine, on one model.

  python results/bench/sr_side_by_side.py --official /work/scratch/Multimodal-Symbolic-Regression \
      --official-python /work/scratch/official-sr-venv/bin/python [--problems 4] [--iterations 80] \
      [--out results/bench/sr_side_by_side.jsonl]

`--official` is a checkout of deep-symbolic-mathematics/Multimodal-Symbolic-Regression, `--official-python` a
Python with its requirements (`pip install torch==2.13.0 "numpy<2" "scipy<1.14" "scikit-learn<1.6"
"pandas<2.3" sympy numexpr sympytorch seaborn matplotlib`). What runs:

1. The official code builds a small SR model with random weights (MODEL_FLAGS: numeric encoder and decoder
   of 2 layers, width 64, a mapper to 16 memory vectors, Dmax 2) and saves it with its own
   `Trainer.save_checkpoint`; `python -m snipjax.convert` converts that file.
2. For each of the first `--problems` SRBench Feynman problems of at most 2 variables: the points of
   `snipjax.tasks.sr.srbench` (1000 in the formula's ranges, the official 75/25 split), fitted by the
   official `LSO_fit.lso_fit` (GWO, population 50, `--iterations`, stop at fit R² 0.99, 2 samples per latent
   at temperature 0.1, BFGS refinement) in a process of its own, then by `SNIPRegressor` with the same
   settings (`lso_iterations` one less: the official loop's first iteration scores the initial population,
   which snipjax scores before its iterations), the two taking turns. Both times are the fit's wall time;
   snipjax's fits follow a warm-up fit that compiles (its seconds are reported apart).

The official code runs unchanged except for what this machine needs, applied at run time by the driver
(OFFICIAL_DRIVER): `nevergrad`, imported by LSO_fit.py for its other optimizers and missing from its
requirements, is an empty module; `Tensor.cuda` is the identity (LSO_fit.py moves the population to the GPU
unconditionally); `params.device` is the CPU, as LSO_eval.py's main sets it without CUDA; the driver reads
back its own saved file with `weights_only=False` (torch >= 2.6 refuses the pickled `params` otherwise).

What this measures: a random decoder whose output embeddings are its input embeddings repeats its input
token, so from `<EOS>` it closes every sequence at once, in both codes. No formula is decoded, refit or
scored: the ratio is that of the search's fixed costs per iteration (encoding, one decoding step for 100
sequences, the optimizer), not of a search that finds formulas. The refit is timed by `python -m
snipjax.bench constants` (against scipy's BFGS) instead.

Writes one JSON line per problem (both wall times, fit and test R², the ratio official / snipjax) and a
summary line to --out, and a table to the same path with .md, with the machine, the versions and the date.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
import zlib
from pathlib import Path

import numpy as np

# The runner of the official code's commands and the versions both codes ran, shared with the training side by
# side (this script's folder is first on sys.path).
from side_by_side import PASSIVE_WAIT, ROOT, _last_json, _run, machine

from snipjax.data.files import atomic_write, write_text

HERE = Path(__file__).resolve().parent

# The official parser's flags of the model both codes run (the official SR defaults otherwise).
MODEL_FLAGS = ["--cpu", "True", "--max_input_dimension", "2", "--emb_emb_dim", "16", "--enc_emb_dim", "64",
               "--dec_emb_dim", "64", "--n_enc_layers", "2", "--n_dec_layers", "2", "--n_enc_heads", "4",
               "--n_dec_heads", "4", "--latent_dim", "64", "--max_src_len", "16"]
SEARCH = {"temperature": 0.1, "samples": 2, "stop_r2": 0.99, "max_len": 200}  # the official run_lso.sh settings
POINTS = 1000
# The official code's OpenMP threads wait passively (side_by_side.PASSIVE_WAIT): busy-waiting made it many times
# slower when other jobs shared the cores (20-49 s against 3-6 s per problem measured here).

# Run by the official Python: `build CHECKPOINT FLAGS` saves a random model, `lso CHECKPOINT FLAGS DATA SEED`
# fits one problem and prints {"seconds", "r2_fit", "r2_test", "formula"}.
OFFICIAL_DRIVER = r'''
import json, os, random, sys, time, types
from collections import defaultdict
mode, official, checkpoint, flags = sys.argv[1:5]
sys.path.insert(0, official)
os.chdir(official)
import numpy as np
import torch

sys.modules["nevergrad"] = types.ModuleType("nevergrad")  # LSO_fit.py imports it; GWO never uses it
torch.Tensor.cuda = lambda self, *args, **kwargs: self  # LSO_fit.py calls .cuda() unconditionally
from parsers import get_parser
from symbolicregression.envs import build_env
from symbolicregression.model import build_modules

params = get_parser().parse_args(json.loads(flags))
params.device = torch.device("cpu")  # as LSO_eval.py's main sets it on a machine without CUDA
torch.manual_seed(0)
np.random.seed(0)
env = build_env(params)
modules = build_modules(env, params)
if mode == "build":
    from symbolicregression.trainer import Trainer
    params.is_master, params.dump_path = True, os.path.dirname(checkpoint)
    state = types.SimpleNamespace(params=params, modules=modules, epoch=0, n_total_iter=0, best_metrics={},
                                  best_stopping_criterion=None)
    Trainer.save_checkpoint(state, os.path.basename(checkpoint)[:-len(".pth")], include_optimizer=False)
    sys.exit(0)

import symbolicregression.model.utils_wrapper as utils_wrapper
from LSO_fit import lso_fit
from model import SNIPSymbolicRegressor

saved = torch.load(checkpoint, weights_only=False)  # the file the build step wrote
for name, module in modules.items():
    module.load_state_dict(saved[name])
model = SNIPSymbolicRegressor(params=params, env=env, modules=modules)
data = np.load(sys.argv[5])
seed = int(sys.argv[6])
x_fit, x_test = data["x_fit"], data["x_test"]
y_fit, y_test = data["y_fit"][:, None], data["y_test"][:, None]
scaled = utils_wrapper.StandardScaler().fit_transform(x_fit)  # as LSO_eval.evaluate_pmlb_lso
sample = {"X_scaled_to_fit": [scaled], "Y_scaled_to_fit": [y_fit], "x_to_fit": [x_fit], "y_to_fit": [y_fit],
          "x_to_predict": [x_test], "y_to_predict": [y_test]}
random.seed(seed)
np.random.seed(seed)
torch.manual_seed(seed)
start = time.perf_counter()
with torch.no_grad():
    results = lso_fit(sample, env, params, model, defaultdict(list), 1)
seconds = time.perf_counter() - start


def r2(y, prediction):
    if prediction is None or not np.all(np.isfinite(prediction)):
        return None
    total = np.sum((y - y.mean()) ** 2)
    return float(1 - np.sum((y - prediction) ** 2) / total)


tree = results["final_predicted_tree"][0] if results.get("final_predicted_tree") else None
predict = None if tree is None or isinstance(tree, str) else env.simplifier.tree_to_numexpr_fn(tree)
print(json.dumps({"seconds": seconds, "formula": str(tree),
                  "r2_fit": r2(y_fit[:, 0], None if predict is None else predict(x_fit)[:, 0]),
                  "r2_test": r2(y_test[:, 0], None if predict is None else predict(x_test)[:, 0])}))
'''


def build_and_convert(official: Path, python: str, scratch: Path, iterations: int) -> tuple[Path, list[str]]:
    """The official random model's file and its snipjax conversion; the official flags of the search."""
    flags = [*MODEL_FLAGS, "--beam_size", str(SEARCH["samples"]), "--lso_max_iteration", str(iterations),
             "--lso_stop_r2", str(SEARCH["stop_r2"]), "--max_generated_output_len", str(SEARCH["max_len"])]
    driver = scratch / "official_sr_driver.py"
    write_text(driver, OFFICIAL_DRIVER)
    checkpoint = scratch / "random_sr.pth"
    _run([python, str(driver), "build", str(official), str(checkpoint), json.dumps(flags)])
    converted = scratch / "random_sr"
    result = subprocess.run([sys.executable, "-m", "snipjax.convert", "--torch", str(checkpoint), "--out",
                             str(converted)], cwd=ROOT, capture_output=True, text=True)
    if result.returncode:
        raise RuntimeError(f"snipjax.convert cannot read the official SR checkpoint:\n{result.stderr[-2000:]}")
    return converted, flags


def problems(count: int) -> list:
    """(name, X_fit, X_test, y_fit, y_test) of the first `count` Feynman problems of at most 2 variables."""
    from snipjax.data import benchmarks
    from snipjax.tasks.sr.srbench import split

    chosen = []
    for problem in benchmarks.srbench_feynman(max_features=2)[:count]:
        seed = zlib.crc32(problem.name.encode())
        chosen.append((problem.name, *split(*problem.sample(POINTS, seed), 0.0, seed)))
    return chosen


def snipjax_fit(checkpoint: Path, iterations: int, X_fit, X_test, y_fit, y_test) -> dict:
    from snipjax.tasks.sr.regressor import SNIPRegressor, r2_score

    start = time.perf_counter()
    model = SNIPRegressor(checkpoint=str(checkpoint), n_samples=SEARCH["samples"], temperature=SEARCH["temperature"],
                          max_len=SEARCH["max_len"], lso_iterations=iterations - 1, lso_stop_r2=SEARCH["stop_r2"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a random model may decode nothing valid: the mean stands in
        model.fit(X_fit, y_fit)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "formula": str(model.expression_), "iterations": model.n_iter_,
            "r2_fit": r2_score(y_fit, model.predict(X_fit)), "r2_test": r2_score(y_test, model.predict(X_test)),
            "timings": {k: round(v, 3) for k, v in model.timings_.items()}}


def official_fit(official: Path, python: str, scratch: Path, flags: list[str], name: str, X_fit, X_test,
                 y_fit, y_test) -> dict:
    data = scratch / f"{name}.npz"
    np.savez(data, x_fit=X_fit, x_test=X_test, y_fit=y_fit, y_test=y_test)
    result = _run([python, str(scratch / "official_sr_driver.py"), "lso", str(official),
                   str(scratch / "random_sr.pth"), json.dumps(flags), str(data), "23"],  # LSO_eval's seed
                  env=PASSIVE_WAIT)
    return _last_json(result.stdout)


def _finite(r2) -> float:
    return -np.inf if r2 is None or not np.isfinite(r2) else float(r2)


def _r2_text(result: dict) -> str:
    if result["r2_fit"] is None:
        return "no formula"
    return f"{_finite(result['r2_fit']):.3f} / {_finite(result['r2_test']):.3f}"


def table(rows: list[dict], summary: dict, info: dict) -> str:
    lines = [f"# LSO side by side ({info['date']}, {info['processor']}, {info['cpu_count']} cores)", "",
             f"`{summary['command']}`", "",
             "| problem | official s | snipjax s | ratio | official fit / test R² | snipjax fit / test R² |",
             "|---|---|---|---|---|---|"]
    for row in rows:
        o, s = row["official"], row["snipjax"]
        lines.append(f"| {row['problem']} | {o['seconds']:.1f} | {s['seconds']:.1f} | {row['ratio']:.1f}x | "
                     f"{_r2_text(o)} | {_r2_text(s)} |")
    lines += ["", f"Median ratio {summary['median_ratio']:.1f}x; share of test R² > 0.99: official "
              f"{summary['official_share_r2_above_0.99']:.2f}, snipjax {summary['snipjax_share_r2_above_0.99']:.2f}; "
              f"snipjax's warm-up fit (compiling) took {summary['snipjax_warmup_seconds']:.1f} s.", ""]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--official", type=Path, required=True, help="checkout of Multimodal-Symbolic-Regression")
    parser.add_argument("--official-python", required=True, help="Python with the official code's packages")
    parser.add_argument("--problems", type=int, default=4, help="Feynman problems of at most 2 variables")
    parser.add_argument("--iterations", type=int, default=80, help="LSO iterations at most (the paper's 80)")
    parser.add_argument("--out", type=Path, default=HERE / "sr_side_by_side.jsonl")
    args = parser.parse_args(argv)
    official, python = args.official.resolve(), args.official_python
    info = {"date": datetime.date.today().isoformat(), **machine(official, python)}
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        checkpoint, flags = build_and_convert(official, python, scratch, args.iterations)
        chosen = problems(args.problems + 1)
        warmup = snipjax_fit(checkpoint, args.iterations, *chosen[0][1:])  # compiles
        for name, *data in chosen[1:]:
            theirs = official_fit(official, python, scratch, flags, name, *data)
            ours = snipjax_fit(checkpoint, args.iterations, *data)
            rows.append({"problem": name, "ratio": round(theirs["seconds"] / ours["seconds"], 2),
                         "official": theirs, "snipjax": ours, "load_average_1m": os.getloadavg()[0]})
            print(json.dumps(rows[-1]), flush=True)
    share = {code: float(np.mean([_finite(row[code]["r2_test"]) > 0.99 for row in rows]))
             for code in ("official", "snipjax")}
    summary = {"name": "summary", "problems": len(rows), "iterations": args.iterations, **SEARCH,
               "median_ratio": statistics.median(row["ratio"] for row in rows),
               "official_median_seconds": statistics.median(row["official"]["seconds"] for row in rows),
               "snipjax_median_seconds": statistics.median(row["snipjax"]["seconds"] for row in rows),
               "official_share_r2_above_0.99": share["official"], "snipjax_share_r2_above_0.99": share["snipjax"],
               "snipjax_warmup_seconds": round(warmup["seconds"], 2), "model_flags": MODEL_FLAGS,
               "command": " ".join(["python results/bench/sr_side_by_side.py", *argv])}
    print(json.dumps(summary), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(args.out) as f:
        for row in [*rows, summary]:
            f.write(json.dumps({**row, "machine": info}) + "\n")
    write_text(args.out.with_suffix(".md"), table(rows, summary, info))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
