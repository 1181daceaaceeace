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
import numpy as np
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
    mean: jax.Array  # [d]
    sigma: jax.Array  # step size
    covariance: jax.Array  # [d, d]
    basis: jax.Array  # [d, d]: eigenvectors of the covariance (columns)
    scales: jax.Array  # [d]: square roots of its eigenvalues
    path_sigma: jax.Array  # [d]: conjugate evolution path
    path_c: jax.Array  # [d]: evolution path of the covariance
    best: jax.Array
    best_fitness: jax.Array
    iteration: jax.Array
    key: jax.Array


@dataclasses.dataclass(frozen=True)
class CMAES:
    """CMA-ES, (μ/μ_w, λ) with rank-one and rank-μ covariance updates and cumulative step-size adaptation, with
    the default constants of Hansen's tutorial (arXiv:1604.00772). λ = `population_size`, μ = λ/2; candidates
    with a non-finite fitness get no weight. `sigma=None` starts the step size at the initial population's
    spread (its mean per-coordinate standard deviation)."""

    population_size: int = 50
    sigma: float | None = None

    def _constants(self, d: int) -> dict:
        mu = self.population_size // 2
        weights = np.log(mu + 0.5) - np.log(np.arange(1, mu + 1))
        weights /= weights.sum()
        mu_eff = 1.0 / np.sum(weights**2)
        c_sigma = (mu_eff + 2) / (d + mu_eff + 5)
        c_1 = 2 / ((d + 1.3) ** 2 + mu_eff)
        return {"weights": weights, "mu_eff": mu_eff, "c_sigma": c_sigma,
                "d_sigma": 1 + 2 * max(0.0, np.sqrt((mu_eff - 1) / (d + 1)) - 1) + c_sigma,
                "c_c": (4 + mu_eff / d) / (d + 4 + 2 * mu_eff / d), "c_1": c_1,
                "c_mu": min(1 - c_1, 2 * (mu_eff - 2 + 1 / mu_eff) / ((d + 2) ** 2 + mu_eff)),
                "expected_norm": np.sqrt(d) * (1 - 1 / (4 * d) + 1 / (21 * d**2))}

    def init(self, population: jax.Array, fitness: jax.Array, key: jax.Array) -> CMAState:
        """Start at the fittest point of a scored initial population, with an isotropic covariance."""
        fitness = _finite(fitness)
        d = population.shape[1]
        best = jnp.argmax(fitness)
        sigma = jnp.std(population, axis=0).mean() if self.sigma is None else jnp.float32(self.sigma)
        zeros = jnp.zeros(d)
        return CMAState(population[best], sigma, jnp.eye(d), jnp.eye(d), jnp.ones(d), zeros, zeros,
                        population[best], fitness[best], jnp.int32(0), key)

    @functools.partial(jax.jit, static_argnums=0)
    def ask(self, state: CMAState) -> jax.Array:
        return state.mean + state.sigma * self._steps(state)

    def _steps(self, state: CMAState) -> jax.Array:
        """The candidates' steps y ~ N(0, C) of this iteration (the same in ask and tell)."""
        key = jax.random.fold_in(state.key, state.iteration)
        z = jax.random.normal(key, (self.population_size, state.mean.shape[0]))
        return (z * state.scales) @ state.basis.T

    @functools.partial(jax.jit, static_argnums=0)
    def tell(self, state: CMAState, candidates: jax.Array, fitness: jax.Array) -> CMAState:
        fitness = _finite(fitness)
        d = state.mean.shape[0]
        k = self._constants(d)
        order = jnp.argsort(-fitness)[:len(k["weights"])]
        weights = jnp.asarray(k["weights"], jnp.float32) * jnp.isfinite(fitness[order])
        usable = weights.sum() > 0
        weights = weights / jnp.where(usable, weights.sum(), 1.0)
        steps = self._steps(state)[order]  # [μ, d], best first
        step = weights @ steps
        whitened = state.basis @ ((state.basis.T @ step) / state.scales)  # C^-1/2 · step
        path_sigma = ((1 - k["c_sigma"]) * state.path_sigma
                      + np.sqrt(k["c_sigma"] * (2 - k["c_sigma"]) * k["mu_eff"]) * whitened)
        norm = jnp.linalg.norm(path_sigma)
        generation = state.iteration + 1
        stalled = norm / jnp.sqrt(1 - (1 - k["c_sigma"]) ** (2 * generation)) < (
            (1.4 + 2 / (d + 1)) * k["expected_norm"])
        path_c = (1 - k["c_c"]) * state.path_c + stalled * np.sqrt(k["c_c"] * (2 - k["c_c"]) * k["mu_eff"]) * step
        rank_mu = (steps * weights[:, None]).T @ steps
        covariance = ((1 - k["c_1"] - k["c_mu"]) * state.covariance
                      + k["c_1"] * (jnp.outer(path_c, path_c)
                                    + (1 - stalled) * k["c_c"] * (2 - k["c_c"]) * state.covariance)
                      + k["c_mu"] * rank_mu)
        covariance = (covariance + covariance.T) / 2
        eigenvalues, basis = jnp.linalg.eigh(covariance)
        sigma = state.sigma * jnp.exp(k["c_sigma"] / k["d_sigma"] * (norm / k["expected_norm"] - 1))
        updated = state._replace(mean=state.mean + state.sigma * step, sigma=sigma, covariance=covariance,
                                 basis=basis, scales=jnp.sqrt(jnp.maximum(eigenvalues, 1e-20)),
                                 path_sigma=path_sigma, path_c=path_c)
        # A generation with no finite fitness teaches nothing: keep the distribution.
        kept = jax.tree.map(lambda new, old: jnp.where(usable, new, old), updated, state)
        return kept._replace(iteration=generation, **_track_best(state, candidates, fitness))


