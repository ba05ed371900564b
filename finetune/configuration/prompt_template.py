"""`data.prompt_template`: the text a decoder-only model reads before its target. It must place the
source and may only name the fields finetune fills in; checked when the config is read."""

from __future__ import annotations

import string


TEMPLATE_FIELDS = ("source", "source_lang", "target_lang")


def check_template(template: str) -> None:
    """A prompt template must place the source and may only name fields we fill in."""
    try:
        names = [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
    except ValueError as exc:
        raise ValueError(f"data.prompt_template: {exc}; write literal braces as {{{{ and }}}}") from exc
    unknown = [n for n in names if n not in TEMPLATE_FIELDS]
    if unknown:
        raise ValueError(
            f"data.prompt_template: unknown placeholder {{{unknown[0]}}}; use {{source}}, "
            "{source_lang} or {target_lang}"
        )
    if "source" not in names:
        raise ValueError("data.prompt_template: must contain {source}, where the input text goes")
