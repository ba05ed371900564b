"""A catalogue of mistakes. Each must end in one line on stderr that names the culprit, exit
code 2, no traceback, and leave every file that was already on disk as it was.

The cases run the CLI's `main()` in this process (torch is imported once, not 40 times); two of
them also run as real subprocesses, to show the installed entry point behaves the same.
"""

from __future__ import annotations

import errno
import hashlib
import json
import shutil
import sys
from pathlib import Path

import pytest
import yaml
from conftest import run_cli

from finetune.config import RunConfig


def base_config(tmp: Path, model: Path, files: dict) -> dict:
    return {
        "task": "sentiment",
        "model": {"name_or_path": str(model)},
        "data": {"files": dict(files), "max_length": 32, "max_train_samples": 16, "max_eval_samples": 8},
        "training": {"output_dir": str(tmp / "run"), "max_steps": 2, "batch_size": 8},
    }


def write(tmp: Path, name: str, text: str | bytes) -> str:
    path = tmp / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return str(path)


def rows(*pairs: tuple[str, str]) -> str:
    return "".join(json.dumps({"text": t, "label": lab}) + "\n" for t, lab in pairs)


GOOD = rows(("good", "positive"), ("bad", "negative"), ("fine", "positive"), ("awful", "negative"))


def set_key(cfg: dict, dotted: str, value) -> None:
    *parents, last = dotted.split(".")
    for part in parents:
        cfg = cfg.setdefault(part, {})
    cfg[last] = value


# Each case: (id, how to make the mistake, the text the error must contain). A case gets
# (tmp, cfg, model) and returns the CLI arguments; it may edit `cfg` (saved to tmp/run.yaml).
def cfg_edit(dotted, value, command="validate"):
    def make(tmp, cfg, model):
        set_key(cfg, dotted, value)
        return [command]
    return make


def raw_yaml(text):
    def make(tmp, cfg, model):
        return ["validate", "--raw", text]
    return make


def data_file(split, name, content, **data_keys):
    def make(tmp, cfg, model):
        cfg["data"]["files"][split] = write(tmp, name, content)
        cfg["data"].update(data_keys)
        return ["train"]
    return make


def model_dir(prepare):
    def make(tmp, cfg, model):
        target = tmp / "model-copy"
        shutil.copytree(model, target)
        prepare(target)
        cfg["model"]["name_or_path"] = str(target)
        return ["train"]
    return make


def pickle_only(target: Path) -> None:
    # transformers 5 always saves safetensors; write the old pickle format by hand.
    import torch
    from safetensors.torch import load_file

    torch.save(load_file(target / "model.safetensors"), target / "pytorch_model.bin")
    (target / "model.safetensors").unlink()


def no_classification_head(target: Path) -> None:
    config = json.loads((target / "config.json").read_text())
    config.update(model_type="whisper", architectures=["WhisperModel"])
    (target / "config.json").write_text(json.dumps(config))


def existing_run(extra_args=(), keep_files=True):
    def make(tmp, cfg, model):
        run = Path(cfg["training"]["output_dir"])
        run.mkdir()
        (run / "config.yaml").write_text(yaml.safe_dump(cfg))
        (run / "metrics.jsonl").write_text('{"type": "train", "step": 1}\n')
        return ["train", *extra_args]
    return make


def resume_changed(tmp, cfg, model):
    run = Path(cfg["training"]["output_dir"])
    checkpoint = run / "checkpoints" / "step-000001"
    checkpoint.mkdir(parents=True)
    (checkpoint / "config.yaml").write_text(RunConfig.model_validate(cfg).to_yaml())
    (checkpoint / "train_state.json").write_text('{"step": 1}')
    cfg["lora"] = {"enabled": True}
    return ["train", "--resume"]


def output_is_file(tmp, cfg, model):
    cfg["training"]["output_dir"] = write(tmp, "taken", "not a directory")
    return ["train"]


