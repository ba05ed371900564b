"""Long-input families (Longformer, BigBird, LED, LongT5) on tiny random models: the attention
kernel picked by default, the error for one the model lacks, every family on every task it can
do (and a clear error on the rest), the collator's padding, and their attention maps."""

from __future__ import annotations

import json

import pytest
import yaml
from conftest import main_in_process, write_config

ENCODERS = ("longformer", "big_bird")
SEQ2SEQ = ("led", "longt5")


@pytest.fixture(scope="module")
def long_models(tmp_path_factory):
    from tiny_models import build_tiny_long_encoder, build_tiny_long_seq2seq

    models = {f: build_tiny_long_encoder(f, tmp_path_factory.mktemp(f)) for f in ENCODERS}
    models.update({f: build_tiny_long_seq2seq(f, tmp_path_factory.mktemp(f)) for f in SEQ2SEQ})
    return models


@pytest.fixture(scope="module")
def toy_data(tmp_path_factory):
    """Rows with a label, a summary (first three words) and a translation (words reversed)."""
    from tiny_models import corpus

    root = tmp_path_factory.mktemp("long-data")
    texts = [t for t in corpus() if len(t.split()) >= 5][:40]
    files = {}
    for split, part in (("train", texts[:32]), ("validation", texts[32:])):
        rows = [{"text": t, "label": ["negative", "positive"][i % 2], "summary": " ".join(t.split()[:3]),
                 "target": " ".join(reversed(t.split()))} for i, t in enumerate(part)]
        files[split] = root / f"{split}.jsonl"
        files[split].write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return files


def config(tmp_path, task, model, data, lora=False, **extra) -> dict:
    cfg = {
        "task": task,
        "model": {"name_or_path": str(model)},
        "data": {"files": {k: str(v) for k, v in data.items()}, "max_length": 32,
                 "max_source_length": 40, "max_target_length": 16,
                 "summary_column": "summary", "target_column": "target"},
        "lora": {"enabled": lora},
        "training": {"output_dir": str(tmp_path / "run"), "max_steps": 2, "batch_size": 8},
        "eval": {"batch_size": 8, "generation": {"max_new_tokens": 6}},
    }
    for dotted, value in extra.items():
        section, key = dotted.split("__")
        cfg[section][key] = value
    return cfg


def train(tmp_path, cfg, capsys, monkeypatch) -> tuple[int, str, str]:
    path = write_config(tmp_path / "run.yaml", yaml.safe_dump(cfg))
    return run_main(["train", "--config", str(path)], capsys, monkeypatch)


run_main = main_in_process


# ----------------------------------------------------------------------------- attention kernel


def test_auto_picks_sdpa_where_the_architecture_has_it_else_eager():
    import transformers as tf

    from finetune.model.attn_kernel import choose_kernel

    assert choose_kernel("auto", tf.BertForSequenceClassification, tf.BertConfig()) == "sdpa"
    for cls, config in ((tf.LongformerForSequenceClassification, tf.LongformerConfig()),
                        (tf.BigBirdForSequenceClassification, tf.BigBirdConfig()),
                        (tf.LEDForConditionalGeneration, tf.LEDConfig()),
                        (tf.LongT5ForConditionalGeneration, tf.LongT5Config())):
        assert choose_kernel("auto", cls, config) == "eager"
        assert choose_kernel("eager", cls, config) == "eager"


def test_explicit_sdpa_on_longformer_names_the_key_and_the_kernels_it_has(
    tmp_path, long_models, toy_data, capsys, monkeypatch
):
    cfg = config(tmp_path, "sentiment", long_models["longformer"], toy_data)
    cfg["model"]["attn_implementation"] = "sdpa"
    code, _, err = train(tmp_path, cfg, capsys, monkeypatch)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), err
    assert "model.attn_implementation" in lines[0] and "supports eager" in lines[0]
    assert "name_or_path" not in lines[0]  # the path is fine; the kernel is not
    assert not (tmp_path / "run").exists()


# ----------------------------------------------------------------------------- family x task


