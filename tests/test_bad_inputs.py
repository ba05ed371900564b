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
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, main_in_process, run_cli

from finetune.configuration.config import RunConfig


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


def memory_capped(gb: str):
    """train with FINETUNE_AVAILABLE_MEMORY_GB set (undone after each test by _no_memory_cap)."""
    def make(tmp, cfg, model):
        import os

        from finetune.planning.memory import AVAILABLE_ENV

        os.environ[AVAILABLE_ENV] = gb
        return ["train"]
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


def pickle_beside_safetensors(target: Path) -> None:
    """transformers would take the safetensors; finetune refuses the directory all the same."""
    (target / "pytorch_model.bin").write_bytes(planted_pickle(target.parent / "PWNED"))


def saved_model_damaged(inside: str, name: str, command: str = "eval"):
    """A finished run whose saved model `inside` lost `name`; `finetune COMMAND` on it."""
    def make(tmp, cfg, model):
        run = finished_run(tmp, cfg)
        (run / inside / name).unlink()
        return ["cli", command, str(run)] + (["--checkpoint", inside] if inside != "model" else [])
    return make


def no_classification_head(target: Path) -> None:
    config = json.loads((target / "config.json").read_text())
    config.update(model_type="whisper", architectures=["WhisperModel"])
    (target / "config.json").write_text(json.dumps(config))


def existing_run(extra_args=(), marked=True):
    def make(tmp, cfg, model):
        from finetune.storage.run_dir import write_marker

        run = Path(cfg["training"]["output_dir"])
        run.mkdir()
        (run / "config.yaml").write_text(yaml.safe_dump(cfg))
        (run / "metrics.jsonl").write_text('{"type": "train", "step": 1}\n')
        if marked:
            write_marker(run)
        return ["train", *extra_args]
    return make


def user_folder(*names, extra_args=("--overwrite",)):
    """output_dir is a folder of the user's files (`name/` makes a subfolder)."""
    def make(tmp, cfg, model):
        folder = tmp / "mine"
        for name in names:
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            if name.endswith("/"):
                (folder / name).mkdir(exist_ok=True)
            else:
                (folder / name).write_text("precious")
        cfg["training"]["output_dir"] = str(folder)
        return ["train", *extra_args]
    return make


def output_dir_holds(what, marked=False):
    """output_dir is a folder holding the config (tmp itself) or, deeper down, the data files."""
    def make(tmp, cfg, model):
        from finetune.storage.run_dir import write_marker

        folder = tmp
        if what == "data":
            folder = tmp / "project"
            (folder / "data").mkdir(parents=True)
            for split, path in list(cfg["data"]["files"].items()):
                cfg["data"]["files"][split] = str(shutil.copy(path, folder / "data"))
        if marked:
            write_marker(folder)
        cfg["training"]["output_dir"] = str(folder)
        return ["train", "--overwrite"]
    return make


def data_inside_marked_run(tmp, cfg, model):
    make = existing_run(["--overwrite"])
    args = make(tmp, cfg, model)
    run = Path(cfg["training"]["output_dir"])
    cfg["data"]["files"]["train"] = str(shutil.copy(cfg["data"]["files"]["train"], run / "train.jsonl"))
    return args


def a_run_at(folder: Path, cfg: dict, inner: str | None = None) -> Path:
    """A marked run with the folders training writes (and, `inner`, another run below it)."""
    from finetune.storage.run_dir import write_marker

    (folder / "checkpoints" / "step-000001").mkdir(parents=True)
    (folder / "model").mkdir()
    (folder / "model" / "model.safetensors").write_text("weights")
    (folder / "config.yaml").write_text(yaml.safe_dump(cfg))
    (folder / "metrics.jsonl").write_text('{"type": "train", "step": 1}\n')
    write_marker(folder)
    if inner:
        a_run_at(folder / inner, cfg)
    return folder


def inside_a_run(sub, extra_args=(), through_link=False):
    """output_dir lies inside an existing run: in its checkpoints/, its model/, a new subfolder;
    `through_link`: reached by a symlink to the run from outside it."""
    def make(tmp, cfg, model):
        outer = a_run_at(tmp / "outer", cfg)
        if through_link:
            (tmp / "link").symlink_to(outer)
            outer = tmp / "link"
        cfg["training"]["output_dir"] = str(outer / sub)
        return ["train", *extra_args]
    return make


def overwrite_run_holding_a_run(tmp, cfg, model):
    a_run_at(Path(cfg["training"]["output_dir"]), cfg, inner="old/earlier-run")
    return ["train", "--overwrite"]


def eval_model_output(where):
    """`eval --model` (a non-destructive command) with --output a training run, or inside one."""
    def make(tmp, cfg, model):
        run = a_run_at(tmp / "outer", cfg)
        return ["cli", "eval", "--model", str(model), "--config", str(tmp / "run.yaml"),
                "--output", str(run / where)]
    return make


# ----------------------------------------------------------------------------- checkpoints
def checkpointed_run(model: Path, files: dict) -> Path:
    """A short run with checkpoints at steps 1 and 2, trained once per session (beside the tiny
    model, in pytest's base temp); the checkpoint cases copy it and damage or contradict it."""
    from finetune.training.loop import train

    root = model.parent / "checkpointed-run"
    if not (root / "run" / "model").is_dir():
        cfg = base_config(root, model, files)
        cfg["training"]["save_every"] = 1
        train(RunConfig.model_validate(cfg), root / "run")
    return root / "run"


def checkpointed(edit=lambda tmp, cfg, run: None, args=("--resume",)):
    """Copy the checkpointed run to the case's output_dir, let `edit` change the config or the
    copy, and resume it (or run `args` when they name another command)."""
    def make(tmp, cfg, model):
        run = Path(cfg["training"]["output_dir"])
        shutil.copytree(checkpointed_run(model, cfg["data"]["files"]), run)
        extra = edit(tmp, cfg, run)
        resolved = [a.format(run=run, tmp=tmp) for a in args] + list(extra or [])
        return resolved if resolved[0] == "eval" else ["train", *resolved]
    return make


def each_checkpoint(damage, only=None):
    def edit(tmp, cfg, run):
        for path in sorted((run / "checkpoints").glob(only or "step-*")):
            damage(path)
    return edit


class _Planted:
    """Unpickling this creates the file `marker` (what a crafted checkpoint could do)."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def planted_pickle(marker: Path) -> bytes:
    import pickle

    return pickle.dumps(_Planted(marker))


def truncate(name):
    def damage(path):
        data = (path / name).read_bytes()
        (path / name).write_bytes(data[: len(data) // 2])
    return damage


def remove(name):
    return lambda path: (path / name).unlink()


def pickle_as(name, forge_manifest=False):
    def damage(path):
        from finetune.storage import manifest

        (path / name).write_bytes(planted_pickle(path.parents[3] / "PWNED"))
        if forge_manifest:
            manifest.write(path, path.name)
    return damage


def old_format(path: Path) -> None:
    """What finetune wrote before manifests: Accelerate's pickles, train_state.json without a format."""
    (path / "manifest.json").unlink()
    (path / "random_states_0.pkl").write_bytes(planted_pickle(path.parents[3] / "PWNED"))
    state = json.loads((path / "train_state.json").read_text())
    state.pop("format")
    (path / "train_state.json").write_text(json.dumps(state))


def resume_with(dotted, value):
    return lambda tmp, cfg, run: set_key(cfg, dotted, value)


def changed_data(tmp, cfg, run):
    text = Path(cfg["data"]["files"]["train"]).read_text()
    cfg["data"]["files"]["train"] = write(tmp, "train.jsonl", text.replace("a", "e", 1))


def another_run(tmp, cfg, run):
    shutil.copytree(run, tmp / "other")


def output_is_file(tmp, cfg, model):
    cfg["training"]["output_dir"] = write(tmp, "taken", "not a directory")
    return ["train"]



# ----------------------------------------------------------------------------- refused writes
# (an OS error at a write: read-only, a file where a directory should be, or the reverse)

_MOUNTS: list[Path] = []


def read_only_dir(tmp: Path) -> Path:
    """An empty read-only file system (a tmpfs mounted ro), unmounted when the module ends."""
    import subprocess

    target = tmp / "read-only"
    target.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(target)],
                      capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (needs root and mount rights)")
    _MOUNTS.append(target)
    return target


@pytest.fixture(autouse=True, scope="module")
def _unmount_read_only_dirs():
    import subprocess

    yield
    for target in _MOUNTS:
        subprocess.run(["umount", str(target)], check=False)


def output_on_read_only(inside: str):
    def make(tmp, cfg, model):
        root = read_only_dir(tmp)
        cfg["training"]["output_dir"] = str(root / inside if inside else root)
        return ["train"]
    return make


def output_under_a_file(tmp, cfg, model):
    cfg["training"]["output_dir"] = str(Path(write(tmp, "a-file", "not a directory")) / "run")
    return ["train"]


def finished_run(tmp: Path, cfg: dict) -> Path:
    """A copy, at cfg's output_dir, of a finished one-step run with its step-1 checkpoint; the
    run itself is trained once per test session."""
    from finetune.training.loop import train

    template = tmp.parent / "finished-run-template"
    if not (template / "model").is_dir():
        shutil.rmtree(template, ignore_errors=True)
        training = {**cfg["training"], "output_dir": str(template), "max_steps": 1, "save_every": 1}
        train(RunConfig.model_validate({**cfg, "training": training}), template)
    run = Path(cfg["training"]["output_dir"])
    shutil.copytree(template, run)
    return run


