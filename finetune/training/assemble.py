"""Build a run from its config: accelerator, data, model, LoRA, loaders, optimizer, scheduler.
`finetune train` hands the result to the loop (train.py); `finetune eval` and `finetune predict`
reuse the accelerator and the evaluation loaders, so scoring batches exactly as training-time
evaluation did."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from finetune.storage import checkpoint as ck
from finetune.storage.atomic_write import write_text_atomic
from finetune.storage import run_dir as rd
from finetune.configuration.config import RunConfig
from finetune.errors import ConfigError
from finetune.storage.run_lock import RunLock
from finetune.training.optimizer import make_optimizer


@dataclass
class Run:
    """Everything `setup` builds, handed to the loop."""

    cfg: RunConfig
    out: Path
    accelerator: Any
    task: Any
    tokenizer: Any
    model: Any
    optimizer: Any
    scheduler: Any
    train_loader: Any
    eval_loader: Any
    eval_raw: Any
    sampler: Any
    log: Any
    total_steps: int
    steps_per_epoch: int
    best: dict = field(default_factory=dict)
    last_eval: tuple[dict, list] = ({}, [])  # metrics and prediction records of the latest eval
    data_sha256: dict = field(default_factory=dict)  # of the data files, recorded in checkpoints
    prompt_loader: Any = None  # the eval split's prompts, for tasks that generate
    # (loaders, rows) of the whole eval split when evaluations during training score a sample of it
    final_eval: Any = None
    sample_rows: Any = None  # with final_eval: the sample's positions in the whole split
    progress: Any = None  # the loop's bar or log lines (training/progress.py), while it runs
    stopped_early: str = ""  # why training.early_stopping_patience ended the run, if it did
    weight_average: Any = None  # training.ema_decay (weight_average.py)
    fresh: Any = None  # a new run's FreshStart, until its first step (failed_start.py)
    chunked_loss: Any = None  # training.chunked_loss (chunked_loss.py); None: the plain loss


def setup(cfg: RunConfig, out: Path, *, overwrite: bool, resuming: bool, lock: RunLock, inputs: list,
          fresh=None, check_memory: bool = True) -> Run:
    """`fresh`: a failed_start.FreshStart for a new run (None when resuming). `check_memory`:
    refuse a run the memory plan predicts will not fit (planning/)."""
    from accelerate.utils import set_seed

    from finetune.model.attn_kernel import check_trainable
    from finetune.data.splits import load_splits
    from finetune.evaluation.inference import EvalLoaders, make_generation_loader
    from finetune.data.long_inputs import fix_bigbird_attention
    from finetune.model.lora import wrap_with_lora
    from finetune.data.length_limits import check_lengths
    from finetune.model.activation_checkpointing import enable_activation_checkpointing
    from finetune.model.load import (
        count_parameters, load_model, load_model_config, load_tokenizer, pad_like_tokenizer, with_fields,
    )
    from finetune.model.tokenizer_training import model_fields, run_tokenizer
    from finetune.storage.checkpoint import atomic_dir
    from finetune.model.shared_names import name_base_model
    from finetune.tasks import get_task
    from finetune.training.tracking import MetricsLog
    from finetune.training.trackers import check_trackers, start_trackers
    from finetune.training.weight_average import make_weight_average
    from finetune.model.chunked_loss import choose as choose_chunked_loss
    from finetune.planning.estimate import Lengths, plan_run

    check_trackers(cfg.training.report_to)
    accelerator = make_accelerator(cfg)
    set_seed(cfg.training.seed)
    model_config = load_model_config(cfg.model)  # once: it picks the architecture and builds the model
    task = get_task(cfg, model_config)
    check_lengths(cfg, task.kind, model_config)
    learnt = cfg.model.tokenizer.train
    tokenizer = None if learnt else load_tokenizer(cfg.model)
    if tokenizer is not None:
        task.prepare_tokenizer(tokenizer)
    # Tokenize once: the main process fills the cache, the others then read it.
    with accelerator.main_process_first():
        splits = load_splits(cfg.data, cfg.training.seed, check=task.check_split)
        task.fit_to_data(splits)
        if learnt:
            encoder_decoder = bool(getattr(model_config, "is_encoder_decoder", False))
            tokenizer = run_tokenizer(cfg, task, splits[cfg.data.train_split], out, resuming, encoder_decoder)
            task.prepare_tokenizer(tokenizer)
            model_config = with_fields(model_config, **model_fields(tokenizer, encoder_decoder))
        train_ds = task.encode(splits[cfg.data.train_split], cfg.data.train_split, tokenizer)
        eval_raw = splits[cfg.data.eval_split]
        eval_ds = task.encode(eval_raw, cfg.data.eval_split, tokenizer)
    whole_raw, whole_ds = eval_raw, eval_ds
    sample = cfg.eval.max_samples_during_training
    sample_rows = None
    if sample and sample < len(eval_raw):  # the same seeded rows of both (those shuffle(seed) puts first)
        import numpy as np

        sample_rows = [int(i) for i in np.random.default_rng(cfg.training.seed).permutation(len(eval_raw))[:sample]]
        eval_raw, eval_ds = eval_raw.select(sample_rows), eval_ds.select(sample_rows)

    # Before the model loads: its config and the tokenized split are enough to plan memory.
    memory_plan = plan_run(cfg, model_config, task, Lengths.of_split(train_ds, task.kind, len(whole_ds)),
                           accelerator.device, accelerator.num_processes, check=check_memory)

    bf16_on_cpu = cfg.training.mixed_precision == "bf16" and accelerator.device.type == "cpu"
    model = load_model(cfg.model, task.auto_class, config=model_config, bf16_on_cpu=bf16_on_cpu, **task.model_kwargs())
    name_base_model(model, cfg.model.name_or_path, out)
    check_trainable(model.config, accelerator.device.type)
    # config.yaml records the kernel `auto` chose (train_state.check_compatible accepts auto for it).
    cfg.model.attn_implementation = model.config._attn_implementation
    accelerator.print(f"attention: {cfg.model.attn_implementation} ({type(model).__name__})")
    if note := fix_bigbird_attention(model, task.longest_input()):
        accelerator.print(note)
    pad_like_tokenizer(model, tokenizer)
    checkpointing = enable_activation_checkpointing(
        model, cfg.training.activation_checkpointing, lora=cfg.lora.enabled
    )
    if cfg.lora.enabled:
        model = wrap_with_lora(model, cfg.lora, task.kind)
    if cfg.data.packing:  # refuses a model it cannot pack before anything is written
        from finetune.data import packing

        packing.install(model, task.kind)
    if cfg.training.compile:
        model.compile(dynamic=True)  # in place: same module, same state_dict keys, hooks kept
    chunked_loss = choose_chunked_loss(cfg.training.chunked_loss, task.kind, model, cfg.training.label_smoothing)
    trainable, total = count_parameters(model)
    accelerator.print(memory_plan)
    accelerator.print(
        f"parameters: {trainable:,} trainable / {total:,} total ({100 * trainable / total:.2f}%)"
        + (", activation checkpointing on" if checkpointing else "")
    )

    if accelerator.is_main_process:
        if not resuming:
            fresh.claim(overwrite, inputs, lock)  # rd.start, undone if the run fails before its first step
        ck.remove_partial(out, (rd.MODEL_DIR, rd.BEST_DIR))  # a write cut short by a kill or a full disk
        if not resuming:  # a resumed run's config is written once its checkpoint has loaded
            write_config(cfg, out, accelerator.num_processes)
        if learnt and not resuming:
            with atomic_dir(out / rd.TOKENIZER_DIR) as tmp:  # whole or absent, as a resume reads it
                tokenizer.save_pretrained(tmp)
    accelerator.wait_for_everyone()

    train_loader, sampler = _train_loader(cfg, task, tokenizer, train_ds, model.config)
    eval_loader = make_eval_loader(cfg, task, tokenizer, eval_ds, model.config)
    prompt_loader = make_generation_loader(task, tokenizer, eval_raw, model.config)
    optimizer = make_optimizer(cfg.training, model, accelerator.device.type)
    model, optimizer, train_loader, eval_loader = accelerator.prepare(
        model, optimizer, train_loader, eval_loader
    )
    if prompt_loader is not None:
        prompt_loader = accelerator.prepare(prompt_loader)
    final_eval = None
    if eval_raw is not whole_raw:
        final_eval = (EvalLoaders(make_eval_loader(cfg, task, tokenizer, whole_ds, model.config),
                                  make_generation_loader(task, tokenizer, whole_raw, model.config)
                                  ).prepared(accelerator), whole_raw)
    accum = cfg.training.gradient_accumulation_steps
    steps_per_epoch = max(1, math.ceil(len(train_loader) / accum))
    total_steps = cfg.training.max_steps or max(1, math.ceil(cfg.training.epochs * steps_per_epoch))
    scheduler = _scheduler(cfg, optimizer, total_steps)
    main = accelerator.is_main_process
    # A tracker that cannot start fails the run before its first step: train() undoes the claim.
    trackers = start_trackers(cfg.training.report_to, out, cfg.model_dump(mode="json"), resuming) if main else []
    log = MetricsLog(out / rd.METRICS_FILE, enabled=main, trackers=trackers)
    return Run(
        cfg=cfg, out=out, accelerator=accelerator, task=task, tokenizer=tokenizer, model=model,
        optimizer=optimizer, scheduler=scheduler, train_loader=train_loader,
        eval_loader=eval_loader, eval_raw=eval_raw, sampler=sampler, log=log,
        total_steps=total_steps, steps_per_epoch=steps_per_epoch, prompt_loader=prompt_loader,
        final_eval=final_eval, weight_average=make_weight_average(cfg, accelerator, model), fresh=fresh,
        chunked_loss=chunked_loss, sample_rows=sample_rows,
    )


def make_accelerator(cfg: RunConfig):
    import torch
    from accelerate import Accelerator

    if cfg.training.mixed_precision == "fp16" and not torch.accelerator.is_available():
        # Accelerate would quietly train in fp32 and report fp16.
        raise ConfigError(
            "training.mixed_precision: fp16 needs a GPU and this machine has none; "
            "use bf16 (CPUs support it) or 'no'"
        )
    _refuse_sharding_we_cannot_run()
    try:
        return Accelerator(
            mixed_precision=cfg.training.mixed_precision,
            gradient_accumulation_steps=cfg.training.gradient_accumulation_steps,
            cpu=_multi_cpu(),
        )
    except (ValueError, RuntimeError) as exc:
        raise ConfigError(
            f"training.mixed_precision={cfg.training.mixed_precision}: not available here ({exc}); "
            "use 'no' or 'bf16'"
        ) from exc


def _refuse_sharding_we_cannot_run() -> None:
    """`accelerate launch` with an FSDP or DeepSpeed config on a machine without a GPU: Accelerate
    1.15 forms FSDP only over GPUs, so its CPU processes would run unsharded DDP, or crash on the
    meta tensors fsdp_cpu_ram_efficient_loading leaves on the other ranks; DeepSpeed's CPU backend
    needs Intel's extension and oneCCL, and is not what the shipped config sets up. A DeepSpeed
    config without the deepspeed package fails inside Accelerator() with a traceback. Refuse all
    three before anything loads."""
    import importlib.util

    import torch
    from accelerate.utils import parse_flag_from_env

    other = "on CPU processes launch with configs/accelerate/multi_cpu.yaml or torchrun (DDP)"
    for kind, flag in (("FSDP", "ACCELERATE_USE_FSDP"), ("DEEPSPEED", "ACCELERATE_USE_DEEPSPEED")):
        if parse_flag_from_env(flag) and not torch.accelerator.is_available():
            raise ConfigError(
                f"accelerate launch config: distributed_type {kind} ({flag}) needs GPUs and this "
                f"machine has none (Accelerate shards a model only across GPUs); {other}"
            )
    if parse_flag_from_env("ACCELERATE_USE_DEEPSPEED") and importlib.util.find_spec("deepspeed") is None:
        raise ConfigError(
            "accelerate launch config: distributed_type DEEPSPEED needs the deepspeed package: "
            "pip install deepspeed, or launch with configs/accelerate/multi_gpu.yaml (DDP)"
        )


def _multi_cpu() -> bool:
    """torchrun on a machine without an accelerator: Accelerate only forms a (gloo) process
    group when told `cpu=True`; otherwise every rank trains alone and they overwrite each
    other's files. `accelerate launch --cpu` sets the same flag through ACCELERATE_USE_CPU."""
    import os

    import torch

    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and not torch.accelerator.is_available()