@pytest.mark.parametrize("family, task, lora", [
    ("longformer", "sentiment", True),
    ("big_bird", "classification", False),
    ("led", "summarization", True),
    ("led", "translation", False),
    ("longt5", "summarization", True),
])
def test_family_trains_and_evaluates(tmp_path, long_models, toy_data, capsys, monkeypatch, family, task, lora):
    code, out, err = train(tmp_path, config(tmp_path, task, long_models[family], toy_data, lora), capsys, monkeypatch)
    assert code == 0, err
    run = tmp_path / "run"
    assert "attention: eager" in out.splitlines()[0]  # said before anything else
    assert yaml.safe_load((run / "config.yaml").read_text())["model"]["attn_implementation"] == "eager"
    metrics = json.loads((run / "eval_validation.json").read_text())
    assert metrics["samples"] == 8 and metrics["loss"] > 0
    if lora:
        targets = set(json.loads((run / "model" / "adapter_config.json").read_text())["target_modules"])
        if family in ("longformer", "led"):  # their global tokens have projections of their own
            assert {"query_global", "key_global", "value_global"} <= targets


@pytest.mark.parametrize("family, task, culprit", [
    ("longformer", "translation", "encoder-only"),
    ("big_bird", "summarization", "encoder-only"),
    ("led", "sentiment", "AutoModelForSequenceClassification"),
    ("longt5", "sentiment", "AutoModelForSequenceClassification"),
])
def test_family_that_cannot_do_the_task_says_so(tmp_path, long_models, toy_data, capsys, monkeypatch,
                                                family, task, culprit):
    code, _, err = train(tmp_path, config(tmp_path, task, long_models[family], toy_data), capsys, monkeypatch)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and culprit in lines[0], err


# ----------------------------------------------------------------------------- padding


def _collate(model_dir, lengths):
    import transformers as tf
    from transformers import DataCollatorWithPadding

    from finetune.data.long_inputs import collator_for

    tokenizer = tf.AutoTokenizer.from_pretrained(model_dir)
    collate = collator_for(DataCollatorWithPadding(tokenizer), tf.AutoConfig.from_pretrained(model_dir), tokenizer)
    return tokenizer, collate([{"input_ids": [101] + [7] * (n - 2) + [102], "attention_mask": [1] * n}
                               for n in lengths])


def test_collator_pads_to_longformers_window_multiple(long_models):
    tokenizer, batch = _collate(long_models["longformer"], [5, 11])
    assert batch["input_ids"].shape == (2, 16)  # attention_window 8
    assert batch["attention_mask"].sum(1).tolist() == [5, 11]
    assert (batch["input_ids"][1, 11:] == tokenizer.pad_token_id).all()


def test_bigbird_stays_block_sparse_on_short_batches(long_models):
    import torch
    import transformers as tf

    _, batch = _collate(long_models["big_bird"], [6, 10])
    assert batch["input_ids"].shape == (2, 32)  # BigBird's block-sparse minimum, a block multiple
    model = tf.AutoModelForSequenceClassification.from_pretrained(long_models["big_bird"])
    with torch.no_grad():
        model(**batch)
    assert model.base_model.attention_type == "block_sparse"
    with torch.no_grad():  # unpadded, the model would switch itself to full attention for good
        model(input_ids=batch["input_ids"][:, :10], attention_mask=batch["attention_mask"][:, :10])
    assert model.base_model.attention_type == "original_full"


def test_predict_pads_like_training_so_bigbird_stays_block_sparse(long_models):
    import transformers as tf

    from finetune.configuration.config import DataSection, EvalSection
    from finetune.evaluation.inference import predict
    from finetune.tasks.architectures.classifier import ClassifierArch
    from finetune.tasks.specs.classification import ClassificationSpec
    from finetune.tasks.task import Task

    task = Task(ClassificationSpec(DataSection(max_length=32)), ClassifierArch(), EvalSection())
    task.spec.label_names = ["negative", "positive"]
    model = tf.AutoModelForSequenceClassification.from_pretrained(long_models["big_bird"], num_labels=2)
    tokenizer = tf.AutoTokenizer.from_pretrained(long_models["big_bird"])
    answers = predict(task, model, tokenizer, ["short", "a little longer than that"])
    assert [a["label"] in task.spec.label_names for a in answers] == [True, True]
    assert model.base_model.attention_type == "block_sparse"


