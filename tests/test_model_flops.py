"""MFU's two inputs: FLOPs per token counted from the model's own parameters, and the matmul
peak measured once per machine and then read from the cache."""

from __future__ import annotations

import json

from tiny_models import tiny_model


def _count(model, skip_embeddings=True):
    import torch

    embeddings = {id(m.weight) for m in model.modules() if isinstance(m, torch.nn.Embedding)}
    return sum(p.numel() for p in model.parameters() if not (skip_embeddings and id(p) in embeddings))


def test_encoder_flops_leave_embedding_lookups_out():
    from finetune.training.model_flops import flops_per_token

    model = tiny_model("bert")
    matmul_params = _count(model)
    assert matmul_params < _count(model, skip_embeddings=False)
    assert flops_per_token(model, frozen_base=False, encoder_decoder=False) == 6 * matmul_params
    assert flops_per_token(model, frozen_base=True, encoder_decoder=False) == 4 * matmul_params


def test_tied_output_projection_counts_once_and_encoder_decoder_tokens_count_half():
    from finetune.training.model_flops import flops_per_token

    model = tiny_model("t5")  # tied: the shared embedding is also the output projection
    assert model.get_output_embeddings().weight is model.shared.weight
    stack = _count(model)  # every Embedding skipped, the tied matrix among them
    expected = 6 * (stack + model.shared.weight.numel()) / 2
    assert flops_per_token(model, frozen_base=False, encoder_decoder=True) == expected


def test_the_cache_keeps_the_highest_peak_measured(tmp_path, monkeypatch):
    import torch

    from finetune.training import model_flops

    cpu = torch.device("cpu")
    rates = iter([5e10, 2e10, 9e10])  # a busy machine measures low; the best figure stays
    monkeypatch.setattr(model_flops, "_measure", lambda *a: next(rates))
    assert model_flops.matmul_peak(cpu, torch.float32, tmp_path) == 5e10
    assert model_flops.matmul_peak(cpu, torch.float32, tmp_path) == 5e10
    assert model_flops.matmul_peak(cpu, torch.float32, tmp_path) == 9e10
    cached = json.loads((tmp_path / model_flops.PEAK_FILE).read_text())
    [key] = cached
    assert cached[key] == 9e10
    assert "torch.float32" in key and f"threads={torch.get_num_threads()}" in key


def test_a_real_measurement_is_plausible_and_keyed_by_dtype(tmp_path):
    import torch

    from finetune.training import model_flops

    cpu = torch.device("cpu")
    assert model_flops.matmul_peak(cpu, torch.float32, tmp_path) > 1e8  # any CPU of the last decade
    model_flops.matmul_peak(cpu, torch.bfloat16, tmp_path)  # another dtype is another peak
    assert len(json.loads((tmp_path / model_flops.PEAK_FILE).read_text())) == 2


def test_unreadable_cache_means_measuring_again(tmp_path):
    import torch

    from finetune.training import model_flops

    (tmp_path / model_flops.PEAK_FILE).write_text("not json")
    assert model_flops.matmul_peak(torch.device("cpu"), torch.float32, tmp_path) > 1e8
    assert json.loads((tmp_path / model_flops.PEAK_FILE).read_text())  # rewritten whole


def test_measuring_leaves_the_global_random_state_alone(tmp_path):
    import torch

    from finetune.training import model_flops

    before = torch.get_rng_state()
    model_flops.matmul_peak(torch.device("cpu"), torch.float32, tmp_path)
    assert torch.equal(torch.get_rng_state(), before)  # dropout draws the same masks either way
