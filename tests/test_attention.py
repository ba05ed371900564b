"""Attention maps computed from each family's own Q/K projections equal the model's eager
attention probabilities (output_attentions=True), padding and grouped key heads included; the
command draws them for a classifier and for a T5 run (encoder, decoder, cross)."""

from __future__ import annotations

import shutil

import pytest
from conftest import main_in_process
from png import assert_png
from tiny_models import TINY


def eager_model(family: str):
    """A tiny random model on the eager kernel, which returns its attention weights."""
    import transformers as tf

    eager = {"attn_implementation": "eager"}
    return {
        "bert": lambda: tf.BertModel(tf.BertConfig(vocab_size=100, **TINY, **eager)),
        "gpt2": lambda: tf.GPT2LMHeadModel(tf.GPT2Config(vocab_size=100, n_embd=32, n_layer=2, n_head=2,
                                                         bos_token_id=0, eos_token_id=0, **eager)),
        # 4 query heads share 2 key/value heads: the grouped-query path
        "llama": lambda: tf.LlamaForCausalLM(tf.LlamaConfig(
            vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, intermediate_size=64, **eager)),
        "t5": lambda: tf.T5ForConditionalGeneration(tf.T5Config(
            vocab_size=100, d_model=32, d_ff=64, num_layers=2, num_heads=2, d_kv=16, **eager)),
    }[family]().eval()


@pytest.mark.parametrize("family", ["bert", "gpt2", "llama", "t5"])
def test_our_maps_equal_eager_attention(family):
    import torch

    from finetune.views.attention.maps import attention_maps

    torch.manual_seed(0)
    model = eager_model(family)
    ids = torch.randint(3, 100, (2, 7))
    mask = torch.ones_like(ids)
    mask[0, 5:] = 0  # the first row is padded on the right
    batch = {"input_ids": ids, "attention_mask": mask}
    if family == "t5":
        batch["decoder_input_ids"] = torch.randint(3, 100, (2, 5))
    ours = attention_maps(model, batch)
    with torch.no_grad():
        out = model(**batch, output_attentions=True)
    theirs = ({"encoder": out.encoder_attentions, "decoder": out.decoder_attentions, "cross": out.cross_attentions}
              if family == "t5" else {"self": out.attentions})
    assert ours.keys() == theirs.keys()
    for kind, maps in ours.items():
        expected = torch.stack(theirs[kind])
        assert maps.shape == expected.shape  # [layer, batch, head, query, key]
        queries = slice(None) if kind in ("decoder", "cross") else slice(0, 5)  # real rows of both
        torch.testing.assert_close(maps[:, :, :, queries], expected[:, :, :, queries], atol=1e-5, rtol=1e-4)
        if kind != "decoder":
            assert maps[:, 0, :, :, 5:].max() < 1e-6  # padded keys get nothing
    if family in ("gpt2", "llama"):
        assert ours["self"].triu(1).max() < 1e-6  # causal: no query sees a later key


def test_lora_run_maps_equal_eager_attention(lora_run):
    import torch

    from finetune.configuration.loading import load_config
    from finetune.saved.saved_model import load_run_model
    from finetune.views.attention.maps import attention_maps

    cfg = load_config(lora_run / "config.yaml", ["model.attn_implementation=eager"])
    _, tokenizer, model = load_run_model(lora_run, cfg)  # the peft wrapper, LoRA layers in place
    batch = tokenizer(["A short one.", "A much longer sentence that forces padding on the first."],
                      padding=True, return_tensors="pt")
    ours = attention_maps(model, batch)["self"]
    with torch.no_grad():
        theirs = torch.stack(model(**batch, output_attentions=True).attentions)
    real = batch["attention_mask"][:, None, None, :].bool().expand_as(theirs[0])
    for layer in range(ours.shape[0]):
        torch.testing.assert_close(ours[layer][real], theirs[layer][real], atol=1e-5, rtol=1e-4)


def attention(capsys, monkeypatch, *args: str) -> tuple[int, str]:
    code, _, err = main_in_process(["attention", *args], capsys, monkeypatch)
    return code, err


def test_attention_command_writes_grid_and_heads(lora_run, tmp_path, capsys, monkeypatch):
    run = shutil.copytree(lora_run, tmp_path / "run")
    code, err = attention(capsys, monkeypatch, str(run), "Works as described.", "--layer", "0", "--head", "1")
    assert code == 0, err
    assert [p.name for p in (run / "attention").iterdir()] == ["layer0_head1.png"]
    assert_png(run / "attention" / "layer0_head1.png")
    code, err = attention(capsys, monkeypatch, str(run), "Works as described.")  # every head of the last layer
    assert code == 0, err
    assert sorted(p.name for p in (run / "attention").glob("layer1_*.png")) == [
        "layer1_head0.png", "layer1_head1.png", "layer1_heads.png"]
    assert_png(run / "attention" / "layer1_heads.png")


def test_t5_run_maps_its_target_or_its_own_generation(t5_lora_run, tmp_path, capsys, monkeypatch):
    run = shutil.copytree(t5_lora_run, tmp_path / "run")
    code, err = attention(capsys, monkeypatch, str(run), "the film was good", "--target", "good was film the",
                          "--head", "0")
    assert code == 0, err
    names = sorted(p.name for p in (run / "attention").iterdir())
    assert names == ["cross_layer1_head0.png", "decoder_layer1_head0.png", "encoder_layer1_head0.png"]
    for name in names:
        assert_png(run / "attention" / name)
    code, err = attention(capsys, monkeypatch, str(run), "the film was good", "--layer", "0")  # generates its target
    assert code == 0, err
    assert {"cross_layer0_heads.png", "decoder_layer0_head1.png"} <= {p.name for p in (run / "attention").iterdir()}


@pytest.mark.parametrize("option", [["--layer", "7"], ["--head", "-3"], ["--target", "x"]])
def test_bad_layer_head_or_target_is_one_line_error(lora_run, tmp_path, capsys, monkeypatch, option):
    run = shutil.copytree(lora_run, tmp_path / "run")
    code, err = attention(capsys, monkeypatch, str(run), "hi", *option)
    assert code == 2 and option[0] in err
    assert len(err.strip().splitlines()) == 1
    assert not (run / "attention").exists()
