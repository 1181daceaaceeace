"""Latent optimizers: both find the optimum of simple fitness functions through the same ask/tell interface."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from snipjax.tasks.sr import search
from snipjax.tasks.sr.search import CMAES, EvolutionStrategy, GreyWolf

OPTIMUM = jnp.array([1.5, -0.5, 0.8, 2.0])


def sphere(points):
    return -jnp.sum(jnp.square(points - OPTIMUM), axis=-1)


def ellipsoid(points):  # axes scaled over a factor of 30
    return -jnp.sum(jnp.array([1.0, 10.0, 0.3, 3.0]) * jnp.square(points - OPTIMUM), axis=-1)


def optimize(optimizer, fitness, iterations, seed=0):
    key = jax.random.key(seed)
    population = 3.0 * jax.random.normal(key, (50, OPTIMUM.shape[0]))
    state = optimizer.init(population, fitness(population), jax.random.fold_in(key, 1))
    history = [float(state.best_fitness)]
    for _ in range(iterations):
        candidates = optimizer.ask(state)
        assert candidates.shape == population.shape
        state = optimizer.tell(state, candidates, fitness(candidates))
        history.append(float(state.best_fitness))
    return state, history


@pytest.mark.parametrize("optimizer", [GreyWolf(iterations=80),
                                       EvolutionStrategy(optax.adam(0.1), population_size=50, sigma=0.3),
                                       CMAES(population_size=50)],
                         ids=["gwo", "es", "cma"])
@pytest.mark.parametrize("fitness", [sphere, ellipsoid])
def test_the_optimizers_find_the_optimum(optimizer, fitness):
    state, history = optimize(optimizer, fitness, 80)
    assert np.all(np.diff(history) >= 0)  # the best is kept
    np.testing.assert_allclose(state.best, OPTIMUM, atol=0.15)
    assert history[-1] > history[0]


def test_grey_wolves_stay_within_the_populations_range():
    optimizer = GreyWolf(iterations=10)
    population = jax.random.uniform(jax.random.key(0), (50, 3), minval=-1.0, maxval=2.0)
    state = optimizer.init(population, sphere(jnp.pad(population, ((0, 0), (0, 1)))), jax.random.key(1))
    candidates = optimizer.ask(state)
    assert float(candidates.min()) >= -1.0 and float(candidates.max()) <= 2.0


def test_non_finite_fitness_never_leads():
    optimizer = GreyWolf()
    population = jnp.arange(12.0).reshape(6, 2)
    fitness = jnp.array([1.0, jnp.nan, 3.0, -jnp.inf, 2.0, 0.5])
    state = optimizer.init(population, fitness, jax.random.key(0))
    np.testing.assert_array_equal(state.elite_fitness, [3.0, 2.0, 1.0])
    es = EvolutionStrategy(optax.sgd(0.1), population_size=6)
    assert float(es.init(population, fitness, jax.random.key(0)).best_fitness) == 3.0


def test_cma_es_keeps_the_maximum_and_ranks_non_finite_fitness_last():
    """evosax minimizes: the wrapper hands it the negated fitness, non-finite as NaN, and reads its best back."""
    optimizer = CMAES(population_size=6)
    population = jnp.arange(12.0).reshape(6, 2)
    state = optimizer.init(population, jnp.array([1.0, jnp.nan, 3.0, -jnp.inf, 2.0, 0.5]), jax.random.key(0))
    assert float(state.best_fitness) == 3.0
    np.testing.assert_array_equal(state.best, population[2])
    np.testing.assert_array_equal(state.cma.mean, population[2])
    np.testing.assert_allclose(state.cma.std, jnp.std(population, axis=0).mean())
    candidates = optimizer.ask(state)
    np.testing.assert_array_equal(optimizer.ask(state), candidates)  # ask is pure
    told = optimizer.tell(state, candidates, jnp.full(6, jnp.nan))  # nothing finite: the distribution stays
    np.testing.assert_array_equal(told.cma.mean, state.cma.mean)
    np.testing.assert_array_equal(told.cma.std, state.cma.std)
    assert float(told.best_fitness) == 3.0 and int(told.cma.generation_counter) == 1
    assert not np.array_equal(optimizer.ask(told), candidates)  # the next generation draws afresh
    told = optimizer.tell(state, candidates, jnp.array([jnp.nan, 5.0, 1.0, 2.0, 4.0, -jnp.inf]))
    assert float(told.best_fitness) == 5.0
    np.testing.assert_array_equal(told.best, candidates[1])
    # The mean moves towards the fittest candidates, away from the NaN and -inf ones ranked last.
    distance = np.linalg.norm(told.cma.mean - candidates, axis=1)
    assert distance[1] < distance[0] and distance[4] < distance[5]


def test_cma_es_adapts_its_covariance_to_an_ill_conditioned_fitness():
    state, _ = optimize(CMAES(population_size=50), ellipsoid, 60)
    scales = np.sqrt(np.diag(np.asarray(state.cma.C)))
    weights = np.array([1.0, 10.0, 0.3, 3.0])  # curvature per axis: the search narrows where it is steep
    assert scales[np.argmax(weights)] < scales[np.argmin(weights)]


def test_every_registered_optimizer_runs_behind_the_one_interface():
    """What SNIPRegressor, the SRBench runner and the benchmarks offer is this table: each entry builds an
    optimizer that improves a simple fitness from a scored population."""
    def fitness(points):
        return -jnp.sum((points - 1.0) ** 2, axis=-1)

    population = jax.random.normal(jax.random.key(0), (12, 3))
    for name, build in search.OPTIMIZERS.items():
        optimizer = build(10, 12)
        state = optimizer.init(population, fitness(population), jax.random.key(1))
        start = float(state.best_fitness)
        for _ in range(10):
            candidates = optimizer.ask(state)
            state = optimizer.tell(state, candidates, fitness(candidates))
        assert float(state.best_fitness) > start, name
