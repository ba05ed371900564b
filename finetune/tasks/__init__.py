"""`get_task` composes the config's task spec (classification or its alias sentiment,
translation, summarization) with the architecture the model has (a classifier head, an
encoder-decoder, or a decoder-only model)."""

from __future__ import annotations

from finetune.configuration.config import RunConfig
from finetune.errors import ModelError
from finetune.tasks.specs.classification import ClassificationSpec
from finetune.tasks.specs.summarization import SummarizationSpec
from finetune.tasks.specs.translation import TranslationSpec
from finetune.tasks.task import Task

SPECS = (ClassificationSpec, TranslationSpec, SummarizationSpec)

# Model types with no text-generating head of their own. (transformers lists some of them,
# e.g. BertLMHeadModel, as causal LMs, but their checkpoints are trained bidirectionally.)
ENCODER_ONLY = {
    "bert", "roberta", "xlm-roberta", "distilbert", "electra", "albert", "deberta", "deberta-v2",
    "camembert", "mpnet", "modernbert", "longformer", "big_bird",
}


def get_task(cfg: RunConfig, model_config) -> Task:
    """The task of `cfg` on the model whose config is `model_config` (loaded once by the caller)."""
    spec = next(s for s in SPECS if cfg.task in s.names)(cfg.data)
    arch = _generator(cfg, model_config) if spec.generates else _classifier()
    return Task(spec, arch, cfg.eval)


def _classifier():
    from finetune.tasks.architectures.classifier import ClassifierArch

    return ClassifierArch()


def _generator(cfg: RunConfig, config):
    if getattr(config, "is_encoder_decoder", False):
        from finetune.tasks.architectures.seq2seq import Seq2SeqArch

        return Seq2SeqArch(cfg.eval.generation)
    if config.model_type not in ENCODER_ONLY and _has_causal_head(config.model_type):
        from finetune.tasks.architectures.decoder_only import DecoderOnlyArch

        return DecoderOnlyArch(cfg.eval.generation)
    raise ModelError(
        f"model '{cfg.model.name_or_path}' ({config.model_type}) is encoder-only and cannot generate "
        f"text for task {cfg.task}; use an encoder-decoder (T5, BART) or decoder-only (GPT-2, Llama) model"
    )


def _has_causal_head(model_type: str) -> bool:
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    return model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES
