"""`model.attn_implementation: auto` under bf16 autocast on a CPU picks eager attention: torch's
CPU SDPA backward is several times slower in bf16 than in fp32 (scripts/benchmarks/bench_bf16.py)."""

from __future__ import annotations

import yaml

from conftest import run_cli, sentiment_yaml, write_config


def test_auto_picks_eager_for_bf16_on_a_cpu_and_an_explicit_kernel_stays():
    import transformers as tf

    from finetune.model.attn_kernel import choose_kernel

    bert, config = tf.BertForSequenceClassification, tf.BertConfig()
    assert choose_kernel("auto", bert, config) == "sdpa"
    assert choose_kernel("auto", bert, config, bf16_on_cpu=True) == "eager"
    assert choose_kernel("sdpa", bert, config, bf16_on_cpu=True) == "sdpa"


def _trained_kernel(tmp_path, tiny_bert, sentiment_files, precision: str) -> str:
    """A fresh process: Accelerate fixes the precision once per process."""
    run = tmp_path / precision
    cfg = write_config(tmp_path / f"{precision}.yaml", sentiment_yaml(tiny_bert, sentiment_files))
    result = run_cli("train", "--config", str(cfg), f"training.output_dir={run}",
                     f"training.mixed_precision='{precision}'", "training.max_steps=2")
    assert result.returncode == 0, result.stderr
    return yaml.safe_load((run / "config.yaml").read_text())["model"]["attn_implementation"]


def test_a_bf16_run_on_the_cpu_trains_with_eager_attention_and_an_fp32_run_with_sdpa(
        tmp_path, tiny_bert, sentiment_files):
    assert _trained_kernel(tmp_path, tiny_bert, sentiment_files, "bf16") == "eager"
    assert _trained_kernel(tmp_path, tiny_bert, sentiment_files, "no") == "sdpa"
