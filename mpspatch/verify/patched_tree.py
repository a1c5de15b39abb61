"""The tree that verify stages run on: the series applied at its base, kept between runs.

The tree is a worktree (`.mpspatch/worktrees/verify`) of mpspatch's shadow repository (git/shadow.py),
which borrows the user's object store through git's alternates: nothing is copied, and the user's clone
(working tree, HEAD, branches, refs, worktree list) is only ever read. The series commits come from
git/commits.py, the same deterministic commits `mpspatch rebase` makes, so the tree SHA that verify
records is the one a rebase would produce for the same base and patches.

`mpspatch rebase` moves the series and its lock onto the new base and then removes its own worktree, so
after a rebase this tree is the rebase result (the lock says so). While a rebase is stopped on conflicts the
patch files are in flux, and verify refuses to run.

Re-runs switch the checkout with `git checkout -f --detach`, which rewrites only the files whose content
differs, and never cleans untracked files: a PyTorch build folder in the tree survives, and an unchanged
series means an incremental (often empty) rebuild.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath

from mpspatch.foundation.config import Config
from mpspatch.foundation.errors import StateError
from mpspatch.foundation.ids import CommitSha, TreePath, TreeSha
from mpspatch.git import shadow as shadow_repo
from mpspatch.git import verbs as git
from mpspatch.git.commits import series_commits
from mpspatch.model.series import Patch, read_lock
from mpspatch.model.stack import Stack
from mpspatch.model.store import StateFile
from mpspatch.model.workspace import Workspace

WORKTREE = "worktrees/verify"
STATE_FILE = "verify-tree.json"
REF = "refs/mpspatch/verify"
STATE_VERSION = 3


@dataclass(frozen=True)
class TreeState:
    """What the verify worktree holds, recorded so a re-run can tell an incremental switch from a first one."""

    checked_out: CommitSha | None  # None before the first checkout and while a switch is under way


# Only ever a hint: a state that cannot be read means "unknown", and the next checkout rewrites it.
VERIFY_TREE = StateFile(
    what="the verify tree state", model=TreeState, version=STATE_VERSION,
    fix="delete it; the next verify checks the tree out again", rebuildable=True,
)


@dataclass(frozen=True)
class PatchedTree:
    path: Path
    base: CommitSha
    base_ref: str
    onto: CommitSha | None  # set when the series is a rebase result: the commit it was rebased onto
    commit: CommitSha  # base plus the series
    tree: TreeSha
    paths: tuple[TreePath, ...]  # added or modified by the series (not deleted), sorted: `{patched}`
    touched: tuple[TreePath, ...]  # every path the series changes, deletions included
    shadow: Path  # the repository the worktree belongs to
    checked_out: bool = False  # the files are on disk (see `checkout`); planning alone does not write them
    full: bool = False  # False: a sparse checkout holding only the folders the series touches
    reused: bool = False  # the checkout already held this commit before this run


def plan(ws: Workspace, patches: Sequence[Patch]) -> PatchedTree:
    """The commit and tree the stages will run on, made without writing any file of the tree.

    Cache keys need the tree SHA; a run whose stages are all cached or skipped never pays for a checkout.
    """
    config = ws.config
    ws.refuse_during_rebase("verify")
    base, base_ref = ws.base, ws.base_ref
    shadow = ws.shadow
    commits = series_commits(shadow, base, [p.path for p in patches])
    commit = commits[-1] if commits else base
    shadow_repo.pin_ref(shadow, REF, commit)
    lock = read_lock(config.series.lock)
    rebased = lock is not None and lock.base == base and lock.written_by.startswith("mpspatch rebase")
    return PatchedTree(
        path=config.state_dir / WORKTREE,
        base=base,
        base_ref=base_ref,
        onto=base if rebased else None,
        commit=commit,
        tree=git.tree_sha_of(shadow, commit),
        paths=tuple(sorted(_diff_paths(shadow, base, commit, deleted=False))),
        touched=tuple(_diff_paths(shadow, base, commit, deleted=True)),
        shadow=shadow,
    )


def plan_part(ws: Workspace, stack: Stack, stack_dir: Path, k: int) -> PatchedTree:
    """The tree of stack parts 1..k applied on the stack's base, in its own kept worktree.

    Each part becomes a PR that upstream CI builds and tests alone, so it is verified on exactly that tree.
    The parts' patch files are applied as series commits (the same deterministic commits as the series), and
    the resulting tree must be the one `split` recorded for part k.
    """
    config = ws.config
    ws.refuse_during_rebase("verify")
    shadow = ws.shadow
    parts = stack.parts[:k]
    commits = series_commits(shadow, stack.base, [stack_dir / p.path for p in parts])
    commit = commits[-1] if commits else stack.base
    shadow_repo.pin_ref(shadow, f"{REF}-part-{k}", commit)
    tree = git.tree_sha_of(shadow, commit)
    if parts and tree != parts[-1].tree:
        raise StateError(f"{stack_dir}: parts 1..{k} applied on {stack.base_ref} give tree {tree[:12]}, not the "
                         f"{parts[-1].tree[:12]} `split` recorded for part {k}; run `mpspatch split` again")
    return PatchedTree(
        path=config.state_dir / f"{WORKTREE}-part-{k}",
        base=stack.base,
        base_ref=stack.base_ref,
        onto=None,
        commit=commit,
        tree=tree,
        paths=tuple(sorted(_diff_paths(shadow, stack.base, commit, deleted=False))),
        touched=tuple(_diff_paths(shadow, stack.base, commit, deleted=True)),
        shadow=shadow,
    )


def checkout(config: Config, planned: PatchedTree, *, full: bool, extra: Sequence[str] = ()) -> PatchedTree:
    """Put the planned commit on disk: full when a stage needs the whole tree, sparse otherwise.

    A sparse tree holds the folders of the touched files plus `extra` (the stages' `sparse` paths)."""
    where = planned.path
    state = _read_state(config, where)
    fresh = shadow_repo.add_detached_worktree(planned.shadow, where, planned.commit)
    checked_out = None if fresh else state.checked_out
    is_sparse = shadow_repo.is_sparse(where)
    if full and is_sparse:
        shadow_repo.disable_sparse(where)
        is_sparse = False
    elif not full and (is_sparse or not checked_out):
        # Sparse only on first use or when already sparse: a full tree stays full, it is a superset.
        shadow_repo.sparse_cone(where, sorted({*_cone_dirs(planned.touched), *extra}))
        is_sparse = True
    # Forget the checkout before switching: an interrupted switch must not pass for a finished one.
    _write_state(config, where, TreeState(checked_out=None))
    if checked_out:
        # Re-hash files whose stat data changed but whose content did not (a touch, a copy), so the forced
        # checkout below leaves them alone instead of rewriting them and triggering rebuilds.
        git.refresh_index(where)
    git.checkout_detached(where, planned.commit)
    _write_state(config, where, TreeState(checked_out=planned.commit))
    return replace(planned, checked_out=True, full=not is_sparse, reused=checked_out == planned.commit)


def _state_file(config: Config, where: Path) -> Path:
    """verify-tree.json for the verify tree; one file of its own for each other kept tree (a stack part's)."""
    if where == config.state_dir / WORKTREE:
        return config.state_dir / STATE_FILE
    return config.state_dir / f"{where.name}-tree.json"


def _read_state(config: Config, where: Path) -> TreeState:
    return VERIFY_TREE.read(_state_file(config, where)) or TreeState(checked_out=None)


def _write_state(config: Config, where: Path, state: TreeState) -> None:
    VERIFY_TREE.write(_state_file(config, where), state)


def _diff_paths(shadow: Path, base: str, commit: str, *, deleted: bool) -> list[TreePath]:
    return [TreePath(p) for p in git.diff_tree_paths(shadow, base, commit, deleted=deleted)]


def _cone_dirs(paths: Sequence[str]) -> list[str]:
    """The folders holding the touched files; cone mode adds every file directly in their parents too."""
    dirs = {str(PurePosixPath(p).parent) for p in paths}
    dirs.discard(".")
    return sorted(dirs)


@contextmanager
def exclusive(config: Config) -> Iterator[None]:
    """One verify at a time per state folder: two runs switching one checkout would test a mix."""
    lock = config.state_dir / "verify.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    # The pid goes into a private file that is then hard-linked into place: link() creates the lock with its
    # content in one step, so no other run can ever see an empty lock and mistake it for a stale one.
    claim = lock.with_name(f"{lock.name}.{os.getpid()}")
    claim.write_text(f"{os.getpid()}\n", encoding="utf-8")
    try:
        for _ in range(2):
            try:
                os.link(claim, lock)
            except FileExistsError:
                holder = _lock_holder(lock)
                if holder is not None:
                    raise StateError(
                        f"{lock}: another `mpspatch verify` (pid {holder}) is running on this tree; wait for it, "
                        "or delete the file if that process is gone"
                    ) from None
                lock.unlink(missing_ok=True)  # left behind by a process that no longer exists
                continue
            break
        else:
            raise StateError(f"{lock}: cannot take the verify lock; delete the file and retry")
    finally:
        claim.unlink(missing_ok=True)
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)


def _lock_holder(lock: Path) -> int | None:
    try:
        pid = int(lock.read_text(encoding="utf-8").strip())
    except (OSError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return pid
    return pid
