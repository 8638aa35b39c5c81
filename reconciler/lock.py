"""One writer at a time per state file: an OS file lock (``filelock``) beside the state file.

Takes the state file's path and how long to wait; holds ``.reconciler-locks/<state>.lock``
beside it for the life of a command that writes the state (apply, ``state forget|resolve|compact``,
``export``). The lock covers the state file's journal (``<state>.journal``) as it covers the file:
only its holder appends to the journal or folds it in. ``plan`` and ``drift`` take no lock (they
read the journal and write nothing). The lock folder ignores itself in Git, so that committing the
state file never commits a lock.

The lock is the kernel's (``flock``): a process that dies, even by SIGKILL, releases it, so a
lock can never outlive its holder on this machine. Who holds it is written beside it
(``<state>.holder``: pid, host, start time, command) so that a refusal can name the holder,
and so that the next holder can tell that the previous one ended without releasing it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import filelock

from reconciler.errors import ReconcilerError


class StateLockedError(ReconcilerError):
    """Another command holds the state file's lock."""


LOCK_FOLDER = ".reconciler-locks"  # beside the state file; ignores itself in Git


def lock_path(state_path: Path) -> Path:
    return state_path.parent / LOCK_FOLDER / (state_path.name + ".lock")


def holder_path(state_path: Path) -> Path:
    return state_path.parent / LOCK_FOLDER / (state_path.name + ".holder")


def _read_holder(state_path: Path) -> dict[str, Any]:
    try:
        data = json.loads(holder_path(state_path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def describe_holder(holder: dict[str, Any]) -> str:
    if not holder:
        return "an unknown process"
    return (f"pid {holder.get('pid')} on {holder.get('host')}, started {holder.get('started')}"
            + (f" ({holder['command']})" if holder.get("command") else ""))


@contextlib.contextmanager
def state_lock(state_path: Path, timeout: float, *, notes: list[str] | None = None) -> Iterator[None]:
    """Hold the state file's lock; wait up to ``timeout`` seconds (0: fail at once) for it.

    ``notes`` receives a sentence when the previous holder ended without releasing the lock
    (killed): what it was doing may be half done, which the state's intents record.
    """
    state_path = Path(os.path.realpath(state_path))  # one lock for every link to one file
    folder = lock_path(state_path).parent
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / ".gitignore").exists():
        (folder / ".gitignore").write_text("# Locks of reconciler state files: never committed.\n*\n", encoding="utf-8")
    lock = filelock.FileLock(str(lock_path(state_path)), timeout=max(0.0, timeout))
    try:
        lock.acquire()
    except filelock.Timeout:
        holder = _read_holder(state_path)
        waited = f" after waiting {timeout:g} s" if timeout > 0 else ""
        raise StateLockedError(
            f"the state file {state_path} is locked{waited} by another command: {describe_holder(holder)}",
            hint="Another command writes this state file (an apply of this project, or of another project sharing "
                 "the file); let it finish (apply from CI with a concurrency group), or pass --lock-timeout SECONDS "
                 "to wait for it.") from None
    try:
        previous = _read_holder(state_path)
        if previous and notes is not None:
            notes.append(f"The previous command on this state file ({describe_holder(previous)}) ended without "
                         "releasing its lock (it was killed); the system freed the lock.")
        holder = {"pid": os.getpid(), "host": socket.gethostname(),
                  "started": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                  "command": " ".join(["reconciler", *sys.argv[1:3]])}
        holder_path(state_path).write_text(json.dumps(holder) + "\n", encoding="utf-8")
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            holder_path(state_path).unlink()
        lock.release()
