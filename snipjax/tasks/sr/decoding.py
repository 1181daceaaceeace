"""From numeric latents to expressions: batched sampling and beam search under jit, with a KV cache.

Both searches work on any step function `step(cache, tokens [B], position) -> (logits [B, V], cache)`: the SR
model's (`make_decoders`) reads and extends its attention cache, so a step costs one position, not the whole
prefix. The first step runs outside the loop because it creates the cache; the rest run in a `while_loop`
that stops when every sequence has closed.

    sample, beam = make_decoders(config)
    ids, lengths = sample(params, z, key, n_samples=2, temperature=0.1, max_len=200)    # official SR decoding
    ids, lengths, scores = beam(params, z, beam_size=10, max_len=200)
    expressions = to_expressions(ids, lengths, max_dim=config.data.max_dim)
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from snipjax import models, parallel
from snipjax.data import floats
from snipjax.data.expressions import Expression, is_variable
from snipjax.data.vocab import OPERATOR_ARITY, TOKENS_PER_FLOAT, get_vocab
from snipjax.models.transformer import DecodeStep

Step = Callable[[Any, jax.Array, jax.Array], tuple[jax.Array, Any]]
_DEAD = -1e30  # the log-probability of an impossible beam (finite, so sums never give NaN)


def closed_lengths(ids: jax.Array, eos: int) -> jax.Array:
    """Lengths of sequences `<EOS> … <EOS>` (both ends included); 0 where the closing `<EOS>` never came."""
    closing = ids[..., 1:] == eos
    return jnp.where(closing.any(-1), jnp.argmax(closing, axis=-1) + 2, 0)


def draw(key: jax.Array, logits: jax.Array, block: int = 128) -> jax.Array:
    """One index per row of logits [B, V], drawn with probabilities softmax(logits), by inverting the CDF at
    one uniform number per row. Gumbel-max (`jax.random.categorical`) draws V random numbers per row, which
    on a CPU cost 20x more at the SR vocabulary's 10k words; the CDF is summed in blocks of `block` words, so
    no cumulative sum runs along the whole vocabulary."""
    rows, size = logits.shape
    n_blocks = -(-size // block)
    p = jnp.exp(logits - logits.max(axis=-1, keepdims=True))
    p = jnp.pad(p, ((0, 0), (0, n_blocks * block - size))).reshape(rows, n_blocks, block)
    ends = jnp.cumsum(p.sum(-1), axis=-1)  # [B, blocks]: the CDF at each block's end
    target = jax.random.uniform(key, (rows, 1)) * ends[:, -1:]
    chosen = jnp.minimum(jnp.sum(ends < target, axis=-1), n_blocks - 1)
    before = jnp.where(chosen > 0, jnp.take_along_axis(ends, jnp.maximum(chosen - 1, 0)[:, None], 1)[:, 0], 0.0)
    inside = jnp.cumsum(jnp.take_along_axis(p, chosen[:, None, None], 1)[:, 0], axis=-1)
    offset = jnp.minimum(jnp.sum(inside < (target[:, 0] - before)[:, None], axis=-1), block - 1)
    return jnp.minimum(chosen * block + offset, size - 1)


def sample(step: Step, batch: int, key: jax.Array, *, max_len: int, temperature: float, bos: int, eos: int,
           pad: int) -> tuple[jax.Array, jax.Array]:
    """Sample `batch` sequences token by token at `temperature` (0: greedy). The token at position t + 1 is
    drawn by `draw` with `fold_in(key, t)`. Returns (ids [batch, max_len], lengths [batch], 0 = not closed)."""

    def body(state):
        t, ids, cache, done = state
        logits, cache = step(cache, ids[:, t], t)
        if temperature > 0:
            token = draw(jax.random.fold_in(key, t), logits / temperature)
        else:
            token = jnp.argmax(logits, axis=-1)
        token = jnp.where(done, pad, token).astype(ids.dtype)
        return t + 1, ids.at[:, t + 1].set(token), cache, done | (token == eos)

    ids = jnp.full((batch, max_len), pad, jnp.int32).at[:, 0].set(bos)
    state = body((jnp.int32(0), ids, {}, jnp.zeros(batch, bool)))
    _, ids, _, _ = jax.lax.while_loop(lambda s: (s[0] < max_len - 1) & ~s[3].all(), body, state)
    return ids, closed_lengths(ids, eos)


def beam_search(step: Step, batch: int, *, beam_size: int, max_len: int, bos: int, eos: int, pad: int,
                length_penalty: float = 1.0) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Keep the `beam_size` most probable prefixes of each of `batch` searches; `step` sees batch·beam_size
    rows, search-major. A closed beam stays as it is (it can only be extended by `<PAD>` at no cost) and
    competes with the open ones on its summed log-probability. Returns (ids [batch, beam, max_len],
    lengths [batch, beam], scores [batch, beam]), best first, scored as sum log p / length**length_penalty
    (-inf for beams that never closed)."""
    rows = jnp.arange(batch)[:, None]

    def body(state):
        t, ids, scores, cache, done = state
        logits, cache = step(cache, ids[:, :, t].reshape(-1), t)
        logp = jax.nn.log_softmax(logits.astype(jnp.float32)).reshape(batch, beam_size, -1)
        vocab = logp.shape[-1]
        only_pad = jnp.full(vocab, _DEAD).at[pad].set(0.0)
        logp = jnp.where(done[..., None], only_pad, logp)
        scores, flat = jax.lax.top_k((scores[..., None] + logp).reshape(batch, -1), beam_size)
        beam, token = flat // vocab, (flat % vocab).astype(ids.dtype)
        ids = ids[rows, beam].at[:, :, t + 1].set(token)
        done = done[rows, beam] | (token == eos)
        cache = jax.tree.map(
            lambda c: c.reshape(batch, beam_size, *c.shape[1:])[rows, beam].reshape(c.shape), cache)
        return t + 1, ids, scores, cache, done

    ids = jnp.full((batch, beam_size, max_len), pad, jnp.int32).at[:, :, 0].set(bos)
    scores = jnp.full((batch, beam_size), _DEAD).at[:, 0].set(0.0)  # one live beam: no duplicates
    state = body((jnp.int32(0), ids, scores, {}, jnp.zeros((batch, beam_size), bool)))
    _, ids, scores, _, _ = jax.lax.while_loop(lambda s: (s[0] < max_len - 1) & ~s[4].all(), body, state)
    lengths = closed_lengths(ids, eos)
    final = jnp.where((lengths > 0) & (scores > _DEAD / 2),
                      scores / jnp.maximum(lengths, 1).astype(jnp.float32) ** length_penalty, -jnp.inf)
    order = jnp.argsort(-final, axis=-1)
    return ids[rows, order], lengths[rows, order], final[rows, order]


