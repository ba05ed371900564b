"""LoRA on the attention projections, with per-architecture target names."""

from __future__ import annotations

from finetune.configuration.config import LoraSection
from finetune.errors import ModelError

# Attention projection names by `config.model_type`. GPT-2's are Conv1D layers (fused qkv in
# c_attn); `attn.c_proj` names the output projection and not the MLP's c_proj.
ATTENTION_TARGETS: dict[str, list[str]] = {
    "bert": ["query", "key", "value"],
    "roberta": ["query", "key", "value"],
    "xlm-roberta": ["query", "key", "value"],
    "electra": ["query", "key", "value"],
    "distilbert": ["q_lin", "k_lin", "v_lin", "out_lin"],
    "gpt2": ["c_attn", "attn.c_proj"],
    "t5": ["q", "k", "v", "o"],
    "mt5": ["q", "k", "v", "o"],
    "bart": ["q_proj", "k_proj", "v_proj", "out_proj"],
    "marian": ["q_proj", "k_proj", "v_proj", "out_proj"],
    "llama": ["q_proj", "k_proj", "v_proj", "o_proj"],
    "mistral": ["q_proj", "k_proj", "v_proj", "o_proj"],
    "qwen2": ["q_proj", "k_proj", "v_proj", "o_proj"],
    "gemma": ["q_proj", "k_proj", "v_proj", "o_proj"],
    # Sparse attention: Longformer (and LED's encoder) project the global tokens separately.
    "longformer": ["query", "key", "value", "query_global", "key_global", "value_global"],
    "big_bird": ["query", "key", "value"],  # global blocks share the local projections
    "led": ["query", "key", "value", "query_global", "key_global", "value_global",
            "q_proj", "k_proj", "v_proj", "out_proj"],  # decoder: BART attention
    "longt5": ["q", "k", "v", "o"],
}
# For architectures not listed: any linear layer whose own name is one of these.
COMMON_ATTENTION_NAMES = {"query", "key", "value", "q_proj", "k_proj", "v_proj", "o_proj", "q", "k", "v", "o"}

# peft's task types by our model kind.
PEFT_TASK_TYPES = {"classification": "SEQ_CLS", "seq2seq": "SEQ_2_SEQ_LM", "causal": "CAUSAL_LM"}


def linear_layer_names(model) -> list[str]:
    """Leaf names of the layers LoRA can wrap (torch Linear and GPT-2's Conv1D)."""
    import torch
    from transformers.pytorch_utils import Conv1D

    names = {
        name.rsplit(".", 1)[-1]
        for name, module in model.named_modules()
        if isinstance(module, (torch.nn.Linear, Conv1D))
    }
    return sorted(names)


def resolve_targets(model, lora: LoraSection) -> list[str]:
    """The target module names for this model, each checked to match at least one layer."""
    model_type = getattr(model.config, "model_type", "")
    if lora.target_modules == "auto":
        targets = ATTENTION_TARGETS.get(model_type)
        if targets is None:
            targets = sorted(COMMON_ATTENTION_NAMES.intersection(linear_layer_names(model)))
            if not targets:
                raise ModelError(
                    f"lora.target_modules: no attention projections known for model type "
                    f"'{model_type}'; list them explicitly, choosing from: "
                    f"{', '.join(linear_layer_names(model))}"
                )
        return targets
    module_names = [name for name, _ in model.named_modules()]
    for target in lora.target_modules:
        if not any(name == target or name.endswith("." + target) for name in module_names):
            raise ModelError(
                f"lora.target_modules: '{target}' matches no layer of this {model_type or 'model'}; "
                f"its linear layers are: {', '.join(linear_layer_names(model))}"
            )
    return list(lora.target_modules)


def wrap_with_lora(model, lora: LoraSection, kind: str):
    """Wrap once: a model that is already a PeftModel (a resumed run) is returned as is."""
    from peft import LoraConfig, PeftModel, TaskType, get_peft_model

    if isinstance(model, PeftModel):
        return model
    model_type = getattr(model.config, "model_type", "")
    config = LoraConfig(
        task_type=getattr(TaskType, PEFT_TASK_TYPES[kind]),
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=resolve_targets(model, lora),
        fan_in_fan_out=model_type == "gpt2",  # Conv1D stores weights transposed
    )
    return get_peft_model(model, config)
