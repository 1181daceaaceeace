"""What a training task hands the shared loop, and the compiled functions built from it.

A task (pretraining, property prediction, decoder training) is its parameters, its loss, its batches and its
evaluation; `snipjax.loop.run` does the rest. The train state is a plain dict `{step, params, opt_state}`
plus `frozen` when the task keeps parameters out of training: the optimizer never sees those, so they get no
gradients, no moments and stay bit-identical. `step` counts the updates done; update `k` (0-based) uses the
data stream's batch `k` and leaves `step = k + 1`. There is no dropout, so the state holds no RNG key.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

from snipjax import optim, parallel

Params = Any


class Task(NamedTuple):
    """One training program's pieces; every function is pure except `batches`, which makes a batch source.

    init:          key -> (trainable params, frozen params or {}); run once, already sharded by the loop.
    loss:          (params, frozen, batch) -> (scalar loss, metrics dict), over the global batch.
    example_batch: {name: ShapeDtypeStruct} of one global batch: the fields the loss reads (others are dropped).
    batches:       start_step -> a source whose `next()` gives (step, host-local batch) for start_step, ...
                   and `close()`; batch k must depend on k alone, so that a resumed run sees the same data.
    eval_batches:  host-local held-out batches, the same at every evaluation (fields as example_batch).
    evaluate:      (params, frozen, batch) -> pytree of arrays, one held-out batch's outputs (jitted).
    trim:          (host-local batch, agree) -> the batch with the padding it does not need cut off, where
                   agree(n) is the largest n over all processes (every host must cut to the same shape). Each
                   new shape compiles once; the loss must not depend on how much padding is left.
    summarize:     outputs of all eval batches (host numpy) -> {metric: float}, the evaluation that is logged.
    progress:      (metric, label) pairs the progress line shows after the loss.
    headline:      the last evaluation in one phrase, for the run's closing summary.
    resume_keys:   config keys that decide the data stream and the state: resuming with others is refused.
    """

    init: Callable[[jax.Array], tuple[Params, Params]]
    loss: Callable[[Params, Params, dict], tuple[jax.Array, dict]]
    example_batch: dict[str, jax.ShapeDtypeStruct]
    batches: Callable[[int], Any]
    eval_batches: list[dict]
    evaluate: Callable[[Params, Params, dict], Any]
    summarize: Callable[[list], dict[str, float]]
    progress: tuple[tuple[str, str], ...] = ()
    headline: Callable[[dict], str] = lambda evaluation: f"held-out loss {evaluation.get('loss', float('nan')):.4f}"
    resume_keys: tuple[str, ...] = ("seed", "batch_size", "data", "model", "loss", "optim.kind")
    trim: Callable[[dict, Callable[[int], int]], dict] = lambda batch, agree: batch


class Steps(NamedTuple):
    """The compiled functions of one training run on one mesh."""

    abstract_state: Any  # ShapeDtypeStructs carrying their shardings: what a checkpoint restores into
    init: Callable  # key -> state, created already sharded
    train: Callable  # (state, batch) -> (state, metrics); donates the state it is given
    evaluate: Callable  # (params, frozen, batch) -> the task's eval outputs


def global_batch(task: Task, mesh: jax.sharding.Mesh, local: dict) -> dict:
    """This host's batch as the step takes it: the task's fields, its padding trimmed to the same shape on
    every host, lifted into global arrays."""
    fields = {k: local[k] for k in task.example_batch}
    return parallel.global_batch(mesh, task.trim(fields, parallel.max_over_processes))


def make_steps(task: Task, config, mesh: jax.sharding.Mesh) -> Steps:
    """Build and jit the run's functions; parameters and optimizer state are laid out by shape
    (`parallel.shard_by_shape`), batches split over all devices, metrics and eval outputs replicated."""
    optimizer = optim.make_optimizer(config.optim, config.total_steps)
    schedule = optim.learning_rate_schedule(config.optim, config.total_steps)

    def init(key):
        params, frozen = task.init(key)
        state = {"step": jnp.zeros((), jnp.int32), "params": params, "opt_state": optimizer.init(params)}
        if frozen:
            state["frozen"] = frozen
        return state

    def train_step(state, batch):
        frozen = state.get("frozen", {})
        grads, metrics = jax.grad(task.loss, has_aux=True)(state["params"], frozen, batch)
        updates, opt_state = optimizer.update(grads, state["opt_state"], state["params"])
        metrics = {**metrics, "grad_norm": optax.tree.norm(grads), "learning_rate": schedule(state["step"])}
        new_state = {**state, "step": state["step"] + 1, "params": optax.apply_updates(state["params"], updates),
                     "opt_state": opt_state}
        return new_state, metrics

    abstract = jax.eval_shape(init, jax.random.key(0))
    shardings = parallel.shard_by_shape(mesh, abstract, config.mesh.fsdp_min_size)
    batch, replicated = parallel.batch_sharding(mesh), parallel.replicated(mesh)
    return Steps(
        abstract_state=jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
                                    abstract, shardings),
        init=jax.jit(init, out_shardings=shardings),
        train=jax.jit(train_step, in_shardings=(shardings, batch), out_shardings=(shardings, replicated),
                      donate_argnums=0),
        evaluate=jax.jit(task.evaluate, in_shardings=(shardings["params"], shardings.get("frozen", {}), batch),
                         out_shardings=replicated),
    )
