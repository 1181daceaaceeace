"""`python -m snipjax.bench <name> [flags]`: runs the benchmark module of that name (see snipjax.bench)."""

import importlib
import sys

from snipjax.bench import BENCHMARKS
from snipjax.bench import __doc__ as USAGE


def main(argv: list[str]) -> int:
    if argv[:1] in (["-h"], ["--help"]):
        print(USAGE)
        return 0
    if not argv or argv[0] not in BENCHMARKS:
        print(f"error: name a benchmark, one of {', '.join(BENCHMARKS)}\n\n{USAGE}", file=sys.stderr)
        return 2
    # Each benchmark imports what it measures only when it runs (jax for most, not for `data`).
    return importlib.import_module(f"snipjax.bench.{argv[0]}").main(argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
