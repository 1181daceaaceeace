"""The optimizer recipes against the official (XLM) Adam with inverse-sqrt warmup, written out in numpy."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from snipjax import optim
from snipjax.config import default_config


def official_lr(step, lr=4e-5, warmup=10_000, warmup_init_lr=1e-7):
    """`AdamInverseSqrtWithWarmup.get_lr_for_step` of the official code."""
    if step < warmup:
        return warmup_init_lr + step * (lr - warmup_init_lr) / warmup
    return lr * warmup**0.5 * step**-0.5


def official_updates(params, grads_per_step, lr_config):
    """XLM's Adam (eps added to sqrt(v) before the bias correction, decoupled weight decay) after torch's
    clip_grad_norm_, for a list of parameter arrays."""
    params = [p.astype(np.float64) for p in params]
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    for step, grads in enumerate(grads_per_step):
        norm = np.sqrt(sum(np.sum(g.astype(np.float64) ** 2) for g in grads))
        scale = min(1.0, lr_config.clip_norm / norm)
        lr = official_lr(step, lr_config.lr, lr_config.warmup_steps, lr_config.warmup_init_lr)
        for i, g in enumerate(grads):
            g = g * scale
            m[i] = 0.9 * m[i] + 0.1 * g
            v[i] = 0.999 * v[i] + 0.001 * g * g
            step_size = lr * np.sqrt(1 - 0.999 ** (step + 1)) / (1 - 0.9 ** (step + 1))
            params[i] = params[i] - lr_config.weight_decay * lr * params[i]
            params[i] = params[i] - step_size * m[i] / (np.sqrt(v[i]) + 1e-8)
    return params


def optim_config(**overrides):
    config = default_config().optim
    config.update(overrides)
    return config


def test_inverse_sqrt_schedule_is_the_official_one():
    schedule = optim.learning_rate_schedule(optim_config(), total_steps=1)
    for step in (0, 1, 5_000, 9_999, 10_000, 10_001, 40_000, 250_000):
        np.testing.assert_allclose(float(schedule(step)), official_lr(step), rtol=1e-6)


def test_cosine_schedule_warms_up_then_decays_to_zero():
    schedule = optim.learning_rate_schedule(optim_config(kind="adamw_cosine", warmup_steps=10), total_steps=110)
    np.testing.assert_allclose(float(schedule(0)), 1e-7, rtol=1e-4)
    np.testing.assert_allclose(float(schedule(10)), 4e-5, rtol=1e-6)
    np.testing.assert_allclose(float(schedule(60)), 2e-5, rtol=1e-5)
    assert float(schedule(110)) == 0.0


@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
def test_optimizer_matches_the_official_adam_with_clipping(weight_decay):
    config = optim_config(lr=1e-2, warmup_steps=3, weight_decay=weight_decay)
    rng = np.random.default_rng(0)
    params = [rng.standard_normal((3, 4)).astype(np.float32), rng.standard_normal(5).astype(np.float32)]
    # Norms from well below to far above the clip threshold 0.5.
    grads_per_step = [[s * rng.standard_normal(p.shape).astype(np.float32) for p in params]
                      for s in (0.01, 1.0, 10.0, 0.1, 3.0)]
    optimizer = optim.make_optimizer(config, total_steps=5)
    state, current = optimizer.init(params), [jnp.asarray(p) for p in params]
    for grads in grads_per_step:
        updates, state = jax.jit(optimizer.update)([jnp.asarray(g) for g in grads], state, current)
        current = optax.apply_updates(current, updates)
    for ours, official in zip(current, official_updates(params, grads_per_step, config)):
        np.testing.assert_allclose(np.asarray(ours), official, rtol=1e-5, atol=1e-7)


def test_unknown_optimizer_is_named():
    with pytest.raises(ValueError, match="adam_inverse_sqrt.*'sgd'"):
        optim.make_optimizer(ml_collections.ConfigDict({"kind": "sgd"}), total_steps=1)


def test_adamw_cosine_decays_matrices_only():
    config = optim_config(kind="adamw_cosine", weight_decay=0.1, warmup_steps=1, lr=0.5)
    optimizer = optim.make_optimizer(config, total_steps=10)
    params = {"kernel": jnp.ones((2, 2)), "bias": jnp.ones(2), "log_logit_scale": jnp.ones(())}
    grads = jax.tree.map(jnp.zeros_like, params)
    state = optimizer.init(params)
    for _ in range(2):
        updates, state = optimizer.update(grads, state, params)
        params = optax.apply_updates(params, updates)
    assert float(params["kernel"][0, 0]) < 1.0
    assert float(params["bias"][0]) == 1.0 and float(params["log_logit_scale"]) == 1.0
