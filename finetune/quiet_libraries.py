"""The libraries' own chatter (load reports, cache messages, loading bars) hides finetune's
output and would print before an error line that must stand alone; `--verbose` keeps it."""

from __future__ import annotations

import os
import sys


def quiet_libraries() -> None:
    """Called by every command unless --verbose. Under torchrun only rank 0 keeps loading bars."""
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("DATASETS_VERBOSITY", "error")
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    # Weight-loading/saving bars would print before an error line, which must stand alone.
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if os.environ.get("RANK", "0") != "0":
        os.environ.setdefault("TQDM_DISABLE", "1")  # the libraries' loading bars, once not N times
    # Libraries imported already (main() called in-process) read the variables above too late.
    if "datasets" in sys.modules:
        sys.modules["datasets"].disable_progress_bars()
    if "transformers" in sys.modules:
        sys.modules["transformers"].utils.logging.disable_progress_bar()
    if "huggingface_hub" in sys.modules:
        sys.modules["huggingface_hub"].utils.disable_progress_bars()
    import warnings

    warnings.filterwarnings("ignore", category=UserWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)
