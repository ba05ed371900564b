"""training.ema_decay: evaluations and saved models hold an exponential moving average of the
trainable weights; training goes on from the raw ones, and a checkpoint keeps both."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import main_in_process, sentiment_yaml, write_config

from finetune.training.weight_average import WeightAverage


def _model():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.Linear(3, 1))
    model[0].requires_grad_(False)  # frozen, as a LoRA base: not averaged, not copied
    return model


def test_the_average_follows_the_trainable_weights_with_warm_up():
    model = _model()
    average = WeightAverage(model, decay=0.9)
    assert set(average.average) == {"1.weight", "1.bias"}
    start = model[1].weight.detach().clone()
    with torch.no_grad():
        model[1].weight.add_(1.0)
    average.update()  # decay at update 0 is min(0.9, 1/10): the average moves 90% of the way
    assert torch.allclose(average.average["1.weight"], start + 0.9)
    for _ in range(200):
        average.update()  # warm-up is long over: decay 0.9, the average converges to the weights
    assert torch.allclose(average.average["1.weight"], start + 1.0, atol=1e-6)


def test_applied_swaps_the_average_in_and_the_raw_weights_back():
    model = _model()
    average = WeightAverage(model, decay=0.5)
    raw = model[1].weight.detach().clone()
    average.average["1.weight"] += 2.0
    with average.applied():
        assert torch.equal(model[1].weight, raw + 2.0)
    assert torch.equal(model[1].weight, raw)
    with pytest.raises(RuntimeError), average.applied():
        raise RuntimeError("an evaluation that fails")
    assert torch.equal(model[1].weight, raw)  # restored even then


def _train(tmp_path, tiny_bert, sentiment_files, capsys, monkeypatch, name, extra=""):
    run = tmp_path / name
    cfg = write_config(tmp_path / f"{name}.yaml", sentiment_yaml(tiny_bert, sentiment_files) + f"""
training: {{output_dir: {run}, max_steps: 8, batch_size: 16, lr: 3.0e-2, log_every: 4, eval_every: 4,
           save_every: 4, eval_each_epoch: false{extra}}}
eval: {{best_metric: accuracy}}
""")
    code, _, err = main_in_process(["train", "--config", str(cfg)], capsys, monkeypatch)
    assert code == 0, err
    evals = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return run, {r["step"]: r for r in evals if r["type"] == "eval"}


def test_saved_models_and_checkpoints_score_what_training_scored(tmp_path, tiny_bert, sentiment_files,
                                                                capsys, monkeypatch):
    from safetensors.torch import load_file

    from finetune.configuration.loading import load_config
    from finetune.saved.saved_model import load_run_model

    run, evals = _train(tmp_path, tiny_bert, sentiment_files, capsys, monkeypatch, "ema", ", ema_decay: 0.9")
    key = "classifier.weight"
    final = load_file(run / "model" / "model.safetensors")[key]
    for step in ("step-000004", "step-000008"):
        raw = load_file(run / "checkpoints" / step / "model.safetensors")[key]
        average = load_file(run / "checkpoints" / step / "weight_average.safetensors")[key]
        assert not torch.equal(raw, average)  # the checkpoint keeps both: raw to resume from
    assert torch.equal(final, average)  # the final model is the average at the last step
    # A checkpoint loads as the average, the model its evaluation scored.
    _, _, model = load_run_model(run, load_config(run / "config.yaml"), "step-000004")
    saved = load_file(run / "checkpoints" / "step-000004" / "weight_average.safetensors")[key]
    assert torch.equal(model.state_dict()[key], saved)

    # `finetune eval` of the final model, and of a checkpoint, reproduces the training's scores.
    for args in (["eval", str(run)], ["eval", str(run), "--checkpoint", "step-000004"]):
        code, _, err = main_in_process(args, capsys, monkeypatch)
        assert code == 0, err
    final_scores = json.loads((run / "eval_validation.json").read_text())
    assert final_scores["loss"] == pytest.approx(evals[8]["loss"], abs=1e-6)  # metrics.jsonl rounds to 1e-6
    checkpoint_scores = json.loads((run / "eval_validation.step-000004.json").read_text())
    assert checkpoint_scores["loss"] == pytest.approx(evals[4]["loss"], abs=1e-6)
