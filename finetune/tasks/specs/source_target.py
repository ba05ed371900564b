"""What translation and summarization share, whatever the architecture: reading sources and
references from the data, generating in length-sorted batches, and scoring the text.

`seq2seq.py` (encoder-decoder) and `causal.py` (decoder-only) only differ in how a pair becomes
tokens and how generated tokens become text.
"""

from __future__ import annotations

from typing import Any

from finetune.config import DataSection, EvalSection
from finetune.column_checks import ROW_NOTE, check_text
from finetune.data import require_columns, source_name, tokenizer_fingerprint
from finetune.errors import DataError
from finetune.tasks.base import Task

IGNORE_INDEX = -100  # labels with this value do not count in the loss

# Metrics per task; the first is the default for picking the best checkpoint.
TASK_METRICS = {"translation": ("bleu", "chrf"), "summarization": ("rougeL", "rouge1", "rouge2", "rougeLsum")}

DEFAULT_TEMPLATES = {
    "translation": "Translate from {source_lang} to {target_lang}.\n{source_lang}: {source}\n{target_lang}: ",
    "summarization": "Summarize the text in one sentence.\nText: {source}\nSummary: ",
}


class GenerationTask(Task):
    name: str  # "translation" | "summarization"

    def __init__(self, name: str, data: DataSection, eval: EvalSection):
        super().__init__(data, eval)
        self.name = name
        self.default_metric = TASK_METRICS[name][0]
        self._gen_loaders: dict[int, Any] = {}

    # ------------------------------------------------------------------ columns
    def _columns(self) -> list[str]:
        d = self.data
        if self.name == "summarization":
            return [d.text_column, d.summary_column]
        if d.source_lang and d.target_lang:
            return [d.translation_column]
        return [d.text_column, d.target_column]

    def check_columns(self, ds, split: str) -> None:
        require_columns(ds, self._columns(), self.data, split)
        d = self.data
        if self.name == "translation" and d.source_lang and d.target_lang and len(ds):
            first = ds[0][d.translation_column]
            if not isinstance(first, dict):
                raise DataError(
                    f"split '{split}': column '{d.translation_column}' holds {type(first).__name__}, "
                    "not {lang: text} pairs; use data.target_column for plain text columns"
                )
            for lang in (d.source_lang, d.target_lang):
                if lang not in first:
                    raise DataError(
                        f"split '{split}': language '{lang}' not in column '{d.translation_column}' "
                        f"(it has {sorted(first)}); set data.source_lang / data.target_lang to these"
                    )

    def languages(self) -> tuple[str, str]:
        d = self.data
        if d.source_lang and d.target_lang:
            return d.source_lang, d.target_lang
        return d.text_column, d.target_column or d.summary_column or "target"

    def sources(self, batch: dict[str, list]) -> list[str]:
        d = self.data
        if self.name == "translation" and d.source_lang:
            texts = [pair[d.source_lang] for pair in batch[d.translation_column]]
        else:
            texts = batch[d.text_column]
        return [d.source_prefix + _as_text(t) for t in texts]

    def references(self, batch: dict[str, list]) -> list[list[str]]:
        """Every reference of each row: a column of lists gives several (SciTLDR dev)."""
        d = self.data
        if self.name == "translation" and d.source_lang:
            values = [pair[d.target_lang] for pair in batch[d.translation_column]]
        else:
            values = batch[d.target_column if self.name == "translation" else d.summary_column]
        return [[_as_text(r) for r in v] if isinstance(v, (list, tuple)) else [_as_text(v)] for v in values]

    def targets(self, batch: dict[str, list]) -> list[str]:
        """The training target: the first reference (train splits hold one)."""
        return [refs[0] if refs else "" for refs in self.references(batch)]

    def check_split(self, ds, split: str) -> None:
        """Sources and targets are text; targets (and summarization sources) may be lists of
        strings: several references, or a source split into sentences."""
        self.check_columns(ds, split)
        d = self.data
        where = source_name(d, split)
        if self.name == "translation" and d.source_lang and d.target_lang:
            for row, pair in enumerate(ds[d.translation_column]):
                pair = pair if isinstance(pair, dict) else {}
                for lang in (d.source_lang, d.target_lang):
                    if not isinstance(pair.get(lang), str):
                        raise DataError(
                            f"{where}: column '{d.translation_column}', row {row + 1} {ROW_NOTE}: "
                            f"'{lang}' is {'missing' if pair.get(lang) is None else 'not text'}; every "
                            "row needs both languages as text"
                        )
            return
        summary = self.name == "summarization"
        check_text(ds, d.text_column, where, "data.text_column", lists=summary)
        target_key = "data.summary_column" if summary else "data.target_column"
        check_text(ds, d.summary_column if summary else d.target_column, where, target_key, lists=True)

    def cache_key(self, tokenizer) -> dict:
        """Everything that changes the tokenized rows; a change makes a new cache entry."""
        d = self.data
        return {
            "task": f"{self.kind}-{self.name}",
            "tokenizer": tokenizer_fingerprint(tokenizer),
            "lengths": [d.max_source_length, d.max_target_length],
            "columns": self._columns(),
            "langs": [d.source_lang, d.target_lang],
            "prefix": d.source_prefix,
        }

    # ------------------------------------------------------------------ generation
    def generation_config(self, model_config, tokenizer):
        from transformers import GenerationConfig

        g = self.eval_cfg.generation
        sampling = {"temperature": g.temperature, "top_p": g.top_p, "top_k": g.top_k} if g.do_sample else {}
        return GenerationConfig(
            num_beams=g.num_beams,
            max_new_tokens=g.max_new_tokens,
            min_new_tokens=g.min_new_tokens,
            length_penalty=g.length_penalty,
            no_repeat_ngram_size=g.no_repeat_ngram_size,
            repetition_penalty=g.repetition_penalty,
            do_sample=g.do_sample,
            early_stopping=g.num_beams > 1,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=self.eos_token_id(tokenizer),
            decoder_start_token_id=getattr(model_config, "decoder_start_token_id", None),
            bos_token_id=getattr(model_config, "bos_token_id", None),
            **sampling,
        )

    def save_alongside(self, model, tokenizer, directory) -> None:
        # generate() and pipeline() read generation_config.json: the saved model then decodes
        # as `finetune eval` did, not with the checkpoint's defaults.
        self.generation_config(_base_config(model), tokenizer).save_pretrained(directory)

    def eos_token_id(self, tokenizer) -> int | None:
        return tokenizer.eos_token_id

    def prompt_ids(self, sources: list[str], tokenizer) -> list[list[int]]:
        raise NotImplementedError

    def decode(self, generated, prompt_width: int, tokenizer) -> list[str]:
        raise NotImplementedError

    pad_left = False  # decoder-only models continue the prompt, so its end must line up

    def _generation_loader(self, raw, tokenizer, accelerator):
        """Prompts sorted longest first (few pad tokens, and an early out-of-memory if any),
        each carrying its row index so predictions go back in data order."""
        from torch.utils.data import DataLoader

        key = id(raw)
        if key not in self._gen_loaders:
            ids = self.prompt_ids(self.sources(raw[:]), tokenizer)
            order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))
            rows = [{"index": i, "input_ids": ids[i]} for i in order]
            pad_id = tokenizer.pad_token_id
            loader = DataLoader(
                rows, batch_size=self.eval_cfg.batch_size, shuffle=False,
                collate_fn=lambda b: pad_batch(b, pad_id, left=self.pad_left),
            )
            self._gen_loaders = {key: accelerator.prepare(loader)}
        return self._gen_loaders[key]

    def evaluate(self, model, loader, raw, accelerator, tokenizer):
        import torch

        model.eval()
        losses = []
        with torch.no_grad():
            # Teacher-forced loss on the same split: cheap, and comparable with the train loss.
            for batch in loader:
                loss = model(**batch).loss.detach().float().reshape(1)
                losses.append(accelerator.gather_for_metrics(loss.repeat(len(batch["input_ids"]))).cpu())
            unwrapped = accelerator.unwrap_model(model)
            config = self.generation_config(_base_config(unwrapped), tokenizer)
            texts: dict[int, str] = {}
            lengths: dict[int, int] = {}
            for batch in self._generation_loader(raw, tokenizer, accelerator):
                out = unwrapped.generate(
                    input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                    generation_config=config,
                )
                decoded, counts = self.decode(out, batch["input_ids"].shape[1], tokenizer)
                pairs = list(zip(batch["index"].tolist(), decoded, counts))
                for index, text, count in accelerator.gather_for_metrics(pairs, use_gather_object=True):
                    texts[index] = text
                    lengths[index] = count
        model.train()
        order = sorted(texts)
        predictions = [texts[i] for i in order]
        rows = raw.select(order)[:]
        references = self.references(rows)
        metrics = self.score(predictions, references)
        metrics["gen_len"] = sum(lengths.values()) / max(len(lengths), 1)
        if losses:
            metrics["loss"] = float(torch.cat(losses).mean())
        metrics["samples"] = len(predictions)
        sources = self.sources(rows)
        records = [
            {"source": s, "references": r, "generated": p}
            for s, r, p in zip(sources, references, predictions)
        ]
        return metrics, records

    def predict(self, model, tokenizer, texts: list[str]) -> list[dict]:
        """Generated text for each input, with the run's own generation settings."""
        import torch

        device = next(model.parameters()).device
        config = self.generation_config(_base_config(model), tokenizer)
        ids = self.prompt_ids(texts, tokenizer)
        size = self.eval_cfg.batch_size
        answers = []
        for start in range(0, len(ids), size):
            batch = pad_batch([{"input_ids": x} for x in ids[start : start + size]],
                              tokenizer.pad_token_id, left=self.pad_left)
            with torch.no_grad():
                out = model.generate(
                    input_ids=batch["input_ids"].to(device),
                    attention_mask=batch["attention_mask"].to(device),
                    generation_config=config,
                )
            decoded, _ = self.decode(out, batch["input_ids"].shape[1], tokenizer)
            answers += [{"source": t, "generated": g} for t, g in zip(texts[start : start + size], decoded)]
        return answers

    def score(self, predictions: list[str], references: list[list[str]]) -> dict[str, float]:
        from finetune.metrics import load_metric

        if self.name == "translation":
            return {
                "bleu": load_metric("sacrebleu").compute(predictions=predictions, references=references)["score"],
                "chrf": load_metric("chrf").compute(predictions=predictions, references=references)["score"],
            }
        scores = load_metric("rouge").compute(predictions=predictions, references=references)
        return {k: float(scores[k]) for k in ("rouge1", "rouge2", "rougeL", "rougeLsum")}


