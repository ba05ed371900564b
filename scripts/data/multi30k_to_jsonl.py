"""Pair Multi30K's gzip text files (line i of .en with line i of .de) into JSON lines that
`data.files` can read: {"en": ..., "de": ...} per row.

    python scripts/data/multi30k_to_jsonl.py [SRC_DIR] [OUT_DIR]

SRC_DIR defaults to ../shared/data/multi30k, OUT_DIR to runs/data/multi30k (outside git:
the data is not ours to ship). Writes train.jsonl and validation.jsonl.
"""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path

SPLITS = {"train": "train", "val": "validation"}


def convert(src: Path, out: Path) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = {}
    for name, split in SPLITS.items():
        with gzip.open(src / f"{name}.en.gz", "rt", encoding="utf-8") as en, \
                gzip.open(src / f"{name}.de.gz", "rt", encoding="utf-8") as de:
            english, german = en.read().splitlines(), de.read().splitlines()
        if len(english) != len(german):
            raise SystemExit(f"{src}/{name}: {len(english)} English lines but {len(german)} German")
        target = out / f"{split}.jsonl"
        with open(target, "w", encoding="utf-8") as handle:
            for e, g in zip(english, german):
                handle.write(json.dumps({"en": e.strip(), "de": g.strip()}, ensure_ascii=False) + "\n")
        written[split] = target
    return written


if __name__ == "__main__":
    src = Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/data/multi30k")
    out = Path(sys.argv[2] if len(sys.argv) > 2 else "runs/data/multi30k")
    for split, path in convert(src, out).items():
        print(f"{split}: {path}")
