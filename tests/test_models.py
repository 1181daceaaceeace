"""SNIP encoders: shapes, parameter layout, padding/permutation invariances, bf16 path."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from snipjax import losses, models
from snipjax.data.vocab import get_vocab

MAX_DIM = 1
BATCH, N_POINTS, MAX_LEN = 3, 200, 200


def tiny_config(loss_kind="infonce", **model_overrides) -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.data = ml_collections.ConfigDict({"max_dim": MAX_DIM})
    config.model = ml_collections.ConfigDict({
        "d_model": 32, "n_layers": 2, "n_heads": 4, "d_ff": 64, "latent_dim": 16, "float_emb_dim": 8,
        "max_positions": 256, "numeric_positions": True, "norm": "post", "ln_eps": 1e-12,
        "pool_mask": False, "dtype": "float32",
    })
    config.model.update(model_overrides)
    config.loss = ml_collections.ConfigDict({"kind": loss_kind, "temperature": 0.5})
    return config


def random_batch(seed=0):
    rng = np.random.default_rng(seed)
    vocab = get_vocab(MAX_DIM)
    points = rng.integers(0, vocab.float_size, (BATCH, N_POINTS, 3 * (MAX_DIM + 1)), dtype=np.int32)
    symbol_len = np.array([5, 17, MAX_LEN], np.int32)
    symbols = rng.integers(0, vocab.equation_size, (BATCH, MAX_LEN), dtype=np.int32)
    for row, length in enumerate(symbol_len):
        symbols[row, length:] = vocab.pad_id
        symbols[row, [0, length - 1]] = vocab.eos_id
    return points, symbols, symbol_len


@pytest.fixture(scope="module")
def infonce():
    model = models.make_snip(tiny_config())
    batch = random_batch()
    variables = model.init(jax.random.key(0), *batch)
    return model, variables, batch


@pytest.mark.parametrize("kind", ["infonce", "clip", "siglip"])
def test_outputs_and_similarity_parameters(kind):
    model = models.make_snip(tiny_config(kind))
    batch = random_batch()
    variables = model.init(jax.random.key(0), *batch)
    out = model.apply(variables, *batch)
    assert out["z_numeric"].shape == out["z_symbolic"].shape == (BATCH, 16)
    assert all(v.dtype == jnp.float32 for v in out.values())
    params = variables["params"]
    expected_scale = {"infonce": 1 / 0.5, "clip": 1 / 0.07, "siglip": 10.0}[kind]
    np.testing.assert_allclose(out["logit_scale"], expected_scale, rtol=1e-5)
    np.testing.assert_allclose(out["logit_bias"], -10.0 if kind == "siglip" else 0.0)
    assert ("log_logit_scale" in params) == (kind != "infonce")
    assert ("logit_bias" in params) == (kind == "siglip")


def test_parameter_layout(infonce):
    _, variables, _ = infonce
    params = variables["params"]
    leaves = jax.tree_util.tree_leaves(params)
    assert all(isinstance(leaf, jax.Array) and leaf.dtype == jnp.float32 for leaf in leaves)
    numeric, symbolic = params["numeric_encoder"], params["symbolic_encoder"]
    assert numeric["embedder"]["embeddings"]["embedding"].shape == (get_vocab(MAX_DIM).float_size, 8)
    assert numeric["embedder"]["hidden"]["kernel"].shape == (48, 48)  # 3*(Dmax+1) tokens x 8 dims
    assert symbolic["embeddings"]["embedding"].shape == (get_vocab(MAX_DIM).equation_size, 32)
    assert set(symbolic["transformer"]) == {"position_embeddings", "layer_norm_emb", "block_0", "block_1"}
    block = symbolic["transformer"]["block_0"]
    assert set(block) == {"attention", "layer_norm1", "ffn", "layer_norm2"}
    assert set(block["attention"]) == {"q_lin", "k_lin", "v_lin", "out_lin"}
    # Official initialisation: embeddings N(0, dim^-0.5).
    assert np.std(symbolic["embeddings"]["embedding"]) == pytest.approx(32**-0.5, rel=0.05)


def test_encode_methods_match_call(infonce):
    model, variables, (points, symbols, symbol_len) = infonce
    out = model.apply(variables, points, symbols, symbol_len)
    z_n = model.apply(variables, points, method="encode_numeric")
    z_s = model.apply(variables, symbols, symbol_len, method="encode_symbolic")
    np.testing.assert_allclose(z_n, out["z_numeric"], rtol=1e-6)
    np.testing.assert_allclose(z_s, out["z_symbolic"], rtol=1e-6)


@pytest.mark.parametrize("pool_mask", [False, True])
def test_symbolic_encoder_ignores_tokens_past_length(pool_mask):
    model = models.make_snip(tiny_config(pool_mask=pool_mask))
    _, symbols, symbol_len = random_batch()
    variables = model.init(jax.random.key(1), *random_batch())
    changed = symbols.copy()
    for row, length in enumerate(symbol_len):
        changed[row, length:] = np.arange(MAX_LEN - length) % 50
    encode = jax.jit(lambda s: model.apply(variables, s, symbol_len, method="encode_symbolic"))
    z, z_changed = encode(symbols), encode(changed)
    np.testing.assert_allclose(z, z_changed, atol=1e-6)
    assert not np.allclose(z[0], z[1])


@pytest.mark.slow
@pytest.mark.parametrize("pool_mask", [False, True])
def test_symbol_sequences_cut_to_their_longest_encode_and_train_as_padded_ones(pool_mask):
    """Cutting padding changes nothing: unmasked pooling counts the positions left out as the padding it would
    have computed (zero states scoring the score layer's bias)."""
    config = tiny_config(pool_mask=pool_mask)
    config.data.max_len = MAX_LEN
    model = models.make_snip(config)
    points, symbols, _ = random_batch()
    symbol_len = np.array([5, 17, 40], np.int32)
    symbols[np.arange(MAX_LEN) >= symbol_len[:, None]] = get_vocab(MAX_DIM).pad_id
    variables = model.init(jax.random.key(3), points, symbols, symbol_len)

    def loss_and_grads(symbols):
        def loss(params):
            out = model.apply({"params": params}, points, symbols, symbol_len)
            return losses.contrastive_loss(out, kind="infonce")[0], out["z_symbolic"]
        return jax.value_and_grad(loss, has_aux=True)(variables["params"])

    (loss_full, z_full), grads_full = loss_and_grads(symbols)
    (loss_cut, z_cut), grads_cut = loss_and_grads(symbols[:, :48])
    np.testing.assert_allclose(z_cut, z_full, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(loss_cut, loss_full, rtol=1e-6)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6), grads_cut, grads_full)
    # Pooled as 200 positions: the same cut sequences pooled as 48 are another function (unmasked only).
    config.data.max_len = 48
    z_as_48 = models.make_snip(config).apply(variables, symbols[:, :48], symbol_len, method="encode_symbolic")
    assert np.allclose(z_as_48, z_full, rtol=1e-5, atol=1e-6) == pool_mask


