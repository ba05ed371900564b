"""Code from a checkpoint runs only when the config says so: every from_pretrained call gets
the config's trust_remote_code, and the Hub token (if any) goes to the loader, not to disk."""

from __future__ import annotations

import pytest

from finetune.configuration.config import ModelSection


@pytest.fixture
def calls(monkeypatch):
    import transformers

    seen: list[tuple[str, dict]] = []

    def recorder(name):
        def from_pretrained(*args, **kwargs):
            seen.append((name, kwargs))
            if name == "AutoConfig":
                return object()  # lets load_model go on to the model's own loader
            raise OSError("stop here")  # the kwargs are all this test needs
        return from_pretrained

    for name in ("AutoTokenizer", "AutoConfig", "AutoModelForSequenceClassification"):
        monkeypatch.setattr(getattr(transformers, name), "from_pretrained", recorder(name))
    return seen


@pytest.mark.parametrize("trust", [False, True])
def test_trust_remote_code_reaches_every_loader(calls, tmp_path, trust):
    from finetune.model import load as models
    from finetune.errors import ModelError

    section = ModelSection(name_or_path=str(tmp_path), trust_remote_code=trust, token="hf_x")
    with pytest.raises(ModelError):
        models.load_tokenizer(section)
    with pytest.raises(ModelError):
        models.load_model(section, "AutoModelForSequenceClassification", num_labels=2)
    assert [name for name, _ in calls] == ["AutoTokenizer", "AutoConfig", "AutoModelForSequenceClassification"]
    assert all(kwargs["trust_remote_code"] is trust and kwargs["token"] == "hf_x" for _, kwargs in calls)
    assert calls[-1][1]["use_safetensors"] is True  # pickle weights are never a fallback


def test_token_is_not_dumped():
    section = ModelSection(name_or_path="org/private", token="hf_SECRET")
    assert "hf_SECRET" not in str(section.model_dump()) + repr(section)
