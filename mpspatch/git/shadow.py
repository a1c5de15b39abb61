"""The shadow repository: mpspatch's private workshop beside the user's clone, and its worktrees.

It borrows the user's object store through `objects/info/alternates` (read-only, as `git clone --shared`
does), so creating it copies nothing, and every object or ref mpspatch makes lives in the shadow. The user's
clone is only ever read (and cloned once, by ensure_checkout, when it does not exist).
"""

from __future__ import annotations

import atexit
import os
import re
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from mpspatch.foundation import proc
from mpspatch.foundation.errors import GitError
from mpspatch.foundation.files import atomic_write_text
from mpspatch.foundation.ids import CommitSha
from mpspatch.foundation.redact import redact_url
from mpspatch.git.verbs import SERIES_IDENTITY, common_dir, git, repo_layout, require_repo

SHADOW_NAME = "shadow.git"

def ensure_checkout(url: str, checkout: Path) -> bool:
    """Clone `url` into `checkout` when it does not exist yet; True when a clone was made.

    This is the one time mpspatch creates the user's clone. A blobless, sparse, unchecked-out clone costs a
    fraction of a full one; the shadow repository fetches the few blobs it needs on demand.
    """
    if checkout.exists():
        return False
    checkout.parent.mkdir(parents=True, exist_ok=True)
    result = git(checkout.parent, "clone", "--quiet", "--filter=blob:none", "--sparse", "--no-checkout",
                 url, str(checkout), check=False, timeout=7200, user_config=True)  # proxies, credentials
    if not result.ok:
        raise GitError(f"{checkout}: could not clone {redact_url(url)} ({proc.tail(result.stderr, 3)}); "
                       "fix [upstream].url or clone it there yourself")
    return True


def _partial_clone_remote(checkout: Path) -> tuple[str, str, str] | None:
    """(remote name, url, filter) when the checkout is a partial clone, else None (one `git config` call).

    git marks the remote with `remote.NAME.promisor`; `extensions.partialclone` is only set by some versions.
    """
    pattern = r"^(extensions\.partialclone|remote\..*\.(promisor|url|partialclonefilter))$"
    out = git(checkout, "config", "--get-regexp", pattern, check=False).stdout
    values: dict[str, str] = {}
    for line in out.splitlines():
        key, _, value = line.partition(" ")
        values[key.lower()] = value.strip()
    name = values.get("extensions.partialclone") or next(
        (k[len("remote."):-len(".promisor")] for k, v in values.items() if k.endswith(".promisor") and v == "true"),
        "")
    url = values.get(f"remote.{name}.url", "")
    if not name or not url:
        return None
    return name, url, values.get(f"remote.{name}.partialclonefilter") or "blob:none"


# Which shadows belong to partial clones (the promisor remote's name), learnt by ensure_shadow in this process.
_PROMISOR: dict[Path, str | None] = {}


def shadow_path(state_dir: Path) -> Path:
    return state_dir / SHADOW_NAME


def clone_layout(checkout: Path) -> tuple[Path, Path]:
    """The clone's top and common git directory (verbs.repo_layout), or the GitError that names the config
    key to fix."""
    found = repo_layout(checkout) if checkout.is_dir() else None
    if found is None:
        require_repo(checkout)  # raises the error that names the config key to fix
        raise GitError(f"{checkout}: cannot read the clone; check [upstream].checkout")
    return found


