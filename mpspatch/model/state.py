"""The rebase state file, `.mpspatch/rebase.json`: what a stopped or interrupted rebase needs to go on or undo."""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from mpspatch.foundation.config import Config
from mpspatch.foundation.errors import StateError
from mpspatch.foundation.files import atomic_write_text
from mpspatch.foundation.ids import CommitSha, ContentSha256, commit_sha

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


def state_path(config: Config) -> Path:
    return config.state_dir / STATE_NAME


def backup_dir(config: Config) -> Path:
    return config.state_dir / "rebase-backup"


def previous_dir(config: Config) -> Path:
    return config.state_dir / "previous"


def worktree_path(config: Config) -> Path:
    return config.state_dir / "worktrees" / "rebase"


def write_state(config: Config, state: RebaseState) -> None:
    body = {
        "version": STATE_VERSION,
        "phase": state.phase,
        "base": state.base,
        "base_ref": state.base_ref,
        "onto": state.onto,
        "onto_ref": state.onto_ref,
        "series_tip": state.series_tip,
        "series": list(state.series),
        "patches": [{"path": p.path, "sha256": p.sha256} for p in state.patches],
        "lock": {"path": state.lock.path, "sha256": state.lock.sha256},
        "worktree": state.worktree,
        "paths": list(state.paths),
        "conflicted": list(state.conflicted),
        "notes": list(state.notes),
        "started_at": state.started_at,
    }
    atomic_write_text(state_path(config), json.dumps(body, indent=2, sort_keys=True) + "\n")


def read_state(config: Config) -> RebaseState | None:
    path = state_path(config)
    if not path.exists():
        return None
    fix = "run `mpspatch rebase --abort` to discard it"
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
        if body.get("version") != STATE_VERSION:
            raise StateError(f"{path}: rebase state version {body.get('version')!r} is unknown; {fix}")

        def saved(item: dict[str, object]) -> SavedFile:
            digest = item["sha256"]
            return SavedFile(path=str(item["path"]), sha256=ContentSha256(str(digest)) if digest else None)

        return RebaseState(
            phase=RebasePhase(body["phase"]), base=commit_sha(body["base"]), base_ref=str(body["base_ref"]),
            onto=commit_sha(body["onto"]), onto_ref=str(body["onto_ref"]),
            series_tip=commit_sha(body["series_tip"]), series=tuple(commit_sha(c) for c in body["series"]),
            patches=tuple(saved(p) for p in body["patches"]),
            lock=saved(body["lock"]), worktree=str(body["worktree"]), paths=tuple(body["paths"]),
            conflicted=tuple(body["conflicted"]), notes=tuple(body["notes"]), started_at=str(body["started_at"]),
        )
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise StateError(f"{path}: the rebase state is not valid ({exc}); {fix}") from None
