"""A tokenizer learnt from the data: round trips, special ids, EOS only for encoder-decoders,
and the cache that trains once per data and settings."""

from __future__ import annotations

import pytest

from finetune.model.tokenizer_training import cached_tokenizer, model_fields, train_tokenizer

from tiny_models import corpus

TEXTS = corpus()  # 480 varied English sentences


# Byte-level BPE starts from 256 byte symbols, so its vocabulary must be larger to learn merges.
@pytest.mark.parametrize("kind,vocab_size", [("bpe", 500), ("unigram", 300)])
def test_round_trip_and_special_ids(kind, vocab_size):
    tokenizer = train_tokenizer(TEXTS, vocab_size=vocab_size, kind=kind, min_frequency=1, append_eos=True)
    assert (tokenizer.pad_token_id, tokenizer.eos_token_id, tokenizer.unk_token_id) == (0, 1, 2)
    assert len(tokenizer) <= vocab_size
    text = TEXTS[5]
    ids = tokenizer(text)["input_ids"]
    assert ids[-1] == tokenizer.eos_token_id and ids.count(tokenizer.eos_token_id) == 1
    assert tokenizer.decode(ids, skip_special_tokens=True).strip() == text
    # Learnt pieces: frequent words become single tokens, far fewer ids than characters.
    assert len(ids) < 0.6 * len(text)


def test_bpe_never_loses_an_unseen_character():
    tokenizer = train_tokenizer(TEXTS, vocab_size=300, kind="bpe", min_frequency=1, append_eos=False)
    text = "Ça coûte 5 € — ñ?"
    ids = tokenizer(text)["input_ids"]
    assert tokenizer.unk_token_id not in ids and tokenizer.eos_token_id not in ids
    assert tokenizer.decode(ids) == text


def test_the_cache_trains_once_per_data_and_settings(tmp_path):
    calls = []

    def texts():
        calls.append(1)
        return iter(TEXTS)

    settings = {"vocab_size": 300, "kind": "bpe", "min_frequency": 1}
    first = cached_tokenizer(texts, fingerprint="abc", settings=settings, cache=tmp_path, append_eos=True)
    again = cached_tokenizer(texts, fingerprint="abc", settings=settings, cache=tmp_path, append_eos=True)
    assert len(calls) == 1
    assert again.get_vocab() == first.get_vocab()
    cached_tokenizer(texts, fingerprint="other data", settings=settings, cache=tmp_path, append_eos=True)
    cached_tokenizer(texts, fingerprint="abc", settings={**settings, "vocab_size": 280}, cache=tmp_path,
                     append_eos=True)
    assert len(calls) == 3
    assert not list((tmp_path / "tokenizers").glob("*.tmp"))


def test_model_fields_follow_the_vocabulary():
    tokenizer = train_tokenizer(TEXTS, vocab_size=120, kind="bpe", min_frequency=1, append_eos=True)
    fields = model_fields(tokenizer, encoder_decoder=True)
    assert fields["vocab_size"] == len(tokenizer)
    assert fields["decoder_start_token_id"] == fields["pad_token_id"] == 0
    assert "decoder_start_token_id" not in model_fields(tokenizer, encoder_decoder=False)
