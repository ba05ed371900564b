"""A tokenizer learnt from the training split (`model.tokenizer.train`) for a model trained from
scratch. A small vocabulary of the run's own text (8k pieces for Multi30K's English and German,
against t5-small's 32k) makes the embeddings and softmax a fraction of their size, which is what
lets a from-scratch translator train on a CPU.

Built with Hugging Face `tokenizers`, cached like tokenized data (keyed on the training texts
and the settings), and copied into the run directory, from which `--resume` and every
saved model read it back unchanged.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Iterable

PAD, EOS, UNK, BOS = "<pad>", "</s>", "<unk>", "<s>"
SPECIALS = [PAD, EOS, UNK, BOS]  # ids 0..3: T5's convention (pad 0, eos 1, unk 2)


def train_tokenizer(texts: Iterable[str], *, vocab_size: int, kind: str, min_frequency: int,
                    append_eos: bool):
    """`kind`: `bpe` (byte-level, never an unknown character) or `unigram` (SentencePiece's
    model). `append_eos`: encoder-decoder models expect `</s>` after every sequence, as T5's
    own tokenizer adds it; decoder-only tasks place EOS themselves."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    if kind == "bpe":
        tokenizer = Tokenizer(models.BPE())
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tokenizer.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=SPECIALS,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
        )
    else:
        tokenizer = Tokenizer(models.Unigram())
        tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
        tokenizer.decoder = decoders.Metaspace()
        trainer = trainers.UnigramTrainer(
            vocab_size=vocab_size, special_tokens=SPECIALS, unk_token=UNK, show_progress=False,
        )
    tokenizer.normalizer = normalizers.NFKC()
    tokenizer.train_from_iterator(texts, trainer)
    if append_eos:
        eos_id = tokenizer.token_to_id(EOS)
        tokenizer.post_processor = processors.TemplateProcessing(
            single=f"$A {EOS}", pair=f"$A {EOS} $B {EOS}", special_tokens=[(EOS, eos_id)]
        )
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, pad_token=PAD, eos_token=EOS,
                                   unk_token=UNK, bos_token=BOS)


def cached_tokenizer(texts_of, *, fingerprint: str, settings: dict, cache: Path, append_eos: bool):
    """The tokenizer for these settings and this data: from the cache, or trained and stored.
    `texts_of()` yields the training texts; it is only called on a cache miss."""
    from transformers import AutoTokenizer

    material = json.dumps({"data": fingerprint, "append_eos": append_eos, **settings}, sort_keys=True)
    entry = cache / "tokenizers" / hashlib.sha256(material.encode()).hexdigest()[:16]
    if not (entry / "tokenizer.json").is_file():
        tokenizer = train_tokenizer(texts_of(), append_eos=append_eos, **settings)
        from finetune.storage.run_dir import remove

        tmp = entry.with_name(entry.name + ".tmp")
        remove(tmp)  # our own temporary name, left by a crash (a symlink there: only the link)
        tokenizer.save_pretrained(tmp)
        remove(entry)  # an entry without its tokenizer.json is a broken one (or a link: only the link)
        tmp.rename(entry)  # whole or absent: a crash mid-write leaves no half entry
    return AutoTokenizer.from_pretrained(entry)


def model_fields(tokenizer, encoder_decoder: bool) -> dict:
    """Model config fields that must follow a trained vocabulary."""
    fields = {"vocab_size": len(tokenizer), "pad_token_id": tokenizer.pad_token_id,
              "eos_token_id": tokenizer.eos_token_id, "bos_token_id": tokenizer.bos_token_id}
    if encoder_decoder:
        fields["decoder_start_token_id"] = tokenizer.pad_token_id  # T5 and BART start from pad
    return fields


def run_tokenizer(cfg, task, train_ds, out: Path, resuming: bool, encoder_decoder: bool):
    """The run's learnt tokenizer: a resumed run reads back the one it trained with (in the run
    directory); a new run takes it from the cache or trains it on the training split."""
    from transformers import AutoTokenizer

    from finetune.data.splits import cache_root
    from finetune.storage import run_dir as rd

    saved = out / rd.TOKENIZER_DIR
    if resuming and (saved / "tokenizer.json").is_file():
        return AutoTokenizer.from_pretrained(saved)
    t = cfg.model.tokenizer
    settings = {"vocab_size": t.vocab_size, "kind": t.type, "min_frequency": t.min_frequency}
    # Keyed on the texts themselves (a second read costs about a second for Multi30K): a moved or
    # touched file reuses the entry, a changed row or column makes a new one.
    digest = hashlib.sha256()
    for text in task.corpus(train_ds):
        digest.update(text.encode("utf-8") + b"\0")
    fingerprint = digest.hexdigest()
    return cached_tokenizer(lambda: task.corpus(train_ds), fingerprint=fingerprint, settings=settings,
                            cache=cache_root(cfg.data), append_eos=encoder_decoder)
