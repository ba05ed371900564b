"""Running a model over data (one inference loop), `finetune eval`, `finetune predict`, metrics."""
