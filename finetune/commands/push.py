"""`finetune push`: upload a run's model directory (or, with --merged, the merged/ that `finetune
merge` wrote) with its model card to the Hugging Face Hub.

Only what loads the model travels: no training state, no hidden files (lock, temporary copies).
The files are gathered (hard links where possible) in a temporary folder, so the card sent can
load from the repo id without anything in the run directory changing. The token comes from
huggingface_hub's usual places (HF_TOKEN, then the cached `hf auth login`) and goes nowhere but
into its requests."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from finetune.errors import ConfigError, RunDirError
from finetune.storage import run_dir as rd
from finetune.storage import saved_model_check
from finetune.storage.state_files import OPTIMIZER_JSON, OPTIMIZER_TENSORS, SCHEDULER_JSON

# Training state that may sit beside a model's files (a checkpoint, best/): never sent.
TRAINING_STATE = {rd.STATE_FILE, rd.MANIFEST_FILE, rd.BEST_FILE, OPTIMIZER_TENSORS, OPTIMIZER_JSON, SCHEDULER_JSON,
                  saved_model_check.SEAL_RECORD}


def source_dir(run: Path, merged: bool) -> Path:
    from finetune.saved.saved_model import is_adapter, verified_model_dir

    if not merged:
        return verified_model_dir(run)
    model = rd.model_dir(run)  # only asked whether it is an adapter: merged/ is what travels
    if not is_adapter(model):
        raise RunDirError(f"'{run}': is a full fine-tune, whose {rd.MODEL_DIR}/ loads as it is; push without --merged")
    target = run / rd.MERGED_DIR
    if not target.is_dir():
        raise RunDirError(
            f"'{run}': has no merged model ({target} is missing); run `finetune merge {run}` first, "
            "or push without --merged to send the adapter"
        )
    saved_model_check.check(target)
    return target


def files_to_send(directory: Path) -> list[str]:
    """The model's files, relative to `directory`, sorted."""
    return sorted(
        path.relative_to(directory).as_posix() for path in directory.rglob("*")
        if path.is_file() and not path.is_symlink() and path.name not in TRAINING_STATE
        and not any(part.startswith(".") for part in path.relative_to(directory).parts)
    )


def push(run: Path, repo_id: str, private: bool = False, merged: bool = False) -> str:
    """Create the repo if needed and upload; returns its URL."""
    from huggingface_hub import HfApi, get_token
    from huggingface_hub.errors import HFValidationError, HTTPError  # the HTTP client's, re-exported
    from huggingface_hub.utils import validate_repo_id

    from finetune.saved.model_card import pointed_at

    try:
        validate_repo_id(repo_id)
    except HFValidationError as exc:
        raise ConfigError(f"push: repo id '{repo_id}': {exc} Give NAMESPACE/NAME, e.g. my-name/my-model") from None
    source = source_dir(run, merged)
    token = get_token()
    if not token:
        raise ConfigError("push: no Hugging Face token found; set HF_TOKEN or log in with `hf auth login`")
    api = HfApi()
    with tempfile.TemporaryDirectory(prefix="finetune-push-") as tmp:
        staging = Path(tmp)
        for name in files_to_send(source):
            _place(source / name, staging / name)
        card = staging / rd.CARD_FILE
        if card.is_file():
            text = pointed_at(card.read_text(encoding="utf-8"), repo_id)
            card.unlink()  # a hard link: writing through it would change the run's card
            card.write_text(text, encoding="utf-8")
        try:
            url = api.create_repo(repo_id, token=token, private=private, exist_ok=True, repo_type="model")
            api.upload_folder(repo_id=url.repo_id, folder_path=staging, token=token, repo_type="model",
                              commit_message=f"Upload {source.name}/ of run {run.resolve().name} with finetune")
        except (OSError, ValueError, HTTPError) as exc:  # network, offline mode, Hub refusals
            raise RunDirError(f"push: upload to '{repo_id}' failed: {exc}; check the repo id, the token's "
                              "write access and the network, then push again") from None
    return str(url)


def _place(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except OSError:  # another filesystem: copy
        shutil.copy2(source, target)
