"""The plan of a run: its model built on the meta device (config only, no weights read), the
bytes each part of training takes per process, the predicted peak, and the tokens and steps of
an epoch. `train` builds one before loading the model; `finetune plan` prints it."""

from __future__ import annotations

import contextlib

import math
from dataclasses import asdict, dataclass, field

from finetune.planning import precision
from finetune.planning.activations import Shape, activation_bytes, evaluation_bytes, logits_bytes

GB = 1e9
PARTS = ("weights", "gradients", "optimizer", "activations", "logits", "ddp_buckets", "runtime")
PART_NAMES = {"weights": "weights", "gradients": "gradients", "optimizer": "optimizer state",
              "activations": "activations", "logits": "logits and loss", "ddp_buckets": "DDP gradient buckets",
              "runtime": "runtime (Python, libraries)"}


@dataclass
class Lengths:
    """What the training split holds, as tokens: rows, tokens in all, longest row. `exact`:
    counted from the tokenized split (False: the config's maximum lengths, an upper bound)."""

    rows: int
    tokens: int
    longest: int  # input tokens per row (decoder-only: prompt and target)
    longest_target: int = 0  # encoder-decoder: decoder tokens per row
    exact: bool = True
    eval_rows: int | None = None  # rows of the evaluation split, where known

    @classmethod
    def of_split(cls, ds, kind: str, eval_rows: int | None = None) -> "Lengths":
        """Counted by Arrow on the tokenized split (67k SST-2 rows: a millisecond, where Python
        lists took seconds)."""
        inputs = _row_lengths(ds, "input_ids")
        targets = _row_lengths(ds, "labels") if kind == "seq2seq" else (0, 0)
        return cls(rows=len(ds), tokens=inputs[0] + targets[0], longest=inputs[1], longest_target=targets[1],
                   eval_rows=eval_rows)


@dataclass
class Plan:
    model: str
    device: str  # "cpu" | "cuda"
    processes: int
    params_total: int
    params_trainable: int
    weight_dtype: str
    mixed_precision: str
    lora: bool
    activation_checkpointing: bool
    chunked_loss: bool
    batch_size: int
    gradient_accumulation_steps: int
    tokens_per_row: int
    target_tokens_per_row: int
    bytes: dict = field(default_factory=dict)  # PARTS -> bytes per process
    tokens_per_epoch: int = 0
    tokens_exact: bool = True
    steps_per_epoch: int = 0
    total_steps: int = 0
    notes: list = field(default_factory=list)
    measured: dict = field(default_factory=dict)  # --measure: peak_bytes, seconds_per_step, ...
    eval_batch_size: int = 0
    eval_bytes: int = 0  # an evaluation's own activations and logits (no gradients then)

    @property
    def peak(self) -> int:
        """The training step's peak."""
        return sum(self.bytes.values())

    @property
    def eval_peak(self) -> int:
        """An evaluation during training: gradients are freed, optimizer state stays."""
        b = self.bytes
        return b["weights"] + b["optimizer"] + b["ddp_buckets"] + b["runtime"] + self.eval_bytes

    @property
    def needed(self) -> int:
        return max(self.peak, self.eval_peak)

    def summary(self) -> str:
        """The one line `train` prints before its first step."""
        b = self.bytes
        return (f"memory plan: predicted peak {self.peak / GB:.2f} GB per process on {self.device} "
                f"(weights {b['weights'] / GB:.2f}, gradients {b['gradients'] / GB:.2f}, optimizer "
                f"{b['optimizer'] / GB:.2f}, activations {(b['activations'] + b['logits']) / GB:.2f}); "
                f"{self.params_trainable:,} of {self.params_total:,} parameters trained; "
                f"{self.tokens_per_epoch:,} tokens per epoch"
                + (f"; evaluation peak {self.eval_peak / GB:.2f} GB (eval.batch_size {self.eval_batch_size})"
                   if self.eval_peak > self.peak else ""))

    def table(self) -> str:
        rows = [("model", self.model),
                ("parameters", f"{self.params_total:,} total, {self.params_trainable:,} trainable "
                               f"({100 * self.params_trainable / max(self.params_total, 1):.2f}%)"),
                ("precision", f"weights {self.weight_dtype}, mixed_precision {self.mixed_precision}"),
                ("setup", f"{'LoRA' if self.lora else 'full fine-tune'}, activation checkpointing "
                          f"{'on' if self.activation_checkpointing else 'off'}, chunked loss "
                          f"{'on' if self.chunked_loss else 'off'}, {self.processes} process(es) on {self.device}"),
                ("micro-batch", f"{self.batch_size} x {self.tokens_per_row} tokens"
                                + (f" (+ {self.target_tokens_per_row} decoder tokens)" if self.target_tokens_per_row else "")),
                ("", ""), ("memory per process", "")]
        rows += [(f"  {PART_NAMES[p]}", f"{self.bytes[p] / GB:9.3f} GB") for p in PARTS if self.bytes.get(p)]
        rows += [("  predicted peak", f"{self.peak / GB:9.3f} GB")]
        rows += [("  evaluation peak", f"{self.eval_peak / GB:9.3f} GB (eval.batch_size {self.eval_batch_size}, "
                                       "no gradients)")]
        if self.measured:
            m = self.measured
            rows += [("  measured peak", f"{m['peak_bytes'] / GB:9.3f} GB ({m['what']}, {m['steps']} steps; "
                                         f"plan {100 * (self.peak / m['peak_bytes'] - 1):+.0f}%)")]
        rows += [("", ""),
                 ("tokens per epoch", f"{self.tokens_per_epoch:,}" + ("" if self.tokens_exact else " (at most)")),
                 ("steps", f"{self.steps_per_epoch:,} per epoch, {self.total_steps:,} in the run")]
        if self.measured:
            m = self.measured
            rows += [("seconds per step", f"{m['seconds_per_step']:.3f} (measured)"),
                     ("predicted time", f"{_duration(m['seconds_per_step'] * self.steps_per_epoch)} per epoch, "
                                        f"{_duration(m['seconds_per_step'] * self.total_steps)} for the run")]
        width = max(len(k) for k, _ in rows)
        lines = [f"{k:<{width}}  {v}".rstrip() for k, v in rows]
        return "\n".join(lines + [f"note: {n}" for n in self.notes])

    def as_dict(self) -> dict:
        out = {**asdict(self), "peak_bytes": self.peak, "eval_peak_bytes": self.eval_peak}
        if self.measured:
            per_step = self.measured["seconds_per_step"]
            out["predicted_seconds"] = {"epoch": per_step * self.steps_per_epoch, "run": per_step * self.total_steps}
        return out


def plan_run(cfg, model_config, task, lengths: Lengths, device, processes: int, *, check: bool) -> str:
    """`train`'s plan, made before the model loads: with `check`, a run predicted not to fit
    its device is refused (ConfigError). Returns the line to print. A plan that cannot be made
    (a family the meta device does not build) is said so, never a reason not to train."""
    from finetune.errors import FinetuneError
    from finetune.planning.memory import check_fits, resident_bytes

    runtime = resident_bytes() if device.type == "cpu" else 0  # what the process holds already

    def replan(**changes) -> Plan:
        with _random_state_kept():
            return estimate(cfg, model_config, task, lengths, processes=processes, device_type=device.type,
                            runtime_bytes=runtime, **changes)

    try:
        plan = replan()
    except FinetuneError:
        raise
    except Exception as exc:  # noqa: BLE001 - the plan is advice; training goes on without it
        return f"memory plan: not available ({type(exc).__name__}: {str(exc).splitlines()[0][:120]})"
    if check:
        check_fits(plan, device, replan)
    return plan.summary()


@contextlib.contextmanager
def _random_state_kept():
    """Building the model on the meta device draws from the random generators (its init runs):
    the plan must leave them as it found them, or the run's new head starts from other weights
    than a run without the plan (the same seed would train another model)."""
    import random

    import numpy as np
    import torch

    python_state, numpy_state = random.getstate(), np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        try:
            yield
        finally:
            random.setstate(python_state)
            np.random.set_state(numpy_state)


