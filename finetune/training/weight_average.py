"""training.ema_decay: an exponential moving average (EMA) of the trainable weights, which the
evaluations score and the saved models (best/, model/) hold; training itself goes on from the
raw weights.

Our own rather than torch's `AveragedModel`, which deep-copies the whole module: under LoRA
that is a second copy of the frozen base model, where only the adapters change. Here the
average covers the trainable parameters alone, kept in fp32 so that small steps (1 - decay
of an update) do not vanish in a bf16 weight.
"""

from __future__ import annotations

import contextlib

from finetune.errors import ConfigError


class WeightAverage:
    def __init__(self, model, decay: float):
        self.decay = decay
        self.updates = 0
        self.params = {name: p for name, p in model.named_parameters() if p.requires_grad}
        self.average = {name: p.detach().float().clone() for name, p in self.params.items()}

    def current_decay(self) -> float:
        # Warm-up, as timm's ModelEmaV3: early on the average follows the weights closely, so the
        # first evaluations do not score a model still made mostly of the starting weights.
        return min(self.decay, (1 + self.updates) / (10 + self.updates))

    def update(self) -> None:
        """After an optimizer step: average += (1 - decay) * (weights - average)."""
        import torch

        weight = 1 - self.current_decay()
        self.updates += 1
        with torch.no_grad():
            torch._foreach_lerp_(list(self.average.values()),
                                 [p.detach().float() for p in self.params.values()], weight)

    @contextlib.contextmanager
    def applied(self):
        """The averaged weights in the model for the duration; the raw ones back after."""
        import torch

        raw = {name: p.detach().clone() for name, p in self.params.items()}
        try:
            with torch.no_grad():
                for name, p in self.params.items():
                    p.copy_(self.average[name])
            yield
        finally:
            with torch.no_grad():
                for name, p in self.params.items():
                    p.copy_(raw[name])

    def state(self) -> tuple[dict, dict]:
        """(tensors, JSON) for a checkpoint."""
        return ({name: t.contiguous() for name, t in self.average.items()},
                {"updates": self.updates, "decay": self.decay})

    def restore(self, tensors: dict, info: dict) -> None:
        if tensors.keys() != self.average.keys():
            missing = sorted(set(self.average) ^ set(tensors))[0]
            raise ValueError(f"the averaged weights do not fit this model ({missing})")
        for name, tensor in tensors.items():
            self.average[name].copy_(tensor)
        self.updates = int(info["updates"])


def make_weight_average(cfg, accelerator, model) -> WeightAverage | None:
    decay = cfg.training.ema_decay
    if decay is None:
        return None
    from accelerate.utils import DistributedType

    if accelerator.distributed_type == DistributedType.FSDP:
        # Each process holds a shard of flat parameters: an average of them is not a model.
        raise ConfigError("training.ema_decay: not available with FSDP; remove it, or train with DDP")
    return WeightAverage(accelerator.unwrap_model(model), decay)


def averaged(run):
    """Context: the run's averaged weights in its model (nothing to do without training.ema_decay)."""
    return run.weight_average.applied() if run.weight_average is not None else contextlib.nullcontext()
