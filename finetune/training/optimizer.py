"""The optimizer a run trains with (`training.optimizer`).

AdamW, the default, with biases and normalisation weights left out of weight decay. Adafactor
(Shazeer & Stern 2018, T5's own optimizer) scales each update by the parameter's size: a
T5 trained from scratch keeps its embeddings at std 1.0 and its projections at ~0.06, so
AdamW's fixed step moves the embeddings 16x more slowly relative to their size. On Multi30K
(d_model 256) 100 steps of Adafactor reached a dev loss of 5.26 against AdamW's 6.06."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # scripts/sweeps/sst2_sweep.py imports this file where pydantic is not installed
    from finetune.configuration.config import TrainingSection


def make_optimizer(t: TrainingSection, model, device_type: str):
    import torch

    groups = parameter_groups(model, t.weight_decay)
    if t.optimizer == "adafactor":
        from transformers.optimization import Adafactor

        # A fixed learning rate scaled by each parameter's RMS; the run's scheduler shapes it.
        return Adafactor(groups, lr=t.lr, scale_parameter=True, relative_step=False, warmup_init=False)
    # One fused kernel per step rather than a dozen foreach passes (and temporaries) over every
    # parameter: MiniLM full fine-tuning on CPU ran 1.5x faster, the update being most of a short
    # batch's step. Params are still on the CPU here: ask about the device they will train on.
    fused = device_type in _fused_adamw_devices()
    return torch.optim.AdamW(groups, lr=t.lr, **({"fused": True} if fused else {"foreach": True}))


def parameter_groups(model, weight_decay: float) -> list[dict]:
    """The trainable weights in two groups: decayed, and biases and normalisation weights, which
    are not regularised (the standard BERT recipe)."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if param.requires_grad:
            (no_decay if param.ndim < 2 or "norm" in name.lower() else decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def _fused_adamw_devices() -> list[str]:
    try:
        from torch.optim.optimizer import _get_fused_kernels_supported_devices
    except ImportError:  # private to torch: without it, foreach is the safe choice
        return []
    return _get_fused_kernels_supported_devices()
