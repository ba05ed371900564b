"""Where sparse attention pays: equal-sized dense and sparse encoders trained at growing input
lengths, for docs/long-inputs.md.

Models (random weights, MiniLM's tokenizer, same layers x hidden x heads x FFN; built here):
  - dense-sdpa: BERT with the default kernel (SDPA; attention dropout 0 lets the CPU use its
    fused kernel, which never holds the L x L matrix)
  - dense-eager: the same BERT with its own attention (L x L scores per head, as the papers'
    baselines)
  - longformer: sliding window of --window tokens (half each side) plus global [CLS]
  - bigbird: block-sparse, blocks of --block tokens, 3 random blocks (block-sparse from
    (5 + 2*3) * block + block tokens; below that BigBird uses full attention and the run says so)
Longformer has three more projections per layer (its global tokens'): about 25% more attention
weights; the other three are the same size.

Each point is one `finetune train` process (as users run it) on rows long enough to fill the
length: batch --batch-size, --steps optimizer steps, log every step. It reports the mean
time per step after the first (warm-up; with one step, that step), peak RSS of the process
(from the kernel: weights, optimizer, activations, torch itself) and wall time. A point that
fails (out of memory) is reported as such and the others go on. The crossover is the shortest
measured length from which a sparse model's time per step (and, separately, its peak RSS) stays
below dense's. Needs nothing beside the repo.

Full measurement (on a quiet machine; about 10 minutes on 2 cores, 16,384 tokens 4 more):

    python scripts/benchmarks/bench_sparse_attention.py --lengths 512,1024,2048,4096,8192 --steps 3 --threads 2
    python scripts/benchmarks/bench_sparse_attention.py --lengths 16384 --models dense-sdpa,longformer,bigbird --steps 2

Quick check that it runs:

    python scripts/benchmarks/bench_sparse_attention.py --lengths 512 --steps 1 --layers 1 --hidden 64 --heads 2
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
MODELS = ("dense-sdpa", "dense-eager", "longformer", "bigbird")


def build(kind: str, target: Path, args, max_length: int) -> tuple[Path, list[str]]:
    """A random encoder of the given kind; returns its directory and its config overrides."""
    sys.path.insert(0, str(ROOT / "tests"))
    import transformers as tf
    from tiny_models import minilm_dir

    tf.utils.logging.disable_progress_bar()
    tokenizer = tf.AutoTokenizer.from_pretrained(minilm_dir())
    shape = dict(vocab_size=tokenizer.vocab_size, pad_token_id=tokenizer.pad_token_id,
                 num_hidden_layers=args.layers, hidden_size=args.hidden, num_attention_heads=args.heads,
                 intermediate_size=4 * args.hidden, attention_probs_dropout_prob=0.0)
    if kind.startswith("dense"):
        model = tf.BertModel(tf.BertConfig(max_position_embeddings=max_length, **shape))
    elif kind == "longformer":  # RoBERTa-style positions start after the pad id
        model = tf.LongformerModel(tf.LongformerConfig(
            attention_window=args.window, max_position_embeddings=max_length + 2, **shape))
    else:
        model = tf.BigBirdModel(tf.BigBirdConfig(
            block_size=args.block, num_random_blocks=3, max_position_embeddings=max_length, **shape))
    model.save_pretrained(target)
    tokenizer.save_pretrained(target)
    return target, ["model.attn_implementation=eager"] if kind == "dense-eager" else []


def long_rows(path: Path, words: int, rows: int) -> Path:
    """`rows` rows of `words` words of the shipped sentiment text: over one token per word, so
    each fills the length it is cut to."""
    sentiment = ROOT / "finetune" / "resources" / "sentiment" / "train.jsonl"
    pool = " ".join(json.loads(line)["text"] for line in sentiment.read_text(encoding="utf-8").splitlines()).split()
    lines = []
    for i in range(rows):
        text = " ".join(pool[(i * 97 + j) % len(pool)] for j in range(words))
        lines.append(json.dumps({"text": text, "label": ["negative", "positive"][i % 2]}))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def measure(work: Path, kind: str, length: int, model: Path, overrides: list[str], data: Path, args, env) -> dict:
    run = work / f"{kind}-{length}"
    config = work / "sparse.yaml"
    config.write_text("task: sentiment\nmodel:\n  name_or_path: x\ndata:\n  files: {}\n", encoding="utf-8")
    cmd = [
        sys.executable, "-m", "finetune", "train", "--config", str(config), "--overwrite",
        f"model.name_or_path={model}", f"data.files.train={data}", f"data.files.validation={data}",
        f"data.max_length={length}", "data.max_eval_samples=1", f"training.output_dir={run}",
        f"training.batch_size={args.batch_size}", "eval.batch_size=1", f"training.max_steps={args.steps}",
        "training.log_every=1", "training.eval_each_epoch=false", "training.activation_checkpointing=false",
        *overrides,
    ]
    point = {"model": kind, "length": length}
    try:
        wall, _, rss, _ = run_measured(cmd, env)
    except SystemExit as failed:  # out of memory, most likely: the other points still count
        return point | {"failed": str(failed).splitlines()[0][:200]}
    steps = train_records(run)
    steady = steps[1:] or steps
    seconds = sum(args.batch_size / s["samples_per_s"] for s in steady) / len(steady)
    return point | {"s_per_step": round(seconds, 3), "peak_rss_mb": round(rss), "wall_s": round(wall, 1)}


def crossover(points: list[dict], sparse: str, dense: str, key: str) -> int | None:
    """The shortest length from which `sparse` stays below `dense` on `key` (None: never)."""
    by = {(p["model"], p["length"]): p.get(key) for p in points}
    lengths = sorted({p["length"] for p in points})
    pairs = [(n, by.get((sparse, n)), by.get((dense, n))) for n in lengths]
    # A dense point that failed (out of memory) where the sparse one ran counts as a win.
    wins = [s is not None and (d is None or s < d) for _, s, d in pairs]
    for i, (n, _, _) in enumerate(pairs):
        if all(wins[i:]):
            return n
    return None


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--lengths", default="512,1024,2048,4096")
    p.add_argument("--models", default=",".join(MODELS))
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--window", type=int, default=256, help="Longformer's attention_window (both sides)")
    p.add_argument("--block", type=int, default=64, help="BigBird's block_size")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default="bench-results/bench_sparse_attention.json")
    args = p.parse_args()
    lengths = [int(n) for n in args.lengths.split(",")]
    kinds = args.models.split(",")
    work = Path(tempfile.mkdtemp(prefix="bench-sparse-"))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": str(args.threads),
           "TOKENIZERS_PARALLELISM": "false", "FINETUNE_CACHE": str(work / "cache")}
    data = long_rows(work / "long.jsonl", words=max(lengths), rows=args.batch_size * args.steps + 1)
    models = {kind: build(kind, work / kind, args, max(lengths)) for kind in kinds}
    points = []
    for length in lengths:
        for kind in kinds:
            points.append(measure(work, kind, length, *models[kind], data, args, env))
            print(json.dumps(points[-1]), flush=True)

    print("\n| length | " + " | ".join(f"{k} s/step | {k} peak RSS MiB" for k in kinds) + " |")
    print("| --- " * (1 + 2 * len(kinds)) + "|")
    for length in lengths:
        cells = []
        for kind in kinds:
            point = next(q for q in points if q["model"] == kind and q["length"] == length)
            cells += [str(point.get("s_per_step", "failed")), str(point.get("peak_rss_mb", "failed"))]
        print(f"| {length} | " + " | ".join(cells) + " |")
    crossings = {}
    for sparse in (k for k in kinds if not k.startswith("dense")):
        for dense in (k for k in kinds if k.startswith("dense")):
            for key in ("s_per_step", "peak_rss_mb"):
                crossings[f"{sparse} vs {dense}, {key}"] = n = crossover(points, sparse, dense, key)
                print(f"crossover {sparse} vs {dense} ({key}): "
                      + (f"from {n} tokens" if n else "none in the measured lengths"))
    out = ROOT / args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"args": vars(args), "points": points, "crossover": crossings}, indent=2) + "\n",
                   encoding="utf-8")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