def ensure_shadow(checkout: Path, state_dir: Path, layout: tuple[Path, Path] | None = None) -> Path:
    """The shadow repository under the state folder, created on first use and re-pointed if the clone moved.

    Costs two git calls when the shadow exists (one when the caller passes the clone's `layout` from
    clone_layout): this runs at the start of every rebase and drift. It also checks that `checkout` is a git
    repository, with the error that names the config key to fix.
    """
    store = (layout or clone_layout(checkout))[1] / "objects"
    shadow = shadow_path(state_dir)
    if not _writable(state_dir):
        return _scratch_shadow(checkout, store, shadow)
    if (shadow / "HEAD").is_file() and not all(_writable(shadow / part) for part in ("", "objects", "refs")):
        raise GitError(f"{shadow}: the shadow repository is not writable; make it writable or delete it "
                       "(mpspatch makes a new one)")
    fresh = not (shadow / "HEAD").is_file()
    if fresh:
        _create_shadow(shadow)
    alternates = shadow / "objects" / "info" / "alternates"
    wanted = f"{store}\n"
    if fresh or not alternates.is_file() or alternates.read_text(encoding="utf-8") != wanted:
        atomic_write_text(alternates, wanted)
        fresh = True
    _learn_promisor(checkout, shadow, configure=fresh)
    return shadow


def _learn_promisor(checkout: Path, shadow: Path, *, configure: bool) -> None:
    promisor = _partial_clone_remote(checkout)
    _PROMISOR[shadow] = promisor[0] if promisor else None
    if promisor is not None and configure:
        # Blobs the user's partial clone never fetched are fetched lazily into the shadow, from the same remote.
        name, url, flt = promisor
        for key, value in (("core.repositoryformatversion", "1"), ("extensions.partialclone", name),
                           (f"remote.{name}.url", url), (f"remote.{name}.promisor", "true"),
                           (f"remote.{name}.partialclonefilter", flt)):
            git(shadow, "config", key, value)


def _writable(folder: Path) -> bool:
    """Whether this process can create files in `folder`, or in the nearest folder above it that exists
    (a read-only mount says no even to root)."""
    while not folder.exists() and folder.parent != folder:
        folder = folder.parent
    return folder.is_dir() and os.access(folder, os.W_OK | os.X_OK)


def _scratch_shadow(checkout: Path, store: Path, shadow: Path) -> Path:
    """A shadow repository in a temporary folder, for a project whose state folder cannot be written.

    Commands that change nothing (drift, status, `regenerate --check`, render) still make objects and refs:
    here they go to a throwaway repository that borrows the clone's objects and, when it exists, the real
    shadow's (so what earlier runs fetched or built is reused, and mpspatch's own caches at the shadow's top,
    named mpspatch-*, are copied in). A command that writes the project's state never gets here: it takes
    the project lock first, which refuses a read-only state folder. The folder goes when the process ends.
    """
    scratch = Path(tempfile.mkdtemp(prefix="mpspatch-shadow-"))
    atexit.register(shutil.rmtree, scratch, ignore_errors=True)
    repo = scratch / SHADOW_NAME
    git(scratch, "init", "--quiet", "--bare", str(repo))
    _configure(repo)
    borrowed = [store]
    if (shadow / "HEAD").is_file() and (shadow / "objects").is_dir():
        borrowed.append(shadow / "objects")
        for cache in shadow.glob("mpspatch-*"):
            if cache.is_file():
                shutil.copyfile(cache, repo / cache.name)
    (repo / "objects" / "info").mkdir(parents=True, exist_ok=True)
    (repo / "objects" / "info" / "alternates").write_text("".join(f"{p}\n" for p in borrowed), encoding="utf-8")
    _learn_promisor(checkout, repo, configure=True)
    return repo


def prefetch_blobs(shadow: Path, base: str, onto: str, paths: Sequence[str]) -> int:
    """Fetch, in one request, the blobs of `paths` that a partial clone lacks at base, onto and in between.

    Without this, every missing blob a merge or diff touches is fetched lazily in a round trip of its own,
    which against GitHub costs seconds per file. Returns how many blobs were fetched (0 for full clones).
    """
    remote = _PROMISOR[shadow] if shadow in _PROMISOR else (
        git(shadow, "config", "--get", "extensions.partialclone", check=False).stdout.strip() or None)
    if not remote or not paths:
        return 0
    missing: set[str] = set()
    for revs in (["--no-walk", base], [onto, f"^{base}"]):
        out = git(shadow, "rev-list", "--objects", "--missing=print", *revs, "--", *paths).stdout
        missing.update(line[1:].strip() for line in out.splitlines() if line.startswith("?"))
    if missing:
        git(shadow, "-c", "fetch.negotiationAlgorithm=noop", "fetch", "--quiet", "--no-tags",
            "--no-write-fetch-head", "--recurse-submodules=no", "--filter=blob:none", "--stdin", remote,
            input_text="\n".join(sorted(missing)) + "\n", timeout=3600, user_config=True)
    return len(missing)