CASES = [
    ("yaml-syntax", raw_yaml("task: sentiment\nmodel: {name_or_path: x\n"), "YAML syntax error at line"),
    ("yaml-tab-indent", raw_yaml("task: sentiment\nmodel:\n\tname_or_path: x\n"), "YAML syntax error"),
    ("yaml-python-tag", raw_yaml("task: !!python/object/apply:os.system ['echo hi']\n"), "python/object"),
    ("yaml-empty", raw_yaml(""), "the file is empty"),
    ("yaml-list", raw_yaml("- task\n- model\n"), "top level must be a mapping"),
    ("yaml-not-utf8", raw_yaml(b"task: \xff\xfe\n"), "not a UTF-8"),
    ("config-missing", lambda tmp, cfg, model: ["validate", "--path", str(tmp / "nope.yaml")], "nope.yaml"),
    ("unknown-section", cfg_edit("trainig", {"lr": 1}), "did you mean 'training'"),
    ("misspelled-key", cfg_edit("training.batchsize", 8), "did you mean 'training.batch_size'"),
    ("unknown-lora-key", cfg_edit("lora.rank", 8), "lora.rank"),
    ("lr-not-number", cfg_edit("training.lr", "fast"), "training.lr"),
    ("batch-size-zero", cfg_edit("training.batch_size", 0), "training.batch_size"),
    ("negative-epochs", cfg_edit("training.epochs", -1), "training.epochs"),
    ("unknown-task", cfg_edit("task", "regression"), "task"),
    ("missing-model", lambda tmp, cfg, model: (cfg.pop("model"), ["validate"])[1], "'model'"),
    ("no-data", lambda tmp, cfg, model: (cfg.pop("data"), ["validate"])[1], "data.files"),
    ("on-nan-value", cfg_edit("training.on_nan", "ignore"), "training.on_nan"),
    ("save-every-zero", cfg_edit("training.save_every", 0), "training.save_every"),
    ("files-not-mapping", cfg_edit("data.files", "train.jsonl"), "data.files"),
    ("override-no-equals", lambda tmp, cfg, model: ["validate", "training.lr"], "training.lr"),
    ("override-into-value", lambda tmp, cfg, model: ["validate", "training.batch_size.x=1"], "'batch_size' is not a section"),
    ("train-file-missing", lambda tmp, cfg, model: (cfg["data"]["files"].update(train=str(tmp / "gone.jsonl")), ["train"])[1], "gone.jsonl"),
    ("train-file-empty", data_file("train", "empty.jsonl", ""), "empty.jsonl"),
    ("unknown-extension", data_file("train", "train.txt", GOOD), "data.format"),
    ("csv-in-jsonl", data_file("train", "wrong.jsonl", "text,label\ngood,positive\nbad,negative\n"), "wrong.jsonl"),
    ("mixed-formats", data_file("train", "train.csv", "text,label\ngood,positive\nbad,negative\n"), "mixed formats"),
    ("missing-text-column", data_file("train", "t.jsonl", GOOD, text_column="sentence"), "'sentence'"),
    ("missing-label-column", data_file("train", "t.jsonl", GOOD, label_column="stars"), "'stars'"),
    ("unknown-eval-label", data_file("validation", "v.jsonl", rows(("meh", "neutral"))), "'neutral'"),
    ("single-label", data_file("train", "t.jsonl", rows(("a", "positive"), ("b", "positive"))), "single label"),
    ("null-labels", data_file("train", "t.jsonl", rows(("a", "positive")) + '{"text": "b", "label": null}\n'), "empty labels"),
    ("label-not-in-names", data_file("train", "t.jsonl", GOOD, label_names=["positive", "neutral"]), "'negative'"),
    ("train-split-absent", cfg_edit("data.train_split", "training", "train"), "'training'"),
    ("model-path-missing", cfg_edit("model.name_or_path", "/nonexistent/model", "train"), "/nonexistent/model"),
    ("model-pickle-only", model_dir(pickle_only), "pickle"),
    ("model-cannot-classify", model_dir(no_classification_head), "AutoModelForSequenceClassification"),
    ("lora-target-unmatched", lambda tmp, cfg, model: (cfg.update(lora={"enabled": True, "target_modules": ["q_proj"]}), ["train"])[1], "q_proj"),
    ("output-dir-in-use", existing_run(), "already holds a run"),
    ("output-dir-is-file", output_is_file, "is a file"),
    ("resume-without-checkpoint", existing_run(["--resume"]), "no complete checkpoint"),
    ("resume-path-missing", lambda tmp, cfg, model: ["train", "--resume", str(tmp / "nowhere")], "nowhere"),
    ("resume-changed-config", resume_changed, "'lora.enabled' differs"),
    ("resume-and-overwrite", existing_run(["--resume", "--overwrite"]), "pass only one"),
    # sparse attention (issue 14): a kernel the architecture lacks names the key and what it has
    ("attn-kernel-typo", cfg_edit("model.attn_implementation", "spda", "train"), "model.attn_implementation: bert"),
    ("attn-kernel-unsupported", cfg_edit("model.attn_implementation", "flash_attention_9", "train"), "supports eager, sdpa"),
    ("attn-flex-cannot-train", cfg_edit("model.attn_implementation", "flex_attention", "train"), "model.attn_implementation: flex_attention"),
]


def snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def run_main(args: list[str], capsys, monkeypatch) -> tuple[int, str]:
    from finetune.cli import main

    monkeypatch.setattr(sys, "argv", ["finetune", *args])
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    return code, capsys.readouterr().err


def cli_args(case, tmp: Path, model: Path, files: dict) -> list[str]:
    cfg = base_config(tmp, model, files)
    made = case(tmp, cfg, model)
    config = tmp / "run.yaml"
    if made[:2] == ["validate", "--raw"]:
        write(tmp, "run.yaml", made[2])
        return ["config", "validate", str(config)]
    if made[:2] == ["validate", "--path"]:
        return ["config", "validate", made[2]]
    config.write_text(yaml.safe_dump(cfg))
    if made[0] == "validate":
        return ["config", "validate", str(config), *made[1:]]
    return ["train", "--config", str(config), *made[1:]]


@pytest.mark.parametrize("case, culprit", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_mistake_gives_one_clear_line(tmp_path, tiny_bert, sentiment_files, capsys, monkeypatch, case, culprit):
    args = cli_args(case, tmp_path, tiny_bert, sentiment_files)
    before = snapshot(tmp_path)
    capsys.readouterr()  # only what the CLI prints counts
    code, stderr = run_main(args, capsys, monkeypatch)
    assert code == 2, stderr
    assert "Traceback" not in stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    assert culprit in lines[0]
    after = snapshot(tmp_path)
    assert {k: after.get(k) for k in before} == before, "a file that was there before changed"


def test_catalogue_is_large_and_distinct():
    assert len(CASES) >= 30
    assert len({c[0] for c in CASES}) == len(CASES)


@pytest.fixture(autouse=True, scope="module")
def _no_progress_bars():
    """The CLI turns the libraries' bars off before importing them (HF_HUB_DISABLE_PROGRESS_BARS);
    in this process they are already imported, so switch them off directly."""
    import transformers

    transformers.utils.logging.disable_progress_bar()


@pytest.mark.parametrize("name", ["yaml-python-tag", "output-dir-in-use", "lora-target-unmatched"])
def test_real_subprocess_behaves_the_same(tmp_path, tiny_bert, sentiment_files, name):
    case, culprit = next(c[1:] for c in CASES if c[0] == name)
    result = run_cli(*cli_args(case, tmp_path, tiny_bert, sentiment_files))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and culprit in result.stderr


def test_disk_full_while_saving_keeps_the_previous_checkpoint(
    tmp_path, tiny_bert, sentiment_files, capsys, monkeypatch
):
    from finetune import checkpoint

    cfg = base_config(tmp_path, tiny_bert, sentiment_files)
    cfg["training"].update(save_every=1, max_steps=3)
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(cfg))
    flush = checkpoint._fsync_tree

    def full_at_step_2(root: Path):
        if root.name == ".tmp-step-000002":
            raise OSError(errno.ENOSPC, "No space left on device")
        flush(root)

    monkeypatch.setattr(checkpoint, "_fsync_tree", full_at_step_2)
    code, stderr = run_main(["train", "--config", str(tmp_path / "run.yaml")], capsys, monkeypatch)
    assert code == 2 and "Traceback" not in stderr
    line = stderr.strip().splitlines()[-1]
    assert line.startswith("error: no space left") and "step-000002" in line and "intact" in line
    saved = sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir())
    assert saved == ["step-000001"]  # the previous checkpoint, and no half-written one
    assert json.loads((tmp_path / "run" / "checkpoints" / "step-000001" / "train_state.json").read_text())["step"] == 1


def test_secrets_stay_out_of_the_run_directory(tmp_path, tiny_bert, sentiment_files):
    cfg = base_config(tmp_path, tiny_bert, sentiment_files)
    cfg["model"]["token"] = "hf_SECRETtoken123"
    cfg["training"]["max_steps"] = 1
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(cfg))
    shown = run_cli("config", "show", str(tmp_path / "run.yaml"))
    assert shown.returncode == 0 and "hf_SECRET" not in shown.stdout
    result = run_cli("train", "--config", str(tmp_path / "run.yaml"))
    assert result.returncode == 0, result.stderr
    assert "hf_SECRET" not in result.stdout + result.stderr
    for path in (tmp_path / "run").rglob("*"):
        if path.is_file():
            assert b"hf_SECRET" not in path.read_bytes(), path
