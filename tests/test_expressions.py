import csv
import json

import numpy as np
import pytest
import sympy

from snipjax.data import benchmarks, formulas
from snipjax.data.expressions import Expression
from data_helpers import sampled_trees

FEYNMAN = benchmarks.TABLES / "srbench_groundtruth.csv"
# Formulas outside the SNIP vocabulary, with the reason the parser must give.
UNSUPPORTED_FEYNMAN = {"feynman_II_35_21": "tanh"}


def sampled_expressions(max_dim, count, seed=0):
    return [(dim, expression) for dim, _, _, expression in sampled_trees(max_dim, count, seed)]


def sympy_values(expr, dim, x):
    function = sympy.lambdify(formulas.variable_symbols(dim), expr, modules="numpy")
    with np.errstate(all="ignore"):
        return np.broadcast_to(np.asarray(function(*x.T), dtype=np.complex128), (x.shape[0],))


@pytest.mark.parametrize("max_dim", [1, 10])
def test_numpy_evaluation_equals_sympy_on_sampled_expressions(max_dim):
    rng = np.random.default_rng(1)
    compared = 0
    for dim, expression in sampled_expressions(max_dim, 1500 if max_dim == 1 else 500):
        x = rng.normal(size=(64, dim))
        ours = expression.evaluate(x)
        with sympy.evaluate(False):  # keep the operation order, so ill-conditioned cases round alike
            reference = formulas.to_sympy(expression)
        theirs = sympy_values(reference, dim, x)
        # sympy works over the complex numbers: where it leaves the reals, ours must be NaN.
        real = np.isfinite(theirs) & (np.abs(theirs.imag) <= 1e-9 * np.maximum(1, np.abs(theirs.real)))
        defined = np.isfinite(ours)
        assert not (defined & ~real & np.isfinite(theirs)).any(), expression.infix()
        # Points where a relative nudge of 1e-13 in x moves f by more than 1e-8 are too ill-conditioned
        # (e.g. cos of 1e14) for two evaluation orders to agree; compare the rest.
        with np.errstate(all="ignore"):
            stable = np.isclose(expression.evaluate(x * (1 + 1e-13)), ours, rtol=1e-8, atol=1e-12)
        both = defined & real & stable
        np.testing.assert_allclose(ours[both], theirs.real[both], rtol=1e-6, atol=1e-9, err_msg=expression.infix())
        compared += both.sum()
    assert compared > 10_000


def test_domain_rules_give_nan():
    x = np.array([[-1.0], [0.0], [4.0]])
    assert np.isnan(Expression(("sqrt", "x_0")).evaluate(x)).tolist() == [True, False, False]
    assert np.isnan(Expression(("log", "x_0")).evaluate(x)).tolist() == [True, True, False]
    assert np.isnan(Expression(("inv", "x_0")).evaluate(x)).tolist() == [False, True, False]
    assert np.isnan(Expression(("div", 1.0, "x_0")).evaluate(x)).tolist() == [False, True, False]


@pytest.mark.parametrize("prefix", [("sqrt", "x_0"), ("log", "x_0"), ("inv", "x_0"), ("div", 1.0, "x_0"),
                                    ("exp", "mul", 1000.0, "x_0")])
def test_strict_values_raise_where_evaluate_gives_nan_or_overflows(prefix):
    """The generator's strict evaluation (no NaN masks, under errstate 'raise') rejects exactly what the masked
    evaluation marks, and gives the same numbers elsewhere."""
    expression, bad, good = Expression(prefix), np.array([[-1.0], [0.0], [4.0]]), np.array([[0.25], [0.5], [0.7]])
    with np.errstate(all="raise"), pytest.raises(FloatingPointError):
        expression.values(bad, strict=True)
    assert not np.isfinite(expression.evaluate(bad)).all()
    with np.errstate(all="raise"):
        np.testing.assert_array_equal(expression.values(good, strict=True), expression.evaluate(good))


def test_labels_round_trip_and_infix():
    expression = Expression(("add", 1.5, "mul", -0.25, "sin", "x_0"))
    assert expression.labels() == ["add", "1.5", "mul", "-0.25", "sin", "x_0"]
    assert Expression.from_labels(expression.labels()) == expression
    assert expression.infix() == "(1.5 + ((-0.25) * sin(x_0)))"
    assert Expression(("pow2", "x_0")).evaluate(np.array([[3.0]])).tolist() == [9.0]


@pytest.mark.parametrize("prefix, message", [
    (("add", "x_0"), "incomplete"), (("x_0", "x_1"), "after a complete"), (("tanh", "x_0"), "unknown"),
])
def test_invalid_prefix_is_rejected(prefix, message):
    with pytest.raises(ValueError, match=message):
        Expression(prefix)


def test_sympy_round_trip_preserves_values():
    rng = np.random.default_rng(2)
    compared = 0
    for dim, expression in sampled_expressions(3, 200, seed=3):
        back = formulas.from_sympy(formulas.to_sympy(expression))
        x = rng.normal(size=(32, dim))
        a, b = expression.evaluate(x), back.evaluate(x)
        with np.errstate(all="ignore"):
            stable = np.isclose(expression.evaluate(x * (1 + 1e-13)), a, rtol=1e-8, atol=1e-12)
        ok = np.isfinite(a) & stable
        np.testing.assert_allclose(b[ok], a[ok], rtol=1e-6, atol=1e-8, err_msg=expression.infix())
        compared += ok.sum()
    assert compared > 3000


