"""Refit the constants of many candidate formulas at once: one compiled evaluator takes each formula as data.

A formula becomes a program: its prefix tokens in reverse as op codes, the stack position each token writes,
and a slot per constant into a vector of values. `evaluate` runs the program as a stack machine in a loop
over its tokens, so formulas of any shape share one compiled function; with `jacobian=True` it carries
forward-mode tangents along (a formula has few constants, so J [N, K] costs about K evaluations of one vector
each, and no reverse pass stores the stack). The refit minimizes ½·MSE, the official objective (scipy's BFGS
there), from the decoded constants on at most the first 1024 points, by Levenberg–Marquardt (the default) or
optax's L-BFGS.

    programs = compile_programs(expressions, n_inputs=x.shape[1])
    refit = fit_constants(expressions, x, y, max_iter=100, vectorize=1)   # expressions with refit constants

`refit_steps` is the pure jitted kernel behind `fit_constants` (steps of either method over a batch of
programs); `init_state` gives its starting state.
"""

from __future__ import annotations

import functools
import time
from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from snipjax.data.expressions import BINARY_OPERATORS, UNARY_OPERATORS, Expression, is_constant
from snipjax.data.tokens import power_of_two

PAD, LEAF = 0, 1  # a leaf is a constant (slot >= 0) or the variable x_{-1 - slot}
UNARY_CODE = {op: 2 + i for i, op in enumerate(UNARY_OPERATORS)}
BINARY_CODE = {op: 2 + len(UNARY_OPERATORS) + i for i, op in enumerate(BINARY_OPERATORS)}
METHODS = ("lm", "lbfgs")


class Programs(NamedTuple):
    """A population of formulas as arrays, in reverse prefix order: op codes, the stack position each token
    writes and leaf slots [P, L] (constant index, or -1 - i for x_i), and the constants [P, K]. A unary token
    reads position p and a binary one p + 1 (its first operand) and p; the value ends at position 0."""

    codes: np.ndarray
    positions: np.ndarray
    slots: np.ndarray
    constants: np.ndarray

    @property
    def depth(self) -> int:
        """Stack positions the programs use at most (a binary token at p reads p + 1), padded to a power of two
        (at least 4) as the lengths are, so that most populations share one compilation."""
        return power_of_two(int(self.positions.max(initial=0)) + 2, smallest=4)


def compile_programs(expressions: Sequence[Expression], n_inputs: int) -> Programs:
    """The programs of `expressions` over x_0..x_{n_inputs-1}; lengths and constant counts padded to powers
    of two (at least 32 and 4)."""
    for expression in expressions:
        if expression.input_dim > n_inputs:
            raise ValueError(f"{expression} uses x_{expression.input_dim - 1} but x has {n_inputs} columns")
    length = power_of_two(max((e.n_nodes for e in expressions), default=1), smallest=32)
    n_constants = power_of_two(max((len(e.constants) for e in expressions), default=1), smallest=4)
    codes, positions, slots = (np.zeros((len(expressions), length), np.int32) for _ in range(3))
    constants = np.zeros((len(expressions), n_constants), np.float64)
    for row, expression in enumerate(expressions):
        slot, top = len(expression.constants), 0  # slots follow the prefix order of the constants
        for column, token in enumerate(reversed(expression.prefix)):
            if is_constant(token):
                slot -= 1
                codes[row, column], slots[row, column] = LEAF, slot
                constants[row, slot] = token
                top += 1
            elif token in UNARY_CODE:
                codes[row, column] = UNARY_CODE[token]
            elif token in BINARY_CODE:
                codes[row, column] = BINARY_CODE[token]
                top -= 1
            else:
                codes[row, column], slots[row, column] = LEAF, -1 - int(token[2:])
                top += 1
            positions[row, column] = top - 1
    return Programs(codes, positions, slots, constants)


def _positive(a):  # an argument that keeps the unselected branches' gradients finite
    return jnp.where(a > 0, a, 1.0)


def _log(a):
    return jnp.where(a > 0, jnp.log(_positive(a)), jnp.nan)


def _sqrt(a):
    return jnp.where(a > 0, jnp.sqrt(_positive(a)), jnp.where(a == 0, 0.0, jnp.nan))