def in_finished_run(command: str, blocker: str, is_dir: bool, *args: str, drop: str = ""):
    """`finetune COMMAND RUN ARGS` where `blocker` in the run is a directory (or a file) that
    the command must write as a file (or a directory); `drop`: a file it writes before that."""
    def make(tmp, cfg, model):
        run = finished_run(tmp, cfg)
        if drop:
            (run / drop).unlink()
        path = run / blocker
        shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
        path.mkdir() if is_dir else path.write_text("in the way")
        return [command, str(run), *args]
    return make


def eval_on_read_only_copy(tmp, cfg, model):
    """`finetune eval` of a run that sits on a read-only bind mount of its own directory."""
    import subprocess

    run = finished_run(tmp, cfg)
    (run / "eval_validation.json").unlink()
    view = tmp / "read-only-run"
    view.mkdir()
    mounted = subprocess.run(["mount", "--bind", "-o", "ro", str(run), str(view)], capture_output=True)
    if mounted.returncode:
        pytest.skip("cannot bind-mount read-only here (needs root and mount rights)")
    _MOUNTS.append(view)
    return ["eval", str(view)]


# ----------------------------------------------------------------------------- inputs (issue 10, item 8)
def jsonl(*records: dict) -> str:
    return "".join(json.dumps(r) + "\n" for r in records)


def only_file(name, content):
    """The run's one data file (validation carved from it), in a format of its own."""
    def make(tmp, cfg, model):
        cfg["data"]["files"] = {"train": write(tmp, name, content)}
        return ["train"]
    return make


def csv_pair(train, validation):
    def make(tmp, cfg, model):
        cfg["data"]["files"] = {"train": write(tmp, "t.csv", train), "validation": write(tmp, "v.csv", validation)}
        return ["train"]
    return make


def tiny_gpt2(tmp: Path) -> Path:
    """One tiny decoder-only model per session (generation tasks refuse an encoder-only BERT
    before reading data); built beside the case's tmp dir, so outside its snapshot."""
    from tiny_models import build_tiny_generator

    target = tmp.parent / "catalogue-tiny-gpt2"
    if not target.is_dir():
        build_tiny_generator("gpt2", target)
    return target


def generation_data(task, content, **data_keys):
    def make(tmp, cfg, model):
        path = write(tmp, "gen.jsonl", content)
        cfg["task"] = task
        cfg["model"]["name_or_path"] = str(tiny_gpt2(tmp))
        cfg["data"].update(files={"train": path, "validation": path}, max_source_length=16,
                           max_target_length=8, **data_keys)
        return ["train"]
    return make


def eval_checkpoint(checkpoint_arg):
    """`finetune eval RUN --checkpoint X` on a run directory; X may escape it."""
    def make(tmp, cfg, model):
        run = Path(cfg["training"]["output_dir"])
        (run / "checkpoints").mkdir(parents=True)
        (run / "config.yaml").write_text(RunConfig.model_validate(cfg).to_yaml())
        (tmp / "elsewhere").mkdir()
        (run / "checkpoints" / "outside").symlink_to(tmp / "elsewhere")
        return ["cli", "eval", str(run), "--checkpoint", checkpoint_arg(tmp)]
    return make


def fake_run(*command, model_files=("adapter_config.json",), merged_files=()):
    """A run directory (config.yaml, model/ and maybe merged/ with these files), then the CLI on it:
    `command` with RUN standing for its path."""
    def make(tmp, cfg, model):
        run = Path(cfg["training"]["output_dir"])
        run.mkdir()
        for folder, names in (("model", model_files), ("merged", merged_files)):
            for name in names:
                (run / folder).mkdir(parents=True, exist_ok=True)
                (run / folder / name).write_text("{}")
        (run / "config.yaml").write_text(RunConfig.model_validate(cfg).to_yaml())
        return ["cli", *(str(run) if arg == "RUN" else arg for arg in command)]
    return make


def fp16_without_gpu(tmp, cfg, model):
    import torch

    if torch.accelerator.is_available():
        pytest.skip("this machine has a GPU, where fp16 is legal")
    cfg["training"]["mixed_precision"] = "fp16"
    return ["train"]


def hub_dataset(tmp, cfg, model):
    cfg["data"] = {"dataset": "nobody/no-such-dataset", "max_length": 32}
    return ["train"]


def data_file_is_directory(tmp, cfg, model):
    (tmp / "train.jsonl").mkdir()
    cfg["data"]["files"]["train"] = str(tmp / "train.jsonl")
    return ["train"]


# Environment variables a case sets for its run of main(); undone after each test.
CASE_ENV = pytest.MonkeyPatch()


@pytest.fixture(autouse=True)
def _undo_case_env():
    yield
    CASE_ENV.undo()


