"""The run's model built on the meta device: every parameter with its shape, dtype and
trainability, and no memory or weights read (a 3B Llama builds in well under a second)."""

from __future__ import annotations


def meta_model(cfg, model_config, task, device_type: str, *, lora: bool, checkpointing):
    """(model, attention kernel, activation checkpointing on) as `setup` would build them:
    the task's head, the config's dtype (as transformers loads weights), LoRA when asked."""
    import torch
    import transformers

    from finetune.model.activation_checkpointing import enable_activation_checkpointing
    from finetune.model.attn_kernel import choose_kernel, model_class
    from finetune.model.load import with_fields
    from finetune.model.lora import wrap_with_lora

    config = with_fields(model_config, **task.model_kwargs())
    bf16_on_cpu = cfg.training.mixed_precision == "bf16" and device_type == "cpu"
    kernel = choose_kernel(cfg.model.attn_implementation, model_class(task.auto_class, config), config,
                           bf16_on_cpu=bf16_on_cpu)
    cls = getattr(transformers, task.auto_class)
    with torch.device("meta"):
        model = cls.from_config(config, trust_remote_code=cfg.model.trust_remote_code,
                                **({"attn_implementation": kernel} if kernel else {}))
    on = enable_activation_checkpointing(model, checkpointing, lora=lora)
    if lora:
        model = wrap_with_lora(model, cfg.lora, task.kind)
    return model, kernel, on
