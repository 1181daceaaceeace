"""SRBench-style benchmark runner: fit SNIPRegressor on each problem, one CSV row per problem.

  python -m snipjax.tasks.sr.srbench --checkpoint runs/sr_cpu --formulas feynman --max-features 2 \
      --optimizer gwo --out runs/feynman.csv [--noise 0.01] [--shard 0/4] [--compare snip=published.csv]
  python -m snipjax.tasks.sr.srbench --checkpoint DIR --data table.csv [--target y] --out runs/table.csv

`--formulas` is `feynman` (SRBench's ground-truth Feynman problems, shipped), `classic:PREFIX` (the DSO table,
e.g. `classic:Nguyen-`) or a CSV in the SRBench index layout (`dataset, group, formula, features, ranges`);
`--group` keeps one group. Points are sampled uniformly in each formula's ranges (seeded by the problem's
name), split 75/25 as the official evaluation (random_state 14423), and the fit part gets Gaussian noise of
`noise`·RMS(y) if asked. `--data` reads one dataset instead (the column `--target`, or the one named
`target` as in PMLB).

The output columns are those of the published SNIP/TPSR result files (problem, formula, predicted_tree,
r2_fit, r2_predict, _complexity_predict, time, input_dimension), so files compare row by row, then the
settings that decide a result (noise, optimizer, iterations, points, seed, checkpoint, source). Rows are
added as problems finish (the file rewritten under a temporary name, so a killed run leaves it whole); a rerun
skips the problems already in `--out`, and refuses a file whose rows have other settings, naming them.
`--shard i/n` takes every n-th problem from the i-th, so a job array of n splits the list (one `--out` per
shard). Arguments, `--out`, `--compare` files and the checkpoint are checked before the first fit; a
selection with no problem is an error. The summary (JSON) gives the share of test R² above
0.99 and 0.999, the median test R², the mean complexity and the median time, and the same for every
`--compare NAME=FILE` on the same problems.
"""

from __future__ import annotations

import csv
import json
import os
import sys
import time
import types
import zlib

import numpy as np
from absl import flags

from snipjax.config import parse_flags
from snipjax.data.files import atomic_write, check_output

# What decides a problem's result besides its name: a rerun resumes only a file of the same settings.
SETTINGS = ("noise", "optimizer", "iterations", "points", "seed", "checkpoint", "source")
COLUMNS = ("problem", "formula", "predicted_tree", "r2_fit", "r2_predict", "_complexity_predict", "time",
           "input_dimension", *SETTINGS)
MIN_ROWS = 8  # the 75% fit part must hold SNIPRegressor's 5 points at least, the test part some
SPLIT_SEED = 14423  # LSO_eval.py's train/test split


def formula_problems(source: str, group: str | None) -> list:
    """The problems of `--formulas` (and `--group`); an empty selection raises naming the valid choices."""
    from snipjax.data import benchmarks

    if source == "feynman":
        problems = benchmarks.srbench_feynman()
    elif source.startswith("classic:"):
        problems = benchmarks.classic(source.split(":", 1)[1])
        if not problems:
            prefixes = sorted({p.name.split("-")[0] + "-" for p in benchmarks.classic()})
            raise ValueError(f"--formulas {source} matches no problem of the DSO table: use classic:PREFIX with "
                             f"a prefix of {', '.join(prefixes)} (classic: alone takes them all)")
    elif os.path.isfile(source):
        problems = benchmarks.read_index(source)
    else:
        raise ValueError(f"--formulas {source!r} is neither feynman, classic:PREFIX nor an index CSV file")
    selected = [p for p in problems if group is None or p.group == group]
    if not selected:
        raise ValueError(f"--group {group} matches no problem of --formulas {source} (its groups: "
                         f"{', '.join(sorted({p.group for p in problems}))})")
    return selected


def shard(items: list, spec: str | None) -> list:
    """Every n-th item from the i-th, for `spec` "i/n"."""
    if not spec:
        return items
    try:
        index, count = (int(part) for part in spec.split("/"))
    except ValueError:
        raise ValueError(f"--shard takes i/n (e.g. 0/4), got {spec!r}") from None
    if count < 1:
        raise ValueError(f"--shard {spec}: n, the number of shards, must be at least 1")
    if not 0 <= index < count:
        raise ValueError(f"--shard {spec}: i must be in 0..{count - 1}")
    if not items[index::count]:
        raise ValueError(f"--shard {spec} holds no problem: the selection has only {len(items)}")
    return items[index::count]


