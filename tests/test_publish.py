"""`finetune push`: everything up to the upload, through the real CLI in this process. Only the
two network calls (HfApi.create_repo, HfApi.upload_folder) are replaced, by stubs that record
what they were given: the folder as it is at that moment, the card, the token."""

from __future__ import annotations

import hashlib
import shutil

import pytest
from conftest import FAKE_TOKEN, main_in_process


def _hashes(root):
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def hub(monkeypatch):
    """The Hub as the stubs saw it: calls in order, with the files of the folder sent."""
    from huggingface_hub import HfApi
    from huggingface_hub.hf_api import RepoUrl

    calls = []

    def create_repo(self, repo_id, **kwargs):
        calls.append(("create_repo", repo_id, kwargs))
        return RepoUrl(f"https://huggingface.co/{repo_id}")

    def upload_folder(self, *, repo_id, folder_path, **kwargs):
        files = {p.relative_to(folder_path).as_posix(): p.read_bytes()
                 for p in sorted(folder_path.rglob("*")) if p.is_file()}
        calls.append(("upload_folder", repo_id, {**kwargs, "files": files}))

    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)
    return calls


@pytest.fixture
def run(lora_run, tmp_path):
    """A copy of the shared LoRA run whose model/ also holds what must never be sent."""
    copy = shutil.copytree(lora_run, tmp_path / "run")
    for name in ("optimizer.safetensors", "train_state.json", ".finetune-lock", ".tmp-model.safetensors"):
        (copy / "model" / name).write_text("not for the Hub")
    return copy


def test_push_sends_the_model_files_and_a_card_that_loads_from_the_repo(run, hub, capsys, monkeypatch):
    from huggingface_hub import ModelCard

    before = _hashes(run)
    code, out, err = main_in_process(["push", str(run), "me/tiny-sentiment", "--private"], capsys, monkeypatch)
    assert code == 0, err
    assert out.strip() == "pushed to https://huggingface.co/me/tiny-sentiment"
    assert FAKE_TOKEN not in out + err
    (create, repo, options), (upload, target, sent) = hub
    assert (create, repo, upload, target) == ("create_repo", "me/tiny-sentiment", "upload_folder", "me/tiny-sentiment")
    assert options["private"] is True and options["token"] == sent["token"] == FAKE_TOKEN
    assert sorted(sent["files"]) == ["README.md", "adapter_config.json", "adapter_model.safetensors",
                                     "base_model_config.json", "tokenizer.json", "tokenizer_config.json"]
    assert sent["files"]["adapter_model.safetensors"] == (run / "model" / "adapter_model.safetensors").read_bytes()
    card = sent["files"]["README.md"].decode()
    assert 'model_id = "me/tiny-sentiment"' in card and 'model_id = "model"' not in card
    assert ModelCard(card).data.library_name == "peft"
    assert _hashes(run) == before  # the run's own card still loads from model/


def test_push_merged_sends_the_merged_model(run, hub, capsys, monkeypatch):
    from huggingface_hub import ModelCard

    code, _, err = main_in_process(["merge", str(run)], capsys, monkeypatch)
    assert code == 0, err
    code, _, err = main_in_process(["push", str(run), "me/merged", "--merged"], capsys, monkeypatch)
    assert code == 0, err
    sent = hub[-1][2]["files"]
    assert {"config.json", "model.safetensors", "README.md"} <= set(sent) and "adapter_config.json" not in sent
    card = ModelCard(sent["README.md"].decode())
    assert card.data.library_name == "transformers" and 'model_id = "me/merged"' in card.text
    assert hub[0][2]["private"] is False


def test_push_without_a_token_is_refused_before_any_call(run, hub, tmp_path, capsys, monkeypatch):
    from huggingface_hub import constants

    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_OIDC_RESOURCE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no-login" / "token"))
    before = _hashes(run)
    code, out, err = main_in_process(["push", str(run), "me/model"], capsys, monkeypatch)
    assert code == 2 and out == "" and hub == []
    assert err.count("\n") == 1 and err.startswith("error: push: no Hugging Face token found; set HF_TOKEN")
    assert _hashes(run) == before


def test_a_failed_upload_is_one_line(run, hub, capsys, monkeypatch):
    from huggingface_hub import HfApi
    from huggingface_hub.errors import OfflineModeIsEnabled

    def offline(self, *args, **kwargs):
        raise OfflineModeIsEnabled("Cannot reach https://huggingface.co/api/repos/create: offline mode is enabled.")

    monkeypatch.setattr(HfApi, "create_repo", offline)
    code, _, err = main_in_process(["push", str(run), "me/model"], capsys, monkeypatch)
    assert code == 2 and err.count("\n") == 1
    assert err.startswith("error: push: upload to 'me/model' failed: Cannot reach") and FAKE_TOKEN not in err
