#!/usr/bin/env bash
# SmolLM2-135M-Instruct (GGUF) + LoRA on SciTLDR: ROUGE on dev (all references) before and
# after fine-tuning.   TRAIN_ROWS=500 EVAL_ROWS=100 scripts/recipes/scitldr_smollm2.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
SHARED=${SHARED:-../shared}
OUT=${OUT:-runs/scitldr-smollm2-lora}
args=(training.output_dir="$OUT" data.max_eval_samples="${EVAL_ROWS:-200}"
      data.files.train="$SHARED/data/scitldr/train.jsonl" data.files.validation="$SHARED/data/scitldr/dev.jsonl")
[[ -n "${TRAIN_ROWS:-}" ]] && args+=(data.max_train_samples="$TRAIN_ROWS")
[[ -n "${MAX_STEPS:-}" ]] && args+=(training.max_steps="$MAX_STEPS")
python -m finetune train --config configs/scitldr-smollm2-lora.yaml --overwrite "${args[@]}" "$@"
python scripts/recipes/eval_summary.py "$OUT"
