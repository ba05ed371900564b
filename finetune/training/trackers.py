"""The trackers of `training.report_to`, built from Accelerate's own classes (accelerate.tracking).
Each tracker's own environment variables still apply (MLFLOW_TRACKING_URI, WANDB_PROJECT, ...);
those that write files write them inside the run directory unless told otherwise."""

from __future__ import annotations

import json
import os
from pathlib import Path

from finetune.errors import ConfigError
from finetune.storage import run_dir as rd
from finetune.storage.atomic_write import write_text_atomic

PROJECT = "finetune"  # the project / experiment a run is filed under, where the tracker has one

# What `pip install` needs for each tracker Accelerate knows (its import name is the tracker's name).
PIP_NAMES = {
    "aim": "aim", "clearml": "clearml", "comet_ml": "comet-ml", "dvclive": "dvclive",
    "mlflow": "mlflow-skinny", "swanlab": "swanlab", "tensorboard": "tensorboard",
    "trackio": "trackio", "wandb": "wandb",
}


def check_trackers(report_to: list[str]) -> None:
    """Fail before any work when a configured tracker's package is missing (Accelerate's own test)."""
    from accelerate.utils import imports

    for name in report_to:
        if not getattr(imports, f"is_{name}_available")():
            raise ConfigError(
                f"training.report_to includes '{name}' but the '{name}' package is not installed; "
                f"pip install {PIP_NAMES[name]}, or remove '{name}' from training.report_to"
            )


def start_trackers(report_to: list[str], run: Path, run_config: dict, resuming: bool = False) -> list:
    """Accelerate trackers, started, with the run's config recorded. Main process only. A resumed
    run goes on logging into the tracker run it started in (MLflow), so its curves stay whole."""
    from accelerate.tracking import LOGGER_TYPE_TO_CLASS

    params = flat_params(run_config)
    earlier = _tracker_runs(run) if resuming else {}
    trackers, started = [], {}
    for name in report_to:
        args, kwargs = _arguments(name, run)
        if name == "mlflow" and earlier.get(name):
            kwargs["run_id"] = earlier[name]
        try:  # some trackers start in their constructor, others in start()
            tracker = LOGGER_TYPE_TO_CLASS[name](*args, **kwargs)
            tracker.start()
            if "run_id" not in kwargs:  # a continued run has its parameters already (MLflow refuses a change)
                tracker.store_init_configuration(params)
        except Exception as exc:  # each tracker raises its own types (a bad URI, no login...)
            if "run_id" in kwargs:
                raise ConfigError(
                    f"training.report_to '{name}' could not continue run {kwargs['run_id']} (named in "
                    f"'{run / rd.TRACKER_RUNS_FILE}'): {exc}; point the tracker back at the store this run "
                    "logged to, or delete that file to log into a new run") from exc
            raise ConfigError(f"training.report_to '{name}' could not start: {exc}; check that "
                              "tracker's settings (its environment variables, its login)") from exc
        if name == "mlflow":
            started[name] = tracker.active_run.info.run_id
        trackers.append(tracker)
    if started:
        _record_tracker_runs(run, {**earlier, **started})
    return trackers


def _tracker_runs(run: Path) -> dict:
    try:
        ids = json.loads((run / rd.TRACKER_RUNS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):  # none yet (a run from before this file), or unreadable
        return {}
    return {k: v for k, v in ids.items() if isinstance(v, str)} if isinstance(ids, dict) else {}


def _record_tracker_runs(run: Path, ids: dict) -> None:
    write_text_atomic(run / rd.TRACKER_RUNS_FILE, json.dumps(ids))


def _arguments(name: str, run: Path) -> tuple[tuple, dict]:
    if name == "tensorboard":
        return (rd.TENSORBOARD_DIR, str(run)), {}  # events in RUN/tensorboard
    if name == "mlflow":
        if not os.environ.get("MLFLOW_TRACKING_URI"):
            import mlflow

            # The file store needs no server or database; MLflow 3 keeps it behind this opt-in.
            os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"
            mlflow.set_tracking_uri((run / rd.MLRUNS_DIR).resolve().as_uri())
        return (), {"experiment_name": PROJECT, "run_name": run.name}
    if name == "aim":
        return (run.name, str(run / rd.AIM_DIR)), {}
    if name == "dvclive":
        return (), {"dir": str(run / rd.DVCLIVE_DIR)}
    if name == "wandb":
        return (os.environ.get("WANDB_PROJECT", PROJECT),), {"name": run.name, "dir": str(run)}
    if name in ("swanlab", "trackio"):
        return (PROJECT,), {"experiment_name" if name == "swanlab" else "name": run.name}
    return (PROJECT,), {}  # comet_ml, clearml: their own settings name the run


def flat_params(config: dict, prefix: str = "") -> dict:
    """`{"training": {"lr": 1e-3}}` -> `{"training.lr": 1e-3}`: hyperparameter tables take scalars,
    so lists and nulls are written as JSON text."""
    flat = {}
    for key, value in config.items():
        if isinstance(value, dict):
            flat.update(flat_params(value, f"{prefix}{key}."))
        else:
            scalar = isinstance(value, (bool, int, float, str))
            flat[f"{prefix}{key}"] = value if scalar else json.dumps(value)
    return flat
