"""Exit codes of `python -m worker.trainer`, read by the platform's pod backends."""

OK = 0
INTERNAL_ERROR = 1  # a bug or an unexpected failure (also out-of-memory at micro-batch 1)
DATA_ERROR = 65  # EX_DATAERR: the dataset cannot be trained on
RESUMABLE = 75  # EX_TEMPFAIL: stopped on SIGTERM after writing a checkpoint; resume from it
CONFIG_ERROR = 78  # EX_CONFIG: the run config (or the model it names) is invalid
# 137 (128 + SIGKILL) comes from the OS: killed, or out of host memory.