def model_step(model, params, memory: jax.Array, max_len: int) -> Step:
    """The cached step function of an SR model decoding from `memory` [rows, M, d] for up to `max_len`."""
    def step(cache, tokens, position):
        variables = {"params": params, **({"cache": cache} if cache else {})}
        logits, updated = model.apply(variables, memory, tokens, DecodeStep(position, max_len),
                                      method="decode_step", mutable=["cache"])
        return logits, updated["cache"]
    return step


@functools.cache
def _decoders(config: ml_collections.FrozenConfigDict):
    model = models.make_sr_model(config, parallel.kernels_for(config))
    vocab = get_vocab(config.data.max_dim)
    ends = dict(bos=vocab.eos_id, eos=vocab.eos_id, pad=vocab.pad_id)

    def memory(params, z, copies):
        return jnp.repeat(model.apply({"params": params}, z, method="memory"), copies, axis=0)

    @functools.partial(jax.jit, static_argnames=("n_samples", "temperature", "max_len"))
    def sample_latents(params, z, key, *, n_samples, temperature, max_len):
        step = model_step(model, params, memory(params, z, n_samples), max_len)
        ids, lengths = sample(step, z.shape[0] * n_samples, key, max_len=max_len, temperature=temperature,
                              **ends)
        return ids.reshape(z.shape[0], n_samples, max_len), lengths.reshape(z.shape[0], n_samples)

    @functools.partial(jax.jit, static_argnames=("beam_size", "max_len", "length_penalty"))
    def beam_latents(params, z, *, beam_size, max_len, length_penalty=1.0):
        step = model_step(model, params, memory(params, z, beam_size), max_len)
        return beam_search(step, z.shape[0], beam_size=beam_size, max_len=max_len,
                           length_penalty=length_penalty, **ends)

    return sample_latents, beam_latents


def make_decoders(config: ml_collections.ConfigDict):
    """(sample_latents, beam_latents) of the SR model of `config`, jitted; both take the params and numeric
    latents z [B, latent]:

    - `sample_latents(params, z, key, *, n_samples, temperature, max_len)` → ids [B, n, L], lengths [B, n]
    - `beam_latents(params, z, *, beam_size, max_len, length_penalty=1.0)` → ids, lengths, scores [B, k, …]
    """
    return _decoders(ml_collections.FrozenConfigDict(config))


def to_expression(ids: np.ndarray, length: int, max_dim: int, rng: np.random.Generator | None = None
                  ) -> Expression | None:
    """The expression of one decoded sequence (`<EOS>` prefix `<EOS>`), or None when it is not a valid
    prefix expression (unclosed, a word out of place, a malformed number). A `CONSTANT` placeholder starts
    from N(0, 1), as the official refit starts it (`rng`, seeded 0 if not given)."""
    if length < 3:
        return None
    vocab = get_vocab(max_dim)
    words = vocab.equation_words
    body = np.asarray(ids[1:length - 1])
    prefix, i = [], 0
    while i < len(body):
        token = int(body[i])
        word = words[token] if token < len(words) else None
        if token >= vocab.n_symbols:  # a number: sign, mantissa, exponent
            value = floats.decode(body[i:i + TOKENS_PER_FLOAT] - vocab.n_symbols) \
                if i + TOKENS_PER_FLOAT <= len(body) else np.nan
            if not np.isfinite(value):
                return None
            prefix.append(float(value))
            i += TOKENS_PER_FLOAT
            continue
        if word in OPERATOR_ARITY or (word is not None and is_variable(word) and int(word[2:]) < max_dim):
            prefix.append(word)
        elif word == "CONSTANT":
            rng = rng if rng is not None else np.random.default_rng(0)
            prefix.append(float(rng.standard_normal()))
        else:
            return None
        i += 1
    try:
        return Expression(tuple(prefix))
    except ValueError:
        return None


def to_expressions(ids, lengths, *, max_dim: int, seed: int = 0) -> list:
    """Expressions (None where invalid) of decoded ids [..., L] with their lengths [...], flattened in order."""
    ids, lengths = np.asarray(ids), np.asarray(lengths)
    rng = np.random.default_rng(seed)
    flat_ids = ids.reshape(-1, ids.shape[-1])
    return [to_expression(row, int(n), max_dim, rng) for row, n in zip(flat_ids, lengths.reshape(-1))]
