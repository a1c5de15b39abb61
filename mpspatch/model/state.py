"""The rebase state file, `.mpspatch/rebase.json`: what a stopped or interrupted rebase needs to go on or undo."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from mpspatch.foundation.config import Config
from mpspatch.foundation.files import atomic_write_bytes
from mpspatch.foundation.ids import CommitSha, ContentSha256
from mpspatch.model.store import StateFile

STATE_NAME = "rebase.json"
STATE_VERSION = 1


class RebasePhase(StrEnum):
    PREPARED = "prepared"  # the state is written, the replay has not started
    REBASING = "rebasing"
    WRITING = "writing"  # the replay is done; the patch files and the lock are being rewritten


@dataclass(frozen=True)
class SavedFile:
    path: str  # relative to the config folder
    sha256: ContentSha256 | None  # None: the file did not exist


@dataclass(frozen=True)
class RebaseState:
    phase: RebasePhase
    base: CommitSha
    base_ref: str
    onto: CommitSha
    onto_ref: str
    series_tip: CommitSha
    series: tuple[CommitSha, ...]  # one commit per patch, in series order, made by git.build_series
    patches: tuple[SavedFile, ...]
    lock: SavedFile
    worktree: str  # relative to the config folder
    paths: tuple[str, ...]  # the sparse worktree's paths
    conflicted: tuple[str, ...]  # paths of the current stop, checked for markers by --continue
    notes: tuple[str, ...]
    started_at: str
    # The sha256 each patch file gets from the rewrite, recorded before the first file is written, so that
    # --abort can tell a file an interrupted write replaced from a user's edit. Empty before the write phase.
    rewritten: tuple[SavedFile, ...] = ()


REBASE_STATE = StateFile(
    what="the rebase state", model=RebaseState, version=STATE_VERSION,
    fix="run `mpspatch rebase --abort --force` to discard it (and the rebase worktree)",
)


def stopped_summary(state: RebaseState) -> str:
    """One phrase for the commands that wait for, or only read around, a stopped rebase."""
    conflicted = f", {len(state.conflicted)} file(s) conflicted" if state.conflicted else ""
    return f"a rebase of the series onto {state.onto_ref} ({state.onto[:12]}) is stopped{conflicted}"


def state_path(config: Config) -> Path:
    return config.state_dir / STATE_NAME


def backup_dir(config: Config) -> Path:
    return config.state_dir / "rebase-backup"


def previous_dir(config: Config) -> Path:
    return config.state_dir / "previous"


def keep_previous(config: Config, name: str, data: bytes) -> Path:
    """Keep `data` as the next numbered previous version of `name` (`NAME.1`, `NAME.2`, ...: the highest is the
    newest), never overwriting an earlier one; a version equal to the newest kept one is not kept twice."""
    folder = previous_dir(config)
    pattern = re.compile(re.escape(name) + r"\.([0-9]+)")
    numbers = sorted(int(m.group(1)) for p in (folder.iterdir() if folder.is_dir() else ())
                     if (m := pattern.fullmatch(p.name)))
    if numbers and (newest := folder / f"{name}.{numbers[-1]}").read_bytes() == data:
        return newest
    target = folder / f"{name}.{(numbers[-1] if numbers else 0) + 1}"
    atomic_write_bytes(target, data)
    return target


def range_diff_path(config: Config) -> Path:
    """The last successful rebase's `git range-diff` of the old series against the new one, in full."""
    return config.state_dir / "range-diff.txt"


def worktree_path(config: Config) -> Path:
    return config.state_dir / "worktrees" / "rebase"


def write_state(config: Config, state: RebaseState) -> None:
    REBASE_STATE.write(state_path(config), state)


def read_state(config: Config) -> RebaseState | None:
    """The rebase state, None when there is none; a StateFileError naming `rebase --abort --force` when the
    file cannot be read as one (also a folder in its place, or no permission to read it)."""
    path = state_path(config)
    try:
        return REBASE_STATE.read(path)
    except OSError as exc:
        raise REBASE_STATE.error(path, f"{REBASE_STATE.what} cannot be read ({exc.strerror or exc})") from None
