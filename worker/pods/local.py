"""The local pod backend: the trainer as a subprocess on this machine, on the CPU.

Used by `make run` and the tests. Each pod has a state file (`<name>.json`: the runner's
pid, the log path) and, once it ends, an exit file (`<name>.exit`), so any process (web,
worker, beat) can read a pod's status, not only the one that launched it.
"""

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections import deque
from pathlib import Path

from worker.pods.base import PodSpec, PodStatus

ROOT = Path(__file__).resolve().parents[2]
# The only variables a pod inherits from the platform's environment: no database, broker,
# Stripe or Django secrets ever reach it.
INHERITED = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "VIRTUAL_ENV")
TEST_HOOKS = "ECOLINK_TRAINER_TEST_"


class LocalBackend:
    def __init__(self, state_dir: str | Path):
        self.state_dir = Path(state_dir)
        self.state_dir.mkdir(parents=True, exist_ok=True)

    def _state_file(self, name: str) -> Path:
        return self.state_dir / f"{name}.json"

    def _state(self, name: str) -> dict | None:
        try:
            return json.loads(self._state_file(name).read_text())
        except FileNotFoundError:
            return None

    def launch(self, spec: PodSpec) -> str:
        state_file = self._state_file(spec.name)
        if state_file.exists():
            return spec.name
        log = Path(spec.artifacts_dir) / "logs" / f"run-{spec.run}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        state_file.write_text(
            json.dumps(
                {
                    "log": str(log),
                    "cwd": str(ROOT),
                    "grace_seconds": spec.grace_seconds,
                    "launched_at": time.time(),
                }
            )
        )
        env = {k: os.environ[k] for k in INHERITED if k in os.environ}
        # The trainer's fault-injection hooks (worker/trainer/faults.py), for tests.
        env.update({k: v for k, v in os.environ.items() if k.startswith(TEST_HOOKS)})
        env.update(
            PYTHONPATH=str(ROOT),
            HF_HUB_OFFLINE="1",
            TRANSFORMERS_OFFLINE="1",
            PYTHONUNBUFFERED="1",
            **spec.env,
            **spec.secret_env,
        )
        trainer = [sys.executable, "-m", "worker.trainer", "--config", spec.config_path]
        runner = [sys.executable, "-m", "worker.pods.local_runner", str(state_file), "--", *trainer]
        # The runner forks and its parent exits at once: nothing is left for us to reap.
        subprocess.run(
            runner,
            env=env,
            cwd=ROOT,
            check=True,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        return spec.name

    def request_stop(self, name: str, grace_seconds: int) -> None:
        state = self._state(name)
        if state and "pid" in state and not self._exit(name):
            with contextlib.suppress(ProcessLookupError):
                os.kill(state["pid"], signal.SIGTERM)  # the runner forwards it and times it

    def _exit(self, name: str) -> dict | None:
        try:
            return json.loads(self._state_file(name).with_suffix(".exit").read_text())
        except FileNotFoundError:
            return None

    def status(self, name: str) -> PodStatus:
        ended = self._exit(name)
        if ended is not None:
            code = ended["exit_code"]
            return PodStatus("succeeded" if code == 0 else "failed", exit_code=code)
        state = self._state(name)
        if state is None:
            return PodStatus("missing", reason="node_lost")
        if "pid" not in state:  # the runner has not written its pid yet
            return PodStatus("pending")
        if _alive(state["pid"]):
            return PodStatus("running")
        # The runner vanished without writing an exit code: as if the node was lost.
        return PodStatus("missing", reason="node_lost")

    def logs(self, name: str, tail: int = 50) -> list[str]:
        state = self._state(name)
        if state is None:
            return []
        try:
            with open(state["log"], errors="replace") as f:
                return [line.rstrip("\n") for line in deque(f, maxlen=tail)]
        except FileNotFoundError:
            return []

    def delete(self, name: str) -> None:
        state = self._state(name)
        if state and "pid" in state and not self._exit(name) and _alive(state["pid"]):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(state["pid"], signal.SIGKILL)  # the runner leads its session
        for suffix in (".json", ".exit"):
            self._state_file(name).with_suffix(suffix).unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie answers signal 0 but is dead
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False
