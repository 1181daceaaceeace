"""Token vocabularies with the official SNIP id layout.

Two vocabularies exist. The float vocabulary embeds numeric inputs: 15 special words, then the string-sorted
set of signs, mantissas `N0000..N9999` and exponents `E-100..E100` (10,218 words). The equation vocabulary
embeds prefix expressions: the special words, the string-sorted symbols (operators, integers, constants,
variables `x_0..x_{Dmax-1}`), then the whole float vocabulary appended, so the special words appear twice.
Released checkpoints index their embedding rows with exactly these ids.
"""

from __future__ import annotations

import functools

SPECIAL_WORDS = (
    "<EOS>", "<X>", "</X>", "<Y>", "</Y>", "</POINTS>", "<INPUT_PAD>", "<OUTPUT_PAD>", "<PAD>",
    "(", ")", "SPECIAL", "OOD_unary_op", "OOD_binary_op", "OOD_constant",
)

# Operator arities, in the official order (the order also fixes the sampler's weight vector).
OPERATOR_ARITY = {
    "add": 2, "sub": 2, "mul": 2, "div": 2,
    "abs": 1, "inv": 1, "sqrt": 1, "log": 1, "exp": 1, "sin": 1, "arcsin": 1, "cos": 1, "arccos": 1,
    "tan": 1, "arctan": 1, "pow2": 1, "pow3": 1,
    "pow": 2,
}

MAX_EXPONENT = 100  # exponent tokens run from E-100 to E100
MANTISSA_DIGITS = 4  # one mantissa token of four digits (float precision 3)
TOKENS_PER_FLOAT = 3  # sign, mantissa, exponent


def _float_symbols() -> list[str]:
    symbols = ["+", "-"]
    symbols += [f"N{i:04d}" for i in range(10**MANTISSA_DIGITS)]
    symbols += [f"E{i}" for i in range(-MAX_EXPONENT, MAX_EXPONENT + 1)]
    return symbols


@functools.cache
def float_words() -> tuple[str, ...]:
    return SPECIAL_WORDS + tuple(sorted(set(_float_symbols())))


def _equation_symbols(max_dim: int) -> list[str]:
    integers = [str(i) for i in range(-10, 11) if i != 0]
    constants = ["e", "pi", "euler_gamma", "CONSTANT"]
    variables = ["rand"] + [f"x_{i}" for i in range(max_dim)]
    extra = ["|", "INT+", "INT-", "FLOAT+", "FLOAT-", "pow", "0"]
    return list(OPERATOR_ARITY) + integers + constants + variables + extra


@functools.cache
def equation_words(max_dim: int) -> tuple[str, ...]:
    if max_dim < 1:
        raise ValueError(f"max_dim must be at least 1, got {max_dim}")
    return SPECIAL_WORDS + tuple(sorted(set(_equation_symbols(max_dim)))) + float_words()


class Vocab:
    """Word/id maps for one maximum input dimension.

    `pad_id` fills symbolic sequences (the first `<PAD>`, as the official batching does) and `eos_id` opens
    and closes them (the official code resolves `<EOS>` to its last occurrence, in the float part).
    """

    def __init__(self, max_dim: int):
        self.max_dim = max_dim
        self.float_words = float_words()
        self.equation_words = equation_words(max_dim)
        self.float_id = {w: i for i, w in enumerate(self.float_words)}
        # Later occurrences win, as in the official dict comprehension over the duplicated specials.
        self.equation_id = {w: i for i, w in enumerate(self.equation_words)}
        self.pad_id = self.float_id["<PAD>"]
        self.eos_id = self.equation_id["<EOS>"]
        self.input_pad_id = self.float_id["<INPUT_PAD>"]

    @property
    def float_size(self) -> int:
        return len(self.float_words)

    @property
    def equation_size(self) -> int:
        return len(self.equation_words)

    @property
    def n_symbols(self) -> int:
        """Equation words before the appended float vocabulary."""
        return self.equation_size - self.float_size


@functools.cache
def get_vocab(max_dim: int) -> Vocab:
    return Vocab(max_dim)
