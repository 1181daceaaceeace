"""Contrastive pretraining of SNIP.

  python -m snipjax.train --config configs/tiny.py --workdir /tmp/snip_tiny [--config.batch_size=64 ...]

The pretraining task for the shared loop (`snipjax.loop`): both encoders, the contrastive loss, batches from
the generator and `eval_size`-way retrieval among held-out pairs. Restores from WORKDIR/checkpoints if a
checkpoint is there; see `snipjax.loop` for what a run writes. Several processes (a TPU pod, SLURM, local CPU
processes: see launch/README.md) run the same command; add --detect_cluster, or
--coordinator_address/--num_processes/--process_id. (`python -m snipjax.tasks.pretrain` is the same program.)
"""

from __future__ import annotations

import jax

from snipjax import loop, losses, models, parallel
from snipjax.data.pipeline import BatchProducer
from snipjax.task import Task
from snipjax.task_data import MODEL_INPUTS, example_inputs, held_out_batch, symbol_trim, zero_inputs


def make_loss_fn(model, loss_kind: str):
    """`loss_fn(params, batch) -> (loss, metrics)`: both encoders and the contrastive loss over the batch."""

    def loss_fn(params, batch):
        out = model.apply({"params": params}, *(batch[k] for k in MODEL_INPUTS))
        return losses.contrastive_loss(out, kind=loss_kind)

    return loss_fn


def pretraining_task(config, mesh: jax.sharding.Mesh | None) -> Task:
    """SNIP's two encoders trained with the contrastive loss of `config.loss.kind` on generated pairs, their
    layers computed for `mesh`'s devices (None: one device)."""
    model = models.make_snip(config, parallel.kernels_for(config, mesh))
    loss_fn = make_loss_fn(model, config.loss.kind)

    def batches(start_step: int) -> BatchProducer:
        return BatchProducer(config.data, config.seed, config.batch_size, jax.process_index(),
                             jax.process_count(), start_step=start_step, workers=config.data.workers)

    return Task(
        init=lambda key: (model.init(key, *zero_inputs(config))["params"], {}),
        loss=lambda params, frozen, batch: loss_fn(params, batch),
        example_batch=example_inputs(config, config.batch_size),
        batches=batches,
        eval_batches=[held_out_batch(config.data, config.seed, config.eval_size)],
        evaluate=lambda params, frozen, batch: loss_fn(params, batch)[1],
        summarize=lambda outputs: outputs[0],  # one batch: retrieval among all eval_size pairs
        progress=(("top1_n2s", "top1 n→s"), ("top1_s2n", "top1 s→n")),
        headline=lambda e: (f"held-out {config.eval_size}-way retrieval top-1 numeric→symbolic {e['top1_n2s']:.3f}, "
                            f"symbolic→numeric {e['top1_s2n']:.3f} (chance {1 / config.eval_size:.4f})"),
        trim=symbol_trim(config),
    )


def train_and_evaluate(config, workdir: str) -> dict[str, float]:
    """Pretrain to `config.total_steps` (resuming from `workdir`); returns the last held-out retrieval."""
    return loop.run(pretraining_task, config, workdir)


if __name__ == "__main__":
    loop.cli(train_and_evaluate)
