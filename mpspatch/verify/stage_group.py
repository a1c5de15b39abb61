"""The process group of the stage command running now, recorded so a verify that was killed can be cleaned up.

Stages run in a process group of their own (foundation/proc.py run_logged), which mpspatch stops when it
is interrupted or terminated (SIGINT, SIGTERM, SIGHUP). A SIGKILL gives mpspatch no chance to: the group
lives on, building or testing in the verify tree. Its id is written to `stage-group` in the state folder
while it runs, and the next verify (which holds the project lock, so no other verify is alive) reports that
group and kills it before it touches the tree, instead of running alongside it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

from mpspatch.foundation.files import atomic_write_text

RECORD = "stage-group"


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux), to tell a reused pid from the recorded one."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    return stat.rsplit(")", 1)[-1].split()[19]


def record(state_dir: Path, group: int, *, what: str) -> None:
    started = _start_time(group) or "-"
    atomic_write_text(state_dir / RECORD, f"{group} {os.getpid()} {started} {what}\n")


def clear(state_dir: Path) -> None:
    with contextlib.suppress(OSError):
        (state_dir / RECORD).unlink()


def _alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def reap_stale(state_dir: Path) -> str | None:
    """Kill the stage group a dead verify left running; a note saying so, or None when there was none."""
    path = state_dir / RECORD
    try:
        fields = path.read_text(encoding="utf-8").split(" ", 3)
        group, owner, started = int(fields[0]), int(fields[1]), fields[2]
        what = fields[3].strip() if len(fields) > 3 else "a stage command"
    except (OSError, ValueError, IndexError):
        clear(state_dir)
        return None
    if owner == os.getpid() or not _alive(group):
        clear(state_dir)
        return None
    now = _start_time(group)
    if started != "-" and now is not None and now != started:
        clear(state_dir)  # the pid was reused by an unrelated process: not ours to kill
        return None
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(group, signal.SIGTERM)
    deadline = time.monotonic() + 5
    while _alive(group) and time.monotonic() < deadline:
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(group, signal.SIGKILL)
    clear(state_dir)
    return (f"a stage left running by a verify that was killed (pid {owner}; process group {group}: {what}) "
            "was stopped before this run")
