"""Atomic checkpoints: each is written into a temporary folder, fsynced, renamed to
`checkpoint-<step>`, and only then marked with a `COMPLETE` file. Anything without the
marker (a crash mid-save, a kill between rename and marker) is ignored and cleaned up.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import time
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

MARKER = "COMPLETE"
_NAME = re.compile(r"^checkpoint-(\d+)$")
_TEMP_PREFIX = ".tmp-checkpoint-"


def save(
    root: Path, step: int, write: Callable[[Path], None], *, pause_per_file: float = 0.0
) -> Path:
    """Write a complete `root/checkpoint-<step>` through `write(folder)`; return its path.

    `pause_per_file` slows the fsync pass down, for tests that kill the process mid-save."""
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"checkpoint-{step}"
    if is_complete(final):
        return final
    temp = root / f"{_TEMP_PREFIX}{step}-{os.getpid()}"
    shutil.rmtree(temp, ignore_errors=True)
    temp.mkdir()
    write(temp)
    for path in sorted(p for p in temp.rglob("*") if p.is_file()):
        _fsync_file(path)
        if pause_per_file:
            time.sleep(pause_per_file)
    for folder in sorted((p for p in temp.rglob("*") if p.is_dir()), reverse=True):
        _fsync_dir(folder)
    _fsync_dir(temp)
    if final.exists():  # an incomplete leftover of an earlier attempt at this step
        shutil.rmtree(final)
    os.replace(temp, final)
    _fsync_dir(root)
    marker = final / MARKER
    with marker.open("w") as handle:
        handle.write(f"{step}\n")
        handle.flush()
        os.fsync(handle.fileno())
    _fsync_dir(final)
    return final


def is_complete(path: Path) -> bool:
    return path.is_dir() and (path / MARKER).is_file()


def step_of(path: Path) -> int:
    match = _NAME.match(path.name)
    if not match:
        raise ValueError(f"{path} is not named checkpoint-<step>")
    return int(match.group(1))


def complete_checkpoints(root: Path) -> list[Path]:
    """Complete checkpoints under `root`, oldest step first."""
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if _NAME.match(p.name) and is_complete(p)]
    return sorted(found, key=step_of)


def latest(root: Path) -> Path | None:
    done = complete_checkpoints(root)
    return done[-1] if done else None


def resolve(path: Path) -> Path | None:
    """`resume_from` may name one checkpoint or a checkpoints folder (its latest complete
    one). Returns None for a checkpoints folder with nothing complete in it."""
    if _NAME.match(path.name):
        if not is_complete(path):
            raise FileNotFoundError(f"{path} is not a complete checkpoint")
        return path
    if not path.is_dir():
        raise FileNotFoundError(f"{path} does not exist")
    return latest(path)


def prune(root: Path, keep: int) -> None:
    """Keep the newest `keep` complete checkpoints; remove older ones and stale leftovers."""
    done = complete_checkpoints(root)
    for old in done[: max(0, len(done) - keep)]:
        (old / MARKER).unlink()  # unmark first: a half-deleted folder must never look complete
        shutil.rmtree(old, ignore_errors=True)
    for leftover in root.iterdir():
        if leftover.name.startswith(_TEMP_PREFIX) or (
            _NAME.match(leftover.name) and not is_complete(leftover)
        ):
            shutil.rmtree(leftover, ignore_errors=True)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