def under_accelerate_launch(launch_config, *command):
    """The environment `accelerate launch --config_file configs/accelerate/LAUNCH_CONFIG` gives
    its processes, as Accelerate's own launcher builds it, on a machine without a GPU."""
    def make(tmp, cfg, model):
        import os

        import torch
        from accelerate.commands.launch import _validate_launch_command, launch_command_parser
        from accelerate.utils.launch import prepare_deepspeed_cmd_env, prepare_multi_gpu_env

        if torch.accelerator.is_available():
            pytest.skip("this machine has a GPU, where FSDP and DeepSpeed can shard")
        parser = launch_command_parser()
        args = parser.parse_args(["--config_file", str(ROOT / "configs" / "accelerate" / launch_config),
                                  "--num_processes", "2", "--mixed_precision", "no", "-m", "finetune"])
        args, defaults, _ = _validate_launch_command(args)
        if args.use_deepspeed:  # as `accelerate launch` does before its DeepSpeed launcher
            args.deepspeed_fields_from_accelerate_config = ",".join(defaults.deepspeed_config)
            env = prepare_deepspeed_cmd_env(args)[1]
        else:
            env = prepare_multi_gpu_env(args)
        for key, value in env.items():
            if os.environ.get(key) != value:
                CASE_ENV.setenv(key, value)
        return command[0](tmp, model) if command else ["train"]
    return make


ALIAS_BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{name}: &{name} [{', '.join(['*' + prev] * 9)}]\n" for prev, name in zip("abcdefgh", "bcdefghi")
) + "task: sentiment\n"
BAD_UTF8 = b"\xff\xfe broken"


# ----------------------------------------------------------------------------- report and attention (issue 13, items 9-10)
def users_report(tmp, cfg, model):
    """A finished run holding a report.html that finetune did not write."""
    run = finished_run(tmp, cfg)
    (run / "report.html").write_text("<p>my own notes</p>")
    return ["cli", "report", str(run)]


