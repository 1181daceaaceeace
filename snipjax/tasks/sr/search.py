"""Latent optimizers behind one ask/tell interface, for latent space optimization (maximizing a fitness).

    optimizer = GreyWolf(iterations=80)                # or EvolutionStrategy(optax.adam(0.05), ...), or CMAES()
    state = optimizer.init(population, fitness_of_population, key)
    for _ in range(iterations):
        candidates = optimizer.ask(state)                      # [P, d]
        state = optimizer.tell(state, candidates, fitness(candidates))
    best_x, best_fitness = state.best, state.best_fitness

State is a pytree and `ask`/`tell` are jitted, so the loop around them is the only Python; the fitness (decode,
refit, score) runs wherever it runs. Every optimizer keeps the best point seen.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax
from evosax.algorithms.distribution_based import cma_es as evosax_cma


def _finite(fitness: jax.Array) -> jax.Array:
    return jnp.where(jnp.isfinite(fitness), fitness, -jnp.inf)


def _track_best(state, candidates: jax.Array, fitness: jax.Array) -> dict:
    top = jnp.argmax(fitness)
    better = fitness[top] > state.best_fitness
    return {"best": jnp.where(better, candidates[top], state.best),
            "best_fitness": jnp.where(better, fitness[top], state.best_fitness)}


class GreyWolfState(NamedTuple):
    population: jax.Array  # [P, d]
    fitness: jax.Array  # [P]
    elites: jax.Array  # [3, d]: α, β, δ so far
    elite_fitness: jax.Array  # [3]
    iteration: jax.Array
    key: jax.Array

    @property
    def best(self) -> jax.Array:
        return self.elites[0]

    @property
    def best_fitness(self) -> jax.Array:
        return self.elite_fitness[0]


def _leaders(points, fitness, elites, elite_fitness):
    """The best three of the population and the previous elites (α, β, δ), best first."""
    pool = jnp.concatenate([elites, points])
    pool_fitness = jnp.concatenate([elite_fitness, fitness])
    _, top = jax.lax.top_k(_finite(pool_fitness), 3)
    return pool[top], pool_fitness[top]


@dataclasses.dataclass(frozen=True)
class GreyWolf:
    """The Grey Wolf Optimizer as SNIP's LSO runs it (alg_update.py): leaders α, β, δ are the best three of the
    population and the previous elites; a = 2 − 2t/T; each wolf moves to the mean of X_ℓ − A·|C·X_ℓ − X| over
    the leaders, with A = 2a·r1 − a and C = 2·r2 drawn per coordinate; positions are clipped to the scalar
    range of the current population."""

    iterations: int = 80

    def init(self, population: jax.Array, fitness: jax.Array, key: jax.Array) -> GreyWolfState:
        empty = jnp.full(3, -jnp.inf)
        elites, elite_fitness = _leaders(population, fitness, jnp.zeros((3, population.shape[1])), empty)
        return GreyWolfState(population, fitness, elites, elite_fitness, jnp.int32(0), key)

    @functools.partial(jax.jit, static_argnums=0)
    def ask(self, state: GreyWolfState) -> jax.Array:
        key = jax.random.fold_in(state.key, state.iteration)
        a = 2.0 - 2.0 * state.iteration / self.iterations
        r1, r2 = jax.random.uniform(key, (2, 3, *state.population.shape))
        leaders = state.elites[:, None, :]  # [3, 1, d]
        A, C = 2 * a * r1 - a, 2 * r2
        moved = leaders - A * jnp.abs(C * leaders - state.population[None])
        return jnp.clip(moved.mean(axis=0), state.population.min(), state.population.max())

    @functools.partial(jax.jit, static_argnums=0)
    def tell(self, state: GreyWolfState, candidates: jax.Array, fitness: jax.Array) -> GreyWolfState:
        elites, elite_fitness = _leaders(candidates, fitness, state.elites, state.elite_fitness)
        return state._replace(population=candidates, fitness=fitness, elites=elites, elite_fitness=elite_fitness,
                              iteration=state.iteration + 1)


class EvolutionState(NamedTuple):
    mean: jax.Array  # [d]
    opt_state: optax.OptState
    best: jax.Array
    best_fitness: jax.Array
    iteration: jax.Array
    key: jax.Array


@dataclasses.dataclass(frozen=True)
class EvolutionStrategy:
    """An evolution strategy whose step is an optax update: antithetic pairs mean ± σ·ε estimate the fitness
    gradient from centred ranks (OpenAI-ES), and `optimizer` (e.g. `optax.adam`) ascends it."""

    optimizer: optax.GradientTransformation
    population_size: int = 50
    sigma: float = 0.5

    def init(self, population: jax.Array, fitness: jax.Array, key: jax.Array) -> EvolutionState:
        """Start from the fittest point of a scored initial population."""
        best = jnp.argmax(_finite(fitness))
        mean = population[best]
        return EvolutionState(mean, self.optimizer.init(mean), mean, fitness[best], jnp.int32(0), key)

    @functools.partial(jax.jit, static_argnums=0)
    def ask(self, state: EvolutionState) -> jax.Array:
        noise = self._noise(state)
        return jnp.concatenate([state.mean + self.sigma * noise, state.mean - self.sigma * noise])

    def _noise(self, state: EvolutionState) -> jax.Array:
        """The perturbations of this iteration (the same in ask and tell)."""
        key = jax.random.fold_in(state.key, state.iteration)
        return jax.random.normal(key, (self.population_size // 2, state.mean.shape[0]))

    @functools.partial(jax.jit, static_argnums=0)
    def tell(self, state: EvolutionState, candidates: jax.Array, fitness: jax.Array) -> EvolutionState:
        fitness = _finite(fitness)
        ranks = jnp.argsort(jnp.argsort(fitness)) / (fitness.shape[0] - 1) - 0.5  # centred ranks in [-½, ½]
        half = fitness.shape[0] // 2
        noise = self._noise(state)
        gradient = (ranks[:half] - ranks[half:]) @ noise / (half * self.sigma)
        updates, opt_state = self.optimizer.update(-gradient, state.opt_state, state.mean)  # ascend
        return state._replace(mean=optax.apply_updates(state.mean, updates), opt_state=opt_state,
                              iteration=state.iteration + 1, **_track_best(state, candidates, fitness))


class CMAState(NamedTuple):
    cma: evosax_cma.State  # evosax's, minimizing the negated fitness
    key: jax.Array

    @property
    def best(self) -> jax.Array:
        return self.cma.best_solution

    @property
    def best_fitness(self) -> jax.Array:
        return -self.cma.best_fitness


@functools.cache
def _evosax_cma_es(population_size: int, d: int) -> evosax_cma.CMA_ES:
    """evosax's CMA-ES for points of `d` coordinates (cached: its jitted methods key on the instance)."""
    return evosax_cma.CMA_ES(population_size, jnp.zeros(d))


