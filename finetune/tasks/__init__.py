"""One module per task kind; `get_task` picks it by the config's `task` name and, for text
generation, by the model's architecture (encoder-decoder or decoder-only)."""

from __future__ import annotations

from finetune.config import RunConfig
from finetune.errors import ModelError
from finetune.tasks.base import Task

# Model types with no text-generating head of their own. (transformers lists some of them,
# e.g. BertLMHeadModel, as causal LMs, but their checkpoints are trained bidirectionally.)
ENCODER_ONLY = {
    "bert", "roberta", "xlm-roberta", "distilbert", "electra", "albert", "deberta", "deberta-v2",
    "camembert", "mpnet", "modernbert", "longformer", "big_bird",
}


def get_task(cfg: RunConfig) -> Task:
    if cfg.task in ("sentiment", "classification"):
        from finetune.tasks.classification import ClassificationTask

        return ClassificationTask(cfg.data, cfg.eval)
    return _generation_task(cfg)


def _generation_task(cfg: RunConfig) -> Task:
    from finetune.models import load_model_config

    config = load_model_config(cfg.model)
    if getattr(config, "is_encoder_decoder", False):
        from finetune.tasks.seq2seq import Seq2SeqTask

        return Seq2SeqTask(cfg.task, cfg.data, cfg.eval)
    if config.model_type not in ENCODER_ONLY and _has_causal_head(config.model_type):
        from finetune.tasks.causal import CausalTask

        return CausalTask(cfg.task, cfg.data, cfg.eval)
    raise ModelError(
        f"model '{cfg.model.name_or_path}' ({config.model_type}) is encoder-only and cannot generate "
        f"text for task {cfg.task}; use an encoder-decoder (T5, BART) or decoder-only (GPT-2, Llama) model"
    )


def _has_causal_head(model_type: str) -> bool:
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    return model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES
