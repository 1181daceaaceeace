import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from snipjax.data import BatchProducer, DataSpec, floats, generate_sample, make_batch, tokens
from snipjax.data.samples import generate_samples
from snipjax.data.vocab import get_vocab

SPEC_1D = DataSpec(max_dim=1, with_properties=True)
SPEC_10D = DataSpec(max_dim=10)


def test_a_sample_is_a_pure_function_of_seed_and_index():
    a, b = generate_sample(SPEC_10D, 3, 12345), generate_sample(SPEC_10D, 3, 12345)
    assert a.expression == b.expression
    np.testing.assert_array_equal(a.x, b.x)
    assert generate_sample(SPEC_10D, 4, 12345).expression != a.expression


@pytest.mark.parametrize("spec", [SPEC_1D, SPEC_10D], ids=["dmax1", "dmax10"])
def test_samples_made_together_are_the_samples_made_alone(spec):
    together = generate_samples(spec, 3, range(40))
    assert len({sample.dim for sample in together}) > (spec.max_dim > 1)  # Dmax 10: several dimensions at once
    for index in (0, 13, 39):
        alone = generate_sample(spec, 3, index)
        assert together[index].index == index and together[index].expression == alone.expression
        np.testing.assert_array_equal(together[index].x, alone.x)
        np.testing.assert_array_equal(together[index].y, alone.y)
        assert together[index].properties == alone.properties


def test_batch_layout():
    batch = make_batch(SPEC_1D, 0, range(8))
    vocab = get_vocab(1)
    assert batch["points"].shape == (8, 200, 6) and batch["points"].dtype == np.int32
    assert batch["symbols"].shape == (8, 200) and batch["symbol_len"].shape == (8,)
    for row, length in zip(batch["symbols"], batch["symbol_len"]):
        assert row[0] == row[length - 1] == vocab.eos_id
        assert (row[length:] == vocab.pad_id).all()
    assert set(batch) >= {"ncr", "upwardness", "yavg", "oscillation", "index", "dim"}
    assert (batch["points"][..., :3] != vocab.input_pad_id).all()


def test_missing_dimensions_are_input_padded():
    batch = make_batch(SPEC_10D, 0, range(16))
    pad = get_vocab(10).input_pad_id
    for points, dim in zip(batch["points"], batch["dim"]):
        assert (points[:, 3 * dim: 30] == pad).all()
        assert (points[:, : 3 * dim] != pad).all() and (points[:, 30:] != pad).all()


@pytest.mark.parametrize("workers", [1, 2])
def test_batches_do_not_depend_on_worker_count(workers):
    with BatchProducer(SPEC_10D, 5, 24, workers=0, start_step=2) as serial:
        expected = [serial.next() for _ in range(5)]
    # Requests of 2 (one worker) or 4 steps (two): the five steps cross requests.
    with BatchProducer(SPEC_10D, 5, 24, workers=workers, start_step=2, samples_per_request=48) as parallel:
        assert parallel.steps_per_request == 2 * workers
        got = [parallel.next() for _ in range(5)]
    for (step_a, a), (step_b, b) in zip(expected, got):
        assert step_a == step_b
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])


def test_hosts_make_only_their_slice():
    full = BatchProducer(SPEC_1D, 0, 16, workers=0, start_step=3).next()[1]
    parts = [BatchProducer(SPEC_1D, 0, 16, process_index=p, process_count=4, workers=0, start_step=3).next()[1]
             for p in range(4)]
    np.testing.assert_array_equal(np.concatenate([p["index"] for p in parts]), np.arange(48, 64))
    np.testing.assert_array_equal(np.concatenate([p["points"] for p in parts]), full["points"])
    with pytest.raises(ValueError, match="split evenly"):
        BatchProducer(SPEC_1D, 0, 10, process_count=4, workers=0)


def test_worker_errors_name_the_samples():
    bad_spec = DataSpec(max_dim=1, max_len=3)  # no expression fits: every attempt is rejected
    producer = BatchProducer(bad_spec, 0, 2, workers=1)
    with pytest.raises(RuntimeError, match=r"samples 0\.\.511"):  # a request of 256 steps of 2
        producer.next()
    with pytest.raises(RuntimeError, match="closed"):
        producer.next()