class EvosaxCMAState(NamedTuple):
    cma: evosax_cma.State  # evosax's, minimizing the negated fitness
    key: jax.Array

    @property
    def best(self) -> jax.Array:
        return self.cma.best_solution

    @property
    def best_fitness(self) -> jax.Array:
        return -self.cma.best_fitness


@functools.cache
def _evosax_cma(population_size: int, d: int) -> evosax_cma.CMA_ES:
    """evosax's CMA-ES for points of `d` coordinates (cached: its jitted methods key on the instance)."""
    return evosax_cma.CMA_ES(population_size, jnp.zeros(d))


def _minimized(fitness: jax.Array) -> jax.Array:
    """A fitness to maximize as evosax's to minimize, non-finite as NaN, which evosax ranks last and never keeps
    as its best."""
    return jnp.where(jnp.isfinite(fitness), -fitness, jnp.nan)


@dataclasses.dataclass(frozen=True)
class EvosaxCMAES:
    """evosax's CMA-ES (Hansen's tutorial constants, with active negative weights) behind this interface:
    λ = `population_size`; `sigma=None` starts the step size at the initial population's spread (its mean
    per-coordinate standard deviation); non-finite fitness ranks last."""

    population_size: int = 50
    sigma: float | None = None

    def init(self, population: jax.Array, fitness: jax.Array, key: jax.Array) -> EvosaxCMAState:
        """Start at the fittest point of a scored initial population, with an isotropic covariance."""
        es = _evosax_cma(self.population_size, population.shape[1])
        best = jnp.argmax(_finite(fitness))
        sigma = jnp.std(population, axis=0).mean() if self.sigma is None else jnp.float32(self.sigma)
        cma = es.init(key, population[best], es.default_params.replace(std_init=sigma))
        return EvosaxCMAState(cma.replace(best_solution=population[best], best_fitness=-_finite(fitness)[best]), key)

    def _sampled(self, state: EvosaxCMAState) -> tuple[jax.Array, evosax_cma.State]:
        """This iteration's candidates and the state evosax samples them from (its eigenbasis refreshed)."""
        es = _evosax_cma(self.population_size, state.cma.mean.shape[0])
        key = jax.random.fold_in(state.key, state.cma.generation_counter)
        return es.ask(key, state.cma, es.default_params)

    @functools.partial(jax.jit, static_argnums=0)
    def ask(self, state: EvosaxCMAState) -> jax.Array:
        return self._sampled(state)[0]

    @functools.partial(jax.jit, static_argnums=0)
    def tell(self, state: EvosaxCMAState, candidates: jax.Array, fitness: jax.Array) -> EvosaxCMAState:
        es = _evosax_cma(self.population_size, state.cma.mean.shape[0])
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
    "cma_evosax": lambda iterations, population: EvosaxCMAES(population_size=population),
}
