"""saved_model_check.py: a saved model directory with any file truncated, missing or swapped for
another run's stops every command that reads it (eval, predict, chat, attention, report, merge,
push) with one line naming the file and exit code 2, before any result is written; a model
saved by an older finetune (no manifest) still loads after a one-line warning, and is refused
when a file it needs is missing or malformed."""

from __future__ import annotations

import hashlib
import io
import shutil
import sys
from pathlib import Path

import pytest
from conftest import main_in_process, sentiment_yaml

from finetune.configuration.loading import load_config
from finetune.commands.merge import merge_run

TEXT = "a fine film"
CARD = "README.md"  # documentation, meant to be edited: not a file the model loads


def _train(root: Path, name: str, text: str) -> Path:
    from finetune.training.loop import train

    run = root / name
    (root / f"{name}.yaml").write_text(text + f"training: {{output_dir: {run}, max_steps: 2, batch_size: 8, "
                                       "save_every: 2, eval_each_epoch: true}\n")
    train(load_config(root / f"{name}.yaml"), run)
    return run


def _classifier(root: Path, model: Path, files: dict, name: str, lora: bool) -> Path:
    text = sentiment_yaml(model, files) + "  max_train_samples: 16\n  max_eval_samples: 8\n"
    return _train(root, name, text + f"lora: {{enabled: {str(lora).lower()}}}\n")


def _translator(root: Path, model: Path, name: str) -> Path:
    import json

    from tiny_models import corpus

    data = root / "mt.jsonl"
    data.write_text("".join(json.dumps({"en": t, "de": t[::-1]}) + "\n" for t in corpus()[:8]))
    return _train(root, name, f"""task: translation
model: {{name_or_path: {model}}}
data: {{files: {{train: {data}, validation: {data}}}, text_column: en, target_column: de,
        max_source_length: 16, max_target_length: 6}}
lora: {{enabled: true}}
eval: {{generation: {{max_new_tokens: 3}}}}
""")


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_bert, sentiment_files):
    """Finished runs of each kind, and a run of another base model (other tokenizer, config and
    weights) whose files are swapped in. Trained once; each test damages a copy."""
    from tiny_models import build_tiny_generator

    root = tmp_path_factory.mktemp("damage")
    gpt2, llama = build_tiny_generator("gpt2", root / "gpt2"), build_tiny_generator("llama", root / "llama")
    built = {
        "lora": _classifier(root, tiny_bert, sentiment_files, "lora", True),
        "full": _classifier(root, tiny_bert, sentiment_files, "full", False),
        "lora-other": _classifier(root, gpt2, sentiment_files, "lora-other", True),
        "full-other": _classifier(root, gpt2, sentiment_files, "full-other", False),
        "chat": _translator(root, gpt2, "chat"),
        "chat-other": _translator(root, llama, "chat-other"),
    }
    for name in ("lora", "lora-other"):
        merge_run(built[name], load_config(built[name] / "config.yaml"))
    return built


def model_files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.is_file() and p.name != CARD)


def truncate(path: Path, other: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def remove(path: Path, other: Path) -> None:
    path.unlink()


def swap(path: Path, other: Path) -> None:
    shutil.copyfile(other, path)


DAMAGES = {"truncated": truncate, "missing": remove, "swapped": swap}
# What a command reads: (run kind, arguments after the run directory, the saved model inside the run).
COMMANDS = {
    "eval": ("lora", ["eval", "{run}"], "model"),
    "predict": ("lora", ["predict", "{run}", TEXT], "model"),
    "attention": ("lora", ["attention", "{run}", TEXT], "model"),
    "report": ("lora", ["report", "{run}"], "model"),
    "merge": ("lora", ["merge", "{run}", "{tmp}/merged-out"], "model"),
    "push": ("lora", ["push", "{run}", "me/model"], "model"),
    "chat": ("chat", ["chat", "{run}"], "model"),
    "eval-full": ("full", ["eval", "{run}"], "model"),
    "predict-full": ("full", ["predict", "{run}", TEXT], "model"),
    "attention-full": ("full", ["attention", "{run}", TEXT], "model"),
    "report-full": ("full", ["report", "{run}"], "model"),
    "push-full": ("full", ["push", "{run}", "me/model"], "model"),
    "eval-best": ("lora", ["eval", "{run}", "--checkpoint", "best"], "best"),
    "eval-checkpoint": ("full", ["eval", "{run}", "--checkpoint", "step-000002"], "checkpoints/step-000002"),
    "predict-checkpoint": ("lora", ["predict", "{run}", TEXT, "--checkpoint", "step-000002"], "checkpoints/step-000002"),
    "push-merged": ("lora", ["push", "{run}", "me/model", "--merged"], "merged"),
}
# The files of each kind's saved model (a checkpoint also holds training state, tested in test_checkpoint.py).
FILES = {
    "lora": ["adapter_config.json", "adapter_model.safetensors", "base_model_config.json",
             "finetune_saved_model.json", "manifest.json", "tokenizer.json", "tokenizer_config.json"],
    "full": ["config.json", "finetune_saved_model.json", "manifest.json", "model.safetensors", "tokenizer.json",
             "tokenizer_config.json"],
    "chat": ["adapter_config.json", "adapter_model.safetensors", "base_model_config.json",
             "finetune_saved_model.json", "generation_config.json", "manifest.json", "tokenizer.json",
             "tokenizer_config.json"],
    "merged": ["config.json", "finetune_saved_model.json", "manifest.json", "model.safetensors", "tokenizer.json",
               "tokenizer_config.json"],
}
CASES = [(command, name, damage)
         for command, (kind, _, inside) in COMMANDS.items()
         for name in FILES["merged" if inside == "merged" else kind]
         for damage in DAMAGES
         # finetune_saved_model.json is the same in every run: a swapped copy is no damage
         if not (damage == "swapped" and name == "finetune_saved_model.json")]


def snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def run_command(args: list[str], capsys, monkeypatch) -> tuple[int, str]:
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))  # chat reads lines until EOF
    monkeypatch.setenv("HF_TOKEN", "hf_FakeTokenForTests0123456789")  # push refuses no token first
    code, _, err = main_in_process(args, capsys, monkeypatch)
    return code, err


