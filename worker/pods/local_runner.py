"""Supervisor of one local pod: `python -m worker.pods.local_runner STATE_FILE -- CMD...`.

It detaches from its launcher (so a restarted Celery worker neither kills nor loses it),
runs the trainer in its own session, forwards SIGTERM to it and kills it after the grace
period, and writes the exit code next to the state file. Exit codes follow the shell:
a trainer killed by signal N exits 128 + N (137 for SIGKILL).
"""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path


def write_json(path: Path, data: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)  # readers never see half a file


def main(argv: list[str]) -> int:
    state_file = Path(argv[0])
    command = argv[argv.index("--") + 1 :]
    state = json.loads(state_file.read_text())
    if os.fork():  # the launcher waits for this parent only; the child lives on
        return 0
    os.setsid()
    with open(state["log"], "ab", buffering=0) as log:
        child = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=state["cwd"])
        write_json(state_file, {**state, "pid": os.getpid(), "child_pid": child.pid})

        def kill_after_grace():
            time.sleep(state["grace_seconds"])
            if child.poll() is None:
                child.kill()

        def on_sigterm(signum, frame):
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
                threading.Thread(target=kill_after_grace, daemon=True).start()

        signal.signal(signal.SIGTERM, on_sigterm)
        code = child.wait()
    exit_code = 128 - code if code < 0 else code
    write_json(state_file.with_suffix(".exit"), {"exit_code": exit_code, "ended_at": time.time()})
    return 0


if __name__ == "__main__":
    os._exit(main(sys.argv[1:]))