def _minimized(fitness: jax.Array) -> jax.Array:
    """A fitness to maximize as evosax's to minimize, non-finite as NaN, which evosax ranks last and never keeps
    as its best."""
    return jnp.where(jnp.isfinite(fitness), -fitness, jnp.nan)


@dataclasses.dataclass(frozen=True)
class CMAES:
    """evosax's CMA-ES behind this interface: (μ/μ_w, λ) with rank-one and rank-μ covariance updates, active
    (negative) weights for the worse half and cumulative step-size adaptation, with the default constants of
    Hansen's tutorial (arXiv:1604.00772). λ = `population_size`; `sigma=None` starts the step size at the
    initial population's spread (its mean per-coordinate standard deviation); non-finite fitness ranks last.
    It replaced a hand-written CMA-ES that did no better on the LSO ablation (results/sr/cma_side_by_side.md)."""

    population_size: int = 50
    sigma: float | None = None

    def init(self, population: jax.Array, fitness: jax.Array, key: jax.Array) -> CMAState:
        """Start at the fittest point of a scored initial population, with an isotropic covariance."""
        es = _evosax_cma_es(self.population_size, population.shape[1])
        best = jnp.argmax(_finite(fitness))
        sigma = jnp.std(population, axis=0).mean() if self.sigma is None else jnp.float32(self.sigma)
        cma = es.init(key, population[best], es.default_params.replace(std_init=sigma))
        return CMAState(cma.replace(best_solution=population[best], best_fitness=-_finite(fitness)[best]), key)

    def _sampled(self, state: CMAState) -> tuple[jax.Array, evosax_cma.State]:
        """This iteration's candidates and the state evosax samples them from (its eigenbasis refreshed)."""
        es = _evosax_cma_es(self.population_size, state.cma.mean.shape[0])
        key = jax.random.fold_in(state.key, state.cma.generation_counter)
        return es.ask(key, state.cma, es.default_params)

    @functools.partial(jax.jit, static_argnums=0)
    def ask(self, state: CMAState) -> jax.Array:
        return self._sampled(state)[0]

    @functools.partial(jax.jit, static_argnums=0)
    def tell(self, state: CMAState, candidates: jax.Array, fitness: jax.Array) -> CMAState:
        es = _evosax_cma_es(self.population_size, state.cma.mean.shape[0])
        _, sampled = self._sampled(state)  # ask is pure: redo its eigendecomposition, which evosax's tell reads
        cma, _ = es.tell(state.key, candidates, _minimized(fitness), sampled, es.default_params)
        # A generation with no finite fitness teaches nothing: keep the distribution (evosax would still decay
        # its paths and shrink its step), draw afresh next time.
        kept = state.cma.replace(generation_counter=cma.generation_counter)
        return state._replace(cma=jax.tree.map(lambda new, old: jnp.where(jnp.isfinite(fitness).any(), new, old),
                                               cma, kept))


# The latent optimizers by name, each built from (iterations, population size): what SNIPRegressor(optimizer=...),
# the SRBench runner, `bench lso` and results/sr offer. A new optimizer is a class above and a line here.
OPTIMIZERS = {
    "gwo": lambda iterations, population: GreyWolf(iterations=iterations),
    "es": lambda iterations, population: EvolutionStrategy(optax.adam(0.1), population_size=population, sigma=0.5),
    "cma": lambda iterations, population: CMAES(population_size=population),
}
