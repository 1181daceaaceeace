"""Generated infix strings parse back to exactly their training token ids? With a checkpoint, held-out
retrieval with the symbolic side given as strings and as ids.

  python -m snipjax.bench formulas [--n 10000] [--checkpoint DIR]
"""

from __future__ import annotations

import json

from absl import flags

from snipjax.config import parse_flags
from snipjax.data.samples import DataSpec


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


def main(argv: list[str]) -> int:
    """`python -m snipjax.bench formulas ...`: prints its JSON lines."""
    fv = flags.FlagValues()
    flags.DEFINE_integer("n", 10_000, "generated samples per Dmax", lower_bound=1, flag_values=fv)
    flags.DEFINE_string("checkpoint", None, "a trained model: compare retrieval with strings and with ids",
                        flag_values=fv)
    parse_flags(fv, ["bench formulas", *argv], __doc__)
    run_formulas(fv["n"].value, fv["checkpoint"].value)
    return 0
