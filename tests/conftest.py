"""Shared fixtures: tiny models built once per session, an isolated tokenization cache, and a
helper that runs the real CLI in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("FINETUNE_SHARED_TEST_DIR", ROOT.parent / "shared"))
FAKE_TOKEN = "hf_FakeTokenForTests0123456789"
QUIET_ENV = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}

needs_shared = pytest.mark.skipif(
    not SHARED.is_dir(), reason="../shared (models and data beside the repo) is not present"
)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    cache = tmp_path_factory.getbasetemp() / "finetune-cache"
    monkeypatch.setenv("FINETUNE_CACHE", str(cache))
    for key, value in QUIET_ENV.items():
        monkeypatch.setenv(key, value)


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> Path:
    from tiny_models import build_tiny_bert

    return build_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="session")
def sentiment_files() -> dict[str, str]:
    data = ROOT / "finetune" / "resources" / "sentiment"
    return {"train": str(data / "train.jsonl"), "validation": str(data / "validation.jsonl")}


def run_cli(*args: str, cwd: Path | None = None, env: dict | None = None, timeout: int = 600):
    """Run `python -m finetune ARGS` as a user would; returns the CompletedProcess."""
    full_env = {**os.environ, **QUIET_ENV, **(env or {})}
    full_env["PYTHONPATH"] = str(ROOT) + os.pathsep + full_env.get("PYTHONPATH", "")
    return subprocess.run(
        [sys.executable, "-m", "finetune", *args],
        cwd=cwd or ROOT,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def main_in_process(args: list[str], capsys, monkeypatch) -> tuple[int, str, str]:
    """The CLI's main() in this process (torch is imported once, not per call): exit code,
    stdout and stderr of this call only."""
    from finetune.cli import main

    monkeypatch.setattr(sys, "argv", ["finetune", *args])
    capsys.readouterr()
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err


def sentiment_yaml(model, files: dict) -> str:
    """The head the sentiment test runs share: task, model, train/validation files, max length
    32. Callers append their own lora / training / eval sections."""
    return f"""task: sentiment
model:
  name_or_path: {model}
data:
  files:
    train: {files['train']}
    validation: {files['validation']}
  max_length: 32
"""


def write_config(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def lora_run(tmp_path_factory, tiny_bert, sentiment_files) -> Path:
    """One short LoRA run with TensorBoard and MLflow on, shared by the tests of the tools that read a
    finished run (plot, predict, merge, attention, model card). Treat it as read-only."""
    root = tmp_path_factory.mktemp("lora-run")
    cfg = write_config(root / "lora.yaml", sentiment_yaml(tiny_bert, sentiment_files) + f"""
lora:
  enabled: true
training:
  output_dir: {root / 'run'}
  max_steps: 12
  batch_size: 16
  lr: 5.0e-3
  log_every: 2
  eval_every: 4
  report_to: [tensorboard, mlflow]
""")
    # A token in the environment must never reach the files the run writes (model card...).
    env = {"FINETUNE_CACHE": str(root / "cache"), "HF_TOKEN": FAKE_TOKEN}
    result = run_cli("train", "--config", str(cfg), env=env)
    assert result.returncode == 0, result.stderr
    return root / "run"


def script_module(path: str):
    """A script of scripts/ imported as a module (scripts/ is not a package): `path` is its place
    under scripts/ without `.py`, e.g. "recipes/reproduce"; the module is named after the file."""
    import importlib.util

    name = Path(path).name
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{path}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def t5_lora_run(tmp_path_factory) -> Path:
    """Two steps of a LoRA translation run on a tiny random T5, evaluated once: a finished
    generation run for the tools that read one (attention, report). Treat it as read-only."""
    import json

    from tiny_models import build_tiny_generator, corpus

    root = tmp_path_factory.mktemp("t5-lora-run")
    model = build_tiny_generator("t5", root / "t5")
    rows = [{"en": t, "de": " ".join(reversed(t.split()))} for t in corpus()[:12]]
    data = root / "mt.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    cfg = write_config(root / "t5.yaml", f"""task: translation
model:
  name_or_path: {model}
data:
  files: {{train: {data}, validation: {data}}}
  text_column: en
  target_column: de
  max_source_length: 24
  max_target_length: 12
  max_eval_samples: 3
lora:
  enabled: true
training:
  output_dir: {root / 'run'}
  max_steps: 2
  batch_size: 4
  log_every: 1
eval:
  generation: {{max_new_tokens: 6}}
""")
    result = run_cli("train", "--config", str(cfg), env={"FINETUNE_CACHE": str(root / "cache"), "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr
    return root / "run"
