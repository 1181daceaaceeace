"""Look at the data: `python -m snipjax.data --max-dim 1 --n 5 --seed 0 [--out samples.jsonl]`.

Prints samples readably, or writes one JSON object per sample (expression as prefix labels and infix, input
dimension, points, the model's token ids and, in 1-D, the numeric properties).
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from snipjax.data import tokens
from snipjax.data.files import atomic_write, check_output
from snipjax.data.samples import DataSpec, Sample, generate_sample
from snipjax.data.vocab import get_vocab


def sample_record(sample: Sample, spec: DataSpec) -> dict:
    symbols, length = tokens.encode_expressions([sample.expression], spec.max_dim, spec.max_len)
    record = {
        "index": sample.index,
        "dim": sample.dim,
        "prefix": sample.expression.labels(),
        "infix": sample.expression.infix(),
        "x": sample.x.tolist(),
        "y": sample.y.tolist(),
        "tokens": {
            "symbolic": symbols[0, : length[0]].tolist(),
            "numeric": tokens.encode_points(sample.x, sample.y, spec.max_dim).tolist(),
        },
    }
    if sample.properties is not None:
        record["properties"] = sample.properties
    return record


def describe(record: dict, spec: DataSpec, n_points: int = 3) -> str:
    vocab = get_vocab(spec.max_dim)
    words = [vocab.equation_words[i] for i in record["tokens"]["symbolic"]]
    lines = [
        f"sample {record['index']}  (D={record['dim']})",
        f"  infix : {record['infix']}",
        f"  prefix: {' '.join(record['prefix'])}",
        f"  tokens: {len(words)} ids: {' '.join(words[:24])}{' ...' if len(words) > 24 else ''}",
    ]
    for x, y in list(zip(record["x"], record["y"]))[:n_points]:
        lines.append(f"  point : x={np.array2string(np.array(x), precision=4)}  y={y:.6g}")
    if "properties" in record:
        lines.append("  properties: " + ", ".join(f"{k}={v:.4f}" for k, v in record["properties"].items()))
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m snipjax.data", description=__doc__.splitlines()[0])
    parser.add_argument("--max-dim", type=int, default=1,
                        help="Dmax: the model's maximum input dimension (the released models: 1 and 10; a larger "
                             "Dmax is allowed and makes a vocabulary with more variables, which no released "
                             "model knows)")
    parser.add_argument("--n", type=int, default=5, help="number of samples")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--start", type=int, default=0, help="index of the first sample")
    parser.add_argument("--normalize-y", action=argparse.BooleanOptionalAction, default=None,
                        help="min-max normalize y (default: on for --max-dim 1, as the 1-D model is trained)")
    parser.add_argument("--out", help="write JSON lines here instead of printing")
    args = parser.parse_args(argv)
    if args.max_dim < 1 or args.n < 1 or args.seed < 0 or args.start < 0:
        parser.error("--max-dim and --n must be >= 1, --seed and --start non-negative")
    normalize = args.max_dim == 1 if args.normalize_y is None else args.normalize_y
    spec = DataSpec(max_dim=args.max_dim, normalize_y=normalize, with_properties=args.max_dim == 1)
    records = (sample_record(generate_sample(spec, args.seed, i), spec)
               for i in range(args.start, args.start + args.n))
    try:
        if args.out:
            check_output(args.out, "--out")
            with atomic_write(args.out) as out:  # a run that fails leaves what --out held
                for record in records:
                    out.write(json.dumps(record) + "\n")
            print(f"wrote {args.n} samples to {args.out}")
        else:
            for record in records:
                print(describe(record, spec), end="\n\n")
    except (ValueError, RuntimeError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