def pad_batch(rows: list[dict], pad_id: int, *, left: bool, label_pad: int = IGNORE_INDEX) -> dict:
    """Pad input_ids (and labels, if present) to the longest row, on the left or the right."""
    import torch

    width = max(len(r["input_ids"]) for r in rows)
    out: dict[str, list] = {"input_ids": [], "attention_mask": []}
    has_labels = "labels" in rows[0]
    label_width = max(len(r["labels"]) for r in rows) if has_labels else 0
    if has_labels:
        out["labels"] = []

    def pad(seq, fill, size):
        gap = [fill] * (size - len(seq))
        return gap + list(seq) if left else list(seq) + gap

    for r in rows:
        out["input_ids"].append(pad(r["input_ids"], pad_id, width))
        out["attention_mask"].append(pad([1] * len(r["input_ids"]), 0, width))
        if has_labels:
            out["labels"].append(pad(r["labels"], label_pad, label_width))
    batch = {k: torch.tensor(v, dtype=torch.long) for k, v in out.items()}
    if "index" in rows[0]:
        batch["index"] = torch.tensor([r["index"] for r in rows], dtype=torch.long)
    return batch


def _base_config(model):
    """The transformers config under a PEFT wrapper (or the model's own)."""
    base = getattr(model, "get_base_model", None)
    return (base() if base else model).config


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):  # SciTLDR sources are lists of sentences
        return " ".join(_as_text(v) for v in value)
    return str(value)