def test_resume_accepts_auto_for_the_kernel_the_run_recorded(tmp_path):
    from finetune.configuration.config import RunConfig
    from finetune.errors import ConfigError
    from finetune.training.train_state import check_compatible

    raw = {"task": "sentiment", "model": {"name_or_path": "m"}, "data": {"files": {"train": "t.jsonl"}}}
    saved = RunConfig.model_validate(raw)
    saved.model.attn_implementation = "eager"  # what `auto` chose when the run started
    (tmp_path / "config.yaml").write_text(saved.to_yaml())
    (tmp_path / "train_state.json").write_text(json.dumps({"step": 1, "steps_per_epoch": 1, "data_sha256": {}}))
    check_compatible(RunConfig.model_validate(raw), tmp_path, {})  # auto: fine
    raw["model"]["attn_implementation"] = "sdpa"
    with pytest.raises(ConfigError, match="model.attn_implementation"):
        check_compatible(RunConfig.model_validate(raw), tmp_path, {})


def test_bigbird_with_short_max_length_uses_full_attention_from_the_start(
    tmp_path, long_models, toy_data, capsys, monkeypatch
):
    cfg = config(tmp_path, "sentiment", long_models["big_bird"], toy_data)
    cfg["data"]["max_length"] = 16
    code, out, err = train(tmp_path, cfg, capsys, monkeypatch)
    assert code == 0, err
    assert "too short for block-sparse attention (needs 32); using full attention" in out
    saved = json.loads((tmp_path / "run" / "model" / "config.json").read_text())
    assert saved["attention_type"] == "original_full"  # reloads as it trained


# ----------------------------------------------------------------------------- attention maps


@pytest.mark.parametrize("family", ["longformer", "led", "big_bird"])
def test_attention_maps_show_window_and_global_tokens(long_models, family):
    import transformers as tf

    from finetune.views.attention.maps import model_attention

    auto = tf.AutoModelForSeq2SeqLM if family == "led" else tf.AutoModelForSequenceClassification
    model = auto.from_pretrained(long_models[family]).eval()
    tokenizer = tf.AutoTokenizer.from_pretrained(long_models[family])
    text = "a long and winding sentence about a film that goes on well past the window size"
    batch = tokenizer([text], return_tensors="pt")
    n = batch["input_ids"].shape[1]
    maps = model_attention(model, tokenizer, batch)["self"]
    assert maps.shape == (2, 1, 2, n, n)  # layer, batch, head, query, key over the text's tokens
    if family == "big_bird":  # its own block-sparse map: some keys never attended
        assert (maps == 0).any() and maps.sum(-1).max() <= 1 + 1e-5
        return
    assert maps.sum(-1).sub(1).abs().max() < 1e-5  # every row is a distribution over real tokens
    first_local = 1 if family == "longformer" else 0  # Longformer's classifier: token 0 is global
    far = maps[..., first_local:, first_local:]
    query, key = 12, 3  # 9 apart: outside a window of 4 either side
    assert far[..., query - first_local, key - first_local].abs().max() == 0
    if family == "longformer":  # the global token sees and is seen by every token
        assert (maps[..., :, 0] > 0).all() and (maps[..., 0, :] > 0).all()


def test_attention_command_on_a_longformer_run(tmp_path, long_models, toy_data, capsys, monkeypatch):
    from png import assert_png

    code, _, err = train(tmp_path, config(tmp_path, "sentiment", long_models["longformer"], toy_data, True),
                         capsys, monkeypatch)
    assert code == 0, err
    code, _, err = run_main(["attention", str(tmp_path / "run"), "one two three", "--head", "1"], capsys, monkeypatch)
    assert code == 0, err
    assert_png(tmp_path / "run" / "attention" / "layer1_head1.png")
