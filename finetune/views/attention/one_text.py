"""What a model reads for one text, and its attention maps over it. A classifier reads the
text; a generation model reads its prompt (the run's template) followed by a target: the
given `--target` text, or else the model's own generation with the run's decoding settings.
T5's encoder reads the prompt and its decoder the target."""

from __future__ import annotations

import torch

from finetune.errors import ConfigError
from finetune.views.attention.maps import model_attention
from finetune.views.sparse_attention_maps import SPARSE_FAMILIES


def text_attention(task, tokenizer, model, text: str, target: str | None) -> tuple[dict, dict]:
    """({kind: [layer, head, query, key] array}, {kind: (query tokens, key tokens)})."""
    if not task.generates or model.config.model_type in SPARSE_FAMILIES:  # LED: its sparse encoder only
        if target is not None:
            raise ConfigError("--target: the maps of this run cover TEXT alone (a classifier, or LED's "
                              "encoder); drop --target")
        batch = tokenizer([text], truncation=True, max_length=task.longest_input(), return_tensors="pt")
        return _maps(model, tokenizer, batch), {"self": (_tokens(tokenizer, batch["input_ids"]),) * 2}
    prompt = torch.tensor([task.prompt_rows([text], tokenizer)[0]["input_ids"]])
    answer = _target_ids(task, tokenizer, model, prompt, target)
    if task.kind == "seq2seq":
        batch = {"input_ids": prompt, "attention_mask": torch.ones_like(prompt), "decoder_input_ids": answer}
        source, produced = _tokens(tokenizer, prompt), _tokens(tokenizer, answer)
        tokens = {"encoder": (source, source), "decoder": (produced, produced), "cross": (produced, source)}
        return _maps(model, tokenizer, batch), tokens
    whole = torch.cat([prompt, answer], dim=1)
    batch = {"input_ids": whole, "attention_mask": torch.ones_like(whole)}
    return _maps(model, tokenizer, batch), {"self": (_tokens(tokenizer, whole),) * 2}


def _target_ids(task, tokenizer, model, prompt, target: str | None):
    """[1, length]: for seq2seq, the decoder's inputs (start token, then the target)."""
    start = model.config.decoder_start_token_id if task.kind == "seq2seq" else None
    if target is not None:
        ids = tokenizer(text_target=target, add_special_tokens=task.kind == "seq2seq")["input_ids"]
        return torch.tensor([([start] if start is not None else []) + ids], dtype=torch.long)  # ids may be empty
    settings = task.arch.generation_config(model.config, tokenizer)
    with torch.no_grad():
        generated = model.generate(input_ids=prompt, attention_mask=torch.ones_like(prompt),
                                   generation_config=settings)
    return generated if task.kind == "seq2seq" else generated[:, prompt.shape[1]:]


def _maps(model, tokenizer, batch) -> dict:
    return {kind: probs[:, 0].numpy() for kind, probs in model_attention(model, tokenizer, batch).items()}


def _tokens(tokenizer, ids) -> list[str]:
    return tokenizer.convert_ids_to_tokens(ids[0].tolist())
