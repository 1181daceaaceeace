"""Expressions as prefix sequences: evaluation with numpy, infix printing and official node labels.

An expression is a tuple in prefix order whose items are operator names (`add`, `sin`, `pow2`, ...),
variables (`x_0`, `x_1`, ...) or Python floats (constants). Evaluation follows the official domain rules:
division or `inv` by zero, `log` of a value <= 0 and `sqrt` of a negative value give NaN, which rejects the
point downstream.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Union

import numpy as np

from snipjax.data.vocab import OPERATOR_ARITY

Token = Union[str, float]


def _nan_where(condition, values):
    return np.where(condition, np.nan, values)


def _div(a, b):
    return a / _nan_where(b == 0, b)


def _inv(a):
    return 1.0 / _nan_where(a == 0, a)


def _log(a):
    return np.log(_nan_where(a <= 0, a))


def _sqrt(a):
    return np.sqrt(_nan_where(a < 0, a))


NUMPY_OPERATORS = {
    "add": np.add, "sub": np.subtract, "mul": np.multiply, "div": _div, "pow": np.power,
    "abs": np.abs, "inv": _inv, "sqrt": _sqrt, "log": _log, "exp": np.exp,
    "sin": np.sin, "cos": np.cos, "tan": np.tan, "arcsin": np.arcsin, "arccos": np.arccos, "arctan": np.arctan,
    "pow2": np.square, "pow3": lambda a: a * a * a,
}
assert NUMPY_OPERATORS.keys() == OPERATOR_ARITY.keys()
# Under np.errstate(all="raise") a domain error raises by itself, so strict evaluation needs no NaN masks (a NaN
# could only have rejected the expression too: no operator here turns NaN into a number).
_STRICT_OPERATORS = {**NUMPY_OPERATORS, "div": np.divide, "inv": np.reciprocal, "log": np.log, "sqrt": np.sqrt}

UNARY_OPERATORS = tuple(op for op, arity in OPERATOR_ARITY.items() if arity == 1)
BINARY_OPERATORS = tuple(op for op, arity in OPERATOR_ARITY.items() if arity == 2)
_INFIX_SYMBOL = {"add": "+", "sub": "-", "mul": "*", "div": "/", "pow": "**"}


def is_variable(token: Token) -> bool:
    return isinstance(token, str) and token.startswith("x_") and token[2:].isdigit()


def is_constant(token: Token) -> bool:
    return type(token) is float


def format_constant(value: float) -> str:
    """The shortest decimal string that reads back as the same float."""
    return repr(float(value))


@dataclasses.dataclass(frozen=True)
class Expression:
    """A function of x_0..x_{D-1} in prefix order."""

    prefix: tuple

    def __post_init__(self):
        if not all(type(t) is str or type(t) is float for t in self.prefix):
            numbers = (int, float, np.integer, np.floating)
            object.__setattr__(self, "prefix", tuple(
                float(t) if isinstance(t, numbers) and not isinstance(t, bool) else t for t in self.prefix))
        depth = 1
        for token in self.prefix:
            if depth == 0:
                raise ValueError(f"prefix has tokens after a complete expression: {self.prefix}")
            arity = OPERATOR_ARITY.get(token, 0) if type(token) is str else 0
            if arity == 0 and not (type(token) is float or is_variable(token)):
                raise ValueError(f"unknown prefix token {token!r}")
            depth += arity - 1
        if depth != 0:
            raise ValueError(f"prefix is incomplete (missing {depth} operand(s)): {self.prefix}")

    @classmethod
    def trusted(cls, prefix: tuple) -> "Expression":
        """Skip validation for prefixes that are valid by construction (the sampler's hot path)."""
        expression = object.__new__(cls)
        object.__setattr__(expression, "prefix", prefix)
        return expression

    @classmethod
    def from_labels(cls, labels) -> "Expression":
        """Build from node labels as strings (`["add", "1.5", "x_0"]`), e.g. from a JSONL file."""
        tokens = []
        for label in labels:
            if label in OPERATOR_ARITY or str(label).startswith("x_"):
                tokens.append(str(label))
            else:
                try:
                    tokens.append(float(label))
                except ValueError:
                    raise ValueError(f"unknown node label {label!r}") from None
        return cls(tuple(tokens))

    def labels(self) -> list[str]:
        """Node labels in prefix order, constants as decimal strings."""
        return [format_constant(t) if is_constant(t) else t for t in self.prefix]

    @property
    def n_nodes(self) -> int:
        return len(self.prefix)

    @functools.cached_property
    def constants(self) -> list[float]:
        return [t for t in self.prefix if type(t) is float]

    @functools.cached_property
    def input_dim(self) -> int:
        """One more than the largest variable index used (0 for a constant function)."""
        # Validated prefixes hold no other strings starting with "x" (operators are lower-case words).
        return max((int(t[2:]) + 1 for t in self.prefix if type(t) is str and t[0] == "x"), default=0)

    def evaluate(self, x: np.ndarray, strict: bool = False) -> np.ndarray:
        """Values at the rows of x [N, D]; NaN where the expression is undefined.

        `strict` raises FloatingPointError on any overflow, underflow or invalid operation on the way (the
        official generator runs under `np.seterr(all="raise")` and rejects such expressions).
        """
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] < self.input_dim:
            raise ValueError(f"expression uses x_0..x_{self.input_dim - 1} but x has shape {x.shape}")
        with np.errstate(all="raise" if strict else "ignore"):
            return self.values(x, strict)

    def values(self, x: np.ndarray, strict: bool = False) -> np.ndarray:
        """`evaluate` without its checks, under the caller's `np.errstate` (all="raise" where strict): x is
        float64 [N, D >= input_dim]. The generator evaluates a round of samples under one errstate: setting it
        costs more than a node."""
        operators = _STRICT_OPERATORS if strict else NUMPY_OPERATORS
        stack = []
        for token in reversed(self.prefix):
            if type(token) is float:
                stack.append(token)
            elif token[0] == "x":
                stack.append(x[:, int(token[2:])])
            elif OPERATOR_ARITY[token] == 1:
                stack.append(operators[token](stack.pop()))
            else:
                first = stack.pop()
                stack.append(operators[token](first, stack.pop()))
        result = stack[0]
        if isinstance(result, float):  # a constant expression (numpy scalars are floats too)
            return np.full(x.shape[0], result)
        return result if result.base is None else result.copy()  # a bare variable is a view of x

    def infix(self) -> str:
        stack = []
        for token in reversed(self.prefix):
            if is_constant(token):
                text = format_constant(token)
                stack.append(f"({text})" if token < 0 else text)
            elif is_variable(token):
                stack.append(token)
            elif token in _INFIX_SYMBOL:
                first = stack.pop()
                stack.append(f"({first} {_INFIX_SYMBOL[token]} {stack.pop()})")
            elif token == "pow2":
                stack.append(f"({stack.pop()})**2")
            elif token == "pow3":
                stack.append(f"({stack.pop()})**3")
            elif token == "inv":
                stack.append(f"(1/({stack.pop()}))")  # bracketed: `c * 1/(a)` would read as (c*1)/a
            else:
                stack.append(f"{token}({stack.pop()})")
        return stack[0]

    def __str__(self) -> str:
        return self.infix()
