"""The text tokenizer's styles and the vocabulary contract."""

from __future__ import annotations

import numpy as np
import pytest

from trainlab.data.options import PreprocessingConfig
from trainlab.data.preprocess import Preprocessor
from trainlab.data.text import UNK_INDEX, Vocabulary, tokenize


def test_words_style_keeps_contractions_whole_and_splits_punctuation():
    expected = ["it's", "good", ",", "isn't", "it", "?"]
    assert tokenize("It's good, isn't it?", style="words") == expected


def test_default_style_splits_contractions():
    assert tokenize("It's good, isn't it?") == ["it", "'s", "good", ",", "is", "n't", "it", "?"]


def test_contractions_style_splits_clitics_like_kims_clean_str():
    assert tokenize("don't", style="contractions") == ["do", "n't"]
    text = "It's a film that doesn't work; you'll see, we've been warned, they're sure, he'd know."
    assert tokenize(text, style="contractions") == [
        "it", "'s", "a", "film", "that", "does", "n't", "work", ";",
        "you", "'ll", "see", ",", "we", "'ve", "been", "warned", ",",
        "they", "'re", "sure", ",", "he", "'d", "know", ".",
    ]  # fmt: skip
    # "can't" / "won't" become "ca" / "wo" + "n't", as in the Penn Treebank
    expected = ["ca", "n't", "wo", "n't", "i", "'m"]
    assert tokenize("can't won't i'm", style="contractions") == expected


def test_contractions_style_turns_other_apostrophes_into_punctuation():
    assert tokenize("'the characters' o'brien", style="contractions") == [
        "'", "the", "characters", "'", "o", "'", "brien",
    ]  # fmt: skip
    assert tokenize("Don't STOP", lowercase=False, style="contractions") == ["Do", "n't", "STOP"]


def test_contractions_style_shares_the_negation_token_across_words():
    texts = ["doesn't", "isn't", "wasn't", "don't"]
    vocab = Vocabulary.build([tokenize(t, style="contractions") for t in texts])
    assert "n't" in vocab.stoi and "doesn't" not in vocab.stoi
    ids = vocab.encode([tokenize("couldn't", style="contractions")], max_len=3)
    assert ids[0, 0] == UNK_INDEX and ids[0, 1] == vocab.stoi["n't"]


def test_unknown_style_is_refused():
    with pytest.raises(ValueError, match="unknown tokenizer style"):
        tokenize("x", style="kim")  # type: ignore[arg-type]


def test_text_preprocessing_uses_the_contractions_tokenizer():
    pre = Preprocessor(PreprocessingConfig(text={"max_len": 4, "min_freq": 2})).fit(
        np.array(["it doesn't work", "it isn't good", "don't"], dtype=object)
    )
    assert pre.vocab.itos == ["<pad>", "<unk>", "n't", "it"]
    n_t = pre.vocab.stoi["n't"]
    assert pre.transform(np.array(["wasn't it"], dtype=object)).tolist() == [[1, n_t, 3, 0]]


def test_tokenizer_is_a_recipe_choice_saved_with_the_run():
    texts = np.array(["it doesn't work", "it doesn't"], dtype=object)
    words = Preprocessor(PreprocessingConfig(text={"tokenizer": "words", "max_len": 3})).fit(texts)
    assert "doesn't" in words.vocab.stoi and "n't" not in words.vocab.stoi
    state = words.state_dict()
    assert state["config"]["text"]["tokenizer"] == "words"
    again = Preprocessor.from_state_dict(state)
    assert again.transform(texts).tolist() == words.transform(texts).tolist()


def test_runs_saved_before_the_tokenizer_choice_keep_tokenizing_words():
    texts = np.array(["it doesn't work", "it doesn't"], dtype=object)
    old = Preprocessor(PreprocessingConfig(text={"tokenizer": "words", "max_len": 3})).fit(texts)
    state = old.state_dict()
    del state["config"]["text"]["tokenizer"]  # what an earlier run's preprocess.json holds
    loaded = Preprocessor.from_state_dict(state)
    assert loaded.config.text.tokenizer == "words"
    assert loaded.transform(texts).tolist() == old.transform(texts).tolist()
