"""The train state and its compiled functions: sharded init, the jitted train step and the eval step.

The state is a plain dict `{step, params, opt_state}`. `step` counts the updates done; update `k` (0-based)
uses the data stream's batch `k` and leaves `step = k + 1`. There is no dropout, so the state holds no RNG key.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

from snipjax import losses, models, optim, parallel
from snipjax.data.tokens import point_width

MODEL_INPUTS = ("points", "symbols", "symbol_len")  # the batch fields the model reads, in call order


def model_inputs(batch: dict) -> dict:
    """The fields of a data batch that the model reads."""
    return {k: batch[k] for k in MODEL_INPUTS}


def example_inputs(config, batch_size: int = 1) -> dict[str, jax.ShapeDtypeStruct]:
    """Shapes and dtypes of one batch of model inputs (what `init` traces with)."""
    return {
        "points": jax.ShapeDtypeStruct((batch_size, config.data.n_points, point_width(config.data.max_dim)),
                                       jnp.int32),
        "symbols": jax.ShapeDtypeStruct((batch_size, config.data.max_len), jnp.int32),
        "symbol_len": jax.ShapeDtypeStruct((batch_size,), jnp.int32),
    }


def make_loss_fn(model, loss_kind: str) -> Callable:
    """`loss_fn(params, batch) -> (loss, metrics)`: both encoders and the contrastive loss over the batch."""

    def loss_fn(params, batch):
        out = model.apply({"params": params}, *(batch[k] for k in MODEL_INPUTS))
        return losses.contrastive_loss(out, kind=loss_kind)

    return loss_fn


class Steps(NamedTuple):
    """The compiled functions of one training run on one mesh."""

    abstract_state: Any  # ShapeDtypeStructs carrying their shardings: what a checkpoint restores into
    init: Callable  # key -> state, created already sharded
    train: Callable  # (state, batch) -> (state, metrics); donates the state it is given
    evaluate: Callable  # (params, batch) -> metrics


def make_steps(config, mesh: jax.sharding.Mesh) -> Steps:
    """Build and jit the run's functions; parameters and optimizer state are laid out by shape
    (`parallel.shard_by_shape`), batches split over all devices, metrics replicated."""
    model = models.make_snip(config)
    loss_fn = make_loss_fn(model, config.loss.kind)
    optimizer = optim.make_optimizer(config.optim, config.total_steps)
    schedule = optim.learning_rate_schedule(config.optim, config.total_steps)

    def init(key):
        inputs = {k: jnp.zeros(s.shape, s.dtype) for k, s in example_inputs(config).items()}
        params = model.init(key, *(inputs[k] for k in MODEL_INPUTS))["params"]
        return {"step": jnp.zeros((), jnp.int32), "params": params, "opt_state": optimizer.init(params)}

    def train_step(state, batch):
        grads, metrics = jax.grad(loss_fn, has_aux=True)(state["params"], batch)
        updates, opt_state = optimizer.update(grads, state["opt_state"], state["params"])
        metrics = {**metrics, "grad_norm": optax.tree.norm(grads), "learning_rate": schedule(state["step"])}
        new_state = {"step": state["step"] + 1, "params": optax.apply_updates(state["params"], updates),
                     "opt_state": opt_state}
        return new_state, metrics

    def eval_step(params, batch):
        return loss_fn(params, batch)[1]

    abstract = jax.eval_shape(init, jax.random.key(0))
    shardings = parallel.shard_by_shape(mesh, abstract, config.mesh.fsdp_min_size)
    batch, replicated = parallel.batch_sharding(mesh), parallel.replicated(mesh)
    return Steps(
        abstract_state=jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
                                    abstract, shardings),
        init=jax.jit(init, out_shardings=shardings),
        train=jax.jit(train_step, in_shardings=(shardings, batch), out_shardings=(shardings, replicated),
                      donate_argnums=0),
        evaluate=jax.jit(eval_step, in_shardings=(shardings["params"], batch), out_shardings=replicated),
    )