def write_config(cfg: RunConfig, out: Path, processes: int) -> None:
    """The resolved config, headed by what it does not hold: how many processes ran it."""
    t = cfg.training
    head = (f"# {processes} process(es) x batch_size {t.batch_size} x gradient_accumulation_steps "
            f"{t.gradient_accumulation_steps} = global batch {t.batch_size * t.gradient_accumulation_steps * processes}\n")
    write_text_atomic(out / rd.CONFIG_FILE, head + cfg.to_yaml())  # replaces a symlink, not its target


def _train_loader(cfg: RunConfig, task, tokenizer, ds, model_config):
    import torch
    from torch.utils.data import DataLoader

    from finetune.training.sampling import EpochSampler

    lengths = [len(ids) for ids in ds["input_ids"]] if cfg.training.group_by_length else None
    sampler = EpochSampler(lengths, cfg.training.batch_size, cfg.training.seed, len(ds))
    loader = DataLoader(
        ds,
        batch_size=cfg.training.batch_size,
        sampler=sampler,
        collate_fn=_train_collator(cfg, task, tokenizer, model_config),
        num_workers=cfg.training.num_workers,
        # Each new iterator draws a worker seed from this generator; without one it would come
        # from the global RNG, which dropout also uses, and a resumed run would drift.
        generator=torch.Generator().manual_seed(cfg.training.seed),
    )
    return loader, sampler


