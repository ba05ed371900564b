"""Hub ids without a network. huggingface_hub retries every file with backoff and logs each try
(about 45 s of 'Retrying in 8s' lines before the error). When the Hub endpoint cannot be
reached within a few seconds, the libraries are switched to offline mode instead: files in
the local cache still load, and a missing one fails at once, in our one-line error."""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path
from urllib.parse import urlparse

from finetune.configuration.paths import PREFIX

TRUE = {"1", "ON", "YES", "TRUE"}
PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")


def offline_unless_reachable(names: list[str | None], timeout: float = 3.0) -> None:
    """`names`: model and dataset sources of the run; only Hub ids (no such local path) count."""
    if _offline():
        _go_offline()  # a library imported before the variable was set (in-process use) read it too early
        return
    if not any(name and _is_hub_id(name) for name in names):
        return
    if any(os.environ.get(v) for v in PROXY_VARIABLES):
        return  # only the proxy knows whether the Hub is reachable
    endpoint = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    port = endpoint.port or (443 if endpoint.scheme == "https" else 80)
    try:
        socket.create_connection((endpoint.hostname, port), timeout=timeout).close()
    except OSError:
        _go_offline()


def _offline() -> bool:
    return any(os.environ.get(v, "").upper() in TRUE for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def _is_hub_id(name: str) -> bool:
    return not name.startswith(("/", ".", "~", PREFIX)) and not Path(name).exists()


def _go_offline() -> None:
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["HF_DATASETS_OFFLINE"] = "1"
    # Libraries already imported read these flags once, at import.
    if "huggingface_hub" in sys.modules:
        sys.modules["huggingface_hub"].constants.HF_HUB_OFFLINE = True
    if "datasets" in sys.modules:
        datasets_config = sys.modules["datasets"].config
        datasets_config.HF_HUB_OFFLINE = datasets_config.HF_DATASETS_OFFLINE = True
