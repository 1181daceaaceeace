"""The transformer's kernels: the CPU's (attention with a written-out backward pass, layers in row blocks) equal
XLA's whole-batch computation, sharded or not, and the choice between them follows the mesh a step is built
for, not the process.

With the suite's 8 devices, row blocks need batches of 128 or more (2 steps of 8 rows per device), so the other
tests run whole batches; the tests here make blocks of 1 row per device.
"""

import types

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from snipjax import parallel
from snipjax.models import attention, row_blocks
from snipjax.models.transformer import Kernels, Transformer, TransformerSpec

B, T, S, H, D = 6, 7, 9, 2, 4


def _xla_attention(q, k, v, lengths, causal):
    return jax.nn.dot_product_attention(q, k, v, is_causal=causal, key_value_seq_lengths=lengths)


def row_blocked_attention(*args):
    return attention.dot_product_attention(*args, kernel="row_blocked")


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("with_lengths", [False, True])
def test_attention_and_its_gradients_equal_xla(causal, with_lengths):
    keys = jax.random.split(jax.random.key(0), 4)
    kv_len = T if causal else S
    q = jax.random.normal(keys[0], (B, T, H, D))
    k = jax.random.normal(keys[1], (B, kv_len, H, D))
    v = jax.random.normal(keys[2], (B, kv_len, H, D))
    weights = jax.random.normal(keys[3], (B, T, H, D))
    lengths = jnp.array([kv_len, 3, 5, 0, kv_len, 2]) if with_lengths else None  # 0: every key left out

    def loss(attention, *qkv):
        return (attention(*qkv, lengths, causal) * weights).sum()

    ours = jax.value_and_grad(lambda *a: loss(row_blocked_attention, *a), argnums=(0, 1, 2))(q, k, v)
    xla = jax.value_and_grad(lambda *a: loss(_xla_attention, *a), argnums=(0, 1, 2))(q, k, v)
    np.testing.assert_allclose(ours[0], xla[0], rtol=1e-5)
    for got, want in zip(ours[1], xla[1]):
        np.testing.assert_allclose(got, want, atol=1e-5)


def test_attention_keeps_the_compute_dtype():
    q = jax.random.normal(jax.random.key(4), (2, 3, H, D), jnp.bfloat16)
    assert row_blocked_attention(q, q, q).dtype == jnp.bfloat16
    grads = jax.grad(lambda *qkv: row_blocked_attention(*qkv).astype(jnp.float32).sum(),
                     argnums=(0, 1, 2))(q, q, q)
    assert all(g.dtype == jnp.bfloat16 for g in grads)


def test_row_blocks_take_rows_from_every_devices_share():
    devices = jax.device_count()
    batch = 4 * devices
    assert row_blocks.row_block_steps(batch, 1, devices) == 4
    assert row_blocks.row_block_steps(batch + 1, 1, devices) == 0  # uneven rows
    assert row_blocks.row_block_steps(devices, 1, devices) == 0  # a single step
    x = jnp.arange(batch * 3).reshape(batch, 3)
    steps = row_blocks.split_rows(x, 4, devices)
    assert steps.shape == (4, devices, 3)
    # Device k holds rows 4k..4k+3; step s takes row 4k+s of each.
    np.testing.assert_array_equal(steps[:, :, 0] // 3, np.arange(4)[:, None] + 4 * np.arange(devices)[None, :])
    np.testing.assert_array_equal(row_blocks.join_rows(steps, devices), x)


def _stack(cross_attention: bool, kernels: Kernels = Kernels()) -> Transformer:
    spec = TransformerSpec(d_model=16, n_layers=2, n_heads=H, d_ff=32, max_positions=32, kernels=kernels)
    return Transformer(spec, cross_attention=cross_attention)


@pytest.mark.slow
@pytest.mark.parametrize("decoder", [False, True])
def test_layers_in_row_blocks_equal_the_whole_batch(decoder):
    batch = 2 * jax.device_count()
    keys = jax.random.split(jax.random.key(1), 3)
    x = jax.random.normal(keys[0], (batch, T, 16))
    lengths = jnp.arange(batch) % T + 1
    memory = jax.random.normal(keys[1], (batch, S, 16)) if decoder else None

    def run(kernels: Kernels):
        model = _stack(decoder, kernels)
        variables = model.init(keys[2], x, lengths, decoder, memory)

        def loss(params, x, memory):
            out = model.apply({"params": params}, x, lengths, decoder, memory)
            return (out * jnp.cos(out)).sum(), out

        (_, out), grads = jax.value_and_grad(loss, argnums=(0, 1, 2), has_aux=True)(variables["params"], x, memory)
        return variables, out, grads

    row_blocked = Kernels("row_blocked", rows_per_block=1, batch_shards=jax.device_count())
    assert row_blocked.row_block_steps(batch) == 2
    blocked_run, whole = run(row_blocked), run(Kernels("xla"))
    jax.tree.map(np.testing.assert_array_equal, blocked_run[0], whole[0])  # same parameter tree and values
    np.testing.assert_allclose(blocked_run[1], whole[1], atol=1e-5)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=2e-5), blocked_run[2], whole[2])


