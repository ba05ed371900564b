"""The one inference loop: batches through the model, rows gathered across processes in data
order. Training-time evaluation, `finetune eval` and `finetune predict` all run it; tasks only
say what one batch gives (`Task.scored_batch`, `Task.answer_batch`) and how rows are scored."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable


def run_batches(model, loader, per_batch: Callable[[Any, Any], list], *, gather=None, device=None,
                progress: str | None = None) -> list:
    """`per_batch(model, batch)` on every batch, in eval mode and without gradients; its rows
    concatenated. `gather` joins one batch's rows across processes (dropping the duplicates a
    distributed sampler pads the last shard with); `device` moves batches a plain loader yields.
    `progress`: the label of a progress bar, shown on a terminal only (a log file gets no bar)."""
    import torch
    from accelerate.utils import send_to_device
    from tqdm.auto import tqdm

    was_training = model.training
    model.eval()
    rows: list = []
    batches = tqdm(loader, desc=progress, leave=False, disable=None) if progress else loader
    with torch.no_grad():
        for batch in batches:
            if device is not None:
                batch = send_to_device(batch, device)
            found = per_batch(model, batch)
            rows.extend(gather(found) if gather else found)
    model.train(was_training)
    return rows


@dataclass
class EvalLoaders:
    """A split as the evaluation reads it: teacher-forced batches (labels, for the loss) and,
    for generating tasks, batches of prompts sorted longest first."""

    scored: Any
    prompts: Any = None

    def prepared(self, accelerator) -> "EvalLoaders":
        """Sharded across processes, batches on the accelerator's device."""
        prompts = accelerator.prepare(self.prompts) if self.prompts is not None else None
        return EvalLoaders(accelerator.prepare(self.scored), prompts)


def evaluate(task, model, loaders: EvalLoaders, raw, accelerator, tokenizer,
             progress: bool = False) -> tuple[dict, list[dict]]:
    """Metrics on one split and one prediction record per example (complete on every process)."""
    return task.score(*infer(task, model, loaders, accelerator, tokenizer, progress), raw)


def infer(task, model, loaders: EvalLoaders, accelerator, tokenizer, progress: bool = False) -> tuple[list, list]:
    """The split's rows before scoring: teacher-forced rows in data order, and generated ones
    (each with its row's index) for a generating task."""

    def gather(rows):
        return accelerator.gather_for_metrics(rows, use_gather_object=True)

    def label(text):
        return text if progress and accelerator.is_local_main_process else None

    scored = run_batches(model, loaders.scored, task.scored_batch, gather=gather, progress=label("Scoring"))
    answered = []
    if loaders.prompts is not None:
        plain = accelerator.unwrap_model(model)  # generate() is not on the DDP wrapper
        answered = run_batches(
            plain, loaders.prompts, lambda m, b: task.answer_batch(m, b, tokenizer), gather=gather,
            progress=label("Generating"),
        )
    return scored, answered


def rows_of(positions: list[int], scored: list, answered: list) -> tuple[list, list]:
    """The rows at `positions` of a split out of `infer`'s rows for the whole split, numbered as
    a split of those rows alone: a sample's scores without running the model over it again."""
    renumbered = {row: i for i, row in enumerate(positions)}
    return ([scored[row] for row in positions],
            [{**r, "index": renumbered[r["index"]]} for r in answered if r["index"] in renumbered])


def predict(task, model, tokenizer, texts: list[str]) -> list[dict]:
    """`finetune predict` on one process: one answer per text, in the order given."""
    loader = make_prompt_loader(task, tokenizer, task.prompt_rows(task.user_inputs(texts), tokenizer), model.config)
    device = next(model.parameters()).device
    rows = run_batches(model, loader, lambda m, b: task.answer_batch(m, b, tokenizer), device=device)
    return task.answers(texts, rows)


def make_generation_loader(task, tokenizer, raw, model_config):
    """The split's prompts for a task that generates (None for one that does not), sorted longest
    first: few pad tokens, and an early out-of-memory if any. Each row carries its index so the
    answers go back in data order."""
    if not task.generates:
        return None
    rows = task.prompt_rows(task.sources(raw), tokenizer)
    return make_prompt_loader(task, tokenizer, sorted(rows, key=lambda r: -len(r["input_ids"])), model_config)


def make_prompt_loader(task, tokenizer, rows: list[dict], model_config):
    """Batches of prompts (texts for a classifier, token ids for a generator), in the given order."""
    from torch.utils.data import DataLoader

    return DataLoader(rows, batch_size=task.eval_cfg.batch_size, shuffle=False,
                      collate_fn=task.prompt_collator(tokenizer, model_config))
