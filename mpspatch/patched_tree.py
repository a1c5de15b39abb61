"""The tree that verify stages run on: the series applied at its base, kept between runs.

The tree lives in a shadow clone under the state folder (`.mpspatch/worktrees/verify`), made with
`git clone --shared`: it borrows the user's object store through git's alternates, so nothing is copied
and the user's clone (working tree, HEAD, branches, refs, even its worktree list) is never written to.

Re-runs switch the checkout with `git checkout -f --detach`, which rewrites only the files whose content
differs, and never cleans untracked files: a PyTorch build folder in the tree survives, and an unchanged
series means an incremental (often empty) rebuild. The commit is made with a pinned identity and date so the
same base and series always give the same commit and tree SHA.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath

from mpspatch import git
from mpspatch.config import Config
from mpspatch.errors import GitError, StateError
from mpspatch.files import atomic_write_text
from mpspatch.ids import CommitSha, TreePath, TreeSha, commit_sha, tree_sha
from mpspatch.series import Patch, read_lock

WORKTREE = "worktrees/verify"
STATE_FILE = "verify-tree.json"
REF = "refs/mpspatch/verify"
STATE_VERSION = 1
# A fixed identity and date: the commit SHA then depends only on base and series content.
_IDENTITY = git.identity_env("mpspatch", "mpspatch@localhost", "@0 +0000")


@dataclass(frozen=True)
class PatchedTree:
    path: Path
    base: CommitSha
    base_ref: str
    onto: CommitSha | None  # set when the tree is a rebase result rather than the series at its base
    commit: CommitSha  # base plus the series
    tree: TreeSha
    paths: tuple[TreePath, ...]  # added or modified by the series (not deleted), sorted: `{patched}`
    touched: tuple[TreePath, ...]  # every path the series changes, deletions included
    source: str  # "verify" (own shadow clone) or "rebase" (the rebase worktree)
    checked_out: bool = False  # the files are on disk (see `checkout`); planning alone does not write them
    full: bool = False  # False: a sparse checkout holding only the folders the series touches
    reused: bool = False  # the checkout already held this commit before this run


def resolve_base(config: Config, checkout: Path) -> tuple[CommitSha, str]:
    """The base commit: series.lock's when one is written, else [upstream].base resolved in the clone."""
    lock = read_lock(config.series.lock)
    if lock is not None:
        return git.resolve_commit(checkout, lock.base), lock.base_ref
    return git.resolve_commit(checkout, config.upstream.base), config.upstream.base


def plan(config: Config, patches: Sequence[Patch]) -> PatchedTree:
    """The commit and tree the stages will run on, made without writing any file of the tree.

    Cache keys need the tree SHA; a run whose stages are all cached or skipped never pays for a checkout.
    """
    checkout = git.require_repo(config.upstream.checkout)
    base, base_ref = resolve_base(config, checkout)
    shadow = _ensure_shadow(config, checkout)
    key = _state_key(base, patches)
    state = _read_state(config)
    commit = _cached_commit(shadow, key, state) or _commit_series(shadow, base, patches)
    git.git(shadow, "update-ref", REF, commit)
    if state.get("commit") != commit:
        _write_state(config, {**key, "commit": commit, "shadow": str(shadow), "checked_out": ""})
    tree = tree_sha(git.git(shadow, "rev-parse", f"{commit}^{{tree}}").stdout.strip())
    return PatchedTree(
        path=shadow,
        base=base,
        base_ref=base_ref,
        onto=None,
        commit=commit,
        tree=tree,
        paths=tuple(sorted(_diff_paths(shadow, base, commit, deleted=False))),
        touched=tuple(_diff_paths(shadow, base, commit, deleted=True)),
        source="verify",
    )


def checkout(config: Config, planned: PatchedTree, *, full: bool) -> PatchedTree:
    """Put the planned commit on disk: full when a stage needs the whole tree, sparse otherwise."""
    shadow = planned.path
    state = _read_state(config)
    checked_out = str(state.get("checked_out", "")) if state.get("shadow") == str(shadow) else ""
    is_sparse = git.git(shadow, "config", "--get", "core.sparseCheckout", check=False).stdout.strip() == "true"
    if full and is_sparse:
        git.git(shadow, "sparse-checkout", "disable", timeout=3600)
        is_sparse = False
    elif not full and (is_sparse or not checked_out):
        # Sparse only on first use or when already sparse: a full tree stays full, it is a superset.
        git.git(shadow, "sparse-checkout", "set", "--cone", *_cone_dirs(planned.touched), timeout=3600)
        is_sparse = True
    key = _state_key(planned.base, None, state)
    # Forget the checkout before switching: an interrupted switch must not pass for a finished one.
    _write_state(config, {**key, "commit": planned.commit, "shadow": str(shadow), "checked_out": ""})
    if checked_out:
        # Re-hash files whose stat data changed but whose content did not (a touch, a copy), so the forced
        # checkout below leaves them alone instead of rewriting them and triggering rebuilds.
        git.git(shadow, "update-index", "-q", "--refresh", check=False, timeout=3600)
    git.git(shadow, "checkout", "-q", "-f", "--detach", planned.commit, timeout=3600)
    _write_state(config, {**key, "commit": planned.commit, "shadow": str(shadow), "checked_out": planned.commit})
    return replace(planned, checked_out=True, full=not is_sparse, reused=checked_out == planned.commit)