def _create_shadow(shadow: Path) -> None:
    # Built in a sibling folder and renamed into place, so a kill half-way never leaves a broken shadow.
    shadow.parent.mkdir(parents=True, exist_ok=True)
    staging = shadow.with_name(f".{shadow.name}.{os.getpid()}.tmp")
    if staging.exists():
        shutil.rmtree(staging)
    git(shadow.parent, "init", "--quiet", "--bare", str(staging))
    _configure(staging)
    try:
        staging.rename(shadow)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
        if not (shadow / "HEAD").is_file():
            raise


def _configure(repo: Path) -> None:
    for key, value in (("gc.auto", "0"), ("core.logAllRefUpdates", "false"), ("rerere.enabled", "true"),
                       ("rerere.autoupdate", "true"), ("user.name", SERIES_IDENTITY[0]),
                       ("user.email", SERIES_IDENTITY[1])):
        git(repo, "config", key, value)


def pin_ref(shadow: Path, ref: str, sha: CommitSha) -> None:
    """Point a shadow ref at a commit, so the shadow's own gc can never drop what mpspatch is working on."""
    git(shadow, "update-ref", ref, sha)


def update_refs(shadow: Path, *, pin: Mapping[str, str] | None = None, delete: Sequence[str] = ()) -> None:
    """Several ref updates in one `git update-ref --stdin` transaction (one process, all or nothing)."""
    lines = [f"update {ref} {sha}" for ref, sha in (pin or {}).items()]
    lines += [f"delete {ref}" for ref in delete]  # deleting a ref that is not there is a no-op
    if lines:
        git(shadow, "update-ref", "--stdin", input_text="\n".join(lines) + "\n")


def sparse_patterns(paths: Sequence[str]) -> list[str]:
    """Non-cone sparse patterns that match exactly these files (anchored, with glob characters escaped)."""
    patterns = []
    for path in sorted(set(paths)):
        escaped = re.sub(r"([*?\[\]\\!# ])", r"\\\1", path)
        patterns.append("/" + escaped)
    return patterns


def add_sparse_worktree(shadow: Path, where: Path, branch: str, commit: CommitSha, paths: Sequence[str]) -> None:
    """A worktree of the shadow repository at `where`, on `branch`, holding only `paths`.

    A sparse worktree costs what the patched files cost, not what PyTorch's 13k-file tree costs (a fraction
    of a second against ten). rerere is switched on in it so a resolution made once is replayed next time.
    """
    where.parent.mkdir(parents=True, exist_ok=True)
    # --force: a worktree registered at this path whose folder is gone (an interrupted run) is taken over.
    git(shadow, "worktree", "add", "--quiet", "--force", "--no-checkout", "-B", branch, str(where), commit)
    # rerere.enabled/autoupdate come from the shadow's own config, which every worktree of it reads.
    git(where, "sparse-checkout", "set", "--no-cone", "--stdin", input_text="\n".join(sparse_patterns(paths)) + "\n")
    # --no-checkout left the index empty: fill it from HEAD and write only the files the patterns keep.
    git(where, "read-tree", "-mu", "HEAD")


def remove_worktree(shadow: Path, where: Path) -> None:
    """Remove a shadow worktree and its administrative files, whatever state it was left in."""
    if where.exists():
        git(shadow, "worktree", "remove", "--force", "--force", str(where), check=False)
        if where.exists():
            shutil.rmtree(where, ignore_errors=True)
    git(shadow, "worktree", "prune", check=False)



