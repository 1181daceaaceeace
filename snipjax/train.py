"""Contrastive pretraining of SNIP.

  python -m snipjax.train --config configs/tiny.py --workdir /tmp/snip_tiny [--config.batch_size=64 ...]

The pretraining task for the shared loop (`snipjax.trainer`): both encoders, the contrastive loss, batches
from the generator and `eval_size`-way retrieval among held-out pairs. Restores from WORKDIR/checkpoints if a
checkpoint is there; see `snipjax.trainer` for what a run writes. Several processes (a TPU pod, SLURM, local
CPU processes: see launch/README.md) run the same command; add --detect_cluster, or
--coordinator_address/--num_processes/--process_id.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from snipjax import losses, models, parallel, trainer
from snipjax.data.pipeline import BatchProducer, make_batch
from snipjax.data.tokens import bucketed_length, point_width, trim_symbols
from snipjax.train_step import Task

EVAL_SEED_OFFSET = 1_000_003  # held-out pairs come from their own seed stream, disjoint from training's
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


def symbol_trim(config, max_len: int | None = None):
    """A Task's `trim`: symbol sequences cut to the bucketed length of the longest in the global batch
    (`config.length_bucket`; `max_len`, default config.data.max_len, is what they come padded to). Batches
    without symbols pass unchanged."""
    max_len = config.data.max_len if max_len is None else max_len

    def trim(batch: dict, agree) -> dict:
        if "symbol_len" not in batch:
            return batch
        return trim_symbols(batch, agree(bucketed_length(batch["symbol_len"], config.length_bucket, max_len)))

    return trim


def make_loss_fn(model, loss_kind: str):
    """`loss_fn(params, batch) -> (loss, metrics)`: both encoders and the contrastive loss over the batch."""

    def loss_fn(params, batch):
        out = model.apply({"params": params}, *(batch[k] for k in MODEL_INPUTS))
        return losses.contrastive_loss(out, kind=loss_kind)

    return loss_fn


def held_out_batch(config) -> dict[str, np.ndarray]:
    """This host's share of the fixed evaluation pairs: indices 0..eval_size-1 of the seed stream
    seed + EVAL_SEED_OFFSET."""
    per_process = config.eval_size // jax.process_count()
    start = jax.process_index() * per_process
    return model_inputs(make_batch(config.data, config.seed + EVAL_SEED_OFFSET,
                                   np.arange(start, start + per_process)))


def pretraining_task(config, mesh: jax.sharding.Mesh | None) -> Task:
    """SNIP's two encoders trained with the contrastive loss of `config.loss.kind` on generated pairs, their
    layers computed for `mesh`'s devices (None: one device)."""
    model = models.make_snip(config, parallel.kernels_for(config, mesh))
    loss_fn = make_loss_fn(model, config.loss.kind)

    def init(key):
        inputs = {k: jnp.zeros(s.shape, s.dtype) for k, s in example_inputs(config).items()}
        return model.init(key, *(inputs[k] for k in MODEL_INPUTS))["params"], {}

    def batches(start_step: int) -> BatchProducer:
        return BatchProducer(config.data, config.seed, config.batch_size, jax.process_index(),
                             jax.process_count(), start_step=start_step, workers=config.data.workers)

    return Task(
        init=init,
        loss=lambda params, frozen, batch: loss_fn(params, batch),
        example_batch=example_inputs(config, config.batch_size),
        batches=batches,
        eval_batches=[held_out_batch(config)],
        evaluate=lambda params, frozen, batch: loss_fn(params, batch)[1],
        summarize=lambda outputs: outputs[0],  # one batch: retrieval among all eval_size pairs
        progress=(("top1_n2s", "top1 n→s"), ("top1_s2n", "top1 s→n")),
        headline=lambda e: (f"held-out {config.eval_size}-way retrieval top-1 numeric→symbolic {e['top1_n2s']:.3f}, "
                            f"symbolic→numeric {e['top1_s2n']:.3f} (chance {1 / config.eval_size:.4f})"),
        trim=symbol_trim(config),
    )


def train_and_evaluate(config, workdir: str) -> dict[str, float]:
    """Pretrain to `config.total_steps` (resuming from `workdir`); returns the last held-out retrieval."""
    return trainer.run(pretraining_task, config, workdir)


if __name__ == "__main__":
    trainer.cli(train_and_evaluate)
