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



def test_a_symlink_at_a_cache_entry_or_its_temporary_name_goes_as_a_link(tmp_path):
    """A crash's leftover `.tmp` (or a broken entry) that is a symlink: never written through."""
    settings = {"vocab_size": 300, "kind": "bpe", "min_frequency": 1}
    probe = cached_tokenizer(lambda: iter(TEXTS), fingerprint="abc", settings=settings, cache=tmp_path / "probe",
                             append_eos=True)
    assert probe
    name = next((tmp_path / "probe" / "tokenizers").iterdir()).name
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "keep.txt").write_text("precious")
    entries = tmp_path / "cache" / "tokenizers"
    entries.mkdir(parents=True)
    (entries / f"{name}.tmp").symlink_to(mine)
    (entries / name).symlink_to(mine)  # no tokenizer.json behind it: a broken entry
    cached_tokenizer(lambda: iter(TEXTS), fingerprint="abc", settings=settings, cache=tmp_path / "cache",
                     append_eos=True)
    assert [p.name for p in mine.iterdir()] == ["keep.txt"] and (mine / "keep.txt").read_text() == "precious"
    assert (entries / name / "tokenizer.json").is_file() and not (entries / name).is_symlink()

def test_model_fields_follow_the_vocabulary():
    tokenizer = train_tokenizer(TEXTS, vocab_size=120, kind="bpe", min_frequency=1, append_eos=True)
    fields = model_fields(tokenizer, encoder_decoder=True)
    assert fields["vocab_size"] == len(tokenizer)
    assert fields["decoder_start_token_id"] == fields["pad_token_id"] == 0
    assert "decoder_start_token_id" not in model_fields(tokenizer, encoder_decoder=False)


def _translation_run(tmp_path, model_dir, out, vocab_size=400):
    import json

    from conftest import write_config

    texts = [t for t in TEXTS if len(t.split()) >= 5][:80]
    files = {}
    for split, rows in (("train", texts[:64]), ("validation", texts[64:])):
        path = tmp_path / f"{split}.jsonl"
        path.write_text("".join(json.dumps({"en": t, "de": " ".join(reversed(t.split()))}) + "\n"
                                for t in rows))
        files[split] = path
    return write_config(tmp_path / f"{out.name}.yaml", f"""
task: translation
model:
  name_or_path: {model_dir}
  init: scratch
  tokenizer: {{train: true, vocab_size: {vocab_size}, min_frequency: 1}}
data:
  files: {{train: {files['train']}, validation: {files['validation']}}}
  text_column: en
  target_column: de
  max_source_length: 32
  max_target_length: 32
training: {{output_dir: {out}, max_steps: 6, batch_size: 16, lr: 1.0e-3, eval_each_epoch: false}}
eval: {{batch_size: 8, generation: {{max_new_tokens: 8}}}}
""")


def test_a_scratch_run_trains_saves_and_reuses_its_tokenizer(tmp_path):
    """The run learns its vocabulary from the training split, sizes the model to it, keeps it in
    the run directory and the saved model, and a second run on the same data reuses the cache."""
    import json
    import os
    from pathlib import Path

    from conftest import run_cli
    from tiny_models import build_tiny_generator
    from transformers import AutoTokenizer

    model_dir = build_tiny_generator("t5", tmp_path / "t5")  # only its config is used: init scratch
    cache = tmp_path / "cache"
    env = {"OMP_NUM_THREADS": "1", "FINETUNE_CACHE": str(cache)}
    run = tmp_path / "run"
    result = run_cli("train", "--config", str(_translation_run(tmp_path, model_dir, run)), env=env)
    assert result.returncode == 0, result.stderr[-2000:]

    learnt = AutoTokenizer.from_pretrained(run / "tokenizer")
    saved = AutoTokenizer.from_pretrained(run / "model")
    assert learnt.get_vocab() == saved.get_vocab()
    assert len(learnt) <= 400 and "Ġthe" in learnt.get_vocab()  # learnt from the data
    config = json.loads((run / "model" / "config.json").read_text())
    assert config["vocab_size"] == len(learnt)
    assert config["decoder_start_token_id"] == config["pad_token_id"] == learnt.pad_token_id

    scored = run_cli("eval", str(run), env=env)
    assert scored.returncode == 0, scored.stderr[-2000:]
    entries = sorted(Path(cache, "tokenizers").iterdir())
    again = run_cli("train", "--config", str(_translation_run(tmp_path, model_dir, tmp_path / "again")), env=env)
    assert again.returncode == 0, again.stderr[-2000:]
    assert sorted(Path(cache, "tokenizers").iterdir()) == entries and len(entries) == 1
    assert os.listdir(tmp_path / "again" / "tokenizer") == os.listdir(run / "tokenizer")