def split(X: np.ndarray, y: np.ndarray, noise: float, seed: int):
    """(X_fit, X_test, y_fit, y_test): the official 75/25 split, noise·RMS(y_fit) Gaussian noise on y_fit."""
    from sklearn.model_selection import train_test_split

    X_fit, X_test, y_fit, y_test = train_test_split(X, y, test_size=0.25, random_state=SPLIT_SEED)
    if noise:
        rng = np.random.default_rng(seed)
        y_fit = y_fit + rng.normal(0.0, noise * np.sqrt(np.mean(y_fit**2)), size=y_fit.shape)
    return X_fit, X_test, y_fit, y_test


def read_rows(path: str, flag: str) -> list[dict]:
    """The rows of a results CSV (none if `path` does not exist); raises if it is not one."""
    if not os.path.exists(path):
        return []
    with open(path, newline="") as file:
        reader = csv.DictReader(file)
        missing = [column for column in ("problem", "r2_predict") if column not in (reader.fieldnames or ())]
        if missing:
            raise ValueError(f"{flag} {path} is not a results CSV (it has no {' or '.join(missing)} column; "
                             f"columns: {', '.join(reader.fieldnames or ['none'])})")
        return list(reader)


def finished(path: str, settings: dict[str, str]) -> set[str]:
    """The problems already in `path`; raises if its rows were run with other settings, naming them."""
    rows = read_rows(path, "--out")
    for row in rows:
        changed = [f"{key} {row.get(key) if row.get(key) is not None else '(not recorded)'} there, "
                   f"{value} now" for key, value in settings.items() if row.get(key) != value]
        if changed:
            raise ValueError(f"--out {path} holds results of other settings ({row['problem']}: "
                             f"{'; '.join(changed)}); resuming would mix them: use another --out, or the "
                             "settings of that file")
    return {row["problem"] for row in rows}