def test_point_tokens_check_input():
    with pytest.raises(ValueError, match="non-finite"):
        tokens.encode_points(np.array([[1.0], [np.nan]]), np.array([1.0, 2.0]), 1)
    with pytest.raises(ValueError, match="at most 1"):
        tokens.encode_points(np.ones((4, 2)), np.ones(4), 1)
    with pytest.raises(ValueError, match=r"x \[N, D\]"):
        tokens.encode_points(np.ones((4, 1)), np.ones(5), 1)
    with pytest.raises(ValueError, match="at most 1"):
        tokens.encode_point_sets([np.ones((4, 1)), np.ones((4, 2))], [np.ones(4), np.ones(4)], 1)
    with pytest.raises(ValueError, match="same number of points"):
        tokens.encode_point_sets([np.ones((4, 1)), np.ones((3, 1))], [np.ones(4), np.ones(3)], 1)


def test_the_sample_stream_is_unchanged():
    """The first samples of seed 5 as an earlier version of the generator made them (fixtures/README.md)."""
    pinned = json.loads((Path(__file__).parent / "fixtures" / "sample_stream.json").read_text())
    for max_dim in (1, 10):
        spec = DataSpec(max_dim=max_dim, with_properties=max_dim == 1)
        made = generate_samples(spec, pinned["seed"], range(pinned["count"]))
        for sample, expected in zip(made, pinned[f"dmax{max_dim}"], strict=True):
            assert (sample.dim, sample.expression.labels()) == (expected["dim"], expected["labels"])
            head = len(expected["y_head"])
            # Rotations (Dmax > 1) go through BLAS, whose last bit may differ between machines.
            np.testing.assert_allclose(sample.x[:head], expected["x_head"], rtol=1e-12, atol=1e-14)
            np.testing.assert_allclose(sample.y[:head], expected["y_head"], rtol=1e-12, atol=1e-14)
            if max_dim == 1:
                assert sample.properties == pytest.approx(expected["properties"], rel=1e-12)


@pytest.mark.parametrize("seed, index", [(0, 0), (0, 1), (7, 2**32 - 1), (2**32 - 1, 5), (3, 2**32), (2**40, 1)])
def test_sample_seeds_are_the_seed_index_pair(seed, index):
    from snipjax.data.samples import _entropy

    expected = np.random.default_rng((seed, index)).random(4)
    np.testing.assert_array_equal(np.random.default_rng(_entropy(seed, index)).random(4), expected)


def test_point_tokens_of_mixed_dimensions_are_each_values_tokens():
    rng = np.random.default_rng(0)
    xs = [rng.normal(size=(7, dim)) * 10.0 ** rng.integers(-5, 5, size=(7, dim)) for dim in (1, 3, 2)]
    ys = [rng.normal(size=7) for _ in xs]
    ids = tokens.encode_point_sets(xs, ys, 3).reshape(3, 7, 4, 3)
    for row, (x, y) in enumerate(zip(xs, ys)):
        dim = x.shape[1]
        np.testing.assert_array_equal(ids[row, :, :dim], floats.encode(x))
        np.testing.assert_array_equal(ids[row, :, 3], floats.encode(y))
        assert (ids[row, :, dim:3] == get_vocab(3).input_pad_id).all()


def test_cli_writes_jsonl_with_the_documented_fields(tmp_path):
    out = tmp_path / "samples.jsonl"
    subprocess.run([sys.executable, "-m", "snipjax.data", "--max-dim", "1", "--n", "3", "--seed", "2",
                    "--out", str(out)], check=True, capture_output=True)
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) == 3
    for record in records:
        assert {"prefix", "infix", "dim", "x", "y", "tokens", "properties"} <= set(record)
        assert len(record["x"]) == len(record["y"]) == 200
        sample = generate_sample(SPEC_1D, 2, record["index"])
        assert record["prefix"] == sample.expression.labels()
