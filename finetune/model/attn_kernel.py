"""Which attention kernel a model runs with: `model.attn_implementation: auto` picks SDPA where
the architecture has it and the model's own ("eager") attention otherwise; an explicit kernel
the architecture lacks is refused before anything is built.

transformers 5 makes the same choice for `attn_implementation=None`, but silently; we decide
it up front so the run can say which kernel it uses and its config.yaml can record it."""

from __future__ import annotations

from finetune.errors import ModelError

AUTO = "auto"


def model_class(auto_class: str, config):
    """The concrete class `transformers.<auto_class>` would build for this config, or None
    when the architecture has no such head (the load reports that itself)."""
    import transformers
    from transformers.models.auto.auto_factory import _get_model_class

    mapping = getattr(transformers, auto_class)._model_mapping
    if type(config) not in mapping:
        return None
    return _get_model_class(config, mapping)


def supported_kernels(cls) -> list[str]:
    """The attention kernels the class implements (flags transformers itself checks)."""
    from transformers.modeling_flash_attention_utils import FLASH_ATTENTION_COMPATIBILITY_MATRIX

    kernels = ["eager"]
    if getattr(cls, "_supports_sdpa", False):
        kernels.append("sdpa")
    if getattr(cls, "_supports_flash_attn", False):
        kernels += [f"flash_attention_{version}" for version in FLASH_ATTENTION_COMPATIBILITY_MATRIX]
    if getattr(cls, "_supports_flex_attn", False):
        kernels.append("flex_attention")
    return kernels


def choose_kernel(requested: str | None, cls, config, *, bf16_on_cpu: bool = False) -> str | None:
    """The kernel to ask transformers for. `auto` (or null) becomes sdpa or eager; a kernel the
    architecture lacks is a ModelError naming the ones it has. None when the class is unknown
    (remote code...): transformers then picks.

    `bf16_on_cpu` (training under bf16 autocast on a CPU): `auto` picks eager. torch's CPU SDPA
    backward is several times slower in bf16 than in fp32 (MiniLM, 32 tokens: 53 against 9.5 ms
    a step) and took most of autocast's gain; with eager attention a MiniLM forward+backward ran
    1.66x fp32 against 1.35x with SDPA, and Llama/GPT-2 shapes 1.7-2.0x against 1.6-1.9x."""
    if cls is None:
        return None if requested in (None, AUTO) else requested
    kernels = supported_kernels(cls)
    model_type = config.model_type
    if requested in (None, AUTO):
        return "sdpa" if "sdpa" in kernels and not bf16_on_cpu else "eager"
    hub_kernel = "/" in requested  # e.g. kernels-community/flash-attn: loaded by `kernels`
    if hub_kernel and getattr(cls, "_supports_attention_backend", False):
        from transformers.utils import is_kernels_available

        if not is_kernels_available():
            raise ModelError(
                f"model.attn_implementation '{requested}': Hub kernels need the `kernels` package "
                "(pip install kernels); or set it to auto"
            )
        return requested
    if requested.removeprefix("paged|") not in kernels:
        raise ModelError(
            f"model.attn_implementation: {model_type} ({cls.__name__}) has no '{requested}' attention; "
            f"it supports {', '.join(kernels)} (or auto, which picks the fastest of them)"
        )
    return requested


def check_trainable(config, device_type: str) -> None:
    """Flex attention runs inference anywhere but trains only on an accelerator and without
    attention dropout; refuse it before the first step rather than fail in it."""
    if config._attn_implementation != "flex_attention":
        return
    if device_type == "cpu":
        raise ModelError("model.attn_implementation: flex_attention has no backward pass on the CPU; "
                         "use auto (or sdpa) to train here")
    for key in ("attention_probs_dropout_prob", "attention_dropout"):
        if getattr(config, key, 0) or 0:
            raise ModelError(
                f"model.attn_implementation: flex_attention cannot train with attention dropout "
                f"({key}={getattr(config, key)}); set model.config_overrides {{{key}: 0.0}}, or use auto"
            )
