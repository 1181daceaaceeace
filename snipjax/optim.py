"""Optimizer recipes: the official Adam with inverse-square-root decay, or a cosine decay, under clipping."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

OPTIMIZERS = ("adam_inverse_sqrt", "adamw_cosine")


def inverse_sqrt_schedule(lr: float, warmup_steps: int, warmup_init_lr: float) -> optax.Schedule:
    """The official schedule (fairseq/XLM `AdamInverseSqrtWithWarmup`), as a function of updates done.

    Rises linearly from `warmup_init_lr` to `lr` over `warmup_steps` updates, then decays as
    lr * sqrt(warmup_steps / step). The first update uses `warmup_init_lr`, as in the official code.
    """

    def schedule(step):
        step = jnp.asarray(step, jnp.float32)
        warmup = warmup_init_lr + step * (lr - warmup_init_lr) / warmup_steps
        decay = lr * jnp.sqrt(warmup_steps / jnp.maximum(step, 1.0))
        return jnp.where(step < warmup_steps, warmup, decay)

    return schedule


def learning_rate_schedule(optim_config, total_steps: int) -> optax.Schedule:
    """'adam_inverse_sqrt': the official schedule; 'adamw_cosine': the same warmup, then cosine to 0 at the end."""
    if optim_config.kind == "adam_inverse_sqrt":
        return inverse_sqrt_schedule(optim_config.lr, optim_config.warmup_steps, optim_config.warmup_init_lr)
    if optim_config.kind == "adamw_cosine":
        return optax.warmup_cosine_decay_schedule(
            init_value=optim_config.warmup_init_lr, peak_value=optim_config.lr,
            warmup_steps=optim_config.warmup_steps, decay_steps=max(total_steps, optim_config.warmup_steps + 1))
    raise ValueError(f"optim.kind must be one of {OPTIMIZERS}, got {optim_config.kind!r}")


def make_optimizer(optim_config, total_steps: int) -> optax.GradientTransformation:
    """Clip the global gradient norm (0.5 in SNIP), then Adam on the scheduled learning rate.

    Weight decay is decoupled (AdamW) for both kinds: the official Adam (XLM's) also shrinks the weights by
    lr * weight_decay outside the moment estimates. Betas (0.9, 0.999) and eps 1e-8 are the official ones (XLM
    adds eps before the bias correction, optax after it: a difference of order 1e-8 in the denominator).
    """
    schedule = learning_rate_schedule(optim_config, total_steps)
    return optax.chain(
        optax.clip_by_global_norm(optim_config.clip_norm),
        optax.adamw(schedule, b1=0.9, b2=0.999, eps=1e-8, weight_decay=optim_config.weight_decay,
                    mask=None if optim_config.kind == "adam_inverse_sqrt" else _matrices))


def _matrices(params):
    """AdamW decays matrices only, not biases, norms or the learned temperature and bias (the official Adam
    decays every parameter, and keeps doing so under 'adam_inverse_sqrt')."""
    return jax.tree.map(lambda p: p.ndim >= 2, params)
