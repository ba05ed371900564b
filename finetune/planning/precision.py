"""Bytes per weight, gradient and optimizer state, and the width of activations: the one place
a quantization (model.quantize) or an 8-bit optimizer would change them."""

from __future__ import annotations


def weight_bytes(param, cfg) -> int:
    """As loaded: transformers builds weights in the config's dtype (bf16 for SmolLM2), else fp32."""
    return param.numel() * param.element_size()


def gradient_bytes(param, cfg) -> int:
    """Gradients take their parameter's dtype; frozen weights have none."""
    return param.numel() * param.element_size() if param.requires_grad else 0


def optimizer_state_bytes(param, cfg) -> int:
    """torch's AdamW keeps exp_avg and exp_avg_sq in the parameter's dtype (no fp32 master
    copy); Adafactor (no momentum) a row and a column factor per matrix."""
    if not param.requires_grad:
        return 0
    size = param.element_size()
    if cfg.training.optimizer == "adafactor":
        if param.ndim >= 2:
            return (param.shape[-1] + param.numel() // param.shape[-1]) * size
        return param.numel() * size
    return 2 * param.numel() * size


def activation_width(weight_width: int, mixed_precision: str) -> int:
    """Bytes per activation value: half precision under autocast or with half-precision weights."""
    return 2 if mixed_precision in ("bf16", "fp16") or weight_width == 2 else 4