def estimate(cfg, model_config, task, lengths: Lengths, *, processes: int, device_type: str,
             runtime_bytes: int = 0, lora: bool | None = None, batch_size: int | None = None,
             checkpointing: bool | str | None = None, chunked: bool | str | None = None,
             eval_batch_size: int | None = None) -> Plan:
    """The plan of `cfg` on `model_config` for the training split `lengths`. The keyword
    overrides (lora, batch_size, checkpointing, chunked, eval_batch_size) let `memory.py` try
    what to change."""
    from finetune.planning.meta_model import meta_model
    from finetune.model import chunked_loss as cl

    t = cfg.training
    lora = cfg.lora.enabled if lora is None else lora
    # A batch holds no more rows than a process's share of the split.
    batch = min(batch_size or t.batch_size, max(1, math.ceil(lengths.rows / processes)))
    model, kernel, checkpointing_on = meta_model(
        cfg, model_config, task, device_type, lora=lora,
        checkpointing=t.activation_checkpointing if checkpointing is None else checkpointing)
    params = list(model.parameters())
    sizes = {
        "weights": sum(precision.weight_bytes(p, cfg) for p in params),
        "gradients": sum(precision.gradient_bytes(p, cfg) for p in params),
        "optimizer": sum(precision.optimizer_state_bytes(p, cfg) for p in params),
    }
    weight_width = _main_dtype(params).itemsize  # the base weights' (LoRA adapters are fp32)
    width = precision.activation_width(weight_width, t.mixed_precision)
    shape = Shape.of(model.config if not hasattr(model, "get_base_model") else model.get_base_model().config)
    decoder_tokens = lengths.longest_target if task.kind == "seq2seq" else lengths.longest
    encoder_tokens = lengths.longest if task.kind == "seq2seq" else 0
    sizes["activations"] = activation_bytes(
        shape, batch=batch, tokens=decoder_tokens, encoder_tokens=encoder_tokens, width=width,
        residual_width=weight_width, checkpointing=checkpointing_on, eager=kernel == "eager")
    chunked_on = False
    sizes["logits"] = 0
    if task.kind in ("causal", "seq2seq"):
        setting = t.chunked_loss if chunked is None else chunked
        loss = cl.choose(setting, task.kind, model, t.label_smoothing) if setting is not False else None
        positions = batch * decoder_tokens
        chunked_on = loss is not None and cl.wanted(positions, shape.vocab, loss.always)
        if chunked_on:
            positions = min(positions, max(1, cl.CHUNK_LOGITS // shape.vocab))
        sizes["logits"] = logits_bytes(positions, shape.vocab, width)
    eval_batch = eval_batch_size or cfg.eval.batch_size
    if lengths.eval_rows:
        eval_batch = min(eval_batch, max(1, math.ceil(lengths.eval_rows / processes)))
    eval_bytes = evaluation_bytes(shape, batch=eval_batch, tokens=decoder_tokens, encoder_tokens=encoder_tokens,
                                  width=width, lm_head=task.kind in ("causal", "seq2seq"))
    sizes["ddp_buckets"] = sizes["gradients"] if processes > 1 else 0
    sizes["runtime"] = runtime_bytes
    notes = []
    if processes > 1:
        notes.append("DDP keeps a full replica per process; FSDP or DeepSpeed ZeRO would divide weights, "
                     "gradients and optimizer state by the process count (not modelled here)")
    if not lengths.exact:
        notes.append("lengths are the config's maxima (the tokenizer is learnt at train time)")
    steps_per_epoch = max(1, math.ceil(math.ceil(lengths.rows / (batch * processes)) / t.gradient_accumulation_steps))
    dtype = _main_dtype(params)
    return Plan(
        model=cfg.model.name_or_path, device=device_type, processes=processes,
        params_total=sum(p.numel() for p in params), params_trainable=sum(p.numel() for p in params if p.requires_grad),
        weight_dtype=str(dtype).removeprefix("torch."), mixed_precision=t.mixed_precision, lora=lora,
        activation_checkpointing=checkpointing_on, chunked_loss=chunked_on, batch_size=batch,
        gradient_accumulation_steps=t.gradient_accumulation_steps,
        tokens_per_row=lengths.longest, target_tokens_per_row=lengths.longest_target if task.kind == "seq2seq" else 0,
        bytes=sizes, tokens_per_epoch=lengths.tokens, tokens_exact=lengths.exact, steps_per_epoch=steps_per_epoch,
        total_steps=t.max_steps or max(1, math.ceil(t.epochs * steps_per_epoch)), notes=notes,
        eval_batch_size=eval_batch, eval_bytes=eval_bytes,
    )


def _row_lengths(ds, column: str) -> tuple[int, int]:
    """(sum, max) of the lengths of a list column."""
    import pyarrow.compute as pc

    lengths = pc.list_value_length(ds.with_format("arrow")[column])
    return int(pc.sum(lengths).as_py() or 0), int(pc.max(lengths).as_py() or 0)


def _main_dtype(params):
    """The dtype holding most of the weights."""
    import collections

    import torch

    counts = collections.Counter()
    for p in params:
        if p.is_floating_point():
            counts[p.dtype] += p.numel()
    return counts.most_common(1)[0][0] if counts else torch.float32


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h} h {m:02d} min" if h else f"{m} min {s:02d} s" if m else f"{s} s"