@pytest.mark.parametrize("formula, expected", [
    ("cos(x)**2*exp(-x)", lambda x: np.cos(x) ** 2 * np.exp(-x)),
    ("x_0^3 - 2*x_0 + 1/x_0", lambda x: x**3 - 2 * x + 1 / x),
    ("sqrt(x) + ln(x) + pi", lambda x: np.sqrt(x) + np.log(x) + np.pi),
    ("x**-0.5 + abs(x)**4", lambda x: x**-0.5 + np.abs(x) ** 4),
])
def test_parse_formula_strings(formula, expected):
    x = np.array([[0.5], [1.3], [2.0]])
    np.testing.assert_allclose(formulas.parse(formula).evaluate(x), expected(x[:, 0]), rtol=1e-12)


@pytest.mark.parametrize("formula, part", [
    ("__import__('os').system('echo hacked')", "__import__"),
    ("x.__class__", "x.__class__"),
    ("(lambda: 1)()", "lambda"),
    ("x if x else 1", "x if x else 1"),
    ("tanh(x)", "tanh"),
    ("y + 1", "'y'"),
    ("x +* 2", "cannot parse"),
    ("'text'", "'text'"),
    ("sin(x, x)", "exactly one argument"),
    ("9**9**9 + x", "not a finite"),
    ("1/0 + x", "division by zero"),
])
def test_parse_refuses_anything_outside_the_grammar(formula, part):
    with pytest.raises(formulas.FormulaError) as error:
        formulas.parse(formula)
    assert part in str(error.value)


def feynman_rows():
    with open(FEYNMAN) as f:
        return list(csv.DictReader(f))


def test_every_feynman_formula_parses_and_evaluates_like_sympy_or_is_reported():
    rng = np.random.default_rng(0)
    unsupported = {}
    for row in feynman_rows():
        names = row["features"].split()
        try:
            ours = formulas.parse(row["formula"], names)
        except formulas.FormulaError as error:
            unsupported[row["dataset"]] = str(error)
            continue
        ranges = np.array(json.loads(row["ranges"]))
        x = rng.uniform(ranges[:, 0], ranges[:, 1], size=(1000, len(names)))
        # The fixture is trusted, so sympy's own parser gives the independent reference here.
        symbols = {name: sympy.Symbol(name) for name in names}
        reference = sympy.lambdify(list(symbols.values()), sympy.sympify(row["formula"], locals=symbols), "numpy")
        expected = np.broadcast_to(reference(*x.T), (1000,))
        np.testing.assert_allclose(ours.evaluate(x), expected, rtol=1e-9, err_msg=row["dataset"])
    assert {k: v for k, v in unsupported.items()}.keys() == UNSUPPORTED_FEYNMAN.keys()
    for dataset, reason in UNSUPPORTED_FEYNMAN.items():
        assert reason in unsupported[dataset]
    assert len(feynman_rows()) - len(unsupported) == 118


@pytest.mark.parametrize("max_dim", [1, 10])
def test_generated_infix_strings_parse_back_to_their_training_tokens(max_dim):
    from snipjax.data import tokens

    expressions = sampled_expressions(max_dim, 300, seed=5)
    for _, expression in expressions:
        back = formulas.parse(expression.infix())
        assert tokens.expression_ids(back, max_dim).tolist() == tokens.expression_ids(expression, max_dim).tolist(), \
            expression.infix()


@pytest.mark.parametrize("formula, prefix", [
    ("-0.52*x", ("mul", -0.52, "x_0")),  # a signed number is one constant
    ("x*x", ("mul", "x_0", "x_0")),  # as written, not pow2
    ("x**2 + 1", ("add", "pow2", "x_0", 1.0)),  # operands in the order written
    ("1 + x**2", ("add", 1.0, "pow2", "x_0")),
    ("sin(-2*x)", ("sin", "mul", -2.0, "x_0")),  # the sign stays inside
    ("3 * 1/(x)", ("div", 3.0, "x_0")),  # Python's reading: (3*1)/x
    ("3 * (1/(x))", ("mul", 3.0, "inv", "x_0")),
    ("2*pi*x", ("mul", 2 * np.pi, "x_0")),  # numbers alone fold into one constant
    ("-(x + 1)", ("mul", -1.0, "add", "x_0", 1.0)),
    ("x**-0.5", ("inv", "sqrt", "x_0")),
    ("abs(x)**4", ("pow", "abs", "x_0", 4.0)),
])
def test_canonical_prefix_of_formula_strings(formula, prefix):
    assert formulas.parse(formula).prefix == prefix


def test_sympy_expressions_take_the_same_canonical_form():
    x = sympy.Symbol("x_0")
    assert formulas.as_expression(-0.52 * x + sympy.sin(x)).prefix == formulas.parse("-0.52*x_0 + sin(x_0)").prefix


@pytest.mark.parametrize("formula", ["(" * 300 + "x" + ")" * 300, "+".join(["x"] * 3000),
                                     "sin(" * 300 + "x" + ")" * 300])
def test_formulas_nested_too_deeply_give_a_formula_error_quoting_80_characters(formula):
    with pytest.raises(formulas.FormulaError) as error:
        formulas.parse(formula)
    quoted = str(error.value).split("'")[1]
    assert len(quoted) <= 83 and quoted.endswith("...")


def test_formula_round_trip_benchmark_reports_the_exact_share(capsys):
    from snipjax.bench import formulas

    assert formulas.main(["--n", "40"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["max_dim"], r["exact_share"], r["exceptions"]) for r in rows] == [(1, 1.0, []), (10, 1.0, [])]
