"""Decoding under jit: the KV-cached searches against slow references, and decoded ids as expressions."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from snipjax import models
from snipjax.data.expressions import Expression
from snipjax.data.tokens import encode_expressions
from snipjax.data.vocab import get_vocab
from snipjax.tasks.sr import decoding
from test_sr_train import tiny_sr_config

MAX_LEN = 12


@pytest.fixture(scope="module")
def tiny_model():
    config = tiny_sr_config()
    model = models.make_sr_model(config)
    points = jnp.zeros((1, config.data.n_points, 3 * (config.data.max_dim + 1)), jnp.int32)
    tokens = jnp.zeros((1, MAX_LEN), jnp.int32)
    params = model.init(jax.random.key(0), points, tokens, jnp.array([MAX_LEN]))["params"]
    # Make `<EOS>` likely (about one in three) so that some sequences close within MAX_LEN.
    eos = get_vocab(config.data.max_dim).eos_id
    params["decoder"]["proj"]["bias"] = params["decoder"]["proj"]["bias"].at[eos].add(8.5)
    z = jax.random.normal(jax.random.key(1), (3, config.model.latent_dim))
    return config, model, params, z


def reference_logits(model, params, z, ids, t):
    """Logits of position t + 1 from a full teacher-forced pass over ids[:, :t + 1] (no cache)."""
    lengths = jnp.full((ids.shape[0],), t + 1)
    return model.apply({"params": params}, z, ids[:, :t + 1], lengths, method="decode")[:, t]


@pytest.mark.slow
def test_cached_step_logits_equal_a_full_forward_pass(tiny_model):
    config, model, params, z = tiny_model
    vocab = get_vocab(config.data.max_dim)
    ids = jnp.asarray(np.random.default_rng(0).integers(0, vocab.equation_size, (3, MAX_LEN)), jnp.int32)
    full = model.apply({"params": params}, z, ids, jnp.full((3,), MAX_LEN), method="decode")
    memory = model.apply({"params": params}, z, method="memory")
    cache = {}
    for t in range(MAX_LEN):
        variables = {"params": params, **({"cache": cache} if cache else {})}
        logits, updated = model.apply(variables, memory, ids[:, t], models.transformer.DecodeStep(
            jnp.int32(t), MAX_LEN), method="decode_step", mutable=["cache"])
        cache = updated["cache"]
        np.testing.assert_allclose(logits, full[:, t], rtol=2e-4, atol=2e-4)


@pytest.mark.parametrize("temperature", [0.0, 0.7])
def test_sampling_equals_the_step_by_step_reference(tiny_model, temperature):
    config, model, params, z = tiny_model
    vocab = get_vocab(config.data.max_dim)
    key = jax.random.key(3)
    sample_latents, _ = decoding.make_decoders(config)
    ids, lengths = sample_latents(params, z, key, n_samples=2, temperature=temperature, max_len=MAX_LEN)

    rows = jnp.repeat(z, 2, axis=0)
    expected = np.full((6, MAX_LEN), vocab.pad_id)
    expected[:, 0] = vocab.eos_id
    done = np.zeros(6, bool)
    for t in range(MAX_LEN - 1):
        logits = reference_logits(model, params, rows, jnp.asarray(expected), t)
        if temperature:
            token = np.asarray(decoding.draw(jax.random.fold_in(key, t), logits / temperature))
        else:
            token = np.asarray(jnp.argmax(logits, -1))
        token = np.where(done, vocab.pad_id, token)
        expected[:, t + 1] = token
        done |= token == vocab.eos_id
        if done.all():
            break
    np.testing.assert_array_equal(np.asarray(ids).reshape(6, MAX_LEN), expected)
    closing = [list(row[1:]).index(vocab.eos_id) + 2 if vocab.eos_id in row[1:] else 0 for row in expected]
    np.testing.assert_array_equal(np.asarray(lengths).reshape(6), closing)
    assert 0 < np.count_nonzero(closing)


def test_draws_follow_the_softmax_of_the_logits():
    # 300 words: blocks of 128 with a partial last one; the likely words sit on both sides of a block edge.
    logits = np.full(300, -4.0)
    logits[[0, 127, 128, 299]] = [1.0, 2.0, 0.5, 1.5]
    probabilities = np.exp(logits) / np.exp(logits).sum()
    keys = jax.random.split(jax.random.key(0), 20_000)
    rows = jnp.broadcast_to(jnp.asarray(logits, jnp.float32), (len(keys), 300))
    tokens = np.asarray(jax.vmap(lambda k, row: decoding.draw(k, row[None])[0])(keys, rows))
    counts = np.bincount(tokens, minlength=300)
    expected = probabilities * len(keys)
    assert np.all(np.abs(counts - expected) < 5 * np.sqrt(expected) + 1)  # 5 sigma on every word
    assert np.all(counts[[0, 127, 128, 299]] > 0)


def markov_step(transitions):
    """A toy model whose next-token log-probabilities depend on the last token only."""
    table = jnp.log(jnp.asarray(transitions))

    def step(cache, tokens, position):
        return table[tokens], {"calls": cache.get("calls", jnp.zeros(tokens.shape, jnp.int32)) + 1}
    return step


def brute_force_best(transitions, max_len, bos, eos):
    """The most probable closed sequence of at most max_len tokens, by enumeration."""
    logp = np.log(transitions)
    best, best_score = None, -np.inf
    for n in range(1, max_len):
        for body in itertools.product([t for t in range(len(transitions)) if t != eos], repeat=n - 1):
            sequence = (bos, *body, eos)
            score = sum(logp[a, b] for a, b in zip(sequence, sequence[1:]))
            if score > best_score:
                best, best_score = sequence, score
    return best, best_score


def test_beam_search_finds_the_most_probable_sequence_of_a_toy_model():
    rng = np.random.default_rng(4)
    vocab, bos, eos, pad = 5, 0, 1, 4
    transitions = rng.dirichlet(np.full(vocab, 0.5), size=vocab)
    transitions[:, pad] = 1e-9  # the pad token is never a real continuation
    transitions /= transitions.sum(1, keepdims=True)
    max_len = 6
    best, best_score = brute_force_best(transitions, max_len, bos, eos)
    ids, lengths, scores = jax.jit(lambda: decoding.beam_search(
        markov_step(transitions), 2, beam_size=vocab ** 2, max_len=max_len, bos=bos, eos=eos, pad=pad,
        length_penalty=0.0))()
    for row in range(2):
        assert tuple(np.asarray(ids[row, 0, :lengths[row, 0]])) == best
        np.testing.assert_allclose(scores[row, 0], best_score, rtol=1e-5)
        ranked = np.asarray(scores[row])
        assert np.all(np.diff(ranked[np.isfinite(ranked)]) <= 1e-6)  # best first


def test_beam_search_of_the_sr_model_ranks_its_beams(tiny_model):
    config, model, params, z = tiny_model
    _, beam_latents = decoding.make_decoders(config)
    ids, lengths, scores = beam_latents(params, z, beam_size=4, max_len=MAX_LEN)
    assert ids.shape == (3, 4, MAX_LEN) and lengths.shape == scores.shape == (3, 4)
    finite = np.isfinite(np.asarray(scores))
    assert finite.sum() >= 3
    assert np.all(np.diff(np.where(finite, scores, -1e9), axis=1) <= 1e-6)
    # A closed beam's score is its mean log-probability under the reference pass.
    vocab = get_vocab(config.data.max_dim)
    for row, beam in zip(*np.nonzero(finite)):
        n = int(lengths[row, beam])
        sequence = jnp.asarray(ids[row, beam][None, :n])
        logits = model.apply({"params": params}, z[row:row + 1], sequence[:, :-1], jnp.array([n - 1]),
                             method="decode")
        logp = jax.nn.log_softmax(logits[0], -1)[jnp.arange(n - 1), sequence[0, 1:]]
        np.testing.assert_allclose(scores[row, beam], float(logp.sum()) / n, rtol=1e-4)
        assert sequence[0, -1] == vocab.eos_id


def test_decoded_ids_become_expressions_and_invalid_ones_none():
    expressions = [Expression(("add", "mul", 2.5, "x_0", "sin", "x_1")), Expression(("x_0",))]
    ids, lengths = encode_expressions(expressions, max_dim=2, max_len=20)
    decoded = decoding.to_expressions(ids, lengths, max_dim=2)
    assert decoded == expressions

    vocab = get_vocab(2)
    word = vocab.equation_id
    broken = [
        [word["add"], word["x_0"]],  # an operand missing
        [word["x_0"], word["x_1"]],  # tokens after a complete expression
        [word["sin"], ids[0][3], word["x_0"]],  # a number cut after its sign
        [word["pi"]],  # a word the generator never writes
    ]
    rows = np.full((len(broken) + 1, 10), vocab.pad_id)
    for row, body in enumerate(broken):
        rows[row, :len(body) + 2] = [vocab.eos_id, *body, vocab.eos_id]
    rows[-1, :3] = [vocab.eos_id, word["x_0"], word["x_0"]]  # never closed
    lengths = [len(body) + 2 for body in broken] + [0]
    assert decoding.to_expressions(rows, lengths, max_dim=2) == [None] * 5
    placeholder = decoding.to_expressions([[vocab.eos_id, word["CONSTANT"], vocab.eos_id]], [3], max_dim=2)[0]
    assert placeholder.n_nodes == 1 and placeholder.constants[0] != 0.0
