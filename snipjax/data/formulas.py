"""Formula strings and sympy expressions to Expressions in the generator's canonical form, and back to sympy.

Formula files may come from anyone, so strings are never given to `eval`, `sympify` or `parse_expr`: they are
parsed by Python's `ast` into a syntax tree, and only numbers, known names, the arithmetic operators and the
functions of the SNIP vocabulary become prefix tokens. Anything else raises `FormulaError` naming the
unsupported part (quoting at most the first 80 characters of the formula).
"""

from __future__ import annotations

import ast
import math
from typing import Sequence

import sympy

from snipjax.data.expressions import Expression, is_constant, is_variable


class FormulaError(ValueError):
    """A formula that cannot be written with SNIP's operators, or that cannot be parsed safely."""


# Function names a formula may call (numpy's and sympy's spellings), and the operator each becomes.
FUNCTIONS = {
    "sin": "sin", "cos": "cos", "tan": "tan", "exp": "exp", "log": "log", "ln": "log", "sqrt": "sqrt",
    "abs": "abs", "Abs": "abs", "arcsin": "arcsin", "asin": "arcsin", "arccos": "arccos", "acos": "arccos",
    "arctan": "arctan", "atan": "arctan", "inv": "inv", "pow2": "pow2", "pow3": "pow3",
}
NAMED_CONSTANTS = {"pi": math.pi, "e": math.e, "E": math.e}
_UNARY_TO_SYMPY = {
    "abs": sympy.Abs, "inv": lambda a: 1 / a, "sqrt": sympy.sqrt, "log": sympy.log, "exp": sympy.exp,
    "sin": sympy.sin, "cos": sympy.cos, "tan": sympy.tan, "arcsin": sympy.asin, "arccos": sympy.acos,
    "arctan": sympy.atan, "pow2": lambda a: a**2, "pow3": lambda a: a**3,
}
_BINARY_TO_SYMPY = {
    "add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b, "pow": lambda a, b: a**b,
}


def variable_symbols(n: int) -> list[sympy.Symbol]:
    return [sympy.Symbol(f"x_{i}", real=True) for i in range(n)]


def to_sympy(expression: Expression) -> sympy.Expr:
    """The sympy form of an expression; constants become sympy Floats, variables real symbols x_i."""
    stack = []
    for token in reversed(expression.prefix):
        if is_constant(token):
            stack.append(sympy.Float(token))
        elif is_variable(token):
            stack.append(sympy.Symbol(token, real=True))
        elif token in _UNARY_TO_SYMPY:
            stack.append(_UNARY_TO_SYMPY[token](stack.pop()))
        else:
            first = stack.pop()
            stack.append(_BINARY_TO_SYMPY[token](first, stack.pop()))
    return stack[0]


def from_sympy(expr: sympy.Expr, variables: Sequence[sympy.Symbol] | None = None) -> Expression:
    """Our prefix form of a sympy expression, the canonical form of its printed string (see `parse`);
    `variables[i]` becomes x_i (default: symbols named x_i)."""
    expr = sympy.sympify(expr)
    if expr.has(sympy.zoo, sympy.oo, -sympy.oo, sympy.nan):
        raise FormulaError(f"{expr} has an infinite or undefined part (a division by zero?)")
    names = None if variables is None else [str(v) for v in variables]
    return parse(sympy.sstr(expr), names)


def as_expression(item) -> Expression:
    """An Expression from an Expression, a formula string or a sympy expression."""
    if isinstance(item, Expression):
        return item
    if isinstance(item, str):
        return parse(item)
    if isinstance(item, sympy.Basic):
        return from_sympy(item, sorted(item.free_symbols, key=lambda s: s.name) if not _uses_x_names(item) else None)
    raise TypeError(f"expected an Expression, a formula string or a sympy expression, got {type(item).__name__}")


def _uses_x_names(expr) -> bool:
    return all(s.name.startswith("x_") and s.name[2:].isdigit() for s in expr.free_symbols)


MAX_SHOWN = 80  # characters of a formula that an error message quotes


def _shown(formula: str) -> str:
    return repr(formula if len(formula) <= MAX_SHOWN else formula[:MAX_SHOWN] + "...")


