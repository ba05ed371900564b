"""How a generation pair becomes tokens: the decoder-only loss sees only the target and its
EOS, long sources are cut without losing the prompt's cue, and padding goes where each model
needs it."""

from __future__ import annotations

import pytest

from finetune.configuration.config import DataSection, EvalSection
from finetune.tasks.architectures.generator import IGNORE_INDEX, pad_batch


@pytest.fixture(scope="module")
def gpt2_tokenizer():
    from tiny_models import build_bpe_tokenizer

    return build_bpe_tokenizer("gpt2")


def _causal(**data):
    from finetune.tasks.architectures.decoder_only import DecoderOnlyArch
    from finetune.tasks.specs.translation import TranslationSpec
    from finetune.tasks.task import Task

    section = DataSection(files={"train": "x.jsonl"}, text_column="en", target_column="de", **data)
    return Task(TranslationSpec(section), DecoderOnlyArch(EvalSection().generation), EvalSection())


def test_causal_labels_cover_only_target_and_eos(gpt2_tokenizer):
    from datasets import Dataset

    task = _causal(prompt_template="EN: {source}\nDE: ")
    task.prepare_tokenizer(gpt2_tokenizer)
    assert gpt2_tokenizer.pad_token == gpt2_tokenizer.eos_token  # GPT-2 had none
    ds = Dataset.from_dict({"en": ["The film was great."], "de": ["Der Film war toll."]})
    row = task.encode(ds, "train", gpt2_tokenizer)[0]
    ids, labels = row["input_ids"], row["labels"]
    prompt = task.prompt_rows(["The film was great."], gpt2_tokenizer)[0]["input_ids"]
    assert ids[: len(prompt)] == prompt
    assert labels[: len(prompt)] == [IGNORE_INDEX] * len(prompt)
    target = labels[len(prompt):]
    assert target[-1] == gpt2_tokenizer.eos_token_id and ids[-1] == gpt2_tokenizer.eos_token_id
    assert gpt2_tokenizer.decode(target[:-1]) == "Der Film war toll."


def test_long_source_is_cut_but_the_cue_stays(gpt2_tokenizer):
    task = _causal(prompt_template="EN: {source}\nDE: ", max_source_length=5)
    task.prepare_tokenizer(gpt2_tokenizer)
    long = "word " * 50
    ids = task.prompt_rows([long], gpt2_tokenizer)[0]["input_ids"]
    assert gpt2_tokenizer.decode(ids).endswith("\nDE: ")
    short = task.prompt_rows(["hi"], gpt2_tokenizer)[0]["input_ids"]
    assert len(ids) - len(short) <= 5


def test_padding_sides():
    rows = [{"input_ids": [5, 6, 7], "labels": [7]}, {"input_ids": [8], "labels": [8, 9]}]
    right = pad_batch(rows, pad_id=0, left=False)
    assert right["input_ids"].tolist() == [[5, 6, 7], [8, 0, 0]]
    assert right["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert right["labels"].tolist() == [[7, IGNORE_INDEX], [8, 9]]
    left = pad_batch([{"input_ids": [5, 6, 7]}, {"input_ids": [8]}], pad_id=0, left=True)
    assert left["input_ids"].tolist() == [[5, 6, 7], [0, 0, 8]]
    assert left["attention_mask"].tolist() == [[1, 1, 1], [0, 0, 1]]


def test_reference_lists_and_hub_pairs():
    from finetune.tasks.specs.summarization import SummarizationSpec
    from finetune.tasks.specs.translation import TranslationSpec

    summ = SummarizationSpec(DataSection(files={"t": "x"}, text_column="source", summary_column="target"))
    batch = {"source": [["One.", "Two."]], "target": [["a", "b"]]}
    assert summ.sources(batch) == ["One. Two."]
    assert summ.references(batch) == [["a", "b"]]
    assert summ.targets(batch) == ["a"]
    mt = TranslationSpec(DataSection(files={"t": "x"}, source_lang="en", target_lang="de", source_prefix="translate: "))
    pairs = {"translation": [{"en": "Hello", "de": "Hallo"}]}
    assert mt.sources(pairs) == ["translate: Hello"]
    assert mt.references(pairs) == [["Hallo"]]


@pytest.mark.parametrize("family", ["gpt2", "t5"])
def test_eval_loss_rows_add_up_to_the_model_loss(family):
    """Each row reports its target tokens' loss sum and count; over a batch they give the
    model's own (token-mean) loss, so a split's loss does not depend on how it was batched."""
    import torch
    from tiny_models import tiny_model

    from finetune.tasks.architectures.decoder_only import DecoderOnlyArch
    from finetune.tasks.architectures.seq2seq import Seq2SeqArch

    torch.manual_seed(0)
    model = tiny_model(family).eval()
    model.config.pad_token_id = model.config.decoder_start_token_id = 0  # T5 starts decoding from pad
    arch = (DecoderOnlyArch if family == "gpt2" else Seq2SeqArch)(EvalSection().generation)
    if family == "gpt2":  # the prompt does not count, the target and its EOS do
        rows = [{"input_ids": [5, 6, 7, 8, 9], "labels": [IGNORE_INDEX] * 3 + [8, 9]},
                {"input_ids": [11, 12, 13, 14, 15, 16, 17], "labels": [IGNORE_INDEX] * 2 + [13, 14, 15, 16, 17]}]
    else:
        rows = [{"input_ids": [5, 6, 7], "labels": [8, 9]}, {"input_ids": [11, 12], "labels": [13, 14, 15, 16, 17]}]
    batch = pad_batch(rows, 0, left=arch.pad_left)
    with torch.no_grad():
        scored = arch.scored_batch(model, batch)
        expected = model(**batch).loss.item()
    assert [r["tokens"] for r in scored] == [2, 5]  # each target token once
    assert sum(r["loss_sum"] for r in scored) / 7 == pytest.approx(expected, rel=1e-5)
    assert scored[0]["loss_sum"] != pytest.approx(scored[1]["loss_sum"])  # each row its own
