"""Decoder training for symbolic regression: points → frozen numeric encoder → mapper → expression decoder.

  python -m snipjax.tasks.sr.train --config configs/sr/tiny.py --workdir DIR --config.pretrained=runs/pretrain_cpu_10d

Trains the mapper and the decoder with next-token cross-entropy on the prefix tokens (constants included) of
generated expressions, teacher forced, while the numeric encoder stays frozen (`train_encoder=True` trains it
too). `pretrained` is the encoder's source (a pretraining workdir, an export dir, a converted SNIP
checkpoint): it decides the encoder's architecture and its data (points, sequence length), and
`config.model.decoder` adds the decoder. A `data.max_dim` above the encoder's widens its point embedder: the
new inputs start with no effect (`models.widen_point_embedder`), so a 1-D encoder begins a 2-D model. y is raw
unless `data.normalize_y` says otherwise, whatever the encoder was pretrained on: a formula's scale and offset
are only visible in raw y (the official SR pipeline). `pretrained_sr` instead starts everything from a
symbolic-regression checkpoint (a converted `snip-e2e-sr.pth`, or a workdir of this program). Runs on the shared loop
(`snipjax.loop`); held-out evaluation: loss, token accuracy and the share of expressions whose every token
is predicted right, on `eval_size` pairs of their own seed stream.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from snipjax import checkpoint, loop, models, parallel
from snipjax.data.pipeline import BatchProducer
from snipjax.task import Task
from snipjax.task_data import example_inputs, held_out_batch, symbol_trim, zero_inputs

ENCODER = "numeric_encoder"


def model_config(config) -> tuple[ml_collections.ConfigDict, dict | None, int | None]:
    """(the config of the whole SR model, the params to start from or None, the Dmax of the pretrained
    encoder when its point embedder must be widened to the config's, else None)."""
    if config.pretrained_sr:
        sr_config, params = checkpoint.load_params(config.pretrained_sr)
        if "decoder" not in sr_config.model:
            raise ValueError(f"{config.pretrained_sr} holds no decoder (a SNIP encoder pair?): pass it as "
                             "--config.pretrained instead, for the encoder alone")
        return sr_config, params, None
    if not config.pretrained:
        return config, None, None
    encoder_config, params = checkpoint.load_params(config.pretrained)
    if ENCODER not in params:
        raise ValueError(f"{config.pretrained} has no numeric encoder (it holds {sorted(params)})")
    sr_config = ml_collections.ConfigDict(encoder_config.to_dict())
    sr_config.model.decoder = config.model.decoder
    sr_config.data.normalize_y = config.data.normalize_y
    encoder_dim = encoder_config.data.max_dim
    if config.data.max_dim > encoder_dim:
        sr_config.data.max_dim = config.data.max_dim
        return sr_config, {ENCODER: params[ENCODER]}, encoder_dim
    return sr_config, {ENCODER: params[ENCODER]}, None


def sequence_targets(symbols: jax.Array, symbol_len: jax.Array):
    """Decoder inputs (all but the last position), next-token targets and the mask of real targets: every
    token after the opening `<EOS>`, the closing one included."""
    inputs, targets = symbols[:, :-1], symbols[:, 1:]
    mask = jnp.arange(targets.shape[1])[None, :] < (symbol_len - 1)[:, None]
    return inputs, targets, mask


def sr_task(config, mesh: jax.sharding.Mesh | None) -> Task:
    """Teacher-forced decoder training on generated expressions, for the shared loop; the layers computed for
    `mesh`'s devices (None: one device)."""
    sr_config, start, widen_from = model_config(config)
    model = models.make_sr_model(sr_config, parallel.kernels_for(config, mesh))
    data = ml_collections.ConfigDict(sr_config.data.to_dict())
    data.workers = config.data.workers
    shapes = example_inputs(sr_config, config.batch_size)

    def init(key):
        params = model.init(key, *zero_inputs(sr_config))["params"]
        if start is not None:
            fresh_embedder = params[ENCODER]["embedder"]
            params = {**params, **jax.tree.map(jnp.asarray, start)}
            if widen_from is not None:
                params[ENCODER] = {**params[ENCODER], "embedder": models.widen_point_embedder(
                    params[ENCODER]["embedder"], fresh_embedder, widen_from, sr_config.data.max_dim)}
        if config.train_encoder:
            return params, {}
        return {k: v for k, v in params.items() if k != ENCODER}, {ENCODER: params[ENCODER]}

    def token_stats(params, frozen, batch):
        inputs, targets, mask = sequence_targets(batch["symbols"], batch["symbol_len"])
        logits = model.apply({"params": {**params, **frozen}}, batch["points"], inputs, batch["symbol_len"] - 1)
        nll = optax.softmax_cross_entropy_with_integer_labels(logits, targets)
        correct = (jnp.argmax(logits, axis=-1) == targets) | ~mask
        return {"nll": jnp.sum(nll * mask), "tokens": jnp.sum(mask), "correct": jnp.sum(correct & mask),
                "exact": jnp.sum(jnp.all(correct, axis=1)), "sequences": jnp.asarray(targets.shape[0])}

    def loss(params, frozen, batch):
        stats = token_stats(params, frozen, batch)
        value = stats["nll"] / stats["tokens"]
        return value, {"loss": value, "token_accuracy": stats["correct"] / stats["tokens"]}

    def summarize(outputs) -> dict[str, float]:
        total = {k: float(sum(np.sum(o[k]) for o in outputs)) for k in outputs[0]}
        return {"loss": total["nll"] / total["tokens"], "token_accuracy": total["correct"] / total["tokens"],
                "sequence_accuracy": total["exact"] / total["sequences"]}

    return Task(
        init=init,
        loss=loss,
        example_batch=shapes,
        batches=lambda start_step: BatchProducer(data, config.seed, config.batch_size, jax.process_index(),
                                                 jax.process_count(), start_step=start_step,
                                                 workers=config.data.workers),
        eval_batches=[held_out_batch(data, config.seed, config.eval_size)],
        evaluate=token_stats,
        summarize=summarize,
        progress=(("token_accuracy", "token acc"),),
        headline=lambda e: (f"held-out teacher-forced token accuracy {e['token_accuracy']:.3f}, expressions "
                            f"entirely right {e['sequence_accuracy']:.3f}, loss {e['loss']:.4f}"),
        resume_keys=("seed", "batch_size", "data", "model", "pretrained", "pretrained_sr", "train_encoder",
                     "optim.kind"),
        trim=symbol_trim(config, sr_config.data.max_len),
    )


def train_and_evaluate(config, workdir: str) -> dict[str, float]:
    """Train mapper and decoder to `config.total_steps` (resuming from `workdir`); returns the held-out eval."""
    return loop.run(sr_task, config, workdir)


if __name__ == "__main__":
    loop.cli(train_and_evaluate)
