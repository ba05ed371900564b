"""training.activation_checkpointing: recompute each layer's activations in backward instead of
keeping them."""

from __future__ import annotations

from finetune.errors import ModelError


def enable_activation_checkpointing(model, setting: bool | str = True, *, lora: bool = False) -> bool:
    """Keep only each layer's input for backward and recompute the rest: about a third more
    compute for most of the activation memory. `setting` is training.activation_checkpointing:
    "auto" means on with LoRA and skips models without support, where True is an error.
    Returns whether checkpointing is on."""
    if setting is False or (setting == "auto" and not lora):
        return False
    if not getattr(model, "supports_gradient_checkpointing", False):
        if setting == "auto":
            return False
        raise ModelError(
            f"training.activation_checkpointing: {type(model).__name__} does not support it; set it to false"
        )
    # Non-reentrant checkpointing also carries gradients to LoRA adapters behind frozen inputs.
    model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    return True
