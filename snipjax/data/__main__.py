"""Look at the data: `python -m snipjax.data --max-dim 1 --n 5 --seed 0 [--out samples.jsonl]`.

Prints samples readably, or writes one JSON object per sample (expression as prefix labels and infix, input
dimension, points, the model's token ids and, in 1-D, the numeric properties).
"""

from __future__ import annotations

import json
import sys

import numpy as np
from absl import flags

from snipjax.config import parse_flags
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
    flag_values = flags.FlagValues()
    max_dim = flags.DEFINE_integer("max-dim", 1, "Dmax: the model's maximum input dimension (the released models: "
                                   "1 and 10; a larger Dmax is allowed and makes a vocabulary with more variables, "
                                   "which no released model knows)", flag_values=flag_values)
    n = flags.DEFINE_integer("n", 5, "number of samples", flag_values=flag_values)
    seed = flags.DEFINE_integer("seed", 0, "the seed stream", flag_values=flag_values)
    start = flags.DEFINE_integer("start", 0, "index of the first sample", flag_values=flag_values)
    normalize_y = flags.DEFINE_bool("normalize-y", None, "min-max normalize y (default: on for --max-dim 1, as the "
                                    "1-D model is trained; off: --nonormalize-y)", flag_values=flag_values)
    out = flags.DEFINE_string("out", None, "write JSON lines here instead of printing", flag_values=flag_values)
    parse_flags(flag_values, ["python -m snipjax.data", *(sys.argv[1:] if argv is None else argv)], __doc__)
    if max_dim.value < 1 or n.value < 1 or seed.value < 0 or start.value < 0:
        print("error: --max-dim and --n must be >= 1, --seed and --start non-negative", file=sys.stderr)
        return 2
    normalize = max_dim.value == 1 if normalize_y.value is None else normalize_y.value
    spec = DataSpec(max_dim=max_dim.value, normalize_y=normalize, with_properties=max_dim.value == 1)
    records = (sample_record(generate_sample(spec, seed.value, i), spec)
               for i in range(start.value, start.value + n.value))
    try:
        if out.value:
            check_output(out.value, "--out")
            with atomic_write(out.value) as file:  # a run that fails leaves what --out held
                for record in records:
                    file.write(json.dumps(record) + "\n")
            print(f"wrote {n.value} samples to {out.value}")
        else:
            for record in records:
                print(describe(record, spec), end="\n\n")
    except (ValueError, RuntimeError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
