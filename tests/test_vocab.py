from pathlib import Path

import pytest

from snipjax.data.vocab import float_words, get_vocab

FIXTURES = Path(__file__).parent / "fixtures"


def read_words(name):
    return [w for w in (FIXTURES / name).read_text().split("\n") if w]


@pytest.mark.parametrize("max_dim", [1, 10])
def test_equation_vocabulary_has_the_official_id_layout(max_dim):
    vocab = get_vocab(max_dim)
    assert list(vocab.equation_words) == read_words(f"equation_vocab_dmax{max_dim}.txt")
    assert vocab.equation_size == {1: 10283, 10: 10292}[max_dim]
    assert vocab.pad_id == 8
    assert vocab.eos_id == {1: 65, 10: 74}[max_dim]
    assert vocab.equation_words[vocab.eos_id] == "<EOS>"


def test_float_vocabulary_is_the_appended_tail():
    vocab = get_vocab(10)
    assert len(float_words()) == vocab.float_size == 10218
    assert vocab.equation_words[vocab.n_symbols:] == float_words()
    assert float_words()[vocab.input_pad_id] == "<INPUT_PAD>"


def test_float_vocabulary_matches_the_official_file():
    assert list(float_words()) == read_words("float_vocab.txt")