def _divide(a, b):
    return jnp.where(b != 0, a / jnp.where(b != 0, b, 1.0), jnp.nan)


def _inside_unit(function):
    def safe(a):
        inside = jnp.abs(a) < 1
        edge = function(jnp.sign(jax.lax.stop_gradient(a)))  # the value at ±1, whose slope is infinite
        return jnp.where(inside, function(jnp.where(inside, a, 0.0)), jnp.where(jnp.abs(a) == 1, edge, jnp.nan))
    return safe


def _exp(a):
    return jnp.where(a < 80, jnp.exp(jnp.minimum(a, 80.0)), jnp.inf)


def _pow(a, b):
    # exp(b·log a) for a positive base; a non-positive base keeps numpy's value, without a gradient.
    return jnp.where(a > 0, jnp.exp(jnp.minimum(b * jnp.log(_positive(a)), 80.0)),
                     jax.lax.stop_gradient(jnp.power(a, b)))


UNARY_FUNCTIONS = {
    "abs": jnp.abs, "inv": lambda a: _divide(1.0, a), "sqrt": _sqrt, "log": _log, "exp": _exp, "sin": jnp.sin,
    "arcsin": _inside_unit(jnp.arcsin), "cos": jnp.cos, "arccos": _inside_unit(jnp.arccos), "tan": jnp.tan,
    "arctan": jnp.arctan, "pow2": jnp.square, "pow3": lambda a: a * a * a,
}
BINARY_FUNCTIONS = {
    "add": jnp.add, "sub": jnp.subtract, "mul": jnp.multiply, "div": _divide,
    "pow": _pow,
}
assert tuple(UNARY_FUNCTIONS) == UNARY_OPERATORS and tuple(BINARY_FUNCTIONS) == BINARY_OPERATORS
ARITY = np.array([1, 0] + [1] * len(UNARY_OPERATORS) + [2] * len(BINARY_OPERATORS), np.int32)  # PAD: identity


def _branches(jacobian: bool) -> list:
    """One function per op code: (u = stack[p], v = stack[p + 1], leaf value) → (value, ∂/∂u, ∂/∂v)."""
    def unary(f):
        if not jacobian:
            return lambda u, v, leaf: (f(u), u, u)
        return lambda u, v, leaf: (*jax.jvp(f, (u,), (jnp.ones_like(u),)), u)

    def binary(f):  # the first operand is v, the top of the stack
        if not jacobian:
            return lambda u, v, leaf: (f(v, u), u, u)

        def branch(u, v, leaf):
            value, du = jax.jvp(lambda u: f(v, u), (u,), (jnp.ones_like(u),))
            return value, du, jax.jvp(lambda v: f(v, u), (v,), (jnp.ones_like(v),))[1]
        return branch

    return [unary(lambda u: u), lambda u, v, leaf: (leaf, u, u), *(unary(f) for f in UNARY_FUNCTIONS.values()),
            *(binary(f) for f in BINARY_FUNCTIONS.values())]


def evaluate(codes: jax.Array, positions: jax.Array, slots: jax.Array, constants: jax.Array, x: jax.Array,
             depth: int, jacobian: bool = False):
    """Values [N] of one program at the rows of x [N, D] (NaN where undefined, as Expression.evaluate), and
    with `jacobian` their derivatives [N, K] with respect to the constants [K]. `depth` bounds the stack.

    Each token is a `lax.switch` branch over vectors [N], so an unbatched program computes only its own
    operations, and the loop stops at its last token; under vmap the switch computes every branch and
    selects, and the loop runs to the batch's longest program. The loop's trip count is data, which reverse
    mode cannot differentiate: gradients come from the forward-mode Jacobian (`half_mse`).
    """
    branches = _branches(jacobian)
    arity = jnp.asarray(ARITY)
    n_constants = constants.shape[0]

    def run(t, carry):
        stack, tangents = carry
        code, p, slot = codes[t], positions[t], slots[t]
        u, v = stack[p], stack[jnp.minimum(p + 1, depth - 1)]
        leaf = jnp.where(slot >= 0, constants[jnp.maximum(slot, 0)], x[:, jnp.maximum(-1 - slot, 0)])
        value, du, dv = jax.lax.switch(code, branches, u, v, leaf)
        stack = jax.lax.dynamic_update_index_in_dim(stack, value, p, 0)
        if jacobian:
            n = arity[code]  # operands' tangents enter by `where`: an unread slot may hold NaN
            tangent = (jnp.where(n >= 1, du[:, None] * tangents[p], 0.0)
                       + jnp.where(n == 2, dv[:, None] * tangents[jnp.minimum(p + 1, depth - 1)], 0.0)
                       + jnp.where((code == LEAF) & (jnp.arange(n_constants) == slot), 1.0, 0.0))
            tangents = jax.lax.dynamic_update_index_in_dim(tangents, tangent, p, 0)
        return stack, tangents

    stack = jnp.zeros((depth, x.shape[0]), x.dtype)
    tangents = jnp.zeros((depth, x.shape[0], n_constants) if jacobian else (0,), x.dtype)
    length = jnp.sum(codes != PAD)  # padding follows the last token
    stack, tangents = jax.lax.fori_loop(0, length, run, (stack, tangents))
    return (stack[0], tangents[0]) if jacobian else stack[0]