def _state_key(
    base: str, patches: Sequence[Patch] | None, state: dict[str, object] | None = None
) -> dict[str, object]:
    series = [p.sha256 for p in patches] if patches is not None else (state or {}).get("series")
    return {"version": STATE_VERSION, "base": base, "series": series}


def _read_state(config: Config) -> dict[str, object]:
    try:
        recorded = json.loads((config.state_dir / STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return recorded if isinstance(recorded, dict) else {}


def _write_state(config: Config, state: dict[str, object]) -> None:
    atomic_write_text(config.state_dir / STATE_FILE, json.dumps(state, indent=2, sort_keys=True) + "\n")


def _ensure_shadow(config: Config, checkout: Path) -> Path:
    shadow = config.state_dir / WORKTREE
    recorded = ""
    if shadow.is_dir() and git.git(shadow, "rev-parse", "--show-toplevel", check=False).stdout.strip() == str(
        shadow.resolve()
    ):
        recorded = git.git(shadow, "config", "--get", "mpspatch.checkout", check=False).stdout.strip()
    if recorded == str(checkout):
        return shadow
    if shadow.exists():
        # Made from another clone (the config's checkout moved): its alternates point at the wrong objects.
        shutil.rmtree(shadow)
    shadow.parent.mkdir(parents=True, exist_ok=True)
    git.git(shadow.parent, "clone", "-q", "--shared", "--no-checkout", "--no-tags", "--single-branch",
            str(checkout), shadow.name, timeout=3600)
    for key, value in (("gc.auto", "0"), ("core.autocrlf", "false"), ("advice.detachedHead", "false"),
                       ("mpspatch.checkout", str(checkout))):
        git.git(shadow, "config", key, value)
    return shadow


def _cached_commit(shadow: Path, key: dict[str, object], state: dict[str, object]) -> CommitSha | None:
    if {k: state.get(k) for k in key} != key:
        return None
    commit = str(state.get("commit", ""))
    exists = git.git(shadow, "cat-file", "-e", f"{commit}^{{commit}}", check=False).ok if commit else False
    return commit_sha(commit) if exists else None


def _commit_series(shadow: Path, base: CommitSha, patches: Sequence[Patch]) -> CommitSha:
    """Apply the series to base in a private index (the checkout is not touched) and commit the result."""
    index = Path(git.git(shadow, "rev-parse", "--absolute-git-dir").stdout.strip()) / "mpspatch-verify.index"
    env = {**_IDENTITY, "GIT_INDEX_FILE": str(index)}
    try:
        git.git(shadow, "read-tree", base, env=env, timeout=600)
        for patch in patches:
            try:
                git.git(shadow, "apply", "--cached", "--whitespace=nowarn", str(patch.path), env=env)
            except GitError as exc:
                detail = exc.message.splitlines()[-1].strip() if exc.message.strip() else ""
                raise StateError(
                    f"{patch.path}: does not apply at its base {base[:12]} ({detail}); "
                    "regenerate it against the base or run `mpspatch rebase`"
                ) from None
        tree = git.git(shadow, "write-tree", env=env).stdout.strip()
        names = ", ".join(p.path.name for p in patches)
        made = git.git(shadow, "commit-tree", tree, "-p", base, "-m", f"mpspatch verify: {names}", env=env)
        return commit_sha(made.stdout.strip())
    finally:
        index.unlink(missing_ok=True)


def _diff_paths(shadow: Path, base: str, commit: str, *, deleted: bool) -> list[TreePath]:
    args = ["diff-tree", "-r", "-z", "--name-only", "--no-renames", "--no-commit-id"]
    if not deleted:
        args.append("--diff-filter=d")
    out = git.git(shadow, *args, base, commit).stdout
    return [TreePath(p) for p in out.split("\0") if p]


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
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            holder = _lock_holder(lock)
            if holder is not None:
                raise StateError(
                    f"{lock}: another `mpspatch verify` (pid {holder}) is running on this tree; wait for it, "
                    "or delete the file if that process is gone"
                ) from None
            lock.unlink(missing_ok=True)  # left behind by a process that no longer exists
            continue
        with os.fdopen(fd, "w") as handle:
            handle.write(f"{os.getpid()}\n")
        break
    else:
        raise StateError(f"{lock}: cannot take the verify lock; delete the file and retry")
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
