"""The run configuration's typed schema: every key, its type, default, bounds and description
(YAML reading and overrides: loading.py).

Only pydantic and PyYAML are imported here, so `finetune config ...` and `--help` stay fast and
never pull in torch.
"""

from __future__ import annotations

from typing import Any, Literal, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from finetune.configuration.prompt_template import check_template


TaskName = Literal["sentiment", "classification", "translation", "summarization"]

# Upper bounds that only catch typos and runaway values (batch_size: 1e21), far above any real
# run: the longest context windows are about a million tokens, no device holds a micro-batch of
# more than 65536 sequences, and 1e9 optimizer steps would take years.
MAX_TOKENS = 2**20
MAX_BATCH = 65536
MAX_STEPS = 10**9
MAX_EPOCHS = 10**5


class Section(BaseModel):
    """Unknown keys are an error (a typo must not be silently ignored); NaN and inf are refused
    (config.yaml could not hold them: JSON mode writes them as null)."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=(), allow_inf_nan=False)


class TokenizerSection(Section):
    """A tokenizer learnt from the training split, for `init: scratch` runs."""

    train: bool = Field(
        False, description="Learn a tokenizer from the training split instead of using the "
        "checkpoint's (only with model.init: scratch; the config still comes from name_or_path).",
    )
    vocab_size: int = Field(8000, ge=64, le=1_000_000, description="Pieces in the learnt vocabulary.")
    type: Literal["bpe", "unigram"] = Field(
        "bpe", description="`bpe`: byte-level BPE (no unknown characters); `unigram`: SentencePiece's model.",
    )
    min_frequency: int = Field(2, ge=1, description="BPE: merges seen fewer times are not learnt.")


class ModelSection(Section):
    name_or_path: str = Field(description="Hub id or local directory of the checkpoint.")
    revision: str | None = Field(None, description="Hub branch, tag or commit.")
    trust_remote_code: bool = Field(
        False, description="Run Python code shipped with a Hub checkpoint. Off unless you trust it."
    )
    # Kept so that configs and runs written when it was an opt-in still read; only false is valid.
    allow_pickle: bool = Field(
        False, description="Always false: weights load from safetensors only (a pickle can run code). "
        "Convert pickle weights to safetensors.",
    )
    init: Literal["pretrained", "scratch"] = Field(
        "pretrained", description="`scratch` builds the architecture from its config, random weights."
    )
    config_overrides: dict[str, Any] = Field(
        default_factory=dict, description="Model config fields to change, e.g. num_layers: 2."
    )
    gguf_file: str | None = Field(None, description="GGUF file name inside name_or_path.")
    license: str | None = Field(
        None, description="License id for the model card (e.g. apache-2.0); default: the base model "
        "card's, else none stated.",
    )
    tokenizer: TokenizerSection = Field(default_factory=TokenizerSection)
    attn_implementation: str | None = Field(
        "auto",
        description="Attention kernel: auto (sdpa where the architecture has it, else its own "
        "eager attention; eager for bf16 training on a CPU, where SDPA's bf16 backward is slow), sdpa, "
        "eager, flash_attention_2. A run's config.yaml records the one used.",
    )
    token: str | None = Field(
        None,
        exclude=True,  # a secret: never written to config.yaml, logs or model cards
        repr=False,
        description="Hub access token for private models; prefer the HF_TOKEN environment variable.",
    )

    @field_validator("allow_pickle")
    @classmethod
    def _no_pickle(cls, allowed: bool) -> bool:
        if allowed:
            raise ValueError("model.allow_pickle: finetune loads safetensors weights only (a pickle can "
                             "run code when loaded); convert the weights to safetensors and drop the key")
        return allowed


class DataSection(Section):
    dataset: str | None = Field(None, description="Hub dataset id (used when `files` is empty).")
    config_name: str | None = Field(None, description="Hub dataset configuration name.")
    revision: str | None = Field(None, description="Hub dataset revision.")
    files: dict[str, str] = Field(
        default_factory=dict, description="Local files per split, e.g. {train: a.csv}."
    )
    format: Literal["auto", "csv", "tsv", "json", "jsonl", "parquet"] = Field(
        "auto", description="File format; `auto` reads it from the extension."
    )
    text_column: str = "text"
    text_pair_column: str | None = None
    label_column: str = "label"
    label_names: list[str] | None = Field(
        None, description="Names for integer labels 0..n-1, or the order of string labels."
    )
    train_split: str = "train"
    eval_split: str = "validation"
    validation_fraction: float = Field(
        0.1, gt=0, lt=1, description="Share of train carved out when there is no eval split."
    )
    max_train_samples: int | None = Field(None, gt=0)
    max_eval_samples: int | None = Field(None, gt=0)
    max_length: int = Field(128, gt=0, le=MAX_TOKENS, description="Tokens per input (classification).")
    packing: bool = Field(
        False, description="Several short training examples share one row, attention kept within each: "
        "rows of `max_length` tokens for classification with BERT-family encoders, of "
        "`max_source_length + max_target_length` for decoder-only generation.",
    )
    # Generation tasks (translation, summarization). The source is `text_column`, or
    # `translation_column[source_lang]` for Hub-style `translation: {en: ..., de: ...}` rows.
    target_column: str | None = Field(
        None, description="Translation target column (the source is text_column)."
    )
    summary_column: str | None = Field(
        None, description="Summarization target; a column of lists gives several references."
    )
    translation_column: str = Field(
        "translation", description="Column of {lang: text} dicts, used with source_lang/target_lang."
    )
    source_lang: str | None = Field(None, description="Key of the source language, e.g. en.")
    target_lang: str | None = Field(None, description="Key of the target language, e.g. de.")
    source_prefix: str = Field(
        "", description="Prepended to every source, e.g. 'translate English to German: ' for T5."
    )
    prompt_template: str | None = Field(
        None,
        description="Decoder-only models: the prompt before the target; must contain {source} "
        "(may use {source_lang}, {target_lang}). Default: one per task.",
    )
    max_source_length: int = Field(256, gt=0, le=MAX_TOKENS, description="Tokens per source (or prompt).")
    max_target_length: int = Field(128, gt=0, le=MAX_TOKENS, description="Tokens per target, EOS included.")
    cache_dir: str | None = Field(
        None, description="Tokenized-data cache; default ~/.cache/finetune (FINETUNE_CACHE)."
    )

    @field_validator("label_names")
    @classmethod
    def _distinct_label_names(cls, names: list[str] | None) -> list[str] | None:
        seen: dict[str, str] = {}
        for name in names or []:
            if name in seen.values():
                raise ValueError(f"data.label_names: '{name}' is listed twice; each class needs its own name")
            # 'pos' and 'Pos ' would be two classes that a reader takes for one
            other = seen.setdefault(name.strip().casefold(), name)
            if other != name:
                raise ValueError(f"data.label_names: {other!r} and {name!r} differ only by case or "
                                 "surrounding whitespace; name each class one way")
        return names


class LoraSection(Section):
    enabled: bool = False
    r: int = Field(8, gt=0, le=4096)
    alpha: int = Field(16, gt=0, le=65536)
    dropout: float = Field(
        0.0, ge=0, lt=1,
        description="Dropout on the adapters' input. Off by default (as in peft): above 0 every "
        "adapted layer keeps its own copy of its input and mask for backward, about 40% more "
        "activation memory on SmolLM2.",
    )
    target_modules: Union[Literal["auto"], list[str]] = Field(
        "auto", description="`auto`: the attention projections of the architecture."
    )


class TrainingSection(Section):
    output_dir: str | None = Field(None, description="Run directory; default runs/<config name>.")
    epochs: float = Field(3, gt=0, le=MAX_EPOCHS)
    max_steps: int | None = Field(None, gt=0, le=MAX_STEPS, description="Optimizer steps; overrides epochs.")
    batch_size: int = Field(16, gt=0, le=MAX_BATCH, description="Per process, per micro-batch.")
    gradient_accumulation_steps: int = Field(1, gt=0, le=MAX_BATCH)
    # No upper bound: an absurd rate fails at its first step with a NaN/inf stop that names it,
    # and the divergence tests rely on one (lr 1e30) to provoke exactly that stop.
    lr: float = Field(5e-5, gt=0)
    optimizer: Literal["adamw", "adafactor"] = Field(
        "adamw", description="`adafactor` scales each update by the parameter's size (T5's own "
        "optimizer; trains a T5 from scratch much faster than AdamW, with lr ~1e-2).",
    )
    weight_decay: float = Field(0.01, ge=0, le=1)
    scheduler: Literal["linear", "cosine", "constant"] = "linear"
    warmup_ratio: float = Field(0.0, ge=0, lt=1)
    max_grad_norm: float | None = Field(1.0, gt=0)
    label_smoothing: float = Field(
        0.0, ge=0, lt=1, description="Share of each target's probability spread over all classes "
        "or tokens (0.1 is usual for translation): a less overconfident model.",
    )
    chunked_loss: Union[Literal["auto"], bool] = Field(
        "auto", description="Language-model heads (translation, summarization): compute the loss "
        "from the last hidden states in chunks of positions, so batch x length x vocabulary logits "
        "never exist at once (same loss and gradients). `auto`: on when a micro-batch's logits "
        "exceed 16M values and the model supports it; `true`: always (refused where unsupported).",
    )
    ema_decay: float | None = Field(
        None, gt=0, lt=1,
        description="Evaluate and save an exponential moving average of the trainable weights "
        "(0.999 averages over about the last 1,000 steps): a smoother model than the last step's, "
        "and a best/ picked less by noise. Checkpoints keep both, so a resume is exact. null: off.",
    )
    mixed_precision: Literal["no", "bf16", "fp16"] = "no"
    seed: int = Field(42, ge=0, le=2**32 - 1, description="NumPy seeds must fit 32 bits.")
    log_every: int = Field(10, gt=0, description="Optimizer steps between metrics.jsonl lines.")
    eval_every: int | None = Field(None, gt=0, description="Optimizer steps between evaluations.")
    eval_each_epoch: bool = True
    eval_before_training: bool = False
    group_by_length: bool = Field(True, description="Batch similar lengths together (less padding).")
    num_workers: int = Field(0, ge=0, le=256)
    compile: bool = Field(
        False, description="torch.compile the model's forward (inductor; needs a C++ compiler on CPU). "
        "The first steps pay the compile time, reported apart from throughput in the log.",
    )
    activation_checkpointing: Union[Literal["auto"], bool] = Field(
        "auto", description="Recompute each layer's activations in backward instead of keeping "
        "them: less memory for more compute (MiniLM LoRA on SST-2: -9% peak RSS, -39% "
        "samples/s, still faster than a full fine-tune). `auto`: on with LoRA, whose point is "
        "memory; off otherwise.",
    )
    mmap_threshold_mb: float | None = Field(
        1.0, gt=0, le=32,
        description="Linux (glibc): host allocations this large are mapped from the OS and "
        "returned to it when freed, so peak RSS follows the live tensors rather than a heap "
        "fragmented by varying batch shapes (MiniLM LoRA: -10% peak RSS, under 1% of "
        "speed). null: glibc's adaptive default.",
    )
    report_to: list[Literal["aim", "clearml", "comet_ml", "dvclive", "mlflow", "swanlab", "tensorboard",
                            "trackio", "wandb"]] = Field(
        default_factory=list,
        description="Trackers besides metrics.jsonl, through Accelerate's: tensorboard (events in "
        "<run>/tensorboard), mlflow (<run>/mlruns unless MLFLOW_TRACKING_URI is set), aim (<run>/aim), "
        "dvclive (<run>/dvclive), wandb, comet_ml, clearml, swanlab, trackio.",
    )
    save_every: int | None = Field(
        None, gt=0, description="Optimizer steps between resumable checkpoints (checkpoints/step-N)."
    )
    keep_checkpoints: int = Field(2, gt=0, description="Newest checkpoints kept (plus the best one).")
    early_stopping_patience: int | None = Field(
        None, gt=0, description="Stop after this many evaluations in a row without an improvement of "
        "eval.best_metric (the best model is kept); null: never stop early.",
    )
    early_stopping_threshold: float = Field(
        0.0, ge=0, description="An improvement smaller than this does not reset the patience.",
    )
    on_nan: Literal["stop", "skip"] = Field(
        "stop", description="A NaN/inf loss stops the run (`stop`) or its batch is dropped (`skip`; "
        "a whole log window of bad batches in a row, at least 8, still stops it)."
    )


class GenerationSection(Section):
    """Explicit decoding settings, so generation-based scores are reproducible."""

    num_beams: int = Field(1, gt=0, le=256)
    max_new_tokens: int = Field(64, gt=0, le=MAX_TOKENS)
    min_new_tokens: int = Field(0, ge=0, le=MAX_TOKENS)
    length_penalty: float = 1.0
    no_repeat_ngram_size: int = Field(0, ge=0)
    repetition_penalty: float = Field(1.0, gt=0)
    do_sample: bool = False
    temperature: float = Field(1.0, gt=0, description="Only with do_sample.")
    top_p: float = Field(1.0, gt=0, le=1, description="Only with do_sample.")
    top_k: int = Field(50, ge=0, description="Only with do_sample.")


class EvalSection(Section):
    batch_size: int = Field(32, gt=0, le=MAX_BATCH)
    generation: GenerationSection = Field(default_factory=GenerationSection)
    best_metric: str | None = Field(None, description="Metric that picks the best checkpoint.")
    greater_is_better: bool = True
    max_samples_during_training: int | None = Field(
        None, gt=0, description="Score evaluations during training on this many rows of the eval "
        "split (a seeded sample; they also pick the best model); the final evaluation scores it whole.",
    )


class RunConfig(Section):
    task: TaskName
    model: ModelSection
    data: DataSection = Field(default_factory=DataSection)
    lora: LoraSection = Field(default_factory=LoraSection)
    training: TrainingSection = Field(default_factory=TrainingSection)
    eval: EvalSection = Field(default_factory=EvalSection)

    @model_validator(mode="after")
    def _trained_tokenizer_needs_scratch(self) -> "RunConfig":
        if self.model.tokenizer.train and self.model.init != "scratch":
            raise ValueError(
                "model.tokenizer.train: a learnt vocabulary would not match pretrained embeddings; "
                "set model.init: scratch, or drop model.tokenizer.train"
            )
        return self

    @model_validator(mode="after")
    def _needs_data(self) -> "RunConfig":
        if not self.data.files and not self.data.dataset:
            raise ValueError("data: give `data.dataset` (a Hub id) or `data.files` (local files)")
        return self

    @model_validator(mode="after")
    def _generation_columns(self) -> "RunConfig":
        data = self.data
        if self.task == "summarization" and not data.summary_column:
            raise ValueError(
                "task summarization needs data.summary_column (the column holding the summaries)"
            )
        if self.task == "translation":
            pair = (data.source_lang, data.target_lang)
            if any(pair) and not all(pair):
                raise ValueError("translation: give both data.source_lang and data.target_lang, e.g. en and de")
            if not data.target_column and not all(pair):
                raise ValueError(
                    "task translation needs data.target_column (source in data.text_column), or "
                    "data.source_lang and data.target_lang for a column of {lang: text} pairs"
                )
        if data.prompt_template is not None:
            check_template(data.prompt_template)
        return self

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)
