"""Generation speed of evaluation itself: the prompt loader and `answer_batch` that `finetune eval`
and training-time evaluation run (`finetune.evaluation.inference`), batched as the recipe
says against the same path with a batch of one. SmolLM2-135M on Multi30K English sentences,
greedy, the multi30k-smollm2-lora recipe's prompt and limits.

Rounds alternate the two cases after an untimed warm-up; prints the median sentences/s of each,
the spread, the ratio of medians (target >= 10x) and how often the two outputs agree (left
padding can change a greedy pick by float rounding). Needs ../shared; skips without it.

    python scripts/benchmarks/bench_generation.py --examples 128 --batch-size 64 --rounds 3
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RECIPE = "multi30k-smollm2-lora"


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    p.add_argument("--examples", type=int, default=128)
    p.add_argument("--batch-size", type=int, nargs="+", default=[64],
                   help="batched case(s); more than one compares batch sizes in the same rounds")
    p.add_argument("--max-new-tokens", type=int, default=None, help="default: the recipe's")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default="bench-results/bench_generation.json")
    return p.parse_args()


def task_for(validation: Path, batch_size: int, max_new_tokens: int | None):
    """The recipe's config and task, the base model as released (no adapter: it does not change
    how generation runs), evaluation batched by `batch_size`."""
    from finetune.configuration.loading import load_config
    from finetune.configuration.recipes import run_recipes
    from finetune.model.load import load_model_config
    from finetune.tasks import get_task

    overrides = [f"data.files={{validation: '{validation}'}}", "lora.enabled=false",
                 f"eval.batch_size={batch_size}"]
    if max_new_tokens:
        overrides.append(f"eval.generation.max_new_tokens={max_new_tokens}")
    cfg = load_config(run_recipes()[RECIPE], overrides)
    return cfg, get_task(cfg, load_model_config(cfg.model))


def generate_split(task, model, tokenizer, raw) -> tuple[float, list[str]]:
    """Seconds and answers (data order) of the evaluation's generation over the split."""
    from finetune.evaluation.inference import make_generation_loader, run_batches

    loader = make_generation_loader(task, tokenizer, raw, model.config)
    started = time.perf_counter()
    rows = run_batches(model, loader, lambda m, b: task.answer_batch(m, b, tokenizer))
    seconds = time.perf_counter() - started
    return seconds, [r["generated"] for r in sorted(rows, key=lambda r: r["index"])]


def main() -> None:
    args = parse_args()
    data = args.shared / "data/multi30k/val.en.gz"
    if not data.is_file():
        print(f"skipped: {data} is not present (models and data live beside the repo)")
        return
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    import torch

    from finetune.data.splits import load_split
    from finetune.commands.evaluate import load_as_released

    torch.set_num_threads(args.threads)
    with gzip.open(data, "rt", encoding="utf-8") as handle:
        sentences = [line.strip() for _, line in zip(range(args.examples), handle)]
    workdir = tempfile.TemporaryDirectory(prefix="bench-generation-")  # removed at exit
    validation = Path(workdir.name) / "validation.jsonl"
    validation.write_text("".join(json.dumps({"en": s, "de": ""}) + "\n" for s in sentences), encoding="utf-8")

    started = time.perf_counter()
    cfg, _ = task_for(validation, 1, args.max_new_tokens)
    base_task, tokenizer, model = load_as_released(cfg)
    model.eval()
    print(f"loaded {cfg.model.name_or_path} in {time.perf_counter() - started:.1f} s")
    cases = {"one at a time": base_task}
    for size in args.batch_size:
        cases[f"batch {size}"] = task_for(validation, size, args.max_new_tokens)[1]
        cases[f"batch {size}"].prepare_tokenizer(tokenizer)
    raw, _ = load_split(cfg.data, "validation", check=base_task.check_split)
    generate_split(cases[f"batch {args.batch_size[0]}"], model, tokenizer, raw.select(range(4)))  # warm-up

    seconds: dict[str, list[float]] = {name: [] for name in cases}
    answers: dict[str, list[str]] = {}
    for round_no in range(args.rounds):
        for name, task in (cases.items() if round_no % 2 == 0 else reversed(cases.items())):
            took, answers[name] = generate_split(task, model, tokenizer, raw)
            seconds[name].append(took)
            print(f"round {round_no + 1} {name}: {len(sentences) / took:.2f} sentences/s", flush=True)

    single = answers["one at a time"]
    result = {"recipe": RECIPE, "examples": len(sentences), "rounds": args.rounds, "threads": args.threads,
              "max_new_tokens": cases["one at a time"].eval_cfg.generation.max_new_tokens, "cases": {}}
    base = statistics.median(seconds["one at a time"])
    print(f"\n{'case':<16} {'sentences/s (median)':>21} {'spread':>15} {'ratio':>7} {'same output':>12}")
    for name, times in seconds.items():
        rates = sorted(len(sentences) / t for t in times)
        agree = sum(a.strip() == b.strip() for a, b in zip(answers[name], single)) / len(single)
        ratio = base / statistics.median(times)
        result["cases"][name] = {"sentences_per_s": statistics.median(rates), "min": rates[0],
                                 "max": rates[-1], "ratio": ratio, "same_output": agree}
        print(f"{name:<16} {statistics.median(rates):>21.2f} {rates[0]:>7.2f}-{rates[-1]:<7.2f} "
              f"{ratio:>6.2f}x {100 * agree:>11.0f}%")
    print(f"e.g. {sentences[0]!r} -> {answers[f'batch {args.batch_size[0]}'][0].strip()!r}")
    out = ROOT / args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