def evaluate_programs(programs: Programs, x) -> np.ndarray:
    """Values [P, N] of every program at the rows of x [N, D], in one compiled call."""
    return np.asarray(_evaluate_population(jnp.asarray(programs.codes), jnp.asarray(programs.positions),
                                           jnp.asarray(programs.slots),
                                           jnp.asarray(programs.constants, jnp.float32),
                                           jnp.asarray(x, jnp.float32), programs.depth))


@functools.partial(jax.jit, static_argnums=5)
def _evaluate_population(codes, positions, slots, constants, x, depth):
    return jax.vmap(evaluate, in_axes=(0, 0, 0, 0, None, None))(codes, positions, slots, constants, x, depth)


def _residuals(constants, program, data, depth, jacobian: bool = True):
    """Residuals r [N] (0 on padding, whose weight is 0) and with `jacobian` their Jacobian [N, K]."""
    x, y, weight = data
    keep = weight > 0
    if not jacobian:
        return jnp.where(keep, evaluate(*program, constants, x, depth) - y, 0.0)
    value, derivatives = evaluate(*program, constants, x, depth, jacobian=True)
    return jnp.where(keep, value - y, 0.0), jnp.where(keep[:, None], derivatives, 0.0)


@functools.partial(jax.custom_jvp, nondiff_argnums=(7,))
def half_mse(constants, codes, positions, slots, x, y, weight, depth):
    """The official refit objective, ½·mean((f(x) − y)²), over the points of weight 1 (padding has 0);
    differentiable in the constants (by the forward-mode Jacobian)."""
    residuals = _residuals(constants, (codes, positions, slots), (x, y, weight), depth, jacobian=False)
    return 0.5 * jnp.sum(jnp.square(residuals)) / jnp.sum(weight)


@half_mse.defjvp
def _half_mse_jvp(depth, primals, tangents):
    constants, codes, positions, slots, x, y, weight = primals
    residuals, jacobian = _residuals(constants, (codes, positions, slots), (x, y, weight), depth)
    n = jnp.sum(weight)
    return 0.5 * jnp.sum(jnp.square(residuals)) / n, (jacobian.T @ residuals / n) @ tangents[0]


class RefitState(NamedTuple):
    """Per program (leading axis P): the best constants so far and their loss, the steps without progress,
    and the method's own state (LM: damping and the normal equations at the best constants)."""

    constants: jax.Array  # [P, K]
    loss: jax.Array  # [P]
    stalls: jax.Array  # [P] int32
    method: tuple


# Steps without progress (a relative loss decrease below PROGRESS) before a formula counts as converged. LM
# needs more: from a small damping it takes a few rejected steps to reach a step that helps (`bench
# constants`: 0.93 of refits above R² 0.99 with 8, 0.86 with 4).
PATIENCE = {"lm": 8, "lbfgs": 3}
PROGRESS = 1e-5  # float32 resolves little finer
# Levenberg–Marquardt on D⁻¹JᵀJD⁻¹ (D the column norms): the damping shrinks by DOWN after a better step and
# grows by UP after a worse one.
LM_START, LM_DOWN, LM_UP = 1e-3, 0.3, 10.0


