"""One exception family for user mistakes.

The CLI turns any `FinetuneError` into a single line on stderr and exit code 2; anything else
is a bug and keeps its traceback.
"""


class FinetuneError(Exception):
    """A mistake the user can fix: the message names the file, key or column and what to do."""

    exit_code = 2


class ConfigError(FinetuneError):
    """The YAML file or a command-line override is wrong."""


class DataError(FinetuneError):
    """A data file, split, column or label is missing or malformed."""


class ModelError(FinetuneError):
    """A model or tokenizer cannot be loaded, or cannot do the task."""


class RunDirError(FinetuneError):
    """The run directory is missing, incomplete, or would be overwritten."""


class RunInUse(RunDirError):
    """Another finetune process holds the run directory's lock (`holder`: its PID, as written)."""

    def __init__(self, message: str, holder: str):
        super().__init__(message)
        self.holder = holder


class TrainingStopped(FinetuneError):
    """The run stopped early and left a checkpoint (Ctrl-C, SIGTERM, a NaN loss)."""

    def __init__(self, message: str, exit_code: int = 2):
        super().__init__(message)
        self.exit_code = exit_code
