"""The training loop's evaluation schedule: with eval.max_samples_during_training the
evaluations during training score a seeded sample (and pick the best model from it), the final
one scores the whole split, which is what eval_<split>.json reports."""

from __future__ import annotations

import json

import pytest

from conftest import main_in_process, sentiment_yaml, write_config


def test_evaluations_score_a_sample_and_the_end_the_whole_split(tmp_path, tiny_bert, sentiment_files,
                                                                 capsys, monkeypatch):
    run = tmp_path / "run"
    cfg = write_config(tmp_path / "run.yaml", sentiment_yaml(tiny_bert, sentiment_files) + f"""
training: {{output_dir: {run}, max_steps: 6, batch_size: 16, lr: 5.0e-3, log_every: 3, eval_every: 3}}
eval: {{max_samples_during_training: 40, best_metric: accuracy}}
""")
    code, out, err = main_in_process(["train", "--config", str(cfg)], capsys, monkeypatch)
    assert code == 0, err
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in records if r["type"] == "eval"]
    assert [(r["step"], r["rows"], r["samples"]) for r in evals] == [
        (3, "sample", 40), (6, "sample", 40), (6, "whole", 120)]
    # The last step runs the model over the split once: the sample's scores come from those rows.
    said = out + err
    assert said.count("scoring 40 rows") == 1 and said.count("scoring 120 rows") == 1, said
    assert evals[1]["eval_seconds"] == evals[2]["eval_seconds"]
    import numpy as np

    rows = [json.loads(line) for line in (run / "predictions_validation.jsonl").read_text().splitlines()]
    sample = np.random.default_rng(42).permutation(len(rows))[:40]  # the seeded sample (training.seed)
    assert evals[1]["accuracy"] == pytest.approx(sum(rows[i]["label"] == rows[i]["predicted"] for i in sample) / 40)
    final = json.loads((run / "eval_validation.json").read_text())
    assert final["samples"] == 120 and final["accuracy"] == evals[-1]["accuracy"]
    # Every log line carries the gradient norm before clipping (training.max_grad_norm: 1.0).
    norms = [r["grad_norm"] for r in records if r["type"] == "train"]
    assert len(norms) == 2 and all(0 < n < float("inf") for n in norms)
    best = json.loads((run / "best" / "best.json").read_text())
    assert best["value"] == max(r["accuracy"] for r in evals[:2])  # chosen on the sample only


def test_early_stopping_ends_the_run_keeps_the_best_and_says_why(tmp_path, tiny_bert, sentiment_files,
                                                                capsys, monkeypatch):
    run = tmp_path / "run"
    # A learning rate too small to change any prediction: the accuracy never improves.
    cfg = write_config(tmp_path / "run.yaml", sentiment_yaml(tiny_bert, sentiment_files) + f"""
training: {{output_dir: {run}, max_steps: 20, batch_size: 16, lr: 1.0e-12, log_every: 2, eval_every: 2,
           save_every: 2, early_stopping_patience: 2}}
eval: {{best_metric: accuracy}}
""")
    code, out, err = main_in_process(["train", "--config", str(cfg)], capsys, monkeypatch)
    assert code == 0, err
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if r["type"] == "eval"] == [2, 4, 6]
    assert max(r["step"] for r in records if r["type"] == "train") == 6
    stop = [r for r in records if r["type"] == "early_stop"]
    assert len(stop) == 1 and "did not improve" in stop[0]["reason"] and stop[0]["reason"] in out
    assert "early stopping" in (run / "README.md").read_text()
    assert json.loads((run / "best" / "best.json").read_text())["step"] == 2
    assert (run / "model").is_dir() and (run / "eval_validation.json").is_file()
    # The count travels with the checkpoint, so a resumed run stops where this one did.
    state = json.loads((run / "checkpoints" / "step-000006" / "train_state.json").read_text())
    assert state["evals_without_improvement"] == 2


# Each case: training settings of a first run and, if given, of a `--resume` of it. Steps per
# epoch: 48 rows / batch 8 = 6 micro-batches (3 steps with gradient_accumulation_steps 2).
SCHEDULES = {
    "eval-every-on-epoch-ends": ({"epochs": 2, "eval_every": 3}, None),
    "before-training-and-epochs": ({"epochs": 2, "eval_every": 6, "eval_before_training": True}, None),
    "eval-every-just-before-the-last-step": ({"max_steps": 7, "eval_every": 6}, None),
    "accumulation-epoch-ends": ({"epochs": 2, "eval_every": 2, "gradient_accumulation_steps": 2}, None),
    "early-stop-on-an-epoch-end": ({"epochs": 3, "eval_every": 3, "early_stopping_patience": 1, "lr": 1.0e-12}, None),
    "resume-at-an-evaluated-epoch-end": ({"max_steps": 6, "eval_every": 6, "save_every": 6},
                                         {"max_steps": 12, "eval_every": 6, "save_every": 6}),
    "resume-the-finished-run": ({"max_steps": 6, "save_every": 3, "eval_every": 3},
                                {"max_steps": 6, "save_every": 3, "eval_every": 3}),
    "resume-after-before-training": ({"max_steps": 4, "save_every": 2, "eval_every": 2, "eval_before_training": True},
                                     {"max_steps": 8, "save_every": 2, "eval_every": 3, "eval_before_training": True}),
    "resume-sampled-run": ({"max_steps": 6, "save_every": 6, "eval_every": 3, "sample": 8},
                           {"max_steps": 9, "save_every": 6, "eval_every": 3, "sample": 8}),
}


@pytest.mark.parametrize("name", SCHEDULES)
def test_no_split_is_evaluated_twice_at_one_step(tmp_path, tiny_bert, sentiment_files, capsys, monkeypatch, name):
    run = tmp_path / "run"
    for settings, extra in ((SCHEDULES[name][0], []), (SCHEDULES[name][1], ["--resume"])):
        if settings is None:
            continue
        settings = dict(settings)
        sample = settings.pop("sample", None)
        training = {"output_dir": str(run), "batch_size": 8, "log_every": 100, **settings}
        cfg = write_config(tmp_path / "run.yaml", sentiment_yaml(tiny_bert, sentiment_files).replace(
            "  max_length: 32\n", "  max_length: 16\n  max_train_samples: 48\n  max_eval_samples: 16\n")
            + f"training: {json.dumps(training)}\n"
            + f"eval: {json.dumps({'best_metric': 'accuracy', 'max_samples_during_training': sample})}\n")
        code, _, err = main_in_process(["train", "--config", str(cfg), *extra], capsys, monkeypatch)
        assert code == 0, err
        records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        evaluated = [(r["split"], r["step"], r.get("rows")) for r in records if r["type"] == "eval"]
        assert evaluated and len(evaluated) == len(set(evaluated)), evaluated
        steps = [step for _, step, rows in evaluated if rows != "whole"]  # the whole split is scored once, last
        assert steps == sorted(set(steps)), evaluated
