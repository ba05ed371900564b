"""Where the seconds before the first training step go, for the quickstart.

Runs `finetune train --config quickstart` (1 step) in a fresh process whose start-up phases are
wrapped in wall-clock timers (no profiler: cProfile tripled import time and hid the picture):
the heavy imports, config, tokenizer, data (read; tokenize or the cache), model, Accelerate,
the first step. Prints each phase beside the run's own `first_step_seconds` (process start to
the end of the first batch). Runs twice: the second finds the tokenized data cached.

    python scripts/benchmarks/profile_startup.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# The driver runs in the measured process: it times the imports the CLI would do on first
# use, wraps each phase's function where its caller looks it up, then runs the real CLI.
DRIVER = r'''
import importlib, json, sys, time
t0 = time.perf_counter()
times = {}
def timed_import(label, name):
    start = time.perf_counter(); importlib.import_module(name); times[label] = time.perf_counter() - start
timed_import("import finetune.cli (typer, config schema)", "finetune.cli")
timed_import("import torch", "torch")
timed_import("import transformers (+ the model classes)", "transformers.models.bert.modeling_bert")
timed_import("import accelerate, peft, datasets", "accelerate"); t = times.pop("import accelerate, peft, datasets")
timed_import("peft", "peft"); timed_import("datasets", "datasets")
times["import accelerate, peft, datasets"] = t + times.pop("peft") + times.pop("datasets")
def wrap(module, name, label):
    mod = importlib.import_module(module); inner = getattr(mod, name)
    def timed(*a, **k):
        start = time.perf_counter()
        try:
            return inner(*a, **k)
        finally:
            times[label] = times.get(label, 0.0) + time.perf_counter() - start
    setattr(mod, name, timed)
wrap("finetune.configuration.loading", "load_config", "config: read and validate")
wrap("finetune.model.load", "load_tokenizer", "tokenizer: load")
wrap("finetune.data.splits", "load_splits", "data: read the files")
wrap("finetune.data.splits", "cached_map", "data: tokenize, or read the cache")
wrap("finetune.model.load", "load_model", "model: build and load the weights")
wrap("finetune.training.model_flops", "matmul_peak", "MFU: matmul peak")
import accelerate
inner_prepare = accelerate.Accelerator.prepare
def prepare(self, *a, **k):
    start = time.perf_counter()
    try:
        return inner_prepare(self, *a, **k)
    finally:
        times["Accelerate: prepare()"] = times.get("Accelerate: prepare()", 0.0) + time.perf_counter() - start
accelerate.Accelerator.prepare = prepare
sys.argv = ["finetune"] + sys.argv[1:]
try:
    from finetune.cli import main
    main()
except SystemExit:
    pass
print("TIMES " + json.dumps(times))
'''


def run_once(work: Path, cache: Path) -> tuple[dict, float]:
    out = work / "run"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "FINETUNE_CACHE": str(cache), "HF_HUB_OFFLINE": "1",
           "TOKENIZERS_PARALLELISM": "false"}
    cmd = [sys.executable, "-c", DRIVER, "train", "--config", "quickstart", "--overwrite",
           f"training.output_dir={out}", "training.max_steps=1", "training.log_every=1",
           "training.eval_each_epoch=false", "data.max_eval_samples=8"]
    done = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True, cwd=ROOT)
    times = json.loads(next(l for l in done.stdout.splitlines() if l.startswith("TIMES "))[6:])
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    first = next(r["first_step_seconds"] for r in records if "first_step_seconds" in r)
    return times, first


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="startup-") as tmp:
        work = Path(tmp)
        for attempt in ("cold tokenized-data cache", "warm cache"):
            times, first = run_once(work, work / "cache")
            print(f"\n{attempt}: first step done {first:.2f} s after process start")
            for label, seconds in times.items():
                print(f"  {label:48s} {seconds:6.2f} s")
            print(f"  {'sum of the above':48s} {sum(times.values()):6.2f} s")


if __name__ == "__main__":
    main()
