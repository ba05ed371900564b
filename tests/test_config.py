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


# ----------------------------------------------------------------------------- overrides read as strictly as files


@pytest.mark.parametrize("override, message", [
    ("model.config_overrides.a=[&x 1, *x]", "anchors (&name) and aliases (*name)"),
    ("model.config_overrides.a=&x 1", "anchors (&name) and aliases (*name)"),
    ("data.files={train: a.csv, train: b.csv}", "key 'train' is written twice"),
    ("model.config_overrides.a=" + "[" * 40 + "]" * 40, "nested too deeply"),
    ("model.config_overrides.a=" + "[" * 5000 + "]" * 5000, "nested too deeply"),
    ("model.config_overrides." + ".".join(["a"] * 40) + "=1", "nested too deeply"),
    ("training.lr=!!python/name:os.system", "python/name"),
])
def test_overrides_are_read_by_the_strict_loader(tmp_path, override, message):
    with pytest.raises(ConfigError) as err:
        _load(tmp_path, MINIMAL, [override])
    assert str(err.value).startswith("override model.") or str(err.value).startswith("override ")
    assert message in str(err.value)


# ----------------------------------------------------------------------------- a config must survive config.yaml


UNWRITABLE = [
    ("training.lr", ".inf", "not a finite number"),
    ("eval.generation.length_penalty", ".nan", "not a finite number"),
    ("training.early_stopping_threshold", "-.inf", "not a finite number"),
    ("model.config_overrides.rope_theta", ".nan", "not a finite number"),
    ("model.config_overrides.x", "2024-01-01", "as a date"),
    ("model.config_overrides.x", "!!binary aGVsbG8=", "as a bytes"),
    ("model.config_overrides.x", "!!set {a, b}", "as a set"),
    ("model.config_overrides.x", str(2**64), "64-bit integer"),
    ("data.source_prefix", '"a\\x07b"', "control character"),
    ("data.source_prefix", '"a\\x85b"', "control character"),
    ("data.source_prefix", '"a\\ud800b"', "control character"),
    ("data.prompt_template", "x" * 100_001 + "{source}", "characters, more than"),
    ("model.config_overrides.x", "[" * 30 + "1" + "]" * 30, "nested too deeply"),  # fine alone, too deep under x
]


@pytest.mark.parametrize("key, value, message", UNWRITABLE, ids=[f"{k}={v[:20]}" for k, v, _ in UNWRITABLE])
def test_values_config_yaml_could_not_hold_are_refused(tmp_path, key, value, message):
    """From an override and from the file alike, each error naming where the value came from."""
    with pytest.raises(ConfigError) as err:
        _load(tmp_path, MINIMAL, [f"{key}={value}"])
    assert message in str(err.value) and str(err.value).startswith(f"override {key}=")
    top, *middle, last = key.split(".")
    nested = "".join(f"{'  ' * i}{part}:\n" for i, part in enumerate(middle, 1)) + f"{'  ' * (len(middle) + 1)}{last}: {value}\n"
    text = MINIMAL.replace(f"{top}:\n", f"{top}:\n{nested}") if f"\n{top}:\n" in MINIMAL else MINIMAL + f"{top}:\n{nested}"
    with pytest.raises(ConfigError) as err:
        _load(tmp_path, text)
    assert message in str(err.value) and str(err.value).startswith(str(tmp_path / "c.yaml"))


@pytest.mark.parametrize("override", [
    "data.source_prefix='yes'", "data.source_prefix='2024-01-01'", "data.source_prefix='0o17'",
    "data.source_prefix='1_000'", "data.source_prefix='~'", "data.source_prefix='='", "data.source_prefix='<<'",
    "data.source_prefix=\"tab\\there\"", "data.prompt_template=\"Q: {source}\\nA:\"", "data.source_prefix=übersetze: ",
    "model.config_overrides={a: null, b: [1, 2.5, 'x'], 'on': 'off', c: {d: 1.0e-300}}",
    "data.label_names=['no', 'yes', 'null', '1.5']", "model.revision='0123'", "training.lr=1e-30",
    f"model.config_overrides.n={2**63 - 1}", "data.source_prefix=" + "word " * 5000,
])
def test_an_accepted_config_is_written_back_and_read_back_equal(tmp_path, override):
    """Save, reload, compare: what `config validate` accepts is what config.yaml will hold."""
    from finetune.configuration.config import RunConfig
    from finetune.configuration.strict_yaml import load_yaml_text

    try:
        cfg = _load(tmp_path, MINIMAL, [override])
    except ConfigError as err:  # refused is fine too, if the error names the override
        assert str(err).startswith("override "), err
        return
    back = RunConfig.model_validate(load_yaml_text(cfg.to_yaml()))
    assert back == cfg and back.model_dump() == cfg.model_dump()


# ----------------------------------------------------------------------------- errors name their source


@pytest.mark.parametrize("override, message", [
    ("training.lr=abc", "key 'training.lr': input should be a valid number"),
    ("training.lrr=1", "unknown key 'training.lrr'; did you mean 'training.lr'?"),
    ("trainng={lr: 1}", "unknown key 'trainng'; did you mean 'training'?"),
    ("training={lr: abc}", "key 'training.lr'"),
    ("training.batch_size=[8]", "key 'training.batch_size'"),
    ("data.label_names=[a, a]", "'a' is listed twice"),
    ("training.lr=[1,", "the value is not valid YAML"),
    ("data.prompt_template=Q: {source}", "YAML reads it as a mapping; quote the text"),
    ("model.name_or_path={a: 1}", "key 'model.name_or_path'"),
])
def test_a_bad_override_is_reported_as_that_override(tmp_path, override, message):
    with pytest.raises(ConfigError) as err:
        _load(tmp_path, MINIMAL, ["training.batch_size=8", override])
    assert str(err.value).startswith(f"override {override}: ") and message in str(err.value)
    assert "c.yaml" not in str(err.value)


def test_a_bad_value_in_the_file_is_still_reported_at_the_file(tmp_path):
    with pytest.raises(ConfigError) as err:
        _load(tmp_path, MINIMAL + "training:\n  lr: abc\n", ["training.batch_size=8", "lora.r=4"])
    assert str(err.value).startswith(f"{tmp_path / 'c.yaml'}: key 'training.lr'")


def test_a_config_too_large_to_write_back_is_refused(tmp_path):
    many = "{" + ", ".join(f"k{i}: '{'x' * 90_000}'" for i in range(12)) + "}"  # each value allowed, not all
    with pytest.raises(ConfigError, match="config.yaml it would be .* characters"):
        _load(tmp_path, MINIMAL.replace("model:\n", f"model:\n  config_overrides: {many}\n"))


@pytest.mark.parametrize("override, message", [
    ("model.tokenizer.train=true", "a learnt vocabulary would not match"),
    ("task=summarization", "needs data.summary_column"),
])
def test_a_check_across_keys_names_the_override_that_broke_it(tmp_path, override, message):
    with pytest.raises(ConfigError) as err:
        _load(tmp_path, MINIMAL, ["lora.r=4", override])
    assert str(err.value).startswith(f"override {override}: ") and message in str(err.value)