@functools.cache
def _lbfgs():
    # The zoom (strong Wolfe) line search: `bench constants` measured 0.94 of refits above R² 0.99 with it
    # against 0.93 for scipy's BFGS and 0.81 with a backtracking search, which was 1.5x faster.
    return optax.lbfgs()


def init_state(constants: jax.Array, method: str = "lm") -> RefitState:
    """The state before the first step (loss ∞: the first step only measures the starting constants)."""
    p, k = constants.shape
    if method == "lm":
        extra = (jnp.full(p, LM_START, constants.dtype), jnp.zeros((p, k, k), constants.dtype),
                 jnp.zeros((p, k), constants.dtype))
    else:
        extra = (constants, jax.vmap(_lbfgs().init)(constants))
    return RefitState(constants, jnp.full(p, jnp.inf, constants.dtype), jnp.zeros(p, jnp.int32), extra)


def _lm_step(state, program, data, depth):
    """One Levenberg–Marquardt step of one program: propose from the normal equations at the best constants,
    measure residuals and Jacobian at the proposal, keep it if it is better."""
    constants, loss, stalls, (damping, normal, gradient) = state
    scale = jnp.sqrt(jnp.diagonal(normal)) + 1e-12  # column norms: a free constant's column is 0
    scaled = normal / scale[:, None] / scale[None, :]
    system = scaled + damping * (jnp.eye(len(scale)) * (1.0 + jnp.diagonal(scaled)))
    step = -jnp.linalg.solve(system, gradient / scale) / scale
    trial = constants + jnp.where(jnp.isfinite(step), step, 0.0)
    residuals, jacobian = _residuals(trial, program, data, depth)
    n = jnp.sum(data[2])
    trial_loss = 0.5 * jnp.sum(jnp.square(residuals)) / n
    better = jnp.isfinite(trial_loss) & (trial_loss < loss)
    progress = better & (trial_loss < loss * (1 - PROGRESS))
    pick = lambda new, old: jnp.where(better, new, old)  # noqa: E731
    return RefitState(pick(trial, constants), pick(trial_loss, loss), jnp.where(progress, 0, stalls + 1),
                      (jnp.where(better, damping * LM_DOWN, damping * LM_UP),
                       pick(jacobian.T @ jacobian / n, normal), pick(jacobian.T @ residuals / n, gradient)))


def _lbfgs_step(state, program, data, depth):
    """One optax L-BFGS step (zoom line search) of one program, keeping its best finite constants."""
    best, best_loss, stalls, (constants, opt_state) = state

    def objective(c):
        return half_mse(c, *program, *data, depth)

    loss, grad = optax.value_and_grad_from_state(objective)(constants, state=opt_state)
    better = jnp.isfinite(loss) & (loss < best_loss)
    progress = better & (loss < best_loss * (1 - PROGRESS))
    updates, opt_state = _lbfgs().update(grad, opt_state, constants, value=loss, grad=grad, value_fn=objective)
    return RefitState(jnp.where(better, constants, best), jnp.where(better, loss, best_loss),
                      jnp.where(progress, 0, stalls + 1), (optax.apply_updates(constants, updates), opt_state))


@functools.partial(jax.jit, static_argnames=("depth", "n_steps", "method", "vectorize"))
def refit_steps(state: RefitState, codes: jax.Array, positions: jax.Array, slots: jax.Array, x: jax.Array,
                y: jax.Array, weight: jax.Array, *, depth: int, n_steps: int, method: str = "lm",
                vectorize: int = 1) -> RefitState:
    """Up to `n_steps` steps of `method` ('lm' or 'lbfgs') for every program [P, L], each stopping after
    PATIENCE[method] steps without progress, `vectorize` programs at a time (vmapped side by side), the rest in
    sequence; x [N, D], y and weight [N] (0 for padding) are shared. Pure: traceable with
    jax.ShapeDtypeStruct inputs for any target."""
    step = {"lm": _lm_step, "lbfgs": _lbfgs_step}[method]
    patience = PATIENCE[method]
    data = (x, y, weight)

    def one(arguments):
        state, program = arguments

        def body(carry):
            state, i = carry
            return step(state, program, data, depth), i + 1

        return jax.lax.while_loop(lambda c: (c[1] < n_steps) & (c[0].stalls < patience), body, (state, 0))[0]

    # batch_size=1 would still vmap (a batch of one), and a vmapped switch computes all its branches.
    return jax.lax.map(one, (state, (codes, positions, slots)), batch_size=None if vectorize == 1 else vectorize)


