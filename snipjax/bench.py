"""Benchmarks, printing one JSON object per line.

  python -m snipjax.bench data [--seconds 10]                    # sample generation (expression, points, tokens)
  python -m snipjax.bench train --config configs/tiny.py [--steps 20] [--peak 1e12] [--config.key=value ...]
  python -m snipjax.bench formulas [--n 10000] [--checkpoint DIR]  # generated infix strings parse back exactly?
  python -m snipjax.bench constants [--problems 20] [--methods lm,lbfgs]  # batched refits against scipy BFGS
  python -m snipjax.bench decode [--config configs/sr/cpu.py] [--latents 32]  # KV-cached decoding against recompute
  python -m snipjax.bench lso --checkpoint DIR [--optimizer gwo] [--iterations 5] [--problems 4] [--stop-r2 0.99]
      [--methods lm,lbfgs] [--time-limit 30]                      # where LSO time goes
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import time

from snipjax.data.pipeline import BatchProducer
from snipjax.data.samples import DataSpec

DATA_CASES = (
    ("dmax1_normalized", DataSpec(max_dim=1, normalize_y=True)),
    ("dmax10", DataSpec(max_dim=10, normalize_y=False)),
)


def bench_data(spec: DataSpec, workers: int, seconds: float, batch_size: int = 256) -> float:
    """Complete samples per second from the producer with `workers` processes, after a warm-up batch."""
    with BatchProducer(spec, seed=0, global_batch_size=batch_size, workers=workers, prefetch=2) as producer:
        producer.next()
        start, samples = time.perf_counter(), 0
        while time.perf_counter() - start < seconds:
            producer.next()
            samples += batch_size
        return samples / (time.perf_counter() - start)


def run_data(seconds: float) -> None:
    cores = os.cpu_count() or 1
    for name, spec in DATA_CASES:
        for workers in sorted({1, cores}):
            rate = bench_data(spec, workers, seconds)
            print(json.dumps({
                "name": name, "max_dim": spec.max_dim, "normalize_y": spec.normalize_y, "workers": workers,
                "samples_per_s": round(rate, 1), "samples_per_s_per_core": round(rate / workers, 1),
            }), flush=True)


def run_formulas(n: int, checkpoint: str | None) -> None:
    """The share of generated samples whose `infix` string parses back to exactly their training token ids,
    per Dmax (1 and 10), with the first exceptions; with a checkpoint, held-out retrieval among 256 pairs with
    the symbolic side given as those strings and as the training ids."""
    import numpy as np

    from snipjax.data import formulas, tokens
    from snipjax.data.samples import generate_sample

    for max_dim in (1, 10):
        spec = DataSpec(max_dim=max_dim)
        exceptions = []
        for index in range(n):
            expression = generate_sample(spec, 0, index).expression
            try:
                same = np.array_equal(tokens.expression_ids(formulas.parse(expression.infix()), max_dim),
                                      tokens.expression_ids(expression, max_dim))
            except formulas.FormulaError as error:
                same, expression = False, f"{expression.infix()} ({error})"
            if not same:
                exceptions.append(str(expression))
        print(json.dumps({"name": "formula_round_trip", "max_dim": max_dim, "samples": n,
                          "exact_share": 1 - len(exceptions) / n, "exceptions": exceptions[:10]}), flush=True)
    if checkpoint:
        print(json.dumps(_retrieval_with_strings(checkpoint)), flush=True)


def _retrieval_with_strings(checkpoint: str, size: int = 256) -> dict:
    import numpy as np

    import snipjax
    from snipjax.data.samples import as_spec, batch_of, generate_samples
    from snipjax.task_data import EVAL_SEED_OFFSET

    config, params = snipjax.load(checkpoint)
    spec = as_spec(config.data)
    samples = generate_samples(spec, config.seed + EVAL_SEED_OFFSET, range(size))
    batch = batch_of(samples, spec)  # the held-out pairs of training, generated once for ids and strings
    strings = [sample.expression.infix() for sample in samples]
    indices = np.arange(size)

    def similarity_space(z):  # the similarity the model was trained with: cosine unless raw InfoNCE
        z = np.asarray(z)
        return z if config.loss.kind == "infonce" else z / np.linalg.norm(z, axis=-1, keepdims=True)

    z_points = similarity_space(snipjax.encode_numeric_tokens(params, batch["points"], config=config))
    result = {"name": "retrieval_strings_vs_ids", "checkpoint": checkpoint, "pairs": size}
    for name, z in (("ids", snipjax.encode_symbolic_tokens(params, batch["symbols"], batch["symbol_len"],
                                                             config=config)),
                    ("strings", snipjax.encode_symbolic(params, strings, config=config))):
        similarity = z_points @ similarity_space(z).T
        result[f"top1_n2s_{name}"] = float(np.mean(similarity.argmax(axis=1) == indices))
        result[f"top1_s2n_{name}"] = float(np.mean(similarity.argmax(axis=0) == indices))
    return result


def run_constants(n_problems: int, population: int, methods=("lm", "lbfgs"), seed: int = 0) -> None:
    """Refit the constants of `population` perturbed copies (each constant × U(0.5, 1.5)) of each of the first
    `n_problems` Feynman formulas with constants, on 1024 points of the formula: all at once with
    `fit_constants` by each of `methods` (one compiled call per 10 steps, one program at a time on a CPU),
    and one at a time with scipy's BFGS on the same objective and gradient (the compiled evaluator, jitted
    once). The paths take turns on each problem, so a drift of the machine's speed falls on all alike; a
    warm-up pass over the same problems compiles each path for every shape first. Prints the R² and the
    seconds of each, and each method's speed-up over scipy per candidate."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    import scipy.optimize

    from snipjax.data import benchmarks
    from snipjax.tasks.sr import constants
    from snipjax.tasks.sr.regressor import r2_score

    rng = np.random.default_rng(seed)
    problems = []
    for problem in benchmarks.srbench_feynman():
        try:
            truth = problem.expression()
        except ValueError:
            continue
        if truth.constants:
            problems.append((problem, truth))
    problems = problems[:n_problems]
    objective = jax.jit(jax.value_and_grad(constants.half_mse), static_argnums=7)
    platform = jax.devices()[0].platform
    vectorize = constants.vectorize_for(platform)

    def scipy_refit(expression, x, y):
        program = constants.compile_programs([expression], x.shape[1])
        arguments = (*(jnp.asarray(a[0]) for a in program[:3]), *constants._padded_points(x, y), program.depth)

        def value_and_grad(c):
            value, grad = objective(jnp.asarray(c, jnp.float32), *arguments)
            return float(value), np.asarray(grad, np.float64)

        start = program.constants[0]
        result = scipy.optimize.minimize(value_and_grad, start, jac=True, method="BFGS", options={"maxiter": 100})
        return constants.with_constants(expression, result.x[:len(expression.constants)])

    paths = {method: functools.partial(constants.fit_constants, max_iter=100, method=method, vectorize=vectorize)
             for method in methods}
    paths["scipy"] = lambda candidates, x, y: [scipy_refit(c, x, y) for c in candidates]
    seconds = dict.fromkeys(paths, 0.0)
    r2 = {name: [] for name in paths}
    for position, (problem, truth) in enumerate(problems + problems):  # the first pass compiles
        x, y = problem.sample(1024, seed=seed)
        candidates = [constants.with_constants(truth, np.array(truth.constants) * rng.uniform(0.5, 1.5, len(
            truth.constants))) for _ in range(population)]
        for name, refit in paths.items():
            start = time.perf_counter()
            fitted = refit(candidates, x, y)
            if position >= len(problems):
                seconds[name] += time.perf_counter() - start
                r2[name] += [r2_score(y, e.evaluate(x)) for e in fitted]
    r2 = {name: np.array(values) for name, values in r2.items()}
    row = {"name": "constants_refit", "problems": len(problems), "population": population,
           "candidates": len(r2["scipy"]), "platform": platform, "vectorize": min(vectorize, population)}
    for name in paths:
        row[name] = {"seconds": round(seconds[name], 3), "median_r2": float(np.median(r2[name])),
                     "share_r2_above_0.99": float(np.mean(r2[name] > 0.99))}
        if name != "scipy":
            row[name]["share_at_least_scipy"] = float(np.mean(r2[name] >= r2["scipy"] - 1e-6))
            row[name]["speedup_over_scipy"] = round(seconds["scipy"] / seconds[name], 2)
    print(json.dumps(row), flush=True)