def append_row(path: str, row: dict) -> None:
    """`path` with `row` added, rewritten whole under a temporary name: a run killed mid-write leaves the
    file as it was. (So the shards of a job array write one --out each.)"""
    rows = read_rows(path, "--out")
    with atomic_write(path, newline="") as file:
        writer = csv.DictWriter(file, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows([*rows, row])


def fit_problem(name: str, formula: str, X: np.ndarray, y: np.ndarray, args, settings: dict) -> dict:
    from snipjax.tasks.sr.regressor import SNIPRegressor, r2_score

    seed = zlib.crc32(name.encode())
    X_fit, X_test, y_fit, y_test = split(X, y, args.noise, seed)
    start = time.perf_counter()
    optimizer = None if args.optimizer == "none" else args.optimizer
    model = SNIPRegressor(checkpoint=args.checkpoint, optimizer=optimizer, lso_iterations=args.iterations,
                          feature_selection=True, random_state=args.seed, verbose=args.verbose)
    model.fit(X_fit, y_fit)
    seconds = time.perf_counter() - start
    return {"problem": name, "formula": formula, "predicted_tree": str(model.expression_),
            "r2_fit": r2_score(y_fit, model.predict(X_fit)), "r2_predict": r2_score(y_test, model.predict(X_test)),
            "_complexity_predict": model.equations_[0].complexity, "time": round(seconds, 3),
            "input_dimension": X.shape[1], **settings}


def summarize(rows: list[dict]) -> dict:
    r2 = np.array([float(row["r2_predict"]) for row in rows])
    r2 = np.where(np.isfinite(r2), r2, -np.inf)
    return {"problems": len(rows), "share_r2_above_0.99": float(np.mean(r2 > 0.99)),
            "share_r2_above_0.999": float(np.mean(r2 > 0.999)), "median_r2": float(np.median(r2)),
            "mean_complexity": float(np.mean([float(row["_complexity_predict"]) for row in rows])),
            "median_seconds": float(np.median([float(row["time"]) for row in rows]))}


def compared_files(compare: list[str]) -> dict[str, list[dict]]:
    """{NAME: rows} of the `--compare NAME=FILE` arguments, each file checked to be a results CSV."""
    files = {}
    for item in compare:
        label, separator, path = item.partition("=")
        if not separator or not label or not path:
            raise ValueError(f"--compare takes NAME=FILE (e.g. snip=published.csv), got {item!r}")
        if not os.path.isfile(path):
            raise ValueError(f"--compare {item}: no such file {path}")
        files[label] = read_rows(path, "--compare")
    return files


def summary(out: str, compared: dict[str, list[dict]]) -> dict:
    """The summary of `out`, and of each of the `compared_files` on the same problems."""
    rows = read_rows(out, "--out")
    result = {"out": out, "ours": summarize(rows)}
    names = {row["problem"] for row in rows}
    for label, their_rows in compared.items():
        theirs = [row for row in their_rows if row["problem"] in names]
        result[label] = summarize(theirs) if theirs else {"problems": 0}
    return result


def parse_arguments(argv: list[str]) -> types.SimpleNamespace:
    """The command line's flags, as attributes named with underscores (`--max-features` → max_features)."""
    from snipjax.tasks.sr import search  # the optimizers' names

    fv = flags.FlagValues()
    flags.DEFINE_string("checkpoint", None, "an SR model: a workdir or an export dir", required=True, flag_values=fv)
    flags.DEFINE_string("formulas", "feynman", "feynman | classic:PREFIX | an index CSV", flag_values=fv)
    flags.DEFINE_string("group", None, "keep the problems of this group", flag_values=fv)
    flags.DEFINE_integer("max-features", None, "keep the problems of at most this many variables", flag_values=fv)
    flags.DEFINE_string("data", None, "a dataset CSV instead of formulas", flag_values=fv)
    flags.DEFINE_string("target", None, "the target column of --data (default: the column named target)",
                        flag_values=fv)
    flags.DEFINE_integer("points", 1000, "points sampled per formula", flag_values=fv)
    flags.DEFINE_float("noise", 0.0, "target noise, relative to RMS(y)", flag_values=fv)
    flags.DEFINE_enum("optimizer", "gwo", (*search.OPTIMIZERS, "none"), "latent space optimization", flag_values=fv)
    flags.DEFINE_integer("iterations", 80, "latent optimization iterations at most", flag_values=fv)
    flags.DEFINE_string("shard", None, "i/n: every n-th problem from the i-th", flag_values=fv)
    flags.DEFINE_integer("seed", 0, "the regressor's random_state", flag_values=fv)
    flags.DEFINE_string("out", None, "CSV of results, appended (a rerun resumes)", required=True, flag_values=fv)
    flags.DEFINE_multi_string("compare", [], "NAME=FILE: published results", flag_values=fv)
    flags.DEFINE_bool("verbose", False, "a line per latent search iteration", flag_values=fv)
    parse_flags(fv, ["python -m snipjax.tasks.sr.srbench", *argv], __doc__)
    return types.SimpleNamespace(**{name.replace("-", "_"): fv[name].value for name in fv})


def main(argv=None) -> int:
    args = parse_arguments(sys.argv[1:] if argv is None else argv)
    try:  # everything a mistake in the arguments can break is checked before the first fit
        check_arguments(args)
        check_output(args.out, "--out")
        compared = compared_files(args.compare)
        from snipjax.tasks.sr.regressor import SNIPRegressor

        SNIPRegressor(checkpoint=args.checkpoint)._model()  # a missing or wrong checkpoint says so now
        todo, source, points = selected_problems(args)
        settings = {"noise": str(args.noise), "optimizer": args.optimizer, "iterations": str(args.iterations),
                    "points": str(points), "seed": str(args.seed), "checkpoint": os.path.normpath(args.checkpoint),
                    "source": source}
        done = finished(args.out, settings)
    except (OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    failed = []
    for name, formula, data in todo:
        if name in done:
            continue
        try:
            row = fit_problem(name, formula, *data(), args, settings)
        except (ValueError, ArithmeticError) as error:  # one problem's data the fit cannot take
            print(f"error: {name}: {error}", file=sys.stderr, flush=True)
            failed.append(name)
            continue
        append_row(args.out, row)
        print(f"{name}: test R² {row['r2_predict']:.4f}, complexity {row['_complexity_predict']}, "
              f"{row['time']:.1f} s", flush=True)
    if len(done) == len(todo):
        print(f"all {len(todo)} problems of this selection are already in {args.out}", flush=True)
    if os.path.exists(args.out):
        print(json.dumps(summary(args.out, compared)), flush=True)
    if failed:
        print(f"error: {len(failed)} of {len(todo)} problems failed ({', '.join(failed)}); the others are in "
              f"{args.out}", file=sys.stderr)
        return 1
    return 0


def check_arguments(args) -> None:
    """Raise naming the first numeric argument out of its range."""
    if args.data is None and args.points < MIN_ROWS:
        raise ValueError(f"--points {args.points}: each formula needs at least {MIN_ROWS} points (75% fit, 25% test)")
    if not (np.isfinite(args.noise) and args.noise >= 0):
        raise ValueError(f"--noise {args.noise}: the noise level (relative to RMS(y)) must be finite and >= 0")
    for flag, value, low in (("--iterations", args.iterations, 0), ("--seed", args.seed, 0),
                             ("--max-features", args.max_features, 1)):
        if value is not None and value < low:
            raise ValueError(f"{flag} {value} must be at least {low}")


def selected_problems(args) -> tuple[list, str, int]:
    """([(name, formula, () -> (X, y))] of this shard, the source setting, the points per problem)."""
    if args.data:
        X, y, target = read_dataset(args.data, args.target)
        todo = [(os.path.basename(args.data), "", lambda: (X, y))]  # no ground-truth formula
        return shard(todo, args.shard), f"{os.path.normpath(args.data)}:{target}", len(y)
    problems = formula_problems(args.formulas, args.group)
    if args.max_features is not None:
        problems = [p for p in problems if len(p.features) <= args.max_features]
        if not problems:
            raise ValueError(f"no problem of --formulas {args.formulas} has at most {args.max_features} features")
    todo = [(p.name, p.formula, lambda p=p: p.sample(args.points, zlib.crc32(p.name.encode()))) for p in problems]
    return shard(todo, args.shard), args.formulas, args.points


def read_dataset(path: str, target: str | None) -> tuple[np.ndarray, np.ndarray, str]:
    """(X, y, target name) of a CSV with a header row of names and rows of numbers; the target is the column
    `target`, or the one named "target" (the PMLB layout). Raises naming the file, row and column of what
    does not fit."""
    with open(path, newline="") as file:
        rows = [row for row in csv.reader(file) if row]
    if not rows:
        raise ValueError(f"--data {path} is empty: a dataset CSV has a header row of names, then rows of numbers")
    header = rows[0]
    if target is None and "target" not in header:
        raise ValueError(f"--data {path}: which column is the target? pass --target NAME (columns: "
                         f"{', '.join(header)})")
    target = target or "target"
    if target not in header:
        raise ValueError(f"{path} has no column {target!r} (columns: {', '.join(header)})")
    if len(header) < 2:
        raise ValueError(f"--data {path} holds only the target column {target!r}: there are no features")
    if len(rows) - 1 < MIN_ROWS:
        raise ValueError(f"--data {path} has {len(rows) - 1} rows of data; the runner fits 75% and tests on 25%: "
                         f"give at least {MIN_ROWS}")
    values = np.empty((len(rows) - 1, len(header)))
    for number, row in enumerate(rows[1:], start=2):
        if len(row) != len(header):
            raise ValueError(f"--data {path} line {number} has {len(row)} cells, the header {len(header)}")
        for column, cell in enumerate(row):
            try:
                values[number - 2, column] = float(cell)
            except ValueError:
                raise ValueError(f"--data {path} line {number}, column {header[column]!r}: {cell!r} is not a "
                                 "number") from None
    bad = ~np.isfinite(values).all(axis=1)
    if bad.any():
        raise ValueError(f"--data {path} has {int(bad.sum())} rows with NaN or infinite values (first: line "
                         f"{int(np.argmax(bad)) + 2}): drop or impute them first")
    column = header.index(target)
    if np.ptp(values[:, column]) == 0:
        raise ValueError(f"--data {path}: the target {target!r} is constant; there is no function to find")
    return np.delete(values, column, axis=1), values[:, column], target


if __name__ == "__main__":
    sys.exit(main())
