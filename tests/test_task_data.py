"""What the tasks share: each host's rows of the evaluation arrays and the held-out pairs."""

import jax
import numpy as np

from snipjax import task_data
from snipjax.data.pipeline import make_batch
from training_helpers import small_config


def test_each_host_takes_its_contiguous_share_in_process_order(monkeypatch):
    monkeypatch.setattr(jax, "process_count", lambda: 4)
    shares = []
    for host in range(4):
        monkeypatch.setattr(jax, "process_index", lambda host=host: host)
        shares.append(task_data.host_rows(200, start=400))
    assert shares == [slice(400, 450), slice(450, 500), slice(500, 550), slice(550, 600)]


def test_held_out_pairs_are_the_first_of_their_own_seed_stream(monkeypatch):
    config = small_config()
    monkeypatch.setattr(jax, "process_count", lambda: 2)
    monkeypatch.setattr(jax, "process_index", lambda: 1)
    local = task_data.held_out_batch(config.data, config.seed, 16)
    whole = make_batch(config.data, config.seed + task_data.EVAL_SEED_OFFSET, np.arange(16))
    assert sorted(local) == sorted(task_data.MODEL_INPUTS)
    for key in task_data.MODEL_INPUTS:
        np.testing.assert_array_equal(local[key], whole[key][8:])