def add_detached_worktree(shadow: Path, where: Path, commit: CommitSha) -> bool:
    """Make `where` a worktree of the shadow at `commit` without checking anything out; True when made now.

    A folder that is already a worktree of this shadow is kept; anything else there (a leftover, or a
    worktree of a shadow since remade) is replaced.
    """
    if where.is_dir():
        common = common_dir(where)
        if common is not None and common.resolve() == shadow.resolve():
            return False
        shutil.rmtree(where)
    git(shadow, "worktree", "prune", check=False)
    where.parent.mkdir(parents=True, exist_ok=True)
    git(shadow, "worktree", "add", "--quiet", "--no-checkout", "--detach", str(where), commit)
    return True


def is_sparse(worktree: Path) -> bool:
    return git(worktree, "config", "--get", "core.sparseCheckout", check=False).stdout.strip() == "true"


def disable_sparse(worktree: Path) -> None:
    """Check out the whole tree from now on."""
    git(worktree, "sparse-checkout", "disable", timeout=3600)


def sparse_cone(worktree: Path, folders: Sequence[str]) -> None:
    """Keep only `folders` (cone mode: plus the files directly in their parents) in the worktree."""
    git(worktree, "sparse-checkout", "set", "--cone", *folders, timeout=3600)


# How the shadow merges: written into its own config (through an include mpspatch owns) and its
# info/attributes, which a bare repository, its worktrees, `merge-tree` and `rebase` all read.
MERGE_CONFIG = "mpspatch-merge.config"


@dataclass(frozen=True)
class MergeDriverSpec:
    """A merge driver for the shadow: git's `merge.<name>.driver` and the attributes pattern that picks it."""

    name: str  # a git config subsection name, e.g. "mpspatch-native-functions"
    pattern: str  # a gitattributes pattern
    command: str  # the driver command line (run by git through the shell; %O %A %B %L %P substituted)


def _config_value(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\t", "\\t")
    return f'"{escaped}"'


def configure_merges(shadow: Path, conflict_style: str, drivers: Sequence[MergeDriverSpec]) -> bool:
    """Make the shadow merge with `conflict_style` and `drivers` (the first whose pattern matches wins).

    Costs no git call when nothing changed since the last run, one the first time (the include). Only the
    shadow's files change: the user's clone never sees a driver. True when something was rewritten.
    """
    lines = ["# Written by mpspatch from [rebase] in mpspatch.toml; rewritten when that changes.\n",
             "[merge]\n", f"\tconflictStyle = {conflict_style}\n"]
    for driver in drivers:
        if any(c in driver.command for c in "\n\0"):
            raise GitError(f"merge driver {driver.name}: the command must be one line")
        lines += [f'[merge "{driver.name}"]\n', f"\tname = {_config_value(driver.name)}\n",
                  f"\tdriver = {_config_value(driver.command)}\n"]
    config_text = "".join(lines)
    # git reads attributes top down and the last matching line wins: the first driver goes last.
    attributes_text = "# Written by mpspatch from [rebase] in mpspatch.toml.\n" + "".join(
        f"{driver.pattern} merge={driver.name}\n" for driver in reversed(drivers))
    config_file = shadow / MERGE_CONFIG
    attributes = shadow / "info" / "attributes"
    changed = False
    if not config_file.is_file():
        atomic_write_text(config_file, config_text)
        git(shadow, "config", "include.path", MERGE_CONFIG)
        changed = True
    elif config_file.read_text(encoding="utf-8") != config_text:
        atomic_write_text(config_file, config_text)
        changed = True
    if not attributes.is_file() or attributes.read_text(encoding="utf-8") != attributes_text:
        atomic_write_text(attributes, attributes_text)
        changed = True
    return changed
