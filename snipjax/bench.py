"""Benchmarks, printing one JSON object per line.

  python -m snipjax.bench data [--seconds 10]                    # sample generation (expression, points, tokens)
  python -m snipjax.bench train --config configs/tiny.py [--steps 20] [--peak 1e12] [--config.key=value ...]
  python -m snipjax.bench formulas [--n 10000] [--checkpoint DIR]  # generated infix strings parse back exactly?
"""

from __future__ import annotations

import argparse
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
    from snipjax.data.samples import as_spec, batch_of, generate_sample
    from snipjax.train import EVAL_SEED_OFFSET

    config, params = snipjax.load(checkpoint)
    spec = as_spec(config.data)
    samples = [generate_sample(spec, config.seed + EVAL_SEED_OFFSET, i) for i in range(size)]
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


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] in (["-h"], ["--help"]):
        print(__doc__)
        return 0
    if not argv or argv[0] not in ("data", "train", "formulas"):
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
    from snipjax import bench_train  # jax loads only for the training benchmark

    return bench_train.main(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
