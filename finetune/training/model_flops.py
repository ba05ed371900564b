"""Model FLOPs utilisation: the matmul work a training step needs, against the rate this
machine's matmuls actually reach (the best measured per device, thread count and dtype, cached).

The peak is measured rather than read from a spec sheet because a laptop's sustained rate
depends on its clocks, cores and BLAS; MFU against it says how much of what *this* hardware
can do the run is using. FLOPs per token follow the usual estimate (Kaplan et al. 2020): 6 per
parameter per token for a training step (forward 2, backward 4), 4 when the base weights are
frozen (LoRA: no weight gradients for them). Attention score products (~12·layers·d·seq per
token) are left out, which undercounts long sequences slightly."""

from __future__ import annotations

import json
import time
from pathlib import Path

from finetune.storage.atomic_write import write_text_atomic

PEAK_FILE = "matmul_peak.json"


def flops_per_token(model, frozen_base: bool, encoder_decoder: bool) -> float:
    """Training FLOPs for one token of the batch. Embedding lookups are not matmuls and are left
    out; a tied output projection is a matmul and counts once. An encoder-decoder token goes
    through half of the stack (its encoder or its decoder), so each counts half."""
    params = 0
    embeddings = {id(m.weight) for m in model.modules() if type(m).__name__ == "Embedding"}
    output = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    output_id = id(output.weight) if output is not None else None
    seen = set()
    for p in model.parameters():
        if id(p) in seen or (id(p) in embeddings and id(p) != output_id):
            continue
        seen.add(id(p))
        params += p.numel()
    per_param = 4 if frozen_base else 6
    return per_param * params / (2 if encoder_decoder else 1)


def matmul_peak(device, dtype, cache_dir: Path) -> float:
    """FLOP/s of a square matmul on this device at this dtype and thread count: the highest
    this machine has shown, kept in `cache_dir`. Each run measures again (about 0.1 s on a
    laptop CPU) and keeps the higher figure, because one taken while other work shared the
    cores would be low, and every MFU read against it too high, for good."""
    import torch

    key = f"{device_name(device)}|{dtype}|threads={torch.get_num_threads()}|torch={torch.__version__}"
    path = cache_dir / PEAK_FILE
    known = _read(path)
    peak = max(_measure(device, dtype), known.get(key, 0.0))
    if known.get(key) == peak:
        return peak
    known[key] = peak
    try:  # a cache, not a result: a read-only or full disk just means measuring again next time
        cache_dir.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path, json.dumps(known, indent=1) + "\n")
    except OSError:
        pass
    return peak


def device_name(device) -> str:
    import torch

    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine()


def _measure(device, dtype, reps: int = 3) -> float:
    import torch

    n = 4096 if device.type == "cuda" else 1024
    # A generator of its own: drawing from the global one would shift dropout, and a run that
    # measured (the first on a machine) would differ from its resumed copy that read the cache.
    rng = torch.Generator(device=device).manual_seed(0)
    a = torch.randn(n, n, device=device, generator=rng).to(dtype)
    b = torch.randn(n, n, device=device, generator=rng).to(dtype)
    a @ b  # warm-up: thread pool, packing buffers, kernel selection
    best = float("inf")
    for _ in range(reps):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        started = time.perf_counter()
        for _ in range(4):
            a @ b
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        best = min(best, (time.perf_counter() - started) / 4)
    return 2 * n**3 / best


def _read(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def for_run(run) -> dict:
    """Throughput's MFU inputs for this run: FLOPs per token and this process's matmul peak at
    the dtype the run computes in."""
    import torch

    from finetune.data.splits import cache_root

    cfg = run.cfg
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(cfg.training.mixed_precision, torch.float32)
    encoder_decoder = run.task.arch.kind == "seq2seq"
    model = run.accelerator.unwrap_model(run.model)
    return {
        "flops_per_token": flops_per_token(model, cfg.lora.enabled, encoder_decoder),
        "peak_flops": matmul_peak(run.accelerator.device, dtype, cache_root(cfg.data)),
        "counts_targets": encoder_decoder,
    }
