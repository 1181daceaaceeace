"""Contrastive losses against plain numpy, retrieval metrics on a hand-made case, sharded evaluation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import AxisType, NamedSharding
from jax.sharding import PartitionSpec as P

from snipjax import losses, models


def _log_softmax(x, axis):
    x = x - x.max(axis=axis, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=axis, keepdims=True))


def _log_sigmoid(x):
    return -np.logaddexp(0.0, -x)


def numpy_loss(z_n, z_s, scale, bias, kind):
    z_n, z_s = z_n.astype(np.float64), z_s.astype(np.float64)
    if kind != "infonce":
        z_n = z_n / np.linalg.norm(z_n, axis=1, keepdims=True)
        z_s = z_s / np.linalg.norm(z_s, axis=1, keepdims=True)
    if kind == "clip":
        scale = min(scale, 100.0)
    logits = z_n @ z_s.T * scale + bias
    if kind == "siglip":
        labels = 2 * np.eye(len(z_n)) - 1
        return -_log_sigmoid(labels * logits).sum(axis=1).mean()
    rows = -np.diag(_log_softmax(logits, axis=1)).mean()
    cols = -np.diag(_log_softmax(logits, axis=0)).mean()
    return (rows + cols) / 2


def make_out(z_n, z_s, scale=1.0, bias=0.0):
    return {"z_numeric": jnp.asarray(z_n), "z_symbolic": jnp.asarray(z_s),
            "logit_scale": jnp.float32(scale), "logit_bias": jnp.float32(bias)}


@pytest.mark.parametrize("kind,scale,bias", [
    ("infonce", 1.0, 0.0), ("infonce", 2.5, 0.0), ("clip", 1 / 0.07, 0.0), ("clip", 300.0, 0.0),
    ("siglip", 10.0, -10.0), ("siglip", 3.0, 1.5),
])
def test_loss_matches_numpy(kind, scale, bias):
    rng = np.random.default_rng(0)
    z_n, z_s = rng.normal(size=(2, 12, 8)).astype(np.float32)
    z_s = z_s + 0.8 * z_n  # correlated pairs, so the loss is far from its chance value
    loss, metrics = losses.contrastive_loss(make_out(z_n, z_s, scale, bias), kind)
    expected = numpy_loss(z_n, z_s, scale, bias, kind)
    np.testing.assert_allclose(loss, expected, rtol=1e-5)
    assert metrics["loss"] == loss
    assert metrics["logit_scale"] == pytest.approx(min(scale, 100.0) if kind == "clip" else scale)


def test_retrieval_metrics_on_hand_made_case():
    # Numeric latents are one-hot rows; symbolic row i points at numeric row `target[i]`.
    z_n = np.eye(6, dtype=np.float32)
    target = np.array([0, 1, 2, 4, 3, 5])  # rows 3 and 4 are swapped
    z_s = np.eye(6, dtype=np.float32)[target] * 2.0
    z_s[5] = [0, 0, 0, 0, 0.5, 1.0]  # row 5 still closest to its match
    _, metrics = losses.contrastive_loss(make_out(z_n, z_s), "infonce")
    # numeric→symbolic: numeric 3 and 4 score 0 with their match and at least 0 with every other candidate:
    # ties count as misses, so both fall outside the top 5. Others rank 0.
    assert metrics["top1_n2s"] == pytest.approx(4 / 6)
    assert metrics["top5_n2s"] == pytest.approx(4 / 6)
    # symbolic→numeric: symbolic 3 and 4 rank 1 (their one-hot hits the wrong numeric row).
    assert metrics["top1_s2n"] == pytest.approx(4 / 6)
    assert metrics["pos_sim"] == pytest.approx((2 + 2 + 2 + 0 + 0 + 1) / 6)
    assert metrics["neg_sim"] == pytest.approx((2 + 2 + 0.5) / 30)


def test_top5_counts_the_sixth_place_as_a_miss():
    z_n = np.eye(7, dtype=np.float32)
    z_s = np.eye(7, dtype=np.float32)
    z_s[0] = [0.1, 1, 1, 1, 1, 1, 0]  # five candidates beat the match → rank 5
    _, metrics = losses.contrastive_loss(make_out(z_n, z_s), "infonce")
    assert metrics["top5_s2n"] == pytest.approx(6 / 7)
    # numeric→symbolic: numeric rows 1..5 tie with symbolic 0 (both score 1); ties count as misses.
    assert metrics["top1_n2s"] == pytest.approx(2 / 7)


def test_unknown_kind_is_rejected():
    with pytest.raises(ValueError, match=r"loss.kind must be one of \('infonce', 'clip', 'siglip'\)"):
        losses.contrastive_loss(make_out(np.eye(2), np.eye(2)), "triplet")


def test_a_new_kind_is_one_entry_of_the_table(monkeypatch):
    """An entry with its own learned parameter: the model holds it at its initial value and the loss uses it."""
    kind = losses.LossKind(True, (("log_logit_scale", 1.5),), losses.KINDS["infonce"].loss)
    monkeypatch.setitem(losses.KINDS, "cosine_ce", kind)
    from test_models import tiny_config

    config = tiny_config("cosine_ce")
    model = models.make_snip(config)
    points = jnp.zeros((2, 10, 3 * (config.data.max_dim + 1)), jnp.int32)
    symbols, lengths = jnp.zeros((2, 12), jnp.int32), jnp.array([3, 4])
    variables = model.init(jax.random.key(0), points, symbols, lengths)
    assert float(variables["params"]["log_logit_scale"]) == 1.5
    out = model.apply(variables, points, symbols, lengths)
    np.testing.assert_allclose(out["logit_scale"], np.exp(1.5), rtol=1e-6)
    loss, _ = losses.contrastive_loss(out, "cosine_ce")
    assert np.isfinite(float(loss))


@pytest.mark.parametrize("kind", ["infonce", "siglip"])
def test_sharded_batch_under_explicit_axes_matches_single_device(kind):
    rng = np.random.default_rng(1)
    z_n, z_s = rng.normal(size=(2, 16, 8)).astype(np.float32)
    out = make_out(z_n, z_s, 2.0, -1.0 if kind == "siglip" else 0.0)
    _, expected = losses.contrastive_loss(out, kind)
    mesh = jax.make_mesh((8,), ("data",), axis_types=(AxisType.Explicit,))
    with jax.set_mesh(mesh):
        sharded = {k: jax.device_put(v, NamedSharding(mesh, P("data") if v.ndim else P())) for k, v in out.items()}
        step = jax.jit(lambda o: losses.contrastive_loss(o, kind, logits_sharding=P("data", None))[1])
        got = step(sharded)
    for name, value in expected.items():
        np.testing.assert_allclose(got[name], value, rtol=1e-5, atol=1e-6, err_msg=name)


@pytest.mark.parametrize("kind", ["infonce", "clip", "siglip"])
def test_matched_pairs_far_apart_retrieve_perfectly(kind):
    """Large, well separated latents: the matrix product's diagonal may round above the row-wise positive,
    which must not count the match as its own competitor."""
    z = jax.random.normal(jax.random.key(3), (64, 48)) * 30.0
    out = {"z_numeric": z, "z_symbolic": z + 1e-3, "logit_scale": jnp.float32(1.0), "logit_bias": jnp.float32(0.0)}
    _, metrics = losses.contrastive_loss(out, kind=kind)
    for name in ("top1_n2s", "top1_s2n", "top5_n2s", "top5_s2n"):
        assert float(metrics[name]) == 1.0, (name, float(metrics[name]))
