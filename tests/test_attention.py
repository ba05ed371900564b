"""Attention maps computed from the captured Q/K projections equal the model's own attention
probabilities (eager attention, output_attentions=True), padding included."""

from __future__ import annotations

import shutil

import pytest
from conftest import run_cli
from png import assert_png


def test_our_maps_equal_eager_attention(lora_run):
    import torch

    from finetune.views.attention import attention_probs
    from finetune.configuration.loading import load_config
    from finetune.storage.saved_model import load_run_model

    cfg = load_config(lora_run / "config.yaml", ["model.attn_implementation=eager"])
    _, tokenizer, model = load_run_model(lora_run, cfg)  # LoRA layers in place: hooks see them
    batch = tokenizer(["A short one.", "A much longer sentence that forces padding on the first."],
                      padding=True, return_tensors="pt")
    assert batch["attention_mask"].min() == 0  # the mask path is exercised
    ours = attention_probs(model, batch)
    with torch.no_grad():
        theirs = torch.stack(model(**batch, output_attentions=True).attentions)
    assert ours.shape == theirs.shape  # [layer, batch, head, query, key]
    real = batch["attention_mask"][:, None, None, :].bool().expand_as(theirs[0])
    for layer in range(ours.shape[0]):
        torch.testing.assert_close(ours[layer][real], theirs[layer][real], atol=1e-5, rtol=1e-4)
        assert ours[layer][~real].max() < 1e-6
    assert ours.sum(-1).sub(1).abs().max() < 1e-5


def test_attention_command_writes_heatmaps(lora_run, tmp_path):
    run = shutil.copytree(lora_run, tmp_path / "run")
    result = run_cli("attention", str(run), "Works as described.", "--layer", "0", "--head", "1")
    assert result.returncode == 0, result.stderr
    assert_png(run / "attention" / "layer0_head1.png")
    result = run_cli("attention", str(run), "Works as described.")  # every head of the last layer
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (run / "attention").glob("layer1_*.png")) == ["layer1_head0.png", "layer1_head1.png"]


@pytest.mark.parametrize("option", [["--layer", "7"], ["--head", "-3"]])
def test_out_of_range_layer_or_head_is_one_line_error(lora_run, tmp_path, option):
    run = shutil.copytree(lora_run, tmp_path / "run")
    result = run_cli("attention", str(run), "hi", *option)
    assert result.returncode == 2 and option[0] in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