def run_decode(config_path: str, n_latents: int, lengths=(32, 64, 128)) -> None:
    """Seconds to sample `n_latents` × 2 sequences of each length (no early stop: `<EOS>` is masked out) with
    the KV cache, and with a step that recomputes the whole prefix (what decoding costs without a cache);
    a model of the config's sizes with random weights."""

    import jax
    import jax.numpy as jnp

    from snipjax import models
    from snipjax.config import load_config_file
    from snipjax.data.vocab import get_vocab
    from snipjax.tasks.sr import decoding

    config = load_config_file(config_path)
    model = models.make_sr_model(config)
    vocab = get_vocab(config.data.max_dim)
    length = max(lengths)
    points = jnp.zeros((1, config.data.n_points, 3 * (config.data.max_dim + 1)), jnp.int32)
    params = model.init(jax.random.key(0), points, jnp.zeros((1, length), jnp.int32), jnp.array([length]))["params"]
    z = jax.random.normal(jax.random.key(1), (n_latents, config.model.latent_dim))
    ends = dict(bos=vocab.eos_id, eos=-1, pad=vocab.pad_id)  # eos=-1: every sequence runs to max_len

    def recompute_step(z_rows, max_len):
        def step(prefix, tokens, position):
            prefix = prefix if prefix else {"ids": jnp.zeros((z_rows.shape[0], max_len), jnp.int32)}
            ids = prefix["ids"].at[:, position].set(tokens)
            logits = model.apply({"params": params}, z_rows, ids, jnp.full((z_rows.shape[0],), position + 1),
                                 method="decode")
            return jnp.take(logits, position, axis=1), {"ids": ids}
        return step

    for max_len in lengths:
        rows = jnp.repeat(z, 2, axis=0)
        memory = model.apply({"params": params}, rows, method="memory")
        timings = {}
        steps = (("cached", decoding.model_step(model, params, memory, max_len)),
                 ("recompute", recompute_step(rows, max_len)))
        for name, step in steps:
            run = jax.jit(lambda key, step=step: decoding.sample(step, rows.shape[0], key, max_len=max_len,
                                                                 temperature=0.1, **ends)[0])
            run(jax.random.key(0)).block_until_ready()
            start = time.perf_counter()
            run(jax.random.key(1)).block_until_ready()
            timings[name] = time.perf_counter() - start
        print(json.dumps({"name": "decode", "config": config_path, "sequences": int(rows.shape[0]),
                          "max_len": max_len, "seconds_cached": round(timings["cached"], 4),
                          "seconds_recompute": round(timings["recompute"], 4),
                          "speedup": round(timings["recompute"] / timings["cached"], 2),
                          "backend": jax.default_backend()}), flush=True)