def test_pool_mask_changes_padded_sequences_only():
    batch = random_batch()
    variables = models.make_snip(tiny_config()).init(jax.random.key(2), *batch)
    z = {mask: models.make_snip(tiny_config(pool_mask=mask)).apply(variables, *batch)["z_symbolic"]
         for mask in (False, True)}
    np.testing.assert_allclose(z[False][2], z[True][2], rtol=1e-5)  # full-length row: identical
    assert not np.allclose(z[False][0], z[True][0])


def test_numeric_encoder_without_positions_is_permutation_invariant():
    points, _, _ = random_batch()
    permuted = points[:, np.random.default_rng(3).permutation(N_POINTS)]
    for positions in (False, True):
        model = models.make_snip(tiny_config(numeric_positions=positions))
        variables = model.init(jax.random.key(3), *random_batch())
        assert ("position_embeddings" in variables["params"]["numeric_encoder"]["transformer"]) == positions
        encode = jax.jit(lambda p, model=model, variables=variables: model.apply(variables, p, method="encode_numeric"))
        invariant = np.allclose(encode(points), encode(permuted), atol=1e-5)
        assert invariant == (not positions)


def test_bfloat16_compute_is_close_to_float32(infonce):
    _, variables, batch = infonce
    bf16 = models.make_snip(tiny_config(dtype="bfloat16"))
    out32 = models.make_snip(tiny_config()).apply(variables, *batch)
    out16 = bf16.apply(variables, *batch)
    for key in ("z_numeric", "z_symbolic"):
        assert out16[key].dtype == jnp.float32
        scale = np.abs(out32[key]).max()
        np.testing.assert_allclose(out16[key], out32[key], atol=0.05 * scale)
    # Parameters stay float32 when computing in bf16.
    params16 = bf16.init(jax.random.key(0), *batch)["params"]
    assert {leaf.dtype for leaf in jax.tree_util.tree_leaves(params16)} == {jnp.dtype(jnp.float32)}


