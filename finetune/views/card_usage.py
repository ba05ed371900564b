"""The model card's "How to use": Python that loads the model directory with transformers alone
and answers EXAMPLE_TEXT as `finetune predict` would (tests run it as written).

It loads `model_id = "<ref>"`: the directory relative to the run (run it from the run
directory), or the Hub repo id in the card `finetune push` uploads. transformers 5 has no
text2text-generation, summarization or translation pipeline: encoder-decoder models call
generate() themselves, and so do decoder-only ones, to tokenize their prompt as training did."""

from __future__ import annotations

EXAMPLE_TEXT = "A fine example, and it arrived on time."
MODEL_ID_LINE = 'model_id = "{}"'  # the one line `finetune push` points at the repo


def usage(kind: str, adapter: bool, ref: str, labels: list[str] | None = None,
          prompt: tuple[str, str, str] = ("", "", "")) -> str:
    """`kind`: classification, seq2seq or causal; `labels`: a classifier's names in id order;
    `prompt`: (template text before, source prefix, template text after) the input."""
    head = MODEL_ID_LINE.format(ref)
    if kind == "classification":
        code = _classifier(head, adapter, labels or [])
    else:
        code = _generator(head, kind, prompt)
    note = (" The directory holds a LoRA adapter: transformers loads its base model (named in "
            "`adapter_config.json`) and applies it through peft, so `peft` must be installed."
            if adapter else "")
    return f"`model_id`: the directory relative to the run directory (run this from there), or the Hub repo.{note}\n\n```python\n{code}\n```"


def _classifier(head: str, adapter: bool, labels: list[str]) -> str:
    if not adapter:
        return f"""from transformers import pipeline

{head}
classify = pipeline("text-classification", model=model_id)
print(classify([{EXAMPLE_TEXT!r}]))"""
    id2label = {i: name for i, name in enumerate(labels)}
    # An adapter directory has no config.json (transformers would take it for a full model),
    # so the label names come from here; AutoPeftModelForSequenceClassification takes them too.
    return f"""from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

{head}
id2label = {id2label!r}
model = AutoModelForSequenceClassification.from_pretrained(
    model_id, id2label=id2label, label2id={{name: i for i, name in id2label.items()}})
classify = pipeline("text-classification", model=model, tokenizer=AutoTokenizer.from_pretrained(model_id))
print(classify([{EXAMPLE_TEXT!r}]))"""


def _generator(head: str, kind: str, prompt: tuple[str, str, str]) -> str:
    before, prefix, after = prompt
    cls = "AutoModelForSeq2SeqLM" if kind == "seq2seq" else "AutoModelForCausalLM"
    # generation_config.json holds evaluation's decoding; an adapter's base model brings its own.
    load = f"""import torch
from transformers import {cls}, AutoTokenizer, GenerationConfig

{head}
tokenizer = AutoTokenizer.from_pretrained(model_id)
model = {cls}.from_pretrained(model_id)
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