def run_lso(checkpoint: str, optimizer: str, iterations: int, n_problems: int, stop_r2: float | None = None,
            methods=("lm",), time_limit: float | None = None, max_features: int = 2) -> None:
    """Fit the first `n_problems` Feynman problems of at most `max_features` variables with latent
    optimization of at most `iterations`, stopping at fit R² above `stop_r2` (None: never, every iteration
    runs), with each refit method of `methods` in turn on each problem, after a warm-up fit per method that
    compiles. Per problem and method: the iterations run and the seconds spent encoding, decoding, refitting,
    scoring and in the rest (the optimizer, bookkeeping), and with `time_limit` the fit's seconds over it;
    per method the median seconds per problem and the shares of the total."""
    import numpy as np

    from snipjax.data import benchmarks
    from snipjax.tasks.sr.regressor import SNIPRegressor

    problems = benchmarks.srbench_feynman(max_features=max_features)[:n_problems + 1]
    phases = ("encode", "decode", "refit", "score")
    rows = {method: [] for method in methods}
    for position, problem in enumerate(problems):
        X, y = problem.sample(750, seed=0)
        for method in methods:
            model = SNIPRegressor(checkpoint=checkpoint, optimizer=optimizer, lso_iterations=iterations,
                                  lso_stop_r2=1.0 + 1e-9 if stop_r2 is None else stop_r2, refit_method=method,
                                  time_limit=time_limit).fit(X, y)
            if position == 0:
                continue  # compiles
            seconds = {k: round(v, 3) for k, v in model.timings_.items()}
            row = {"name": "lso", "problem": problem.name, "optimizer": optimizer, "refit_method": method,
                   "iterations": model.n_iter_, "best_fit_r2": round(model.equations_[0].r2, 4), **seconds,
                   "other": round(model.timings_["total"] - sum(model.timings_[k] for k in phases), 3)}
            if time_limit:
                row["total_over_time_limit"] = round(model.timings_["total"] / time_limit, 3)
            rows[method].append(row)
            print(json.dumps(row), flush=True)
    for method, done in rows.items():
        total = sum(row["total"] for row in done)
        summary = {"name": "lso_summary", "problems": len(done), "optimizer": optimizer, "refit_method": method,
                   "max_iterations": iterations, "stop_r2": stop_r2, "time_limit": time_limit,
                   "median_seconds": round(float(np.median([row["total"] for row in done])), 2),
                   "median_iterations": float(np.median([row["iterations"] for row in done])),
                   **{f"share_{k}": round(sum(row[k] for row in done) / total, 3) for k in (*phases, "other")}}
        if time_limit:
            summary["max_total_over_time_limit"] = max(row["total_over_time_limit"] for row in done)
        print(json.dumps(summary), flush=True)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] in (["-h"], ["--help"]):
        print(__doc__)
        return 0
    if not argv or argv[0] not in ("data", "train", "formulas", "constants", "decode", "lso"):
        print(__doc__, file=sys.stderr)
        return 2
    if argv[0] == "data":
        parser = argparse.ArgumentParser(prog="python -m snipjax.bench data")
        parser.add_argument("--seconds", type=float, default=10.0, help="measuring time per case")
        run_data(parser.parse_args(argv[1:]).seconds)
        return 0
    if argv[0] == "formulas":
        parser = argparse.ArgumentParser(prog="python -m snipjax.bench formulas")
        parser.add_argument("--n", type=int, default=10_000, help="generated samples per Dmax")
        parser.add_argument("--checkpoint", help="a trained model: compare retrieval with strings and with ids")
        args = parser.parse_args(argv[1:])
        run_formulas(args.n, args.checkpoint)
        return 0
    if argv[0] == "constants":
        parser = argparse.ArgumentParser(prog="python -m snipjax.bench constants")
        parser.add_argument("--problems", type=int, default=20, help="Feynman formulas with constants")
        parser.add_argument("--population", type=int, default=16, help="perturbed copies of each")
        parser.add_argument("--methods", default="lm,lbfgs", help="refit methods of fit_constants, comma-separated")
        args = parser.parse_args(argv[1:])
        run_constants(args.problems, args.population, tuple(args.methods.split(",")))
        return 0
    if argv[0] == "decode":
        parser = argparse.ArgumentParser(prog="python -m snipjax.bench decode")
        parser.add_argument("--config", default="configs/sr/cpu.py", help="an SR config: the model's sizes")
        parser.add_argument("--latents", type=int, default=32, help="latents decoded at once (2 samples each)")
        args = parser.parse_args(argv[1:])
        run_decode(args.config, args.latents)
        return 0
    if argv[0] == "lso":
        parser = argparse.ArgumentParser(prog="python -m snipjax.bench lso")
        parser.add_argument("--checkpoint", required=True, help="an SR model")
        parser.add_argument("--optimizer", default="gwo", choices=("gwo", "es", "cma"))
        parser.add_argument("--iterations", type=int, default=5)
        parser.add_argument("--problems", type=int, default=4)
        parser.add_argument("--max-features", type=int, default=2, help="Feynman problems of at most this many")
        parser.add_argument("--stop-r2", type=float, help="stop at this fit R² (default: run every iteration)")
        parser.add_argument("--methods", default="lm", help="refit methods, comma-separated, in turn per problem")
        parser.add_argument("--time-limit", type=float, help="SNIPRegressor(time_limit=...) of each fit")
        args = parser.parse_args(argv[1:])
        run_lso(args.checkpoint, args.optimizer, args.iterations, args.problems, args.stop_r2,
                tuple(args.methods.split(",")), args.time_limit, args.max_features)
        return 0
    from snipjax import bench_train  # jax loads only for the training benchmark

    return bench_train.main(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