def test_pre_norm_adds_final_layer_norm_and_runs():
    batch = random_batch()
    model = models.make_snip(tiny_config(norm="pre"))
    variables = model.init(jax.random.key(4), *batch)
    assert "layer_norm_final" in variables["params"]["symbolic_encoder"]["transformer"]
    out = model.apply(variables, *batch)
    assert np.all(np.isfinite(out["z_symbolic"])) and np.all(np.isfinite(out["z_numeric"]))


@pytest.mark.parametrize("field,value,message", [
    ("model.dtype", "float16", "config.model.dtype"),
    ("model.norm", "sandwich", "norm must be"),
    ("loss.kind", "triplet", "config.loss.kind"),
])
def test_invalid_config_is_rejected(field, value, message):
    config = tiny_config()
    section, key = field.split(".")
    config[section][key] = value
    with pytest.raises(ValueError, match=message):
        models.make_snip(config)


def test_value_initialised_float_embeddings_place_near_values_near_each_other():
    import jax

    from snipjax.data import floats
    from snipjax.data.vocab import get_vocab
    from snipjax.models.float_init import float_embedding_init

    vocab = get_vocab(1)
    dim, offset = 32, vocab.n_symbols
    table = np.asarray(float_embedding_init("value", dim, offset)(jax.random.key(0), (vocab.equation_size, dim)))
    sign, mantissa, exponent = (floats.token_meanings()[i] for i in range(3))
    row = {m: offset + int(np.flatnonzero(mantissa == m)[0]) for m in (5000, 5001, 9000)}
    near = np.linalg.norm(table[row[5000]] - table[row[5001]])
    far = np.linalg.norm(table[row[5000]] - table[row[9000]])
    assert near < 0.2 * far
    e = {k: offset + int(np.flatnonzero(exponent == k)[0]) for k in (-3, -2, 40)}
    assert np.linalg.norm(table[e[-3]] - table[e[-2]]) < np.linalg.norm(table[e[-3]] - table[e[40]])
    plus, minus = (offset + int(np.flatnonzero(sign == s)[0]) for s in (1.0, -1.0))
    assert np.linalg.norm(table[plus] - table[minus]) == pytest.approx(np.sqrt(2), rel=1e-5)  # opposite codes
    official = np.asarray(float_embedding_init("official", dim)(jax.random.key(0), (vocab.equation_size, dim)))
    np.testing.assert_array_equal(table[:offset], official[:offset])  # the symbols keep the official draw
    assert abs(np.mean(np.linalg.norm(table[offset + 15:], axis=1)) - 1.0) < 0.15  # unit norm, as official rows
    with pytest.raises(ValueError, match="float_init"):
        float_embedding_init("sorted", dim)