def attention_of_finished_run(*args: str):
    def make(tmp, cfg, model):
        return ["cli", "attention", str(finished_run(tmp, cfg)), "a fine film", *args]
    return make


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
    ("null-labels", data_file("train", "t.jsonl", rows(("a", "positive")) + '{"text": "b", "label": null}\n'), "has an empty label"),
    ("label-not-in-names", data_file("train", "t.jsonl", GOOD, label_names=["positive", "neutral"]), "'negative'"),
    ("train-split-absent", cfg_edit("data.train_split", "training", "train"), "'training'"),
    ("model-path-missing", cfg_edit("model.name_or_path", "/nonexistent/model", "train"), "/nonexistent/model"),
    ("model-path-named-attention-missing", cfg_edit("model.name_or_path", "/nonexistent/sparse-attention-bert", "train"),
     "model.name_or_path '/nonexistent/sparse-attention-bert': no such directory"),
    ("model-pickle-only", model_dir(pickle_only), "pickle"),
    # safetensors only, saved models checked whole (trust round 2, items 2-3)
    ("model-pickle-beside-safetensors", model_dir(pickle_beside_safetensors), "'pytorch_model.bin' is a pickle"),
    ("model-allow-pickle-true", cfg_edit("model.allow_pickle", True), "model.allow_pickle"),
    ("saved-model-tokenizer-missing", saved_model_damaged("model", "tokenizer.json", "report"), "tokenizer.json is missing"),
    ("saved-best-weights-missing", saved_model_damaged("best", "model.safetensors"), "model.safetensors is missing"),
    ("model-cannot-classify", model_dir(no_classification_head), "AutoModelForSequenceClassification"),
    ("lora-target-unmatched", lambda tmp, cfg, model: (cfg.update(lora={"enabled": True, "target_modules": ["q_proj"]}), ["train"])[1], "q_proj"),
    ("output-dir-in-use", existing_run(), "already holds a run"),
    ("output-dir-is-file", output_is_file, "is a file"),
    ("resume-without-checkpoint", existing_run(["--resume"]), "no complete checkpoint"),
    ("resume-path-missing", lambda tmp, cfg, model: ["train", "--resume", str(tmp / "nowhere")], "nowhere"),
    ("resume-changed-config", checkpointed(resume_with("lora.enabled", True)), "'lora.enabled' differs"),
    ("resume-and-overwrite", existing_run(["--resume", "--overwrite"]), "pass only one"),
    # trust-rundir: only a directory finetune made (.finetune-run) is ever emptied
    ("overwrite-user-folder", user_folder("thesis.txt"), "not created by finetune (it holds thesis.txt)"),
    ("user-folder-without-overwrite", user_folder("thesis.txt", extra_args=()), "choose an empty or new directory"),
    ("overwrite-home-like-folder", user_folder(".bashrc", ".ssh/id_ed25519", "Documents/cv.pdf"), ".bashrc, .ssh, Documents"),
    ("overwrite-folder-named-like-a-run", user_folder("config.yaml", "notes.txt"), "not created by finetune"),
    ("overwrite-folder-holding-config", output_dir_holds("config"), "this run's config file"),
    ("overwrite-ancestor-of-data", output_dir_holds("data"), "this run's data file data.files.train"),
    ("overwrite-marked-folder-holding-config", output_dir_holds("config", marked=True), "would delete"),
    ("overwrite-marked-run-holding-data", data_inside_marked_run, "data file data.files.train"),
    ("legacy-run-without-overwrite", existing_run(marked=False), "already holds a run written by an older finetune"),
    ("overwrite-legacy-run", existing_run(["--overwrite"], marked=False), "delete it yourself"),
    ("resume-into-user-folder", user_folder("thesis.txt", extra_args=("--resume",)), "not a run directory"),
    # no run inside another run (trust round 2, item 5): its pruning or --overwrite would delete it
    ("output-dir-in-a-runs-checkpoints", inside_a_run("checkpoints/new"), "is inside the run directory"),
    ("output-dir-is-a-runs-model", inside_a_run("model", ["--overwrite"]), "is inside the run directory"),
    ("output-dir-new-folder-in-a-run", inside_a_run("mine"), "is inside the run directory"),
    ("output-dir-in-a-run-through-a-link", inside_a_run("checkpoints/x", through_link=True), "is inside the run directory"),
    ("overwrite-run-holding-another-run", overwrite_run_holding_a_run, "old/earlier-run', which --overwrite would delete"),
    ("eval-model-output-is-a-training-run", eval_model_output(""), "holds a training run"),
    ("eval-model-output-inside-a-run", eval_model_output("zero-shot"), "is inside the run directory"),
    # checkpoints: no pickle, verified, resumed only with what they were trained on (issue 10, 3-5)
    ("resume-old-format-checkpoint", checkpointed(each_checkpoint(old_format)), "older finetune"),
    ("resume-pickle-as-rng", checkpointed(each_checkpoint(pickle_as("rng_0.safetensors"))), "rng_0.safetensors"),
    ("resume-pickle-forged-manifest",
     checkpointed(each_checkpoint(pickle_as("rng_0.safetensors", forge_manifest=True))), "rng_0.safetensors"),
    ("resume-truncated-model", checkpointed(each_checkpoint(truncate("model.safetensors"))), "model.safetensors"),
    ("resume-truncated-train-state", checkpointed(each_checkpoint(truncate("train_state.json"))), "train_state.json"),
    ("resume-missing-optimizer", checkpointed(each_checkpoint(remove("optimizer.safetensors"))),
     "optimizer.safetensors is missing"),
    ("resume-missing-manifest", checkpointed(each_checkpoint(remove("manifest.json"))), "has its manifest.json"),
    ("resume-changed-data", checkpointed(changed_data), "data.files.train"),
    ("resume-changed-model", checkpointed(resume_with("model.name_or_path", "other/model")), "'model.name_or_path' differs"),
    ("resume-changed-seed", checkpointed(resume_with("training.seed", 7)), "'training.seed' differs"),
    ("resume-changed-batch-size", checkpointed(resume_with("training.batch_size", 4)), "'training.batch_size' differs"),
    ("resume-max-steps-below", checkpointed(resume_with("training.max_steps", 1)), "training.max_steps gives 1 steps"),
    ("resume-checkpoint-of-another-run",
     checkpointed(another_run, args=("--resume", "{tmp}/other/checkpoints/step-000002")), "belongs to the run"),
    ("resume-named-damaged-checkpoint",
     checkpointed(each_checkpoint(truncate("optimizer.safetensors"), only="step-000001"),
                  args=("--resume", "{run}/checkpoints/step-000001")), "optimizer.safetensors"),
    ("eval-damaged-checkpoint", checkpointed(each_checkpoint(truncate("model.safetensors"), only="step-000002"),
                                             args=("eval", "{run}", "--checkpoint", "step-000002")), "is damaged"),
    # refused writes (issue 10, item 7): one line naming the path and the OS's cause
    ("output-dir-read-only", output_on_read_only("run"), "read-only file system while writing"),
    ("output-dir-on-read-only-root", output_on_read_only(""), "read-only file system while writing"),
    ("output-dir-under-a-file", output_under_a_file, "not a directory while writing"),
    ("eval-run-read-only", eval_on_read_only_copy, "read-only file system while writing"),
    ("eval-file-is-a-directory", in_finished_run("eval", "eval_validation.json", True), "eval_validation.json'"),
    ("predictions-file-is-a-directory",
     in_finished_run("eval", "predictions_validation.jsonl", True, drop="eval_validation.json"),
     "predictions_validation.jsonl'"),
    ("plots-dir-is-a-file", in_finished_run("plot", "plots", False), "plots'"),
    ("attention-dir-is-a-file", in_finished_run("attention", "attention", False, "good"), "attention'"),
    # inputs (issue 10, item 8): data and config checks before work starts
    ("text-numbers", only_file("t.jsonl", jsonl({"text": 1, "label": "a"}, {"text": 2, "label": "b"})), "column 'text', row 1"),
    ("text-null", data_file("train", "t.jsonl", GOOD + jsonl({"text": None, "label": "negative"})), "column 'text', row 5"),
    ("text-list", only_file("t.jsonl", jsonl({"text": ["a"], "label": "x"}, {"text": ["b"], "label": "y"})), "row 1 (data rows counted from 1) holds a list"),
    ("text-mapping", only_file("t.jsonl", jsonl({"text": {"a": 1}, "label": "x"}, {"text": {"a": 2}, "label": "y"})), "holds a mapping"),
    ("text-mixed-types", data_file("train", "t.jsonl", GOOD + jsonl({"text": 7, "label": "positive"})), "row 5 (data rows counted from 1) holds a number (7)"),
    ("text-pair-number", data_file("train", "t.jsonl", jsonl({"text": "a", "b": 3, "label": "x"}, {"text": "c", "b": 4, "label": "y"}), text_pair_column="b"), "column 'b', row 1"),
    ("eval-split-text-null", data_file("validation", "v.jsonl", jsonl({"text": "ok", "label": "positive"}, {"text": None, "label": "negative"})), "v.jsonl: column 'text', row 2"),
    ("label-list", only_file("t.jsonl", jsonl({"text": "a", "label": [1]}, {"text": "b", "label": [0]})), "holds a list, not a label"),
    ("label-fraction", only_file("t.jsonl", jsonl({"text": "a", "label": 0.0}, {"text": "b", "label": 0.5})), "row 2 (data rows counted from 1) has label 0.5"),
    ("label-one-class-int", only_file("t.jsonl", jsonl({"text": "a", "label": 1}, {"text": "b", "label": 1})), "single label 1"),
    ("label-empty-csv", only_file("t.csv", "text,label\ngood,positive\nbad,\n"), "row 2 (data rows counted from 1) has an empty label"),
    ("not-utf8-jsonl", data_file("train", "t.jsonl", GOOD.encode() + b'{"text": "' + BAD_UTF8 + b'", "label": "a"}\n'), "line 5"),
    ("not-utf8-json", only_file("t.json", b'[{"text": "a", "label": "x"},\n{"text": "' + BAD_UTF8 + b'", "label": "y"}]'), "line 2"),
    ("not-utf8-csv", only_file("t.csv", b"text,label\ngood,x\n" + BAD_UTF8 + b",y\n"), "line 3"),
    ("not-utf8-tsv", only_file("t.tsv", b"text\tlabel\n" + BAD_UTF8 + b"\tx\n"), "line 2"),
    ("csv-header-only", only_file("t.csv", "text,label\n"), "header row and no data rows"),
    ("label-type-differs-between-files", data_file("train", "t.jsonl", jsonl({"text": "ok", "label": 1}, {"text": "no", "label": 0})),
     "column 'label' holds numbers in data.files.train ('"),
    ("label-type-differs-between-csv-files", csv_pair("text,label\ngood,1\nbad,0\n", "text,label\ngood,positive\nbad,negative\n"),
     "column 'label' holds numbers in data.files.train ('"),
    ("jsonl-non-object-line", data_file("train", "t.jsonl", GOOD + "[1, 2]\n"), "line 5 is a JSON list"),
    ("tsv-ragged-row", only_file("t.tsv", "text\tlabel\ngood\tx\nbad\ty\tz\n"), "line 3"),
    ("data-file-is-directory", data_file_is_directory, "is a directory"),
    ("summary-numbers", generation_data("summarization", jsonl({"text": "a b", "summary": "a"}, {"text": "c d", "summary": 5}), summary_column="summary"), "column 'summary', row 2"),
    ("translation-target-null", generation_data("translation", jsonl({"text": "a", "de": "x"}, {"text": "b", "de": None}), target_column="de"), "column 'de', row 2"),
    ("translation-pair-missing-lang", generation_data("translation", jsonl({"translation": {"en": "a", "de": "x"}}, {"translation": {"en": "b"}}), source_lang="en", target_lang="de"), "'de' is missing"),
    ("yaml-duplicate-key", raw_yaml("task: sentiment\nmodel: {name_or_path: x}\ntask: translation\n"), "lines 1 and 3"),
    ("yaml-duplicate-nested-key", raw_yaml("task: sentiment\nmodel: {name_or_path: x}\ndata: {dataset: d}\ntraining:\n  lr: 1.0e-3\n  lr: 1.0e-4\n"), "'lr' is written twice, on lines 5 and 6"),
    ("yaml-alias-bomb", raw_yaml(ALIAS_BOMB), "aliases"),
    ("yaml-alias-loop", raw_yaml("task: &t [*t]\n"), "refers to itself"),
    ("yaml-nested-too-deep", raw_yaml("task: " + "[" * 5000 + "]" * 5000 + "\n"), "nested too deeply"),
    ("config-is-directory", lambda tmp, cfg, model: ["validate", "--path", str(tmp)], "is a directory"),
    ("batch-size-absurd", cfg_edit("training.batch_size", 1e21), "training.batch_size"),
    ("epochs-absurd", cfg_edit("training.epochs", 1e9), "training.epochs"),
    ("max-length-absurd", cfg_edit("data.max_length", 10**12), "data.max_length"),
    ("seed-negative", cfg_edit("training.seed", -1), "training.seed"),
    ("label-names-duplicate", cfg_edit("data.label_names", ["pos", "neg", "pos"]), "'pos' is listed twice"),
    ("max-length-above-model", cfg_edit("data.max_length", 200, "train"), "data.max_length = 200"),
    ("fp16-without-gpu", fp16_without_gpu, "training.mixed_precision"),
    ("eval-checkpoint-absolute", eval_checkpoint(lambda tmp: str(tmp / "elsewhere")), "--checkpoint"),
    ("eval-checkpoint-dotdot", eval_checkpoint(lambda tmp: "../.."), "leads outside the run directory"),
    ("eval-checkpoint-symlink-out", eval_checkpoint(lambda tmp: "outside"), "--checkpoint 'outside'"),
    ("hub-model-offline", cfg_edit("model.name_or_path", "nobody/no-such-model", "train"), "'nobody/no-such-model'"),
    ("hub-dataset-offline", hub_dataset, "'nobody/no-such-dataset'"),
    # sparse attention (issue 14): a kernel the architecture lacks names the key and what it has
    ("attn-kernel-typo", cfg_edit("model.attn_implementation", "spda", "train"), "model.attn_implementation: bert"),
    ("attn-kernel-unsupported", cfg_edit("model.attn_implementation", "flash_attention_9", "train"), "supports eager, sdpa"),
    ("attn-flex-cannot-train", cfg_edit("model.attn_implementation", "flex_attention", "train"), "model.attn_implementation: flex_attention"),
    # several processes (issue 13, item 11): FSDP asked for on a machine without a GPU
    ("fsdp-launch-without-gpu", under_accelerate_launch("fsdp.yaml"), "distributed_type FSDP"),
    ("deepspeed-launch-without-gpu", under_accelerate_launch("deepspeed_zero2.yaml"), "distributed_type DEEPSPEED"),
    ("fsdp-launch-without-gpu-eval", under_accelerate_launch(
        "fsdp.yaml", lambda tmp, model: ["cli", "eval", "--model", str(model), "--config", str(tmp / "run.yaml"),
                                         "--output", str(tmp / "zero-shot")]), "needs GPUs"),
    # recipes, chat, trackers (issue 13, items 4, 5 and 7)
    ("recipe-name-mistyped", lambda tmp, cfg, model: ["cli", "train", "--config", "quickstrat"], "close: quickstart"),
    ("recipe-copy-unknown", lambda tmp, cfg, model: ["cli", "recipes", "copy", "xsum-t5-lora", str(tmp)], "close: xsum-t5-small-lora"),
    ("recipe-copy-onto-a-file", lambda tmp, cfg, model: ["cli", "recipes", "copy", "quickstart", write(tmp, "mine.yaml", "task: mine\n")], "mine.yaml' already exists"),
    ("recipe-copy-into-a-folder-holding-it", lambda tmp, cfg, model: ["cli", "recipes", "copy", "quickstart", str(Path(write(tmp, "quickstart.yaml", "mine")).parent)], "quickstart.yaml' already exists"),
    ("recipe-copy-folder-missing", lambda tmp, cfg, model: ["cli", "recipes", "copy", "quickstart", str(tmp / "no" / "q.yaml")], "folder '"),
    ("chat-on-a-classification-run", lambda tmp, cfg, model: ["cli", "chat", str(finished_run(tmp, cfg))], "use finetune predict"),
    ("tracker-unknown", cfg_edit("training.report_to", ["mlfow"]), "training.report_to"),
    ("tracker-package-missing", cfg_edit("training.report_to", ["tensorboard", "comet_ml"], "train"), "pip install comet-ml"),
    ("chunked-loss-on-classifier", cfg_edit("training.chunked_loss", True, "train"), "training.chunked_loss"),
    ("run-will-not-fit-memory", memory_capped("0.01"), "--ignore-memory-plan"),
    # report and attention (issue 13, items 9-10): a user's report.html is kept; options name themselves
    ("report-html-not-ours", users_report, "report.html': exists and is not the report finetune wrote"),
    ("report-not-a-run", lambda tmp, cfg, model: ["cli", "report", str(tmp)], "is not a run directory"),
    ("attention-target-on-classifier", attention_of_finished_run("--target", "x"), "--target"),
    ("attention-layer-out-of-range", attention_of_finished_run("--layer", "2"), "--layer 2: the model has 2"),
    # Hub (issue 13): push and merge refuse before loading a model or reaching the network
    ("push-merged-missing", fake_run("push", "RUN", "me/model", "--merged"), "run `finetune merge"),
    ("push-repo-id-invalid", fake_run("push", "RUN", "me/two/slashes"), "repo id 'me/two/slashes'"),
    ("push-merged-full-finetune", fake_run("push", "RUN", "me/model", "--merged", model_files=("config.json",)), "push without --merged"),
    ("push-no-final-model", fake_run("push", "RUN", "me/model", model_files=()), "no final model found"),
    ("merge-default-output-taken", fake_run("merge", "RUN", merged_files=("notes.txt",)), "merged': already exists and is not empty; choose a new directory (OUT_DIR)"),
    # trust round 2 (items 8, 12): overrides read like files, named as the source; configs config.yaml could not hold
    ("override-not-a-number", lambda tmp, cfg, model: ["validate", "training.lr=abc"], "override training.lr=abc: key 'training.lr'"),
    ("override-unknown-key", lambda tmp, cfg, model: ["validate", "training.lrr=1"], "override training.lrr=1: unknown key"),
    ("override-bad-yaml", lambda tmp, cfg, model: ["validate", "training.lr=[1,"], "override training.lr=[1,: the value is not valid YAML"),
    ("override-alias", lambda tmp, cfg, model: ["validate", "lora.target_modules=[&q query, *q]"], "anchors (&name) and aliases"),
    ("override-nested-too-deep", lambda tmp, cfg, model: ["validate", "model.config_overrides.a=" + "[" * 99 + "]" * 99], "nested too deeply"),
    ("override-infinite-lr", lambda tmp, cfg, model: ["train", "training.lr=.inf"], "override training.lr=.inf: key 'training.lr'"),
    ("config-nan", cfg_edit("eval.generation.length_penalty", float("nan")), "not a finite number"),
    ("config-control-character", cfg_edit("data.source_prefix", "translate\x1b[31m: "), "control character"),
    ("config-date-in-model-overrides", raw_yaml("task: sentiment\nmodel: {name_or_path: x, config_overrides: {d: 2024-01-01}}\ndata: {dataset: d}\n"), "as a date"),
    ("config-huge-integer", cfg_edit("model.config_overrides", {"n": 10**30}, "train"), "64-bit integer"),
    # trust round 2, item 6: a label written two ways is refused, never a silent extra class
    ("label-case-within-file", data_file("train", "t.jsonl", rows(("a", "positive"), ("b", "negative"), ("c", "Positive"))),
     "t.jsonl: column 'label': labels 'positive' (row 1) and 'Positive' (row 3)"),
    ("label-whitespace-within-csv", only_file("t.csv", "text,label\na,positive\nb,negative\nc,positive \n"),
     "labels 'positive' (row 1) and 'positive ' (row 3) (data rows counted from 1) differ only by case or surrounding whitespace"),
    ("label-case-train-vs-validation", data_file("validation", "v.jsonl", rows(("meh", "negative"), ("ok", "Positive"))),
     "train.jsonl (row 9) and 'Positive' in"),
    ("label-names-vs-data-whitespace", data_file("train", "t.jsonl", rows(("a", "positive"), ("b", " negative")), label_names=["negative", "positive"]),
     "t.jsonl: column 'label', row 2 (data rows counted from 1): label ' negative' differs from 'negative' in data.label_names"),
    ("label-names-differ-by-case", cfg_edit("data.label_names", ["pos", "neg", "Pos "]), "'pos' and 'Pos ' differ only by case"),
]


def snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def run_main(args: list[str], capsys, monkeypatch) -> tuple[int, str]:
    code, _, err = main_in_process(args, capsys, monkeypatch)
    return code, err


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
    if made[0] in ("eval", "plot", "attention"):  # commands on a run directory, not a config
        return made
    if made[0] == "cli":
        return made[1:]
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
    assert len(CASES) >= 148  # 43 before the trust work (issue 10), 117 after, 121 with issue 14's, 126 with 13's; 148 with the labels written two ways (trust round 2)
    assert len({c[0] for c in CASES}) == len(CASES)


@pytest.fixture(autouse=True)
def _no_memory_cap(monkeypatch):
    from finetune.planning.memory import AVAILABLE_ENV

    monkeypatch.setenv(AVAILABLE_ENV, "")  # empty: no cap; the original (unset) comes back after the test


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
    from finetune.storage import checkpoint

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


def test_deepspeed_launch_without_the_package_says_to_install_it(monkeypatch):
    """On a GPU machine without deepspeed, Accelerator() would raise an ImportError traceback."""
    import importlib.util

    import torch

    from finetune.errors import ConfigError
    from finetune.training.assemble import make_accelerator

    if importlib.util.find_spec("deepspeed") is not None:
        pytest.skip("deepspeed is installed here")
    monkeypatch.setattr(torch.accelerator, "is_available", lambda: True)
    monkeypatch.setenv("ACCELERATE_USE_DEEPSPEED", "true")
    with pytest.raises(ConfigError, match="pip install deepspeed"):
        make_accelerator(RunConfig.model_validate({"task": "sentiment", "model": {"name_or_path": "x"},
                                                    "data": {"dataset": "d"}}))
