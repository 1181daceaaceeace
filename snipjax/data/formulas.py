"""Formulas to and from sympy, and a safe parser for formula strings.

Formula files may come from anyone, so strings are never given to `eval`, `sympify` or `parse_expr`: they are
parsed by Python's `ast` into a syntax tree, and only numbers, known names, the arithmetic operators and the
functions of the SNIP vocabulary are turned into sympy objects. Anything else raises `FormulaError` naming
the unsupported part.
"""

from __future__ import annotations

import ast
import math
from typing import Sequence

import sympy

from snipjax.data.expressions import Expression, is_constant, is_variable


class FormulaError(ValueError):
    """A formula that cannot be written with SNIP's operators, or that cannot be parsed safely."""


_SYMPY_FUNCTIONS = {
    "sin": sympy.sin, "cos": sympy.cos, "tan": sympy.tan, "exp": sympy.exp, "log": sympy.log,
    "ln": sympy.log, "sqrt": sympy.sqrt, "abs": sympy.Abs, "Abs": sympy.Abs,
    "arcsin": sympy.asin, "asin": sympy.asin, "arccos": sympy.acos, "acos": sympy.acos,
    "arctan": sympy.atan, "atan": sympy.atan,
}
_NAMED_CONSTANTS = {"pi": sympy.pi, "e": sympy.E, "E": sympy.E}
_UNARY_TO_SYMPY = {
    "abs": sympy.Abs, "inv": lambda a: 1 / a, "sqrt": sympy.sqrt, "log": sympy.log, "exp": sympy.exp,
    "sin": sympy.sin, "cos": sympy.cos, "tan": sympy.tan, "arcsin": sympy.asin, "arccos": sympy.acos,
    "arctan": sympy.atan, "pow2": lambda a: a**2, "pow3": lambda a: a**3,
}
_BINARY_TO_SYMPY = {
    "add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b, "pow": lambda a, b: a**b,
}
_SYMPY_TO_UNARY = {
    sympy.sin: "sin", sympy.cos: "cos", sympy.tan: "tan", sympy.exp: "exp", sympy.log: "log",
    sympy.Abs: "abs", sympy.asin: "arcsin", sympy.acos: "arccos", sympy.atan: "arctan",
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
    """Our prefix form of a sympy expression; `variables[i]` becomes x_i (default: symbols named x_i)."""
    names = {}
    if variables is not None:
        names = {v: f"x_{i}" for i, v in enumerate(variables)}
    expr = sympy.sympify(expr)
    if expr.has(sympy.zoo, sympy.oo, -sympy.oo, sympy.nan):
        raise FormulaError(f"{expr} has an infinite or undefined part (a division by zero?)")
    return Expression(tuple(_prefix_of(expr, names)))


def _prefix_of(expr: sympy.Expr, names: dict) -> list:
    if expr.is_Symbol:
        if expr in names:
            return [names[expr]]
        if not names and expr.name.startswith("x_") and expr.name[2:].isdigit():
            return [expr.name]
        raise FormulaError(f"unknown variable {expr.name!r}")
    if expr.is_Number or expr.is_NumberSymbol:
        value = float(expr)
        if not math.isfinite(value):
            raise FormulaError(f"the constant {expr} is not finite")
        return [value]
    if expr.is_Add:
        return _fold("add", [_prefix_of(term, names) for term in expr.as_ordered_terms()])
    if expr.is_Mul:
        numerator, denominator = [], []
        for factor in expr.as_ordered_factors():
            base, exponent = factor.as_base_exp()
            if exponent.is_Number and exponent < 0:
                denominator.append(base ** (-exponent))
            else:
                numerator.append(factor)
        top = _fold("mul", [_prefix_of(f, names) for f in numerator]) if numerator else [1.0]
        if not denominator:
            return top
        return ["div"] + top + _fold("mul", [_prefix_of(f, names) for f in denominator])
    if expr.is_Pow:
        return _power(expr.base, expr.exp, names)
    if expr.func is sympy.exp:  # sympy keeps exp(z) as its own class, not a Pow
        return ["exp"] + _prefix_of(expr.args[0], names)
    if expr.func in _SYMPY_TO_UNARY:
        return [_SYMPY_TO_UNARY[expr.func]] + _prefix_of(expr.args[0], names)
    raise FormulaError(f"{expr.func.__name__} (in {expr}) is not an operator of the SNIP vocabulary")


def _fold(op: str, operands: list[list]) -> list:
    """Left fold of an n-ary sum or product into binary prefix nodes."""
    prefix = operands[0]
    for operand in operands[1:]:
        prefix = [op] + prefix + operand
    return prefix


def _power(base, exponent, names: dict) -> list:
    inner = _prefix_of(base, names)
    if exponent == 2:
        return ["pow2"] + inner
    if exponent == 3:
        return ["pow3"] + inner
    if exponent == sympy.Rational(1, 2):
        return ["sqrt"] + inner
    if exponent == -1:
        return ["inv"] + inner
    if exponent.is_Number and exponent < 0:
        return ["inv"] + _power(base, -exponent, names)
    return ["pow"] + inner + _prefix_of(exponent, names)


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


def parse(formula: str, variables: Sequence[str] | None = None) -> Expression:
    """Parse a formula string into an Expression without evaluating any code.

    `variables` lists the names that become x_0, x_1, ... in order. Without it, the names `x_0..x_9`
    (or `x0..x9`) are used as they are, and a lone `x` means x_0.
    """
    try:
        tree = ast.parse(formula.strip().replace("^", "**"), mode="eval")
    except SyntaxError as error:
        raise FormulaError(f"cannot parse formula {formula!r}: {error.msg}") from None
    if variables is not None:
        symbols = {name: sympy.Symbol(f"x_{i}", real=True) for i, name in enumerate(variables)}
    else:
        symbols = {"x": sympy.Symbol("x_0", real=True)}
        for i in range(10):
            symbols[f"x_{i}"] = symbols[f"x{i}"] = sympy.Symbol(f"x_{i}", real=True)
    return from_sympy(_SympyBuilder(formula, symbols).visit(tree.body))


class _SympyBuilder(ast.NodeVisitor):
    """Turns an allowed Python syntax tree into sympy objects; everything else is refused."""

    _BINARY = {ast.Add: sympy.Add, ast.Sub: lambda a, b: a - b, ast.Mult: sympy.Mul,
               ast.Div: lambda a, b: a / b, ast.Pow: sympy.Pow}

    def __init__(self, formula: str, symbols: dict):
        self.formula = formula
        self.symbols = symbols

    def generic_visit(self, node):
        part = ast.get_source_segment(self.formula.replace("^", "**"), node) or type(node).__name__
        raise FormulaError(f"unsupported syntax {part!r} in formula {self.formula!r}")

    def visit_BinOp(self, node):
        if type(node.op) not in self._BINARY:
            self.generic_visit(node)
        left, right = self.visit(node.left), self.visit(node.right)
        if isinstance(node.op, ast.Pow) and left.is_Number and right.is_Number:
            # sympy would compute integer powers exactly: `9**9**9` must not run for hours.
            try:
                return sympy.Float(math.pow(float(left), float(right)))
            except (OverflowError, ValueError):
                raise FormulaError(f"the constant {left}**{right} in formula {self.formula!r} is not a finite "
                                   "real number") from None
        return self._BINARY[type(node.op)](left, right)

    def visit_UnaryOp(self, node):
        if isinstance(node.op, ast.USub):
            return -self.visit(node.operand)
        if isinstance(node.op, ast.UAdd):
            return self.visit(node.operand)
        return self.generic_visit(node)

    def visit_Constant(self, node):
        if isinstance(node.value, bool) or not isinstance(node.value, (int, float)):
            return self.generic_visit(node)
        return sympy.Integer(node.value) if isinstance(node.value, int) else sympy.Float(node.value)

    def visit_Name(self, node):
        if node.id in self.symbols:
            return self.symbols[node.id]
        if node.id in _NAMED_CONSTANTS:
            return _NAMED_CONSTANTS[node.id]
        if node.id in _SYMPY_FUNCTIONS:
            raise FormulaError(f"function {node.id!r} used without arguments in formula {self.formula!r}")
        raise FormulaError(f"unknown name {node.id!r} in formula {self.formula!r}")

    def visit_Call(self, node):
        name = node.func.id if isinstance(node.func, ast.Name) else None
        if name not in _SYMPY_FUNCTIONS:
            what = name or ast.get_source_segment(self.formula, node.func) or "call"
            raise FormulaError(f"function {what!r} in formula {self.formula!r} is not in the SNIP vocabulary")
        if len(node.args) != 1 or node.keywords:
            raise FormulaError(f"function {name!r} takes exactly one argument in formula {self.formula!r}")
        return _SYMPY_FUNCTIONS[name](self.visit(node.args[0]))
