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
