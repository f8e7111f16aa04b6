"""Exit codes of `python -m worker.trainer`: the one list the trainer, the pod backends and
the platform's reconciler all read."""

OK = 0
INTERNAL_ERROR = 1  # a bug or an unexpected failure (also out-of-memory at micro-batch 1)
DATA_ERROR = 65  # EX_DATAERR: the dataset cannot be trained on
RESUMABLE = 75  # EX_TEMPFAIL: stopped on SIGTERM after writing a checkpoint; resume from it
CONFIG_ERROR = 78  # EX_CONFIG: the run config (or the model it names) is invalid
# Not the trainer's own: 128 + SIGKILL, from the OS (killed, out of host memory, or a stop
# past its grace period).
KILLED = 137

# The error class a failed run gets from its exit code alone, when nothing better is known.
ERROR_CLASSES = {KILLED: "oom", DATA_ERROR: "data", CONFIG_ERROR: "config"}