def parse(formula: str, variables: Sequence[str] | None = None) -> Expression:
    """Parse a formula string into its canonical Expression without evaluating any code.

    The canonical form is the one SNIP's generator writes: operands in the order written, each binary
    operation one node (`+` add, `-` sub, `*` mul, `/` div), `1/a` inv, `a**2` pow2, `a**3` pow3, `a**0.5`
    sqrt, `a**-k` inv of the power k, other powers pow; a signed number, or any subexpression of numbers
    alone (`2*pi`), is one constant; `-a` of a non-constant is mul -1 a. So the `infix` of a generated
    expression parses back to exactly its training prefix. `variables` lists the names that become x_0, x_1,
    ... in order. Without it, the names `x_0..x_9` (or `x0..x9`) are used as they are, and a lone `x` means
    x_0.
    """
    if variables is not None:
        symbols = {name: f"x_{i}" for i, name in enumerate(variables)}
    else:
        symbols = {"x": "x_0"}
        for i in range(10):
            symbols[f"x_{i}"] = symbols[f"x{i}"] = f"x_{i}"
    source = formula.strip().replace("^", "**")
    try:
        tree = ast.parse(source, mode="eval")
        prefix = _PrefixBuilder(formula, source, symbols).visit(tree.body)
    except SyntaxError as error:
        raise FormulaError(f"cannot parse formula {_shown(formula)}: {error.msg}") from None
    except (RecursionError, MemoryError):
        raise FormulaError(f"formula {_shown(formula)} ({len(formula)} characters) is nested too deeply "
                           "to parse") from None
    if isinstance(prefix, float):
        prefix = [prefix]
    return Expression(tuple(prefix))


def _fold_constant(formula: str, operation, *operands: float) -> float:
    """A subexpression of numbers alone, computed in floating point (never exactly: `9**9**9` must not run
    for hours)."""
    try:
        value = operation(*operands)
    except ZeroDivisionError:
        raise FormulaError(f"division by zero in formula {_shown(formula)}") from None
    except (OverflowError, ValueError):
        value = math.nan
    if not isinstance(value, float) or not math.isfinite(value):
        raise FormulaError(f"a constant part of formula {_shown(formula)} is not a finite real number")
    return value


class _PrefixBuilder(ast.NodeVisitor):
    """Turns an allowed Python syntax tree into prefix tokens (a list), or a float for a constant part;
    everything else is refused."""

    _BINARY = {ast.Add: ("add", lambda a, b: a + b), ast.Sub: ("sub", lambda a, b: a - b),
               ast.Mult: ("mul", lambda a, b: a * b), ast.Div: ("div", lambda a, b: a / b),
               ast.Pow: ("pow", math.pow)}

    def __init__(self, formula: str, source: str, symbols: dict[str, str]):
        self.formula = formula
        self.source = source
        self.symbols = symbols

    def generic_visit(self, node):
        part = ast.get_source_segment(self.source, node) or type(node).__name__
        raise FormulaError(f"unsupported syntax {part[:MAX_SHOWN]!r} in formula {_shown(self.formula)}")

    @staticmethod
    def _tokens(operand) -> list:
        return [operand] if isinstance(operand, float) else operand

    def visit_BinOp(self, node):
        if type(node.op) not in self._BINARY:
            return self.generic_visit(node)
        name, compute = self._BINARY[type(node.op)]
        left, right = self.visit(node.left), self.visit(node.right)
        if isinstance(left, float) and isinstance(right, float):
            return _fold_constant(self.formula, compute, left, right)
        if name == "div" and isinstance(left, float) and left == 1.0:
            return ["inv"] + right
        if name == "pow" and isinstance(right, float):
            return self._power(self._tokens(left), right)
        return [name] + self._tokens(left) + self._tokens(right)

    @staticmethod
    def _power(base: list, exponent: float) -> list:
        named = {2.0: "pow2", 3.0: "pow3", 0.5: "sqrt"}
        if exponent in named:
            return [named[exponent]] + base
        if exponent < 0:
            return ["inv"] + (base if exponent == -1.0 else _PrefixBuilder._power(base, -exponent))
        return ["pow"] + base + [exponent]

    def visit_UnaryOp(self, node):
        if not isinstance(node.op, (ast.USub, ast.UAdd)):
            return self.generic_visit(node)
        operand = self.visit(node.operand)
        if isinstance(node.op, ast.UAdd):
            return operand
        return -operand if isinstance(operand, float) else ["mul", -1.0] + operand

    def visit_Constant(self, node):
        if isinstance(node.value, bool) or not isinstance(node.value, (int, float)):
            return self.generic_visit(node)
        return _fold_constant(self.formula, float, node.value)

    def visit_Name(self, node):
        if node.id in self.symbols:
            return [self.symbols[node.id]]
        if node.id in NAMED_CONSTANTS:
            return NAMED_CONSTANTS[node.id]
        if node.id in FUNCTIONS:
            raise FormulaError(f"function {node.id!r} used without arguments in formula {_shown(self.formula)}")
        raise FormulaError(f"unknown name {node.id!r} in formula {_shown(self.formula)}")

    def visit_Call(self, node):
        name = node.func.id if isinstance(node.func, ast.Name) else None
        if name not in FUNCTIONS:
            what = name or ast.get_source_segment(self.source, node.func) or "call"
            raise FormulaError(f"function {what[:MAX_SHOWN]!r} in formula {_shown(self.formula)} is not in the "
                               "SNIP vocabulary")
        if len(node.args) != 1 or node.keywords:
            raise FormulaError(f"function {name!r} takes exactly one argument in formula {_shown(self.formula)}")
        return [FUNCTIONS[name]] + self._tokens(self.visit(node.args[0]))
