"""Translation, from either column layout: a text column and a target column, or one column of
{lang: text} pairs (Hub style, with data.source_lang / data.target_lang); scored with BLEU and chrF."""

from __future__ import annotations

from finetune.data.column_checks import ROW_NOTE
from finetune.data.splits import source_name
from finetune.errors import DataError
from finetune.tasks.specs.source_target import SourceTargetSpec


class TranslationSpec(SourceTargetSpec):
    names = ("translation",)
    metrics = ("bleu", "chrf")
    default_template = "Translate from {source_lang} to {target_lang}.\n{source_lang}: {source}\n{target_lang}: "
    target_key = "data.target_column"

    @property
    def pairs(self) -> bool:
        """Whether the data is one column of {lang: text} pairs."""
        return bool(self.data.source_lang and self.data.target_lang)

    def columns(self) -> list[str]:
        return [self.data.translation_column] if self.pairs else super().columns()

    def check_columns(self, ds, split: str) -> None:
        super().check_columns(ds, split)
        d = self.data
        if self.pairs and len(ds):
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

    def check_split(self, ds, split: str) -> None:
        if not self.pairs:
            return super().check_split(ds, split)
        self.check_columns(ds, split)
        d = self.data
        where = source_name(d, split)
        for row, pair in enumerate(ds[d.translation_column]):
            pair = pair if isinstance(pair, dict) else {}
            for lang in (d.source_lang, d.target_lang):
                if not isinstance(pair.get(lang), str):
                    raise DataError(
                        f"{where}: column '{d.translation_column}', row {row + 1} {ROW_NOTE}: "
                        f"'{lang}' is {'missing' if pair.get(lang) is None else 'not text'}; every "
                        "row needs both languages as text"
                    )

    def languages(self) -> tuple[str, str]:
        return (self.data.source_lang, self.data.target_lang) if self.pairs else super().languages()

    def source_values(self, batch):
        if self.data.source_lang:
            return [pair[self.data.source_lang] for pair in batch[self.data.translation_column]]
        return super().source_values(batch)

    def target_values(self, batch):
        if self.data.source_lang:
            return [pair[self.data.target_lang] for pair in batch[self.data.translation_column]]
        return super().target_values(batch)

    def compute_metrics(self, predictions, references):
        from finetune.metrics import load_metric

        return {
            "bleu": load_metric("sacrebleu").compute(predictions=predictions, references=references)["score"],
            "chrf": load_metric("chrf").compute(predictions=predictions, references=references)["score"],
        }
