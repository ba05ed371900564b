"""`finetune plan CONFIG`: the run's plan from its config, read like `train` reads it (recipe
names and key=value overrides included); the training split is tokenized (into the same cache
`train` reads) to count its tokens, and the model is built on the meta device."""

from __future__ import annotations

import os


def make_plan(cfg, processes: int | None = None):
    import torch

    from finetune.model.load import load_model_config
    from finetune.planning.estimate import estimate
    from finetune.planning.memory import resident_bytes
    from finetune.tasks import get_task

    model_config = load_model_config(cfg.model)
    task = get_task(cfg, model_config)
    lengths, model_config = _lengths(cfg, task, model_config)
    device = torch.accelerator.current_accelerator() or torch.device("cpu")
    processes = processes or int(os.environ.get("WORLD_SIZE", "1"))
    return estimate(cfg, model_config, task, lengths, processes=processes, device_type=device.type,
                    runtime_bytes=resident_bytes() if device.type == "cpu" else 0)


def _lengths(cfg, task, model_config):
    """The training split's rows and tokens, as `train` will tokenize them; with a tokenizer
    learnt at train time, the config's maximum lengths instead (an upper bound)."""
    from finetune.data.length_limits import check_lengths
    from finetune.data.splits import load_splits
    from finetune.model.load import load_tokenizer
    from finetune.planning.estimate import Lengths

    check_lengths(cfg, task.kind, model_config)
    splits = load_splits(cfg.data, cfg.training.seed, check=task.check_split)
    task.fit_to_data(splits)
    train = splits[cfg.data.train_split]
    d = cfg.data
    eval_rows = len(splits[d.eval_split]) if d.eval_split in splits else None
    if cfg.model.tokenizer.train:
        from finetune.model.load import with_fields

        model_config = with_fields(model_config, vocab_size=cfg.model.tokenizer.vocab_size)
        longest = {"classification": d.max_length, "causal": d.max_source_length + d.max_target_length,
                   "seq2seq": d.max_source_length}[task.kind]
        target = d.max_target_length if task.kind == "seq2seq" else 0
        return Lengths(rows=len(train), tokens=len(train) * (longest + target), longest=longest,
                       longest_target=target, exact=False, eval_rows=eval_rows), model_config
    tokenizer = load_tokenizer(cfg.model)
    task.prepare_tokenizer(tokenizer)
    return Lengths.of_split(task.encode(train, d.train_split, tokenizer), task.kind, eval_rows), model_config
