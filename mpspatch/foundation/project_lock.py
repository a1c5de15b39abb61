"""One writer at a time per project: the lock every command that changes the project's state holds.

It is an advisory `flock` on `writer.lock` in the state folder. The kernel releases it when the holder's
file descriptor closes, however the holder ends (exit, exception, SIGKILL), so there is never a stale lock to
steal or to delete by hand. The file holds the holder's pid and command, for the refusal message only.
The descriptor is not inherited by child processes (Python opens files close-on-exec), so a stage or a git
that outlives a killed mpspatch does not keep the project locked.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mpspatch.foundation.errors import StateError

LOCK_NAME = "writer.lock"

_held: set[Path] = set()  # lock files this process holds: a command that calls another takes it once


def lock_path(state_dir: Path) -> Path:
    return state_dir / LOCK_NAME


@contextmanager
def project_lock(state_dir: Path, command: str) -> Iterator[None]:
    """Hold the project's writer lock for the body, or refuse (exit 2) naming the pid and command holding it."""
    path = lock_path(state_dir)
    key = path.absolute()
    if key in _held:
        yield
        return
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        raise StateError(f"{path}: cannot open the project lock ({exc.strerror}); make {state_dir} writable "
                         "and run the command again") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StateError(f"{path}: {_holder(fd)} is changing this project; wait for it to finish, then run "
                             f"`mpspatch {command}` again") from None
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()} {command}\n".encode(), 0)
        except OSError as exc:  # a full disk: the lock is held, only the note of who holds it is missing
            raise StateError(f"{path}: cannot write the project lock ({exc.strerror}); free some space in "
                             f"{state_dir} and run the command again") from None
        _held.add(key)
        try:
            yield
        finally:
            _held.discard(key)
    finally:
        os.close(fd)  # releases the lock


def _holder(fd: int) -> str:
    try:
        text = os.pread(fd, 4096, 0).decode("utf-8", errors="replace").strip()
    except OSError:
        text = ""
    pid, _, command = text.partition(" ")
    if not pid.isdigit():
        return "another mpspatch (just starting)"
    return f"another mpspatch (pid {pid}, `mpspatch {command}`)" if command else f"another mpspatch (pid {pid})"