def make_eval_loader(cfg: RunConfig, task, tokenizer, ds, model_config):
    from torch.utils.data import DataLoader

    return DataLoader(
        ds,
        batch_size=cfg.eval.batch_size,
        shuffle=False,
        collate_fn=_collator(cfg, task, tokenizer, model_config),
        num_workers=cfg.training.num_workers,
    )


def _train_collator(cfg: RunConfig, task, tokenizer, model_config):
    if not cfg.data.packing:
        return _collator(cfg, task, tokenizer, model_config)
    from finetune.data import packing

    # A packed row holds as many tokens as the longest example may have: max_length for a
    # classifier, prompt plus target for a decoder-only generator.
    d = cfg.data
    capacity = d.max_length if task.kind == "classification" else d.max_source_length + d.max_target_length
    return packing.collator(task.kind, tokenizer, capacity)


def _collator(cfg: RunConfig, task, tokenizer, model_config):
    from finetune.data.long_inputs import collator_for

    return collator_for(task.collator(tokenizer, _pad_multiple(cfg)), model_config, tokenizer)


def _pad_multiple(cfg: RunConfig) -> int | None:
    # Tensor cores want multiples of 8 under half precision; on fp32 padding is pure waste.
    return 8 if cfg.training.mixed_precision != "no" else None


def _scheduler(cfg: RunConfig, optimizer, total_steps: int):
    from transformers import get_scheduler

    name = "constant_with_warmup" if cfg.training.scheduler == "constant" else cfg.training.scheduler
    return get_scheduler(
        name,
        optimizer=optimizer,
        num_warmup_steps=int(cfg.training.warmup_ratio * total_steps),
        num_training_steps=total_steps,
    )
