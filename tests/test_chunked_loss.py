"""training.chunked_loss: the loss computed in chunks from the last hidden states equals the
plain path's (the model's own loss, or the smoothed one), and so does the gradient of every
trainable parameter, on tiny Llama, GPT-2 (tied head) and T5 models, with and without LoRA and
label smoothing. Tolerance: fp32, relative 1e-5 and absolute 1e-6 (only the order in which
the positions are summed differs)."""

from __future__ import annotations

import json

import pytest
import torch

from finetune.model import chunked_loss
from finetune.training.loss import smoothed_loss

TOLERANCE = {"rtol": 1e-5, "atol": 1e-6}


@pytest.fixture(scope="module")
def generators(tmp_path_factory):
    from tiny_models import build_tiny_generator

    return {f: build_tiny_generator(f, tmp_path_factory.mktemp(f)) for f in ("llama", "gpt2", "t5")}


def _model(path, family, lora: bool):
    from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM

    from finetune.configuration.config import LoraSection
    from finetune.model.lora import wrap_with_lora

    causal = family != "t5"
    model = (AutoModelForCausalLM if causal else AutoModelForSeq2SeqLM).from_pretrained(path)
    if lora:
        model = wrap_with_lora(model, LoraSection(enabled=True, r=4), "causal" if causal else "seq2seq")
    return model.train(), causal


def _batch(vocab: int, causal: bool):
    torch.manual_seed(0)
    ids = torch.randint(3, vocab, (3, 11))
    mask = torch.ones_like(ids)
    mask[2, 8:] = 0  # a shorter row, padded
    if causal:
        labels = ids.clone()
        labels[:, :4] = -100  # the prompt does not count
        labels[2, 8:] = -100
        return {"input_ids": ids, "attention_mask": mask, "labels": labels}
    labels = torch.randint(3, vocab, (3, 7))
    labels[1, 5:] = -100
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def _loss_and_grads(model, loss):
    model.zero_grad(set_to_none=True)
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}


@pytest.mark.parametrize("lora", [False, True], ids=["full", "lora"])
@pytest.mark.parametrize("eps", [0.0, 0.1], ids=["plain", "smoothed"])
@pytest.mark.parametrize("family", ["llama", "gpt2", "t5"])
def test_chunked_loss_and_gradients_equal_the_plain_path(generators, monkeypatch, family, eps, lora):
    model, causal = _model(generators[family], family, lora)
    vocab = model.config.vocab_size
    monkeypatch.setattr(chunked_loss, "CHUNK_LOGITS", vocab * 5)  # 5 positions a chunk: several chunks
    batch = _batch(vocab, causal)

    torch.manual_seed(1)
    out = model(**batch)
    plain = out.loss if not eps else smoothed_loss(out.logits, batch["labels"], eps, shift=causal)
    expected, expected_grads = _loss_and_grads(model, plain)

    loss_fn = chunked_loss.choose(True, "causal" if causal else "seq2seq", model, eps)
    torch.manual_seed(1)
    got, grads = _loss_and_grads(model, loss_fn(model, batch))

    torch.testing.assert_close(got, expected, **TOLERANCE)
    assert grads.keys() == expected_grads.keys() and grads
    for name, grad in grads.items():
        torch.testing.assert_close(grad, expected_grads[name], **TOLERANCE, msg=lambda m: f"{name}: {m}")
    # The output layer ran no matmul of its own: nothing is left bypassed either.
    assert "forward" not in vars(chunked_loss.unwrap(model).get_output_embeddings())


