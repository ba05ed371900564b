"""Load a tokenizer and a model for a task, safely: safetensors only (safetensors_only.py), no
remote code unless the config trusts it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from finetune.model.attn_kernel import choose_kernel, model_class
from finetune.storage.safetensors_only import no_unpickling, refuse_pickles
from finetune.configuration.config import ModelSection
from finetune.errors import ModelError
from finetune.configuration.paths import resolve


def source(model: ModelSection) -> str:
    return resolve(model.name_or_path, "model.name_or_path")


def hub_kwargs(model: ModelSection) -> dict[str, Any]:
    kwargs = {"revision": model.revision, "trust_remote_code": model.trust_remote_code}
    if model.token:  # otherwise huggingface_hub falls back to HF_TOKEN / the login cache
        kwargs["token"] = model.token
    return kwargs


def load_tokenizer(model: ModelSection):
    from transformers import AutoTokenizer

    kwargs = hub_kwargs(model)
    if model.gguf_file:
        kwargs["gguf_file"] = model.gguf_file
    try:
        tokenizer = AutoTokenizer.from_pretrained(source(model), **kwargs)
    except Exception as exc:
        raise ModelError(_load_failure("tokenizer", model, exc)) from exc
    return tokenizer


def load_model(model: ModelSection, auto_class: str, config=None, *, bf16_on_cpu: bool = False, **config_kwargs):
    """Instantiate `transformers.<auto_class>` from the checkpoint (or from its config alone when
    `init: scratch`). `config` is the model's config if the caller has loaded it already;
    `config_kwargs` carry task facts such as num_labels and id2label; `bf16_on_cpu`: it will
    train under bf16 autocast on a CPU (which changes the attention kernel `auto` picks)."""
    import transformers

    cls = getattr(transformers, auto_class)
    config = load_model_config(model, **config_kwargs) if config is None else with_fields(config, **config_kwargs)
    kwargs = hub_kwargs(model)
    kernel = choose_kernel(model.attn_implementation, model_class(auto_class, config), config, bf16_on_cpu=bf16_on_cpu)
    if kernel:
        kwargs["attn_implementation"] = kernel
    if model.gguf_file and model.init == "pretrained":
        return load_gguf_model(model, cls, config, kernel)
    try:
        if model.init == "scratch":
            return cls.from_config(config, **_only(kwargs, "trust_remote_code", "attn_implementation"))
        refuse_pickles(Path(source(model)), f"model.name_or_path '{model.name_or_path}'")
        _check_if_saved_by_finetune(Path(source(model)))
        with no_unpickling(f"model.name_or_path '{model.name_or_path}'"):
            return cls.from_pretrained(source(model), config=config, use_safetensors=True, **kwargs)
    except ValueError as exc:
        if "Unrecognized configuration class" in str(exc):
            raise ModelError(
                f"model '{model.name_or_path}' ({config.model_type}) has no {auto_class} head; "
                "pick a checkpoint of a family that supports this task"
            ) from exc
        raise ModelError(_load_failure("model", model, exc)) from exc
    except (OSError, ImportError) as exc:  # ImportError: a kernel's package (flash_attn) is missing
        raise ModelError(_load_failure("model", model, exc)) from exc


def load_model_config(model: ModelSection, **config_kwargs):
    from transformers import AutoConfig

    kwargs = {"gguf_file": model.gguf_file} if model.gguf_file else {}
    try:
        config = AutoConfig.from_pretrained(
            source(model), **hub_kwargs(model), **kwargs, **model.config_overrides, **config_kwargs
        )
    except Exception as exc:
        raise ModelError(_load_failure("config", model, exc)) from exc
    overrides = model.config_overrides
    if "num_layers" in overrides and "num_decoder_layers" not in overrides and hasattr(config, "num_decoder_layers"):
        # T5 keeps the checkpoint's decoder depth otherwise; a shallower encoder with a deep
        # decoder is never what `num_layers: 2` means (and breaks the decoder's cache).
        config.num_decoder_layers = overrides["num_layers"]
    # A GGUF config can carry the file's quantization; the weights we build are plain fp32.
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    return config


def with_fields(config, **fields):
    """A copy of `config` with `fields` set in order, as AutoConfig.from_pretrained(..., **fields)
    sets them (Task.model_kwargs names num_labels, which resets the label maps, first)."""
    import copy

    config = copy.deepcopy(config)
    for key, value in fields.items():
        setattr(config, key, value)
    return config


def load_gguf_model(model: ModelSection, cls, config, kernel: str | None):
    """Dequantize a GGUF checkpoint into a plain model that trains and saves normally.

    transformers' own GGUF load leaves a quantizer on the model that makes `save_pretrained`
    and training refuse it, so we take its (fp32) weights and put them into a model built from
    the config alone. A task head missing from the file (a classifier) starts random."""
    import transformers

    where = f"model.name_or_path '{model.name_or_path}'"
    refuse_pickles(Path(source(model)), where)
    try:
        with no_unpickling(where):
            loaded = transformers.AutoModelForCausalLM.from_pretrained(
                source(model), gguf_file=model.gguf_file, **hub_kwargs(model)
            )
    except ModelError:
        raise
    except Exception as exc:
        raise ModelError(_load_failure("GGUF model", model, exc)) from exc
    state = loaded.state_dict()
    del loaded
    built = cls.from_config(config, **({"attn_implementation": kernel} if kernel else {}))
    if cls.__name__ != "AutoModelForCausalLM":
        # A head-less copy: keep the backbone's weights, drop the language-model head.
        prefix = built.base_model_prefix + "."
        state = {k: v for k, v in state.items() if k.startswith(prefix)}
    missing, unexpected = built.load_state_dict(state, strict=False)
    tied = set(getattr(built, "_tied_weights_keys", None) or [])
    really_missing = [k for k in missing if k not in tied and not _is_head(k, cls)]
    if really_missing or unexpected:
        raise ModelError(
            f"model.gguf_file '{model.gguf_file}': weights do not fit the {config.model_type} "
            f"architecture (missing {really_missing[:2]}, unexpected {unexpected[:2]})"
        )
    if getattr(config, "tie_word_embeddings", False):
        built.tie_weights()
    return built


def _is_head(key: str, cls) -> bool:
    return cls.__name__ != "AutoModelForCausalLM" and key.split(".")[0] in ("score", "classifier")


def _check_if_saved_by_finetune(path: Path) -> None:
    """A directory finetune saved (RUN/merged as the start of a new run, RUN/model for `eval
    --model`) is checked against its manifest like any saved model it loads."""
    from finetune.storage import saved_model_check

    if saved_model_check.is_sealed(path):
        saved_model_check.check(path)


def pad_like_tokenizer(model, tokenizer) -> None:
    """A model without a pad id takes the tokenizer's: classification heads of decoder-only
    models find each row's last token by it, and generation pads with it."""
    if getattr(model.config, "pad_token_id", None) is None and tokenizer.pad_token_id is not None:
        model.config.pad_token_id = tokenizer.pad_token_id


