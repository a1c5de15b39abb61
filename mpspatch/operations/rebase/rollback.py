"""Drop a stopped rebase: put back the patch files and the lock, keep any edit made meanwhile, remove every trace."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

from mpspatch.foundation.config import Config
from mpspatch.foundation.errors import StateError
from mpspatch.foundation.files import atomic_write_bytes, sha256_file
from mpspatch.git import shadow as shadow_repo
from mpspatch.model.landed import forget_landed
from mpspatch.model.state import RebaseState, backup_dir, previous_dir, state_path, worktree_path
from mpspatch.model.store import StateFileError
from mpspatch.model.workspace import Workspace
from mpspatch.operations.rebase.results import AbortResult

BRANCH = "mpspatch/rebase"  # a branch of the SHADOW repository only
SERIES_REF = "refs/mpspatch/rebase/series"


def require_state(ws: Workspace, verb: str) -> RebaseState:
    state = ws.rebase
    if state is None:
        raise StateError(f"{state_path(ws.config)}: no rebase in progress, nothing to {verb}; start one with "
                         "`mpspatch rebase`")
    return state


def abort(ws: Workspace, *, force: bool = False) -> AbortResult:
    """Drop the rebase and put the patch files and lock back as they were before it.

    A patch file edited while the rebase was stopped is refused (its edit would be lost) unless `force`,
    which keeps the edited file in the previous-versions folder first. A state file that cannot be read is
    refused too; `force` removes it with the worktree and restores what the backup holds.
    """
    config = ws.config
    shadow = ws.shadow_path  # never created here: abort must work with the clone gone
    try:
        state = require_state(ws, "abort")
    except StateFileError:
        if not force:
            raise  # its message names the file, what is wrong, and `mpspatch rebase --abort --force`
        return _abort_unreadable(config, shadow)
    worktree = config.root / state.worktree
    edited = edited_patches(config, state)
    if edited and not force:
        names = ", ".join(str(p) for p in edited)
        raise StateError(f"{names}: changed while the rebase was stopped; --abort would put back the version "
                         "from before the rebase and lose that edit. Copy it elsewhere, or run "
                         f"`mpspatch rebase --abort --force` to keep it in {previous_dir(config)} and abort")
    kept = tuple((path, keep_copy(config, path)) for path in edited)
    restored = _restore(config, state)
    cleanup(config, shadow, worktree)
    prune_unresolved_rerere(shadow)
    return AbortResult(worktree=worktree, restored=restored, kept=kept)


def prune_unresolved_rerere(shadow: Path) -> None:
    """Drop the conflict records no resolution was ever recorded for: each aborted rebase leaves some, and
    the cache would grow without end. Recorded resolutions (a `postimage`) stay, to be replayed.

    `git rerere gc` with gc.rerereUnresolved=0 spares records made in the current second, that is, the ones
    of the rebase just aborted, so the records are pruned here directly, in the shadow mpspatch owns.
    """
    cache = shadow / "rr-cache"
    if not cache.is_dir():
        return
    for entry in cache.iterdir():
        if entry.is_dir() and not any(p.name.startswith("postimage") for p in entry.iterdir()):
            shutil.rmtree(entry, ignore_errors=True)


def edited_patches(config: Config, state: RebaseState) -> tuple[Path, ...]:
    """Patch files whose bytes are neither those recorded at the start nor those the rewrite gave them.

    A deleted file is not an edit: there is nothing of the user's to lose, and the backup puts it back.
    """
    written = {s.path: s.sha256 for s in state.rewritten}
    edited = []
    for saved in state.patches:
        path = config.root / saved.path
        if not path.is_file():
            continue
        current = sha256_file(path)
        if current != saved.sha256 and current != written.get(saved.path):
            edited.append(path)
    return tuple(edited)


def keep_copy(config: Config, path: Path) -> Path:
    """Copy `path` into the previous-versions folder under a name no earlier copy has; where it went."""
    folder = previous_dir(config)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    target = folder / f"{path.name}.edited-{stamp}"
    number = 1
    while target.exists():
        number += 1
        target = folder / f"{path.name}.edited-{stamp}-{number}"
    atomic_write_bytes(target, path.read_bytes())
    return target


def _abort_unreadable(config: Config, shadow: Path) -> AbortResult:
    """--abort --force with a state file that cannot be read: remove it and the worktree, and put back every
    patch file and the lock the backup holds, keeping a differing current file next to the previous versions."""
    folder = backup_dir(config)
    restored: list[Path] = []
    kept: list[tuple[Path, Path]] = []
    pairs = [(path, folder / f"{index:03d}-{path.name}") for index, path in enumerate(config.series.patches)]
    pairs.append((config.series.lock, folder / "series.lock"))
    for path, backup in pairs:
        if not backup.is_file():
            continue
        data = backup.read_bytes()
        if path.is_file() and path.read_bytes() == data:
            continue
        if path.is_file():
            kept.append((path, keep_copy(config, path)))
        atomic_write_bytes(path, data)
        restored.append(path)
    worktree = worktree_path(config)
    broken = state_path(config)
    if broken.is_dir() and not broken.is_symlink():
        shutil.rmtree(broken)
    cleanup(config, shadow, worktree)
    return AbortResult(worktree=worktree, restored=tuple(restored), kept=tuple(kept), state_discarded=True)


def _restore(config: Config, state: RebaseState) -> tuple[Path, ...]:
    """Put back any patch file or lock an interrupted write had already replaced."""
    folder = backup_dir(config)
    restored: list[Path] = []
    for index, saved in enumerate(state.patches):
        path = config.root / saved.path
        if not path.exists() or sha256_file(path) != saved.sha256:
            backup = folder / f"{index:03d}-{path.name}"
            if not backup.exists():
                raise StateError(f"{backup}: the backup of {path} is missing; restore it from version control")
            atomic_write_bytes(path, backup.read_bytes())
            restored.append(path)
    lock = config.root / state.lock.path
    current = sha256_file(lock) if lock.exists() else None
    if current != state.lock.sha256:
        if state.lock.sha256 is None:
            lock.unlink()
        else:
            atomic_write_bytes(lock, (folder / "series.lock").read_bytes())
        restored.append(lock)
        # The write got as far as the lock, so it may have recorded what this rebase found upstream.
        forget_landed(config, state.onto)
    return tuple(restored)


def cleanup(config: Config, shadow: Path, worktree: Path) -> None:
    """Remove every trace of a rebase: worktree, temporary branch and refs, backup, state (last)."""
    if (shadow / "HEAD").is_file():
        shadow_repo.remove_worktree(shadow, worktree)
        shadow_repo.update_refs(shadow, delete=[f"refs/heads/{BRANCH}", SERIES_REF])
    elif worktree.exists():
        shutil.rmtree(worktree)
    if worktree.parent.is_dir() and not any(worktree.parent.iterdir()):
        worktree.parent.rmdir()
    shutil.rmtree(backup_dir(config), ignore_errors=True)
    state_path(config).unlink(missing_ok=True)
