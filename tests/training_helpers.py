"""Shared by the training tests: a shrunken config and readers for what a run writes."""

import json
import os

from snipjax.config import default_config

NOT_METRICS = ("step", "split", "samples_per_s", "data_ms", "step_ms", "eta_s")  # bookkeeping and timings


def small_config(**overrides):
    """The paper config shrunk to seconds per run on CPU: 1-layer encoders of width 32, batch 16, 50 points.
    Symbol padding stays (length_bucket 0): one compiled step per run, where each cut length would compile its
    own; the tests of cutting set length_bucket themselves."""
    config = default_config()
    config.length_bucket = 0
    config.data.n_points = 50
    config.data.max_len = 64
    config.data.workers = 0
    config.model.update(d_model=32, n_layers=1, n_heads=2, d_ff=64, latent_dim=32, float_emb_dim=8,
                        max_positions=64)
    config.optim.update(lr=1e-3, warmup_steps=5)
    config.update(batch_size=16, total_steps=6, log_every=1, eval_every=3, eval_size=16, checkpoint_every=2,
                  keep_checkpoints=10)
    for key, value in overrides.items():
        config.update_from_flattened_dict({key: value})
    return config


def read_metrics(workdir, split="train"):
    """{step: metrics} of one split (timings left out); the last record of each step counts, since a resumed
    run repeats the steps after its checkpoint."""
    records = {}
    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        for line in f:
            record = json.loads(line)
            if record["split"] == split:
                records[record["step"]] = {k: v for k, v in record.items() if k not in NOT_METRICS}
    return records


def least_squares_task(offset: float | None = None):
    """A task of a few lines, so that a test runs the real loop in about a second: w of y = x·w (+ a frozen
    `offset`, kept out of the optimizer, when given) on 64 rows, batches of 16."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from snipjax.data.pipeline import EpochBatches
    from snipjax.task import Task

    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 3)).astype(np.float32)
    data = {"x": x, "y": (x @ np.array([1.0, -2.0, 0.5], np.float32) + (offset or 0.0)).astype(np.float32)}
    frozen = {} if offset is None else {"offset": jnp.array(offset)}

    def loss(params, frozen, batch):
        error = batch["x"] @ params["w"] + frozen.get("offset", 0.0) - batch["y"]
        return jnp.mean(error**2), {"loss": jnp.mean(error**2)}

    return Task(
        init=lambda key: ({"w": jnp.zeros(3)}, frozen),
        loss=loss,
        example_batch={"x": jax.ShapeDtypeStruct((16, 3), jnp.float32), "y": jax.ShapeDtypeStruct((16,), jnp.float32)},
        batches=lambda start: EpochBatches(data, 16, seed=0, start_step=start),
        eval_batches=[{"x": x[:16], "y": data["y"][:16]}],
        evaluate=lambda params, frozen, batch: loss(params, frozen, batch)[1],
        summarize=lambda outputs: outputs[0],
    )
