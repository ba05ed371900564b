"""`training.chunked_loss`: a language model's training loss without its full logits.

The plain path holds batch x length x vocabulary logits (and their fp32 copy and gradient) at
once: SmolLM2 at batch 128 x 512 tokens, 12.9 GB in fp32 alone. Here the model runs with its
output layer bypassed, so it returns the last hidden states; the loss is then computed over
the counted positions in chunks of at most CHUNK_LOGITS logits, each chunk under
torch.utils.checkpoint, so its logits are recomputed in backward rather than kept: forward and
backward never hold more than one chunk's logits.

The result is the plain path's: the same causal shift, ignore_index, label smoothing and
normalisation (the mean over counted tokens); tests/test_chunked_loss.py checks loss and every
gradient. On CUDA, Liger Kernel's fused linear cross-entropy is used instead when it imports
(not installed where finetune is tested: that branch is deliberately small and untested).

Models whose logits are scaled or capped after the output layer (Gemma 2's softcapping,
Cohere's logit_scale, Granite's logits_scaling) and output layers that are not a plain linear
layer (LoRA on lm_head) are not supported: `auto` keeps the plain path, `true` refuses."""

from __future__ import annotations

from contextlib import contextmanager

from finetune.data.ignore_index import IGNORE_INDEX
from finetune.errors import ConfigError, ModelError

CHUNK_LOGITS = 2**24  # logits per chunk: 64 MiB in fp32 (341 positions of a 49k vocabulary)
# Config fields of families that change the logits after the output layer.
LOGIT_TRANSFORMS = ("final_logit_softcapping", "logit_softcapping", "logit_scale", "logits_scaling",
                    "output_multiplier_scale")


def unwrap(model):
    """The transformers model under DDP / torch.compile / PEFT wrappers."""
    model = getattr(model, "module", model)  # DDP
    model = getattr(model, "_orig_mod", model)  # torch.compile
    base = getattr(model, "get_base_model", None)  # PEFT
    return base() if base else model


def unsupported(model) -> str | None:
    """Why this model's loss cannot be chunked, or None."""
    import torch

    inner = unwrap(model)
    head = inner.get_output_embeddings() if hasattr(inner, "get_output_embeddings") else None
    if type(head) is not torch.nn.Linear:
        return f"its output layer is a {type(head).__name__}, not a plain linear layer"
    for name in LOGIT_TRANSFORMS:
        if getattr(inner.config, name, None) not in (None, 0, 0.0, 1, 1.0):
            return f"{inner.config.model_type} changes its logits after the output layer ({name})"
    return None


def choose(setting: bool | str, kind: str, model, label_smoothing: float = 0.0):
    """The ChunkedLoss a run trains with, or None for the plain path. `setting` is
    training.chunked_loss: `auto` chunks language-model heads whose logits are large (decided
    per batch) and quietly keeps the plain path where chunking is unsupported; True always
    chunks and refuses where it cannot."""
    if setting is False:
        return None
    if kind not in ("causal", "seq2seq"):
        if setting is True:
            raise ConfigError("training.chunked_loss: only language-model heads (translation, "
                              "summarization) have a vocabulary-sized output; set it to auto or false")
        return None
    reason = unsupported(model)
    if reason:
        if setting is True:
            raise ModelError(f"training.chunked_loss: {reason}; set it to auto or false")
        return None
    return ChunkedLoss(shift=kind == "causal", label_smoothing=label_smoothing, always=setting is True)


def wanted(tokens: int, vocab: int, always: bool) -> bool:
    """`auto`: chunk when one micro-batch's logits would not fit in one chunk."""
    return always or tokens * vocab > CHUNK_LOGITS


class ChunkedLoss:
    def __init__(self, shift: bool, label_smoothing: float, always: bool):
        self.shift, self.eps, self.always = shift, label_smoothing, always

    def applies(self, model, batch) -> bool:
        labels = batch["labels"]
        return wanted(labels.numel(), unwrap(model).get_output_embeddings().out_features, self.always)

    def __call__(self, model, batch, autocast=None):
        """The mean loss over the batch's counted label positions. `autocast`: a context
        manager factory for the chunks' matmuls (the accelerator's, so the logits have the
        dtype the plain path's would)."""
        import torch

        inner = unwrap(model)
        head = inner.get_output_embeddings()
        labels = batch["labels"]
        inputs = {k: v for k, v in batch.items() if k != "labels"}
        if not self.shift and "decoder_input_ids" not in inputs:  # what the model does given labels
            inputs["decoder_input_ids"] = inner.prepare_decoder_input_ids_from_labels(labels=labels)
        with _bypassed(head):
            hidden = model(**inputs).logits  # the output layer's input: the last hidden states
        if self.shift:  # position t predicts the label at t + 1
            hidden, labels = hidden[:, :-1], labels[:, 1:]
        counted = labels != IGNORE_INDEX
        h, y = hidden[counted], labels[counted]
        with (autocast() if autocast else _nothing()):
            fused = _liger(head, h, y, self.eps)
            if fused is not None:
                return fused
            total = hidden.sum() * 0.0  # keeps the graph when no position counts (loss NaN, as plain)
            rows = max(1, CHUNK_LOGITS // head.out_features)
            for start in range(0, h.shape[0], rows):
                total = total + torch.utils.checkpoint.checkpoint(
                    _chunk_loss, h[start:start + rows], head.weight, head.bias, y[start:start + rows],
                    self.eps, use_reentrant=False,
                )
        return total / counted.sum()


def _chunk_loss(h, weight, bias, y, eps: float):
    import torch.nn.functional as F

    logits = F.linear(h, weight, bias).float()  # float, as the plain loss computes in fp32
    return F.cross_entropy(logits, y, reduction="sum", label_smoothing=eps)


@contextmanager
def _bypassed(head):
    """The output layer returns its input while the model runs (an instance attribute shadows
    the class's forward, then is removed)."""
    head.forward = _identity
    try:
        yield
    finally:
        del head.forward


def _identity(x):
    return x


@contextmanager
def _nothing():
    yield


def _liger(head, h, y, eps: float):
    """Liger Kernel's fused linear cross-entropy (mean over counted tokens) on CUDA when it is
    installed, else None. Untested here: liger_kernel needs a CUDA device and Triton."""
    if h.device.type != "cuda":
        return None
    try:
        from liger_kernel.transformers.fused_linear_cross_entropy import LigerFusedLinearCrossEntropyLoss
    except ImportError:
        return None
    loss = LigerFusedLinearCrossEntropyLoss(ignore_index=IGNORE_INDEX, label_smoothing=eps)
    return loss(head.weight, h, y, head.bias)