def test_point_value_features_read_the_values_the_tokens_stand_for():
    from snipjax.data import tokens
    from snipjax.models.float_init import point_value_features

    max_dim, width = 3, 24
    x = np.array([[0.0, -2.5e-3, 7.0], [1.234e5, 3.0, -1e80]])
    y = np.array([0.5, -4e-7])
    ids = tokens.encode_point_sets([x[:, :2]], [y], max_dim)  # x_2 is padding: the sample is 2-D
    features = np.asarray(point_value_features(jnp.asarray(ids), width)).reshape(2, max_dim + 1, width)
    values = np.concatenate([x[:, :2], np.zeros((2, 1)), y[:, None]], axis=1)
    present = np.array([1.0, 1.0, 0.0, 1.0])
    np.testing.assert_array_equal(features[..., 0], np.broadcast_to(present, (2, 4)))
    symlog = np.sign(values) * np.log1p(np.abs(values))  # 4 significant digits in the tokens
    np.testing.assert_allclose(features[..., 1], symlog * present, rtol=1e-3, atol=1e-6)
    assert np.all(np.isfinite(features)) and not features[:, 2].any()  # E80 does not overflow; padding is 0


def test_value_point_input_learns_no_token_embeddings():
    config = tiny_config(point_input="values")
    encoder = models.make_numeric_encoder(config)
    points, _, _ = random_batch()
    params = encoder.init(jax.random.key(0), points[:1])["params"]
    assert "embeddings" not in params["embedder"]
    with pytest.raises(ValueError, match="point_input"):
        models.make_numeric_encoder(tiny_config(point_input="digits")).init(jax.random.key(0), points[:1])


def test_read_constants_puts_each_constants_value_at_its_sign_word():
    from snipjax.data import floats, tokens
    from snipjax.models.float_init import read_constants

    vocab = get_vocab(MAX_DIM)
    ids, lengths = tokens.encode_expressions(["2.5*cos(x_0) - 0.0031", "x_0"], MAX_DIM, max_len=24)
    merged, features = read_constants(jnp.asarray(ids), vocab.n_symbols, 24)
    merged, features = np.asarray(merged), np.asarray(features)
    meanings = np.stack(floats.token_meanings())  # [3, float words]: sign, mantissa, exponent
    is_number_word = np.zeros_like(ids, bool)
    floats_only = ids >= vocab.n_symbols
    is_number_word[floats_only] = (~np.isnan(meanings[:, ids[floats_only] - vocab.n_symbols])).any(axis=0)
    is_sign = features[..., 0] == 1.0
    # Each constant is a sign, a mantissa and an exponent word; its value sits at the sign, nothing elsewhere.
    assert is_sign.sum() == 2 and not features[~is_sign].any()
    np.testing.assert_array_equal(is_number_word[0], np.isin(np.arange(24), np.flatnonzero(is_sign[0])[:, None] +
                                                             np.arange(3)))
    np.testing.assert_allclose(sorted(np.abs(features[is_sign][:, 1])), np.log1p([0.0031, 2.5]), rtol=1e-3)
    # Operators, variables and <EOS>/<PAD> keep their ids; number words become one word per kind.
    np.testing.assert_array_equal(merged[~is_number_word], ids[~is_number_word])
    assert len(np.unique(merged[is_number_word])) == 3
    assert not features[1].any()


def test_constant_values_switch_changes_what_the_symbolic_encoder_reads():
    points, symbols, symbol_len = random_batch()
    for kind in ("tokens", "values"):
        snip = models.make_snip(tiny_config(constant_input=kind))
        params = snip.init(jax.random.key(0), points[:1], symbols[:1], symbol_len[:1])["params"]
        assert ("constant_values" in params["symbolic_encoder"]) == (kind == "values")
    with pytest.raises(ValueError, match="constant_input"):
        models.make_snip(tiny_config(constant_input="digits")).init(
            jax.random.key(0), points[:1], symbols[:1], symbol_len[:1])