def test_every_saved_model_file_is_listed(runs):
    """FILES is what finetune writes (so the matrix below covers every file), and each file of
    the other runs differs, so that swapping one in is real damage."""
    for command, (kind, _, inside) in COMMANDS.items():
        directory = runs[kind] / inside
        names = FILES["merged" if inside == "merged" else kind]
        if inside.startswith("checkpoints"):
            assert set(names) <= set(model_files(directory)), command
            continue
        assert model_files(directory) == sorted(names + (["best.json"] if inside == "best" else [])), command
        for name in names:
            other = runs[f"{kind}-other"] / inside / name
            if name != "finetune_saved_model.json":
                assert other.read_bytes() != (directory / name).read_bytes(), (command, name)


@pytest.mark.parametrize("command, name, damage", CASES, ids=["-".join(c) for c in CASES])
def test_a_damaged_file_stops_the_command_naming_it(runs, tmp_path, command, name, damage, capsys, monkeypatch):
    kind, args, inside = COMMANDS[command]
    run = shutil.copytree(runs[kind], tmp_path / "run", symlinks=True)
    DAMAGES[damage](run / inside / name, runs[f"{kind}-other"] / inside / name)
    before = snapshot(tmp_path)
    code, err = run_command([a.format(run=run, tmp=tmp_path) for a in args], capsys, monkeypatch)
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    assert name in lines[0] and "damaged" in lines[0], lines[0]
    after = snapshot(tmp_path)
    assert {k: after.get(k) for k in before} == before, "a file that was there before changed"
    assert set(after) == set(before), f"new files: {set(after) - set(before)}"


def _as_older_finetune(directory: Path) -> None:
    """What finetune saved before manifests: the same files without the manifest and the record."""
    (directory / "manifest.json").unlink()
    (directory / "finetune_saved_model.json").unlink()


def test_a_model_saved_without_a_manifest_loads_after_one_warning(runs, tmp_path, capsys, monkeypatch):
    run = shutil.copytree(runs["lora"], tmp_path / "run")
    expected = main_in_process(["predict", str(run), TEXT], capsys, monkeypatch)[1]
    _as_older_finetune(run / "model")
    code, out, err = main_in_process(["predict", str(run), TEXT], capsys, monkeypatch)
    assert code == 0 and out == expected, err
    warnings = [line for line in err.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 1 and "manifest.json" in warnings[0] and "older finetune" in warnings[0]


OLDER_CASES = [(kind, name, damage) for kind in ("lora", "full")
               for name in FILES[kind] if name not in ("manifest.json", "finetune_saved_model.json")
               for damage in ("truncated", "missing")]


@pytest.mark.parametrize("kind, name, damage", OLDER_CASES, ids=["-".join(c) for c in OLDER_CASES])
def test_a_model_without_a_manifest_is_still_refused_when_a_file_is_missing_or_cut(
        runs, tmp_path, kind, name, damage, capsys, monkeypatch):
    run = shutil.copytree(runs[kind], tmp_path / "run")
    _as_older_finetune(run / "model")
    DAMAGES[damage](run / "model" / name, None)
    code, err = run_command(["eval", str(run)], capsys, monkeypatch)
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and name in lines[0] and "damaged" in lines[0], err


def test_a_tokenizer_without_its_vocabulary_is_refused_not_scored(runs, tmp_path, capsys, monkeypatch):
    """Without tokenizer.json transformers builds a BertTokenizer of five special tokens, and
    every row scores alike; even with the manifest forged to match, that tokenizer is refused."""
    from finetune.storage import manifest

    run = shutil.copytree(runs["full"], tmp_path / "run")
    (run / "model" / "tokenizer.json").unlink()
    manifest.write(run / "model", "model", skip=(CARD,))
    code, err = run_command(["predict", str(run), TEXT], capsys, monkeypatch)
    assert code == 2 and "tokenizer.json" in err and "damaged" in err, err
