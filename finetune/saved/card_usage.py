"""The model card's "How to use": Python that loads the model directory with transformers alone
and answers EXAMPLE_TEXT as `finetune predict` would (tests run it as written).

It loads `model_id = "<ref>"`: the directory relative to the run (run it from the run
directory), or the Hub repo id in the card `finetune push` uploads. An adapter's base model is
loaded by the code itself, from the name the run's config gave (`Base`): peft's own lookup of
`adapter_config.json` cannot follow a `package:` path or a GGUF file. transformers 5 has no
text2text-generation, summarization or translation pipeline: encoder-decoder models call
generate() themselves, and so do decoder-only ones, to tokenize their prompt as training did."""

from __future__ import annotations

from dataclasses import dataclass

EXAMPLE_TEXT = "A fine example, and it arrived on time."
MODEL_ID_LINE = 'model_id = "{}"'  # the one line `finetune push` points at the repo
PACKAGE = "package:"  # as configuration/paths.py spells it (this module imports nothing of finetune's)


@dataclass(frozen=True)
class Base:
    """An adapter's base model: `name` as the config gave it (a Hub id, a path relative to the
    run directory, or `package:NAME/folder`), with its GGUF file and Hub revision if any."""

    name: str
    gguf_file: str | None = None
    revision: str | None = None

    def lines(self) -> str:
        """Code that sets `base_model` to a path or id from_pretrained takes."""
        if not self.name.startswith(PACKAGE):
            return f"base_model = {self.name!r}"
        # Resolved where the code runs: the package's folder on that machine.
        return f"""import importlib.util
import os

package, _, folder = {self.name!r}.removeprefix({PACKAGE!r}).partition("/")  # an installed Python package
base_model = os.path.join(list(importlib.util.find_spec(package).submodule_search_locations)[0], folder)"""

    def kwargs(self) -> str:
        given = {"gguf_file": self.gguf_file, "revision": self.revision}
        return "".join(f", {key}={value!r}" for key, value in given.items() if value)

    def note(self) -> str:
        where = [f"`{self.name}`"]
        if self.name.startswith(PACKAGE):
            package = self.name[len(PACKAGE):].split("/")[0]
            where.append(f"a folder of the installed Python package `{package}` (install it first)")
        if self.gguf_file:
            where.append(f"GGUF file `{self.gguf_file}`, which transformers dequantizes (needs the `gguf` package)")
        return (f" The directory holds a LoRA adapter: the code loads its base model ({'; '.join(where)}) and "
                "applies the adapter through peft, so `peft` must be installed.")


def usage(kind: str, base: Base | None, ref: str, labels: list[str] | None = None,
          prompt: tuple[str, str, str] = ("", "", "")) -> str:
    """`kind`: classification, seq2seq or causal; `base`: an adapter's base model (None: `ref` is a
    full model); `labels`: a classifier's names in id order; `prompt`: (template text before,
    source prefix, template text after) the input."""
    head = MODEL_ID_LINE.format(ref)
    if kind == "classification":
        code = _classifier(head, base, labels or [])
    else:
        code = _generator(head, kind, prompt, base)
    note = base.note() if base else ""
    return f"`model_id`: the directory relative to the run directory (run this from there), or the Hub repo.{note}\n\n```python\n{code}\n```"


def _classifier(head: str, base: Base | None, labels: list[str]) -> str:
    if base is None:
        return f"""from transformers import pipeline

{head}
classify = pipeline("text-classification", model=model_id)
print(classify([{EXAMPLE_TEXT!r}]))"""
    id2label = {i: name for i, name in enumerate(labels)}
    # An adapter directory has no config.json (transformers would take it for a full model),
    # so the label names come from here; load_adapter brings the trained head (modules_to_save).
    return f"""from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

{head}
{base.lines()}
id2label = {id2label!r}
model = AutoModelForSequenceClassification.from_pretrained(
    base_model{base.kwargs()}, id2label=id2label, label2id={{name: i for i, name in id2label.items()}})
model.load_adapter(model_id)
classify = pipeline("text-classification", model=model, tokenizer=AutoTokenizer.from_pretrained(model_id))
print(classify([{EXAMPLE_TEXT!r}]))"""


def _generator(head: str, kind: str, prompt: tuple[str, str, str], base: Base | None) -> str:
    before, prefix, after = prompt
    cls = "AutoModelForSeq2SeqLM" if kind == "seq2seq" else "AutoModelForCausalLM"
    # generation_config.json holds evaluation's decoding; an adapter's base model brings its own.
    load = f"""import torch
from transformers import {cls}, AutoTokenizer, GenerationConfig

{head}
{_model(cls, base)}
model.generation_config = GenerationConfig.from_pretrained(model_id)
"""
    if kind == "seq2seq":
        return load + f"""output = model.generate(**tokenizer([{prefix + EXAMPLE_TEXT!r}], return_tensors="pt"))
print(tokenizer.batch_decode(output, skip_special_tokens=True))"""
    # Tokenized in the pieces training saw: as one string (the text-generation pipeline's way),
    # byte-level BPE may split the template's edges differently and the answer drift.
    return load + f"""pieces = [{before!r}, {prefix + EXAMPLE_TEXT!r}, {after!r}]
ids = tokenizer(pieces[0])["input_ids"] + [i for p in pieces[1:] for i in tokenizer(p, add_special_tokens=False)["input_ids"]]
output = model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long))
print([text.strip() for text in tokenizer.batch_decode(output[:, len(ids):], skip_special_tokens=True)])"""


def _model(cls: str, base: Base | None) -> str:
    if base is None:
        return f"tokenizer = AutoTokenizer.from_pretrained(model_id)\nmodel = {cls}.from_pretrained(model_id)"
    return f"""{base.lines()}
tokenizer = AutoTokenizer.from_pretrained(model_id)
model = {cls}.from_pretrained(base_model{base.kwargs()})
model.load_adapter(model_id)"""
