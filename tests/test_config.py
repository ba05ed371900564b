"""Config loading, dotted overrides and the error messages a user sees."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import ROOT, write_config

from finetune.configuration.loading import apply_override, load_config
from finetune.errors import ConfigError

MINIMAL = """
task: sentiment
model:
  name_or_path: some/model
data:
  files:
    train: train.csv
"""


def _load(tmp_path, text, overrides=()):
    return load_config(write_config(tmp_path / "c.yaml", text), overrides)


def test_defaults_are_filled_in(tmp_path):
    cfg = _load(tmp_path, MINIMAL)
    assert cfg.training.lr == 5e-5
    assert cfg.lora.enabled is False and cfg.lora.target_modules == "auto"
    assert cfg.model.trust_remote_code is False
    assert cfg.data.eval_split == "validation"


def test_dotted_overrides_are_typed(tmp_path):
    cfg = _load(tmp_path, MINIMAL, ["training.lr=3e-5", "lora.r=16", "lora.enabled=true",
                                    "lora.target_modules=[query,value]", "data.files.validation=v.csv"])
    assert cfg.training.lr == pytest.approx(3e-5)
    assert cfg.lora.r == 16 and cfg.lora.enabled is True
    assert cfg.lora.target_modules == ["query", "value"]
    assert cfg.data.files == {"train": "train.csv", "validation": "v.csv"}


@pytest.mark.parametrize(
    "override, expected",
    [
        ("training.lrr=1", "unknown key 'training.lrr'; did you mean 'training.lr'?"),
        ("trainng.lr=1", "unknown key 'trainng'; did you mean 'training'?"),
        ("training.lr=fast", "key 'training.lr'"),
        ("training.batch_size=0", "key 'training.batch_size'"),
        ("training.scheduler=exp", "key 'training.scheduler' must be one of 'linear', 'cosine' or 'constant'"),
        ("lr", "write it as section.key=value"),
        ("task.x=1", "'task' is not a section"),
    ],
)
def test_bad_overrides_name_the_key(tmp_path, override, expected):
    with pytest.raises(ConfigError) as err:
        _load(tmp_path, MINIMAL, [override])
    assert expected in str(err.value)


def test_yaml_syntax_error_names_the_line(tmp_path):
    with pytest.raises(ConfigError, match=r"c.yaml: YAML syntax error at line 4"):
        _load(tmp_path, "task: sentiment\nmodel:\n  name_or_path: x\n bad: 1\n")


def test_missing_required_sections(tmp_path):
    with pytest.raises(ConfigError, match="missing required key 'model'"):
        _load(tmp_path, "task: sentiment\ndata:\n  dataset: x\n")
    with pytest.raises(ConfigError, match=r"give `data.dataset`"):
        _load(tmp_path, "task: sentiment\nmodel:\n  name_or_path: x\n")


def test_unsafe_yaml_tags_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="YAML syntax error"):
        _load(tmp_path, "task: !!python/object/apply:os.system ['echo hi']\n")


def test_apply_override_creates_sections():
    raw: dict = {}
    apply_override(raw, "data.files.train=a.csv")
    assert raw == {"data": {"files": {"train": "a.csv"}}}


def test_every_shipped_config_validates():
    configs = sorted((ROOT / "finetune" / "recipes").glob("*.yaml"))
    assert configs, "finetune/recipes/ holds no run configs"
    for path in configs:
        load_config(path)


def test_cli_config_commands_do_not_import_heavy_libraries(tmp_path):
    """--help and config validate must answer without torch, transformers or peft."""
    cfg = write_config(tmp_path / "c.yaml", MINIMAL)
    code = (
        "import sys; from typer.testing import CliRunner; from finetune.cli import app; "
        "r = CliRunner(); "
        f"a = r.invoke(app, ['--help']); b = r.invoke(app, ['config', 'validate', {str(cfg)!r}]); "
        "assert a.exit_code == 0 and b.exit_code == 0, (a.output, b.output); "
        "heavy = [m for m in ('torch', 'transformers', 'peft', 'datasets', 'accelerate') if m in sys.modules]; "
        "print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_cli_config_errors_are_one_line_exit_2(tmp_path):
    from conftest import run_cli

    cfg = write_config(tmp_path / "c.yaml", MINIMAL)
    result = run_cli("config", "validate", str(cfg), "training.epochs=-1")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "training.epochs" in result.stderr
    assert "Traceback" not in result.stderr
    shown = run_cli("config", "show", str(cfg), "lora.r=4")
    assert shown.returncode == 0 and "r: 4" in shown.stdout and "output_dir: runs/c" in shown.stdout


# ----------------------------------------------------------------------------- strict YAML and bounds


@pytest.mark.parametrize("text, message", [
    (MINIMAL + "task: translation\n", r"key 'task' is written twice, on lines 2 and 8"),
    (MINIMAL + "training:\n  lr: 1.0e-3\n  batch_size: 8\n  lr: 1.0e-4\n", r"key 'lr' is written twice, on lines 9 and 11"),
    (MINIMAL + "    train: other.csv\n", r"key 'train' is written twice, on lines 7 and 8"),
])
def test_duplicate_keys_name_the_key_and_both_lines(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message):
        _load(tmp_path, text)


def test_aliases_and_merge_keys_still_work(tmp_path):
    cfg = _load(tmp_path, MINIMAL + "training: {lr: &size 8.0e-3, batch_size: 8}\nlora: {r: 8, alpha: 16, dropout: 0.1}\n"
                "eval:\n  batch_size: 8\n  generation: {num_beams: 2}\n")
    assert cfg.lora.r == 8 and cfg.eval.batch_size == 8
    from finetune.configuration.strict_yaml import load_yaml_text

    assert load_yaml_text("base: &b {x: 1, y: 2}\nd:\n  <<: *b\n  x: 3\n")["d"] == {"x": 3, "y": 2}


def test_alias_bomb_is_refused_before_expanding(tmp_path):
    levels = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{n}: &{n} [{', '.join(['*' + p] * 9)}]\n" for p, n in zip("abcdefgh", "bcdefghi"))
    with pytest.raises(ConfigError, match=r"aliases \(\*name\) expand to more than 100000 values"):
        _load(tmp_path, MINIMAL + levels)


@pytest.mark.parametrize("override", [
    "training.batch_size=1e21", "training.batch_size=65537", "training.lr=0",
    "training.epochs=1e9", "training.max_steps=1e12", "data.max_length=1e12", "data.max_source_length=2e6",
    "training.seed=-1", "training.seed=5e9", "eval.generation.num_beams=1000", "lora.r=100000",
])
def test_absurd_values_are_refused_by_the_schema(tmp_path, override):
    key = override.partition("=")[0]
    with pytest.raises(ConfigError, match=f"key '{key}'"):
        _load(tmp_path, MINIMAL, [override])


def test_bounds_leave_real_runs_alone(tmp_path):
    cfg = _load(tmp_path, MINIMAL, ["training.batch_size=65536", "training.epochs=100",
                                    "data.max_length=131072", "training.seed=4294967295"])
    assert cfg.training.batch_size == 65536 and cfg.data.max_length == 131072


def test_label_names_must_be_distinct(tmp_path):
    with pytest.raises(ConfigError, match=r"data.label_names: 'neg' is listed twice"):
        _load(tmp_path, MINIMAL, ["data.label_names=[neg, pos, neg]"])


def test_the_schema_names_its_dialect_and_itself(tmp_path):
    """Editors (VS Code's YAML extension) need `$schema` and `$id`; the schema still describes
    every section, with the documented bounds."""
    from finetune.configuration.json_schema import schema

    found = schema()
    assert found["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert found["$id"].startswith("urn:finetune:")
    assert set(found["properties"]) == {"task", "model", "data", "lora", "training", "eval"}
    assert found["$defs"]["TrainingSection"]["properties"]["batch_size"]["maximum"] == 65536