def count_parameters(model) -> tuple[int, int]:
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return trainable, total


def _only(kwargs: dict[str, Any], *names: str) -> dict[str, Any]:
    return {k: v for k, v in kwargs.items() if k in names}


# What transformers says when an attention kernel, not the checkpoint, is what failed.
KERNEL_FAILURES = ("attn_implementation", "scaled_dot_product_attention", "flash_attn", "FlashAttention",
                   "flex_attention")


def _load_failure(what: str, model: ModelSection, exc: BaseException) -> str:
    lines = [line for line in str(exc).strip().splitlines() if line.strip()]
    reason = lines[0] if lines else type(exc).__name__
    if any(mark in str(exc) for mark in KERNEL_FAILURES):
        # The checkpoint was found; the kernel is what failed. (Not any text with "attention"
        # in it: a missing path like models/sparse-attention-bert must still blame the path.)
        return (
            f"model.attn_implementation '{model.attn_implementation}': {reason[:200]}; "
            "set it to auto (or eager)"
        )
    path = Path(source(model))
    if not path.exists() and (model.name_or_path.startswith((".", "/", "~")) or path.suffix):
        return f"model.name_or_path '{model.name_or_path}': no such directory; check the path"
    return (
        f"model.name_or_path '{model.name_or_path}': could not load the {what} ({reason}); "
        "give a local directory or a Hub id you can reach"
    )