def padded_points(x: np.ndarray, y: np.ndarray) -> tuple[jax.Array, jax.Array, jax.Array]:
    """x, y and weights padded to a power of two of columns and of points up to 256, then to a multiple of
    256 points (SRBench's 750 fit points take 768), so that data sets of similar sizes share one compiled
    refit."""
    n = len(y)
    pad = (power_of_two(n) if n <= 256 else -(-n // 256) * 256) - n
    x = np.pad(x, ((0, pad), (0, power_of_two(x.shape[1], smallest=2) - x.shape[1])), constant_values=1.0)
    y = np.concatenate([y, np.zeros(pad)])
    weight = np.concatenate([np.ones(n), np.zeros(pad)])
    return jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32), jnp.asarray(weight, jnp.float32)


def fit_constants(expressions: Sequence[Expression], x, y, *, vectorize: int, method: str = "lm",
                  max_points: int = 1024, max_iter: int = 100, time_limit: float | None = None,
                  steps_per_call: int = 10) -> list[Expression]:
    """The expressions with their constants refit on ½·MSE over the first `max_points` rows of x [N, D],
    y [N] by `method` ('lm': Levenberg–Marquardt; 'lbfgs': optax's L-BFGS), all in one compiled call per
    `steps_per_call` steps. Stops after `max_iter` steps, or when a call ends past `time_limit` seconds (one
    call always runs); a formula stops early after PATIENCE[method] steps without progress. Each formula keeps the
    best constants it saw (its decoded ones if nothing improved them). Formulas without constants come back
    unchanged.

    `vectorize` formulas run vmapped side by side, the rest in sequence: the caller decides for the device
    the refit runs on (`vectorize_for`)."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    expressions = list(expressions)
    x = np.asarray(x, np.float64)
    x = x[:, None] if x.ndim == 1 else x
    y = np.asarray(y, np.float64)
    if not any(e.constants for e in expressions):
        return expressions
    # Padded to a power of two of formulas (constant zero programs), as the points are, to share compilations.
    padding = power_of_two(len(expressions), smallest=16) - len(expressions)
    programs = compile_programs(expressions + [Expression((0.0,))] * padding, x.shape[1])
    data = padded_points(x[:max_points], y[:max_points])
    arrays = jnp.asarray(programs.codes), jnp.asarray(programs.positions), jnp.asarray(programs.slots)
    state = init_state(jnp.asarray(programs.constants, jnp.float32), method)
    # The padding programs start converged: run in sequence, they would cost as much as real ones.
    state = state._replace(stalls=jnp.asarray(np.arange(len(programs.codes)) >= len(expressions), jnp.int32)
                           * PATIENCE[method])
    start, done = time.perf_counter(), 0
    while done < max_iter and (done == 0 or time_limit is None or time.perf_counter() - start < time_limit):
        n_steps = min(steps_per_call, max_iter - done)
        state = refit_steps(state, *arrays, *data, depth=programs.depth, n_steps=n_steps, method=method,
                            vectorize=min(vectorize, len(programs.codes)))
        done += n_steps
        if bool(jnp.all(state.stalls >= PATIENCE[method])):
            break  # every formula has converged
    best = np.asarray(state.constants, np.float64)
    return [with_constants(e, best[row]) if e.constants else e for row, e in enumerate(expressions)]


def vectorize_for(platform: str, population: int = 1 << 30) -> int:
    """How many formulas a refit on `platform` (a jax.Device's `platform`: 'cpu', 'gpu', 'tpu') runs side
    by side: a vmapped switch evaluates every operation of every token, which an accelerator absorbs and a
    CPU does not (10x slower measured), so one at a time on a CPU and all at once elsewhere."""
    return 1 if platform == "cpu" else population


def with_constants(expression: Expression, values: Sequence[float]) -> Expression:
    """The expression with its constants, in prefix order, replaced by `values`."""
    values = iter(values)
    return Expression.trusted(tuple(float(next(values)) if is_constant(t) else t for t in expression.prefix))
