"""The one inference loop: rows come back complete and in data order, without gradients and
with the model's mode restored; classification scores what the model says example by example;
generation batches prompts longest first yet records answers in data order."""

from __future__ import annotations

import pytest
import torch

from finetune.configuration.config import DataSection, EvalSection
from finetune.evaluation.inference import EvalLoaders, evaluate, make_generation_loader, run_batches


def test_rows_come_back_in_order_without_gradients_and_mode_is_restored():
    from torch.utils.data import DataLoader

    model = torch.nn.Linear(1, 1)
    seen = []

    def per_batch(m, batch):
        seen.append((torch.is_grad_enabled(), m.training))
        return [{"index": int(i), "y": float(y)} for i, y in zip(batch[:, 0], m(batch).flatten())]

    loader = DataLoader(torch.arange(7, dtype=torch.float).reshape(7, 1), batch_size=3)
    rows = run_batches(model, loader, per_batch)
    assert [r["index"] for r in rows] == list(range(7))
    assert seen == [(False, False)] * 3  # every batch: no gradients, eval mode
    assert model.training  # as it was before
    model.eval()
    run_batches(model, loader, per_batch, gather=lambda found: found[:1])
    assert not model.training
    assert len(run_batches(model, loader, per_batch, gather=lambda found: found[:1])) == 3  # gather decides


def test_classification_evaluation_matches_the_model_example_by_example(tiny_bert):
    from accelerate import Accelerator
    from datasets import Dataset
    from torch.utils.data import DataLoader
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding

    from finetune.tasks.architectures.classifier import ClassifierArch
    from finetune.tasks.specs.classification import ClassificationSpec
    from finetune.tasks.task import Task

    texts = ["fine", "a long and rather dull film about nothing", "great", "bad", "so-so at best", "ok", "wow"]
    labels = [1, 0, 1, 0, 0, 1, 1]
    raw = Dataset.from_dict({"text": texts, "label": labels})
    task = Task(ClassificationSpec(DataSection(max_length=32)), ClassifierArch(), EvalSection(batch_size=3))
    task.spec.label_names = ["negative", "positive"]
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_bert, num_labels=2)
    rows = [{**tokenizer(t), "labels": y} for t, y in zip(texts, labels)]
    accelerator = Accelerator(cpu=True)
    loader = accelerator.prepare(DataLoader(rows, batch_size=3, collate_fn=DataCollatorWithPadding(tokenizer)))

    metrics, records = evaluate(task, model, EvalLoaders(loader), raw, accelerator, tokenizer)

    assert metrics["samples"] == len(records) == 7
    assert [r["text"] for r in records] == texts
    losses = []
    with torch.no_grad():
        for text, label, record in zip(texts, labels, records):
            logits = model(**tokenizer(text, return_tensors="pt")).logits[0]
            probs = torch.softmax(logits, -1)
            assert record["predicted"] == task.spec.label_names[int(probs.argmax())]
            assert record["label"] == task.spec.label_names[label]
            assert record["probability"] == pytest.approx(float(probs.max()), abs=1e-5)
            losses.append(float(torch.nn.functional.cross_entropy(logits[None], torch.tensor([label]))))
    assert metrics["loss"] == pytest.approx(sum(losses) / 7, abs=1e-5)
    hits = sum(r["predicted"] == r["label"] for r in records)
    assert metrics["accuracy"] == pytest.approx(hits / 7)


def test_generation_prompts_run_longest_first_and_answers_return_in_data_order():
    from datasets import Dataset
    from tiny_models import build_bpe_tokenizer

    from finetune.tasks.architectures.decoder_only import DecoderOnlyArch
    from finetune.tasks.specs.translation import TranslationSpec
    from finetune.tasks.task import Task

    data = DataSection(files={"train": "x.jsonl"}, text_column="en", target_column="de")
    task = Task(TranslationSpec(data), DecoderOnlyArch(EvalSection().generation), EvalSection(batch_size=2))
    tokenizer = build_bpe_tokenizer("gpt2")
    task.prepare_tokenizer(tokenizer)
    sources = ["short", "a much longer source sentence than the others", "mid length text", "tiny", "longer one here"]
    raw = Dataset.from_dict({"en": sources, "de": [s.upper() for s in sources]})
    widths = []

    def fake_generate(model, batch):  # answers name the row they came from
        widths.append(batch["input_ids"].shape[1])
        return [{"index": i, "generated": f"answer {i}", "length": i} for i in batch["index"].tolist()]

    loader = make_generation_loader(task, tokenizer, raw, model_config=None)
    answered = run_batches(torch.nn.Linear(1, 1), loader, fake_generate)
    assert widths == sorted(widths, reverse=True) and len(widths) == 3  # longest first
    assert sorted(r["index"] for r in answered) == list(range(5))  # every row once

    task.spec.compute_metrics = lambda predictions, references: {"bleu": 0.0}
    metrics, records = task.score([{"loss_sum": 3.0, "tokens": 1}] + [{"loss_sum": 1.0, "tokens": 3}] * 4, answered, raw)
    assert [r["generated"] for r in records] == [f"answer {i}" for i in range(5)]
    assert [r["source"] for r in records] == sources
    assert [r["references"] for r in records] == [[s.upper()] for s in sources]
    assert metrics["samples"] == 5 and metrics["gen_len"] == 2.0 and metrics["loss"] == 7 / 13  # per token
