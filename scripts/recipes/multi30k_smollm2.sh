#!/usr/bin/env bash
# SmolLM2-135M-Instruct (GGUF) + LoRA, English -> German on Multi30K: BLEU and chrF on val
# before and after fine-tuning. Sizes come from the environment so a CPU can run a slice:
#   TRAIN_ROWS=2000 EVAL_ROWS=200 scripts/recipes/multi30k_smollm2.sh     (defaults: full train, 200 val)
# SHARED points at the shared assets (default ../shared).
set -euo pipefail
cd "$(dirname "$0")/../.."
SHARED=${SHARED:-../shared}
OUT=${OUT:-runs/multi30k-smollm2-lora}
python scripts/data/multi30k_to_jsonl.py "$SHARED/data/multi30k" runs/data/multi30k
args=(training.output_dir="$OUT" data.max_eval_samples="${EVAL_ROWS:-200}")
[[ -n "${TRAIN_ROWS:-}" ]] && args+=(data.max_train_samples="$TRAIN_ROWS")
[[ -n "${MAX_STEPS:-}" ]] && args+=(training.max_steps="$MAX_STEPS")
python -m finetune train --config configs/multi30k-smollm2-lora.yaml --overwrite "${args[@]}" "$@"
python scripts/recipes/eval_summary.py "$OUT"
