"""The training loss with label smoothing (`training.label_smoothing`): the cross-entropy every
head computes, against targets that keep `eps` of their mass spread over the vocabulary or the
classes. With eps = 0 it equals the model's own loss; transformers' heads take no smoothing
argument, so the loss is recomputed from the logits."""

from __future__ import annotations

from finetune.data.ignore_index import IGNORE_INDEX


def smoothed_loss(logits, labels, eps: float, shift: bool):
    """`shift`: a decoder-only model's logits at position t predict the label at t + 1."""
    import torch.nn.functional as F

    if shift:
        logits, labels = logits[:, :-1], labels[:, 1:]
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), labels.reshape(-1),
                           ignore_index=IGNORE_INDEX, label_smoothing=eps)
