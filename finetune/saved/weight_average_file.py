"""The weight average a checkpoint holds beside its raw weights (training.ema_decay;
training/weight_average.py keeps the average during training): its file name, and putting it
in a loaded model."""

from __future__ import annotations

WEIGHTS_FILE = "weight_average.safetensors"  # in each checkpoint, beside the raw weights


def load_saved_average(model, directory) -> bool:
    """A checkpoint of a run with training.ema_decay holds the raw weights (what a resume goes on
    from) and the average beside them: put the average in `model`, loaded from that checkpoint,
    so `finetune eval --checkpoint` scores what the evaluation during training scored."""
    from pathlib import Path

    import torch
    from safetensors.torch import load_file

    from finetune.errors import RunDirError

    path = Path(directory) / WEIGHTS_FILE
    if not path.is_file():
        return False
    tensors = load_file(path)
    params = dict(model.named_parameters())
    unknown = [name for name in tensors if name not in params]
    if unknown:
        raise RunDirError(f"'{path}': '{unknown[0]}' is not a weight of the model saved beside it; "
                          "the checkpoint was altered: choose another checkpoint")
    with torch.no_grad():
        for name, tensor in tensors.items():
            params[name].copy_(tensor)
    return True