def test_auto_chunks_only_large_logits_and_skips_what_it_cannot_chunk(generators):
    from tiny_models import tiny_model

    model, _ = _model(generators["gpt2"], "gpt2", lora=False)
    loss_fn = chunked_loss.choose("auto", "causal", model)
    vocab = model.config.vocab_size
    small = {"labels": torch.zeros((2, 8), dtype=torch.long)}
    large = {"labels": torch.zeros((1, chunked_loss.CHUNK_LOGITS // vocab + 1), dtype=torch.long)}
    assert not loss_fn.applies(model, small) and loss_fn.applies(model, large)
    assert chunked_loss.choose("auto", "classification", model) is None
    assert chunked_loss.choose(False, "causal", model) is None

    capped = tiny_model("llama")
    capped.config.final_logit_softcapping = 30.0  # Gemma 2 style: logits change after the head
    assert chunked_loss.choose("auto", "causal", capped) is None
    with pytest.raises(Exception, match="final_logit_softcapping"):
        chunked_loss.choose(True, "causal", capped)


@pytest.mark.parametrize("family", ["gpt2", "t5"])
def test_a_run_with_chunked_loss_logs_the_same_metrics(tmp_path, generators, family):
    """The real CLI, twice: chunked_loss false and true give the same losses and eval metrics."""
    from conftest import run_cli, write_config
    from tiny_models import corpus

    texts = [t for t in corpus() if len(t.split()) >= 5][:24]
    data = tmp_path / "mt.jsonl"
    data.write_text("".join(json.dumps({"en": t, "de": " ".join(reversed(t.split()))}) + "\n" for t in texts))
    results = {}
    for setting in ("false", "true"):
        run = tmp_path / f"run-{setting}"
        cfg = write_config(tmp_path / f"{setting}.yaml", f"""task: translation
model: {{name_or_path: {generators[family]}}}
data: {{files: {{train: {data}, validation: {data}}}, text_column: en, target_column: de,
       max_source_length: 24, max_target_length: 16, max_eval_samples: 4}}
training: {{output_dir: {run}, max_steps: 3, batch_size: 4, log_every: 1, lr: 1.0e-3,
           label_smoothing: 0.1, chunked_loss: {setting}, eval_each_epoch: false}}
eval: {{generation: {{max_new_tokens: 4}}}}
""")
        result = run_cli("train", "--config", str(cfg), env={"OMP_NUM_THREADS": "1"})
        assert result.returncode == 0, result.stderr
        records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        results[setting] = ([r["loss"] for r in records if r["type"] == "train"],
                            [r for r in records if r["type"] == "eval"][-1])
    (plain_losses, plain_eval), (chunked_losses, chunked_eval) = results["false"], results["true"]
    assert len(plain_losses) == 3
    assert chunked_losses == pytest.approx(plain_losses, rel=1e-4)
    assert chunked_eval["loss"] == pytest.approx(plain_eval["loss"], rel=1e-4)


def test_under_bf16_autocast_the_chunks_compute_as_the_head_would(generators, monkeypatch):
    """Mixed precision: with the model's forward under autocast (as Accelerate wraps it) and the
    chunks under the same autocast, the loss and the gradients below the head equal the plain
    path's (bf16 logits, loss in fp32; without the chunks' autocast they differ by ~1e-5 and
    ~1%). The head's own gradient is summed chunk by chunk: equal to bf16 rounding (1e-2)."""
    model, _ = _model(generators["llama"], "llama", lora=False)
    monkeypatch.setattr(chunked_loss, "CHUNK_LOGITS", model.config.vocab_size * 5)
    batch = _batch(model.config.vocab_size, causal=True)

    def autocast():
        return torch.autocast("cpu", dtype=torch.bfloat16)

    model.forward = autocast()(model.forward)  # what accelerator.prepare does under mixed precision
    expected, expected_grads = _loss_and_grads(model, model(**batch).loss)
    got, grads = _loss_and_grads(model, chunked_loss.choose(True, "causal", model)(model, batch, autocast))
    torch.testing.assert_close(got, expected, rtol=1e-6, atol=0)
    for name, grad in grads.items():
        tolerance = {"rtol": 1e-2, "atol": 1e-3} if name == "lm_head.weight" else {"rtol": 1e-4, "atol": 1e-6}
        torch.testing.assert_close(grad, expected_grads[name], **tolerance, msg=lambda m: f"{name}: {m}")