def test_row_blocks_of_a_sharded_batch():
    """On the 8-device mesh, each step takes rows of every device's share: no activation moves between devices,
    and the result is one device's."""
    batch = 2 * jax.device_count()
    x = jax.random.normal(jax.random.key(2), (batch, T, 16))
    lengths = jnp.arange(batch) % T + 1
    mesh = parallel.make_mesh(ml_collections.ConfigDict({"data": -1, "fsdp": 1}))
    kernels = parallel.kernels_for(ml_collections.ConfigDict({"kernels": {"rows_per_block": 1}}), mesh)
    assert kernels == Kernels("row_blocked", 1, jax.device_count()) and kernels.row_block_steps(batch) == 2
    model = _stack(False, kernels)
    variables = model.init(jax.random.key(3), x, lengths)
    rows = NamedSharding(mesh, P(parallel.MESH_AXES))
    apply = jax.jit(lambda v, x, n: model.apply(v, x, n))
    x_rows, length_rows = jax.device_put(x, rows), jax.device_put(lengths, rows)
    program = apply.lower(variables, x_rows, length_rows).compile().as_text()
    assert not any(collective in program for collective in ("all-gather", "all-to-all", "collective-permute"))
    np.testing.assert_allclose(apply(variables, x_rows, length_rows), apply(variables, x, lengths), atol=1e-5)


def _fake_mesh(platform: str, devices: int):
    return types.SimpleNamespace(devices=np.array([types.SimpleNamespace(platform=platform)] * devices))


@pytest.mark.parametrize("platform, choice, expected", [
    ("cpu", "auto", "row_blocked"), ("tpu", "auto", "xla"), ("gpu", "auto", "xla"),
    ("tpu", "row_blocked", "row_blocked"), ("cpu", "xla", "xla")])
def test_kernels_follow_the_meshs_platform_and_the_config(platform, choice, expected):
    config = ml_collections.ConfigDict({"kernels": {"attention": choice, "rows_per_block": 4}})
    assert parallel.kernels_for(config, _fake_mesh(platform, 16)) == Kernels(expected, 4, 16)


def test_kernels_without_a_mesh_are_one_local_devices_and_bad_choices_are_refused():
    assert parallel.kernels_for(ml_collections.ConfigDict()) == Kernels("row_blocked", 8, 1)  # this CPU process
    with pytest.raises(ValueError, match="config.kernels.attention must be one of"):
        parallel.kernels_for(ml_collections.ConfigDict({"kernels": {"attention": "flash"}}))
    with pytest.raises(ValueError, match="rows_per_block must be a positive integer"):
        parallel.kernels_for(ml_collections.ConfigDict({"kernels": {"rows_per_block": 0}}))
