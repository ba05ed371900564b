#!/usr/bin/env bash
# A small T5 trained from scratch (t5-small tokenizer, random weights) on Multi30K en -> de:
# BLEU on val after the run. The shipped config is sized for under an hour on 2 CPU cores;
# EPOCHS / EVAL_ROWS shrink it further:   EPOCHS=1 EVAL_ROWS=200 scripts/recipes/multi30k_t5_scratch.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
SHARED=${SHARED:-../shared}
OUT=${OUT:-runs/multi30k-t5-scratch}
python scripts/data/multi30k_to_jsonl.py "$SHARED/data/multi30k" runs/data/multi30k
args=(training.output_dir="$OUT" model.name_or_path="$SHARED/models/t5-small-tokenizer"
      data.max_eval_samples="${EVAL_ROWS:-1014}")
[[ -n "${EPOCHS:-}" ]] && args+=(training.epochs="$EPOCHS")
[[ -n "${TRAIN_ROWS:-}" ]] && args+=(data.max_train_samples="$TRAIN_ROWS")
python -m finetune train --config configs/multi30k-t5-scratch.yaml --overwrite "${args[@]}" "$@"
python scripts/recipes/eval_summary.py "$OUT"
