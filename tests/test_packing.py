"""`data.packing`: packed rows give each example the same loss as its own padded row, and a
packed training run follows the unpacked one step for step (dropout off, so the two differ
only in how the batch is laid out)."""

from __future__ import annotations

import json

import pytest

from conftest import main_in_process, sentiment_yaml, write_config

TEXTS = ["good", "a fine and moving film , warmly acted", "bad", "dull , long and badly written",
         "the best thing this year", "no", "an utter mess from start to finish , with nothing to say"]
TOL = 1e-5  # fp32: summation order differs between a packed row and a padded one


def _order(features, capacity):
    from finetune.data.packing import bins

    return [i for row in bins([len(f["input_ids"]) for f in features], capacity) for i in row]


def test_rows_hold_every_example_once_within_the_capacity():
    from finetune.data.packing import bins

    lengths = [5, 30, 12, 7, 64, 1, 22, 40]
    rows = bins(lengths, 64)
    assert sorted(i for row in rows for i in row) == list(range(len(lengths)))
    assert all(sum(lengths[i] for i in row) <= 64 for row in rows)
    assert len(rows) == 3  # 171 tokens need at least 3 rows of 64


@pytest.mark.parametrize("kernel", ["eager", "sdpa"])
def test_classification_loss_per_example_equals_unpacked(tiny_bert, kernel):
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding

    from finetune.data import packing

    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_bert, num_labels=3, attn_implementation=kernel).eval()
    features = [{**tokenizer(t), "labels": i % 3} for i, t in enumerate(TEXTS)]
    padded = DataCollatorWithPadding(tokenizer)([dict(f) for f in features])
    with torch.no_grad():
        logits = model(**padded).logits
        alone = torch.nn.functional.cross_entropy(logits, padded["labels"], reduction="none")
        packing.install(model, "classification")
        batch = packing.classification_collator(tokenizer.pad_token_id, 24)(features)
        assert batch["input_ids"].shape[0] < len(TEXTS)  # rows were shared
        packed = model(**batch).logits
    order = _order(features, 24)
    assert batch["labels"].tolist() == [features[i]["labels"] for i in order]
    per_example = torch.nn.functional.cross_entropy(packed, batch["labels"], reduction="none")
    assert torch.allclose(per_example, alone[order], atol=TOL), (per_example, alone[order])
    with torch.no_grad():  # the hooks stay out of the way of unpacked batches (evaluation)
        assert torch.allclose(model(**padded).logits, logits, atol=TOL)


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_decoder_only_loss_per_example_equals_unpacked(tmp_path, family):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from finetune.data import packing
    from tiny_models import build_tiny_generator

    path = build_tiny_generator(family, tmp_path / family)
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, attn_implementation="sdpa").eval()
    features = []
    for t in TEXTS:
        ids = tokenizer(t)["input_ids"] + [tokenizer.eos_token_id]
        prompt = max(1, len(ids) // 3)
        features.append({"input_ids": ids, "labels": [-100] * prompt + ids[prompt:]})

    def token_losses(logits, labels):
        return torch.nn.functional.cross_entropy(logits[:-1], labels[1:], reduction="none", ignore_index=-100)

    with torch.no_grad():
        alone = [token_losses(model(input_ids=torch.tensor([f["input_ids"]])).logits[0], torch.tensor(f["labels"])).sum()
                 for f in features]
        packing.install(model, "causal")
        batch = packing.decoder_collator(tokenizer.eos_token_id, 24)(features)  # GPT-2 pads with EOS in training
        assert "attention_mask" not in batch  # the mask comes from the restarting position ids
        logits = model(**batch).logits
    rows = packing.bins([len(f["input_ids"]) for f in features], 24)
    assert len(rows) < len(features)
    for r, row in enumerate(rows):
        losses = token_losses(logits[r], batch["labels"][r])
        at = 0
        for i in row:
            n = len(features[i]["input_ids"])
            assert torch.allclose(losses[at:at + n - 1].sum(), alone[i], atol=1e-4), (family, i)
            at += n



def test_a_decoder_only_row_holds_prompt_plus_target_tokens_not_max_length():
    """`data.max_length` sizes a classifier's input; a decoder-only example is a prompt plus its
    target, so a packed row holds max_source_length + max_target_length tokens."""
    from types import SimpleNamespace

    from finetune.configuration.loading import validate
    from finetune.training.assemble import _train_collator

    cfg = validate({"task": "translation", "model": {"name_or_path": "x"},
                    "data": {"files": {"train": "t.jsonl"}, "text_column": "en", "target_column": "de",
                             "packing": True, "max_length": 8, "max_source_length": 16,
                             "max_target_length": 16}}, source="test")
    tokenizer = SimpleNamespace(pad_token_id=0)
    collate = _train_collator(cfg, SimpleNamespace(kind="causal"), tokenizer, None)
    features = [{"input_ids": [5] * 10, "labels": [5] * 10} for _ in range(3)]
    batch = collate(features)
    assert batch["input_ids"].shape == (1, 30)  # all three in one row of at most 32 tokens


def _run(tmp_path, tiny_bert, sentiment_files, capsys, monkeypatch, name, packed):
    cfg = write_config(tmp_path / f"{name}.yaml", sentiment_yaml(tiny_bert, sentiment_files).replace(
        "model:\n", "model:\n  config_overrides: {hidden_dropout_prob: 0.0, attention_probs_dropout_prob: 0.0}\n", 1)
        + f"""  packing: {str(packed).lower()}
training: {{output_dir: {tmp_path / name}, max_steps: 6, batch_size: 16, log_every: 2, eval_every: 6, lr: 1.0e-3}}
""")
    code, out, err = main_in_process(["train", "--config", str(cfg)], capsys, monkeypatch)
    assert code == 0, err
    records = [json.loads(line) for line in (tmp_path / name / "metrics.jsonl").read_text().splitlines()]
    return [r for r in records if r["type"] == "train"], json.loads((tmp_path / name / "eval_validation.json").read_text())


def test_packed_training_follows_unpacked_training(tmp_path, tiny_bert, sentiment_files, capsys, monkeypatch):
    plain, plain_eval = _run(tmp_path, tiny_bert, sentiment_files, capsys, monkeypatch, "plain", False)
    packed, packed_eval = _run(tmp_path, tiny_bert, sentiment_files, capsys, monkeypatch, "packed", True)
    assert [r["loss"] for r in packed] == pytest.approx([r["loss"] for r in plain], abs=1e-4)
    assert packed_eval["accuracy"] == plain_eval["accuracy"]
    assert packed_eval["loss"] == pytest.approx(plain_eval["loss"], abs=1e-4)
    # Throughput counts examples, not packed rows.
    assert all(r["tokens_per_s"] > r["samples_per_s"] > 0 for r in packed)


def test_packing_refuses_an_encoder_decoder(tmp_path, capsys, monkeypatch):
    from tiny_models import build_tiny_generator

    t5 = build_tiny_generator("t5", tmp_path / "t5")
    data = tmp_path / "pairs.jsonl"
    data.write_text("".join(json.dumps({"en": t, "de": t}) + "\n" for t in TEXTS), encoding="utf-8")
    cfg = write_config(tmp_path / "t5.yaml", f"""task: translation
model: {{name_or_path: {t5}}}
data: {{files: {{train: {data}, validation: {data}}}, text_column: en, target_column: de, packing: true}}
training: {{output_dir: {tmp_path / 'run'}, max_steps: 1}}
""")
    code, out, err = main_in_process(["train", "--config", str(cfg)], capsys, monkeypatch)
    assert code == 2
    assert err.startswith("error: data.packing") and "set data.packing: false" in err and err.count("\n") == 1
    assert not (tmp_path / "run").exists()  # refused before anything was written
