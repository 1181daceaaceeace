"""Attention over [B, T, H, D] inputs, by one of two kernels.

'xla' is XLA's attention (`jax.nn.dot_product_attention`) and its autodiff: what accelerators run. 'row_blocked'
is the CPU's choice (with the layers taken in row blocks, `snipjax.models.row_blocks`): its backward pass is
written out (FlashAttention's recurrence: recompute the probabilities from the saved log-sum-exp), which on a
2-core x86 CPU took 155-165 ms forward and backward against XLA's 270-290 (batch 64, 8 heads, 200 positions).
Both give the same values and gradients up to float rounding.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

Array = jax.Array

ATTENTION_KERNELS = ("xla", "row_blocked")


def dot_product_attention(query: Array, key: Array, value: Array, kv_lengths: Array | None = None,
                          causal: bool = False, kernel: str = "xla") -> Array:
    """softmax(q·kᵀ/√d) v over [B, T, H, D] inputs; keys at or past `kv_lengths[b]` and, if `causal`, keys
    after the query are left out. Scores and softmax are float32; the output has the value's dtype."""
    if kernel not in ATTENTION_KERNELS:
        raise ValueError(f"attention kernel must be one of {ATTENTION_KERNELS}, got {kernel!r}")
    if kernel == "xla" or query.shape[1] == 1:
        # One query position (cached decoding) has no backward pass and no scores worth the transposes.
        return jax.nn.dot_product_attention(query, key, value, is_causal=causal, key_value_seq_lengths=kv_lengths)
    if kv_lengths is None:
        kv_lengths = jnp.full(query.shape[:1], key.shape[1], jnp.int32)
    heads_first = [x.transpose(0, 2, 1, 3) for x in (query, key, value)]  # [B, H, T, D]
    return _attention(*heads_first, kv_lengths.astype(jnp.int32), causal).transpose(0, 2, 1, 3)


def _scores(query: Array, key: Array, lengths: Array, causal: bool) -> tuple[Array, Array]:
    """[B, H, Tq, Tk] float32 scaled scores, very negative where a key is left out, and where keys are kept."""
    scale = query.shape[-1] ** -0.5
    scores = jnp.einsum("bhqd,bhkd->bhqk", query, key, preferred_element_type=jnp.float32) * scale
    key_pos = jnp.arange(key.shape[-2])
    keep = key_pos < lengths[:, None, None, None]
    if causal:
        keep = keep & (key_pos <= jnp.arange(query.shape[-2])[:, None])
    # A large finite score, as XLA's attention uses: a row with every key left out gets uniform weights, not NaN.
    return jnp.where(keep, scores, -0.7 * jnp.finfo(jnp.float32).max), keep


@functools.partial(jax.custom_vjp, nondiff_argnums=(4,))
def _attention(query, key, value, lengths, causal):
    return _attention_forward(query, key, value, lengths, causal)[0]


def _attention_forward(query, key, value, lengths, causal):
    scores, _ = _scores(query, key, lengths, causal)
    peak = scores.max(-1, keepdims=True)
    unnormalised = jnp.exp(scores - peak)
    total = unnormalised.sum(-1, keepdims=True)
    out = jnp.einsum("bhqk,bhkd->bhqd", (unnormalised / total).astype(value.dtype), value)
    # The log-sum-exp kept in two parts: in a row with every key left out, log(total) would vanish into the peak.
    return out, (query, key, value, lengths, out, peak, jnp.log(total))


def _attention_backward(causal, saved, d_out):
    query, key, value, lengths, out, peak, log_total = saved
    scores, keep = _scores(query, key, lengths, causal)
    probs = jnp.exp(scores - peak - log_total)
    d_value = jnp.einsum("bhqk,bhqd->bhkd", probs.astype(d_out.dtype), d_out)
    d_probs = jnp.einsum("bhqd,bhkd->bhqk", d_out, value, preferred_element_type=jnp.float32)
    row_dot = jnp.einsum("bhqd,bhqd->bhq", d_out, out, preferred_element_type=jnp.float32)
    # Left-out scores are constants: no gradient flows through them (it would in a row with every key left out).
    d_scores = jnp.where(keep, probs * (d_probs - row_dot[..., None]) * query.shape[-1] ** -0.5, 0.0)
    d_query = jnp.einsum("bhqk,bhkd->bhqd", d_scores.astype(key.dtype), key)
    d_key = jnp.einsum("bhqk,bhqd->bhkd", d_scores.astype(query.dtype), query)
    return d_query.astype(query.dtype), d_key.astype(key.dtype), d_value.astype(value.dtype), None


_attention.defvjp(_attention_forward, _attention_backward)
