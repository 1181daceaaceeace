"""Training and decoding FLOPs of the models, counted analytically (MaxText's convention): matmuls, attention
scores and values; embedding lookups, norms and softmaxes are not counted. A backward pass costs twice the
forward one. Used for MFU and where a backend's cost analysis gives no count."""

from __future__ import annotations

from snipjax.data.tokens import point_width
from snipjax.data.vocab import get_vocab


def _layer(tokens: int, keys: int, d: int, d_ff: int, memory: int = 0) -> float:
    """One transformer block over `tokens` positions attending to `keys` positions (and, with `memory`, to
    that many memory vectors, whose keys and values it projects)."""
    flops = 2 * tokens * (4 * d * d + 2 * d * d_ff) + 4 * tokens * keys * d
    if memory:
        flops += 2 * tokens * 2 * d * d + 2 * memory * 2 * d * d + 4 * tokens * memory * d
    return flops


def _encoder(m, tokens: int) -> float:
    pool = 4 * tokens * m.d_model + 2 * m.d_model * m.latent_dim  # scores + weighted sum, then the bottleneck
    return m.n_layers * _layer(tokens, tokens, m.d_model, m.d_ff) + pool


def _numeric_encoder(config) -> float:
    m = config.model
    width = point_width(config.data.max_dim) * m.float_emb_dim  # concatenated float-token embeddings of a point
    embedder = 2 * config.data.n_points * (width * width + width * m.d_model)
    return embedder + _encoder(m, config.data.n_points)


def model_flops_per_step(config, symbol_len: int | None = None) -> float:
    """SNIP's training FLOPs of one global batch with symbol sequences of `symbol_len` positions (default
    config.data.max_len): both encoders and the two B×B similarity matrices, forward and backward."""
    symbol_len = config.data.max_len if symbol_len is None else symbol_len
    per_pair = _numeric_encoder(config) + _encoder(config.model, symbol_len)
    similarity = 2 * 2 * config.batch_size**2 * config.model.latent_dim
    return 3.0 * (config.batch_size * per_pair + similarity)


def _memory(config) -> float:
    m = config.model
    length = m.decoder.memory_length
    return 2 * m.latent_dim * length * m.d_model + 2 * length * m.d_model * m.d_model


def sr_flops_per_step(config, symbol_len: int | None = None) -> float:
    """The SR model's teacher-forced training FLOPs of one global batch: the numeric encoder (forward only
    when it is frozen), the mapper and the decoder over `symbol_len` positions, forward and backward."""
    m = config.model
    tokens = (config.data.max_len if symbol_len is None else symbol_len) - 1
    vocab = get_vocab(config.data.max_dim).equation_size
    decoder = m.decoder.n_layers * _layer(tokens, tokens, m.d_model, m.d_ff, m.decoder.memory_length)
    trained = _memory(config) + decoder + 2 * tokens * m.d_model * vocab
    encoder = _numeric_encoder(config) * (3.0 if config.get("train_encoder", False) else 1.0)
    return config.batch_size * (encoder + 3.0 * trained)


def decode_step_flops(config, rows: int, cache_length: int) -> float:
    """FLOPs of one cached decoding step of `rows` sequences with `cache_length` positions cached."""
    m = config.model
    layer = _layer(1, cache_length, m.d_model, m.d_ff) + 2 * 2 * m.d_model**2 + 4 * m.decoder.memory_length * m.d_model
    vocab = get_vocab(config.data.max_dim).equation_size
    return rows * (m.decoder.n_layers * layer + 2 * m.d_model * vocab)
