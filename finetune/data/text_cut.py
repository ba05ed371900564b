"""Texts are cut by characters before they are tokenized. A fast tokenizer reads the whole
string and only then truncates, keeping ids, offsets and words for every token on the way: one
row of tens of MB cost gigabytes to keep `max_length` tokens. Cutting first keeps memory bounded
by the token limit, whatever the row.

The cut is generous: no tokenizer here makes a token of more than a few dozen characters, so the
tokens kept are the ones the whole text would give. (Only text that a tokenizer's normaliser
mostly drops, such as a run of thousands of spaces, could tokenize to fewer tokens than it would
whole.)
"""

from __future__ import annotations

CHARS_PER_TOKEN = 64  # a bound on characters per token, far above any real text's 3-6


def char_limit(max_tokens: int) -> int:
    return max_tokens * CHARS_PER_TOKEN


def cut(texts: list[str], max_tokens: int) -> list[str]:
    """Each text cut to what `max_tokens` tokens can hold (short ones, nearly all, as they are)."""
    limit = char_limit(max_tokens)
    return [t[:limit] if isinstance(t, str) and len(t) > limit else t for t in texts]
