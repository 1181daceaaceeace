"""Benchmarks, printing one JSON object per line.

  python -m snipjax.bench data [--seconds 10]                    # sample generation (expression, points, tokens)
  python -m snipjax.bench train --config configs/tiny.py [--steps 20] [--peak 1e12] [--config.key=value ...]
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


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] in (["-h"], ["--help"]):
        print(__doc__)
        return 0
    if not argv or argv[0] not in ("data", "train"):
        print(__doc__, file=sys.stderr)
        return 2
    if argv[0] == "data":
        parser = argparse.ArgumentParser(prog="python -m snipjax.bench data")
        parser.add_argument("--seconds", type=float, default=10.0, help="measuring time per case")
        run_data(parser.parse_args(argv[1:]).seconds)
        return 0
    from snipjax import bench_train  # jax loads only for the training benchmark

    return bench_train.main(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
