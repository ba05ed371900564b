"""Sweep the SST-2 full fine-tuning recipe's hyperparameters on a GPU, several trials at once.

Each trial repeats what `finetune train` does for `finetune/recipes/sst2-minilm-full.yaml` (the
same epoch sampler, AdamW groups, linear warmup/decay schedule, gradient clipping, max_length 64,
fp32) in a loop that needs only torch and transformers, so it runs on a lent GPU machine where
finetune's own dependencies (datasets, evaluate, pydantic) are not installed. It picks values;
the recipe's recorded score always comes from `finetune train` itself (scripts/recipes/reproduce.py).

    python scripts/sweeps/sst2_sweep.py --model DIR --data DIR --out results.jsonl \
        --trial "lr=1e-4 epochs=2" --trial "lr=5e-5 epochs=3 seed=7" ...

Prints and appends one JSON line per evaluation: the trial, its step, and dev accuracy; then each
setting's final accuracy over its seeds. With no --trial it only summarises --out.
Results of the sweep behind the recipe: docs/sweeps/sst2-minilm-full.jsonl (docs/results.md, "What the
recipes reach").
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

# The recipe's values; a trial overrides some of them.
RECIPE = {"lr": 5e-5, "epochs": 2, "bs": 32, "warmup": 0.06, "wd": 0.01, "smoothing": 0.0,
          "scheduler": "linear", "seed": 42, "dropout": None, "eval_every": 700}
MAX_LENGTH = 64  # the recipe's data.max_length


def parse_trial(text: str) -> dict:
    trial = dict(RECIPE)
    for part in text.split():
        key, value = part.split("=", 1)
        if key not in trial:
            raise SystemExit(f"--trial: unknown key '{key}'; known: {', '.join(RECIPE)}")
        trial[key] = value if key == "scheduler" else float(value)
    for key in ("epochs", "bs", "seed", "eval_every"):
        trial[key] = int(trial[key])
    return trial


def read_tsv(path: Path) -> tuple[list[str], list[int]]:
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    return [r["text"] for r in rows], [int(r["label"]) for r in rows]


def train_one(trial: dict, model_dir: str, data_dir: Path, out: Path) -> None:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, get_scheduler, logging

    logging.set_verbosity_error()  # the new head's "newly initialized" report, once per trial

    from finetune.training.optimizer import parameter_groups
    from finetune.training.sampling import EpochSampler

    torch.manual_seed(trial["seed"])
    device = "cuda" if torch.cuda.is_available() else "cpu"
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    extra = {} if trial["dropout"] is None else {"classifier_dropout": trial["dropout"]}
    model = AutoModelForSequenceClassification.from_pretrained(
        model_dir, num_labels=2, dtype=torch.float32, **extra).to(device)
    texts, labels = read_tsv(data_dir / "train.tsv")
    dev_texts, dev_labels = read_tsv(data_dir / "dev.tsv")
    ids = tokenizer(texts, truncation=True, max_length=MAX_LENGTH)["input_ids"]
    dev = tokenizer(dev_texts, truncation=True, max_length=MAX_LENGTH, padding=True, return_tensors="pt").to(device)
    dev_y = torch.tensor(dev_labels, device=device)

    optimizer = torch.optim.AdamW(parameter_groups(model, trial["wd"]), lr=trial["lr"], fused=device == "cuda")
    steps_per_epoch = -(-len(ids) // trial["bs"])
    total = steps_per_epoch * trial["epochs"]
    scheduler = get_scheduler(trial["scheduler"], optimizer, int(trial["warmup"] * total), total)
    sampler = EpochSampler([len(x) for x in ids], trial["bs"], trial["seed"], len(ids))
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=trial["smoothing"])

    def evaluate(step: int) -> None:
        model.eval()
        with torch.no_grad():
            predicted = torch.cat([model(**{k: v[i:i + 256] for k, v in dev.items()}).logits.argmax(-1)
                                   for i in range(0, len(dev_y), 256)])
        model.train()
        line = {"trial": trial, "step": step, "of": total, "accuracy": round((predicted == dev_y).float().mean().item(), 4)}
        print(json.dumps(line), flush=True)
        with out.open("a") as f:
            f.write(json.dumps(line) + "\n")

    step = 0
    model.train()
    for epoch in range(trial["epochs"]):
        sampler.set_epoch(epoch)
        order = list(sampler)
        for start in range(0, len(order), trial["bs"]):
            rows = order[start:start + trial["bs"]]
            padded = tokenizer.pad({"input_ids": [ids[i] for i in rows]}, return_tensors="pt").to(device)
            y = torch.tensor([labels[i] for i in rows], device=device)
            loss = loss_fn(model(**padded).logits, y)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            if step % trial["eval_every"] == 0 and step != total:
                evaluate(step)
    evaluate(step)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument("--data", type=Path, required=True, help="folder with train.tsv and dev.tsv (text, label)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--trial", action="append", default=[])
    parser.add_argument("--repeat-best", type=int, default=0, metavar="K",
                        help="then rerun the K best settings (by final accuracy so far in --out) with --seeds")
    parser.add_argument("--seeds", default="7,8,9")
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)  # a child runs one trial
    args = parser.parse_args()
    trials = [parse_trial(t) for t in args.trial]
    if args.one:
        train_one(trials[0], args.model, args.data, args.out)
        return
    if args.trial:  # none: only summarise --out
        run_all(args, args.trial)
    if args.repeat_best:
        best = ranked(args.out)[: args.repeat_best]
        run_all(args, [f"{setting} seed={seed}" for setting, _, _ in best for seed in args.seeds.split(",")])
    for setting, mean, finals in ranked(args.out):
        print(f"{mean:.4f} mean final over {len(finals)} seeds "
              f"({min(finals):.4f}-{max(finals):.4f})  {setting or 'the recipe'}", flush=True)


def run_all(args, trials: list[str]) -> None:
    started = time.time()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    children = [subprocess.Popen([sys.executable, __file__, "--one", "--model", args.model, "--data", str(args.data),
                                  "--out", str(args.out), "--trial", text], env=env) for text in trials]
    failed = sum(child.wait() != 0 for child in children)
    print(f"{len(children)} trials, {failed} failed, {time.time() - started:.0f} s", flush=True)


def ranked(out: Path) -> list[tuple[str, float, list[float]]]:
    """(setting, mean final accuracy, each seed's) for every setting in `out`, best mean first."""
    means = [(setting, sum(finals) / len(finals), finals) for setting, finals in by_setting(out).items()]
    return sorted(means, key=lambda entry: -entry[1])


def by_setting(out: Path) -> dict[str, list[float]]:
    """Final dev accuracy of each setting (every key but the seed), one entry per seed."""
    finals: dict[str, list[float]] = {}
    for line in out.read_text().splitlines() if out.exists() else []:
        result = json.loads(line)
        if result["step"] == result["of"]:
            setting = " ".join(f"{k}={v}" for k, v in result["trial"].items() if k not in ("seed", "eval_every") and RECIPE[k] != v)
            finals.setdefault(setting, []).append(result["accuracy"])
    return finals


if __name__ == "__main__":
    main()
