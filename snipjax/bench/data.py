"""Sample generation: complete samples/s of the batch producer (expression, points, tokens), per core.

  python -m snipjax.bench data [--seconds 10]
"""

from __future__ import annotations

import json
import os
import time

from absl import flags

from snipjax.config import parse_flags
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


def main(argv: list[str]) -> int:
    """`python -m snipjax.bench data ...`: prints its JSON lines."""
    fv = flags.FlagValues()
    flags.DEFINE_float("seconds", 10.0, "measuring time per case", lower_bound=0.1, flag_values=fv)
    parse_flags(fv, ["bench data", *argv], __doc__)
    run_data(fv["seconds"].value)
    return 0
