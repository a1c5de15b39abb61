"""Where the series stands: the one rule that turns a ref into a commit, and the series base."""

from __future__ import annotations

import re
from pathlib import Path

from mpspatch.foundation.config import Config
from mpspatch.foundation.errors import GitError
from mpspatch.foundation.ids import CommitSha, commit_sha
from mpspatch.git import verbs as git
from mpspatch.model.series import read_lock


def resolve_ref(checkout: Path, ref: str) -> CommitSha:
    """A ref of the user's clone, also found as origin/REF (where a plain `git fetch` puts branches)."""
    for candidate in (ref, f"refs/remotes/origin/{ref}"):
        result = git.git(checkout, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{candidate}^{{commit}}",
                         check=False)
        if result.ok:
            return commit_sha(result.stdout.strip())
    raise GitError(f"{checkout}: the clone has no {ref!r}; bring it with `{fetch_hint(checkout, ref)}`")


def fetch_hint(checkout: Path, ref: str) -> str:
    if re.fullmatch(r"[0-9a-f]{7,40}", ref):
        return f"git -C {checkout} fetch origin {ref}"
    if re.match(r"v\d", ref):  # release tags: a bare `fetch origin v2.9.1` would land only in FETCH_HEAD
        return f"git -C {checkout} fetch origin tag {ref}"
    return f"git -C {checkout} fetch origin {ref}"


def resolve_base(config: Config, checkout: Path) -> tuple[CommitSha, str]:
    """The series base: series.lock when written (it records the exact SHA), else [upstream].base."""
    lock = read_lock(config.series.lock)
    if lock is None:
        return resolve_ref(checkout, config.upstream.base), config.upstream.base
    if not git.git(checkout, "cat-file", "-e", f"{lock.base}^{{commit}}", check=False).ok:
        raise GitError(f"{checkout}: the clone lacks the locked base {lock.base} ({lock.base_ref}); bring it with "
                       f"`{fetch_hint(checkout, lock.base_ref)}`")
    return lock.base, lock.base_ref


def resolve_base_and_onto(config: Config, checkout: Path, onto_ref: str) -> tuple[CommitSha, str, CommitSha]:
    """(base, base_ref, onto) in one `git rev-parse` when both resolve; else the one-by-one path that names the
    missing ref and the fetch that brings it."""
    lock = read_lock(config.series.lock)
    base_ref = lock.base_ref if lock else config.upstream.base
    base_spec = lock.base if lock else base_ref
    both = git.git(checkout, "rev-parse", "--end-of-options", f"{base_spec}^{{commit}}", f"{onto_ref}^{{commit}}",
                   check=False)
    lines = both.stdout.split()
    if both.ok and len(lines) == 2 and all(re.fullmatch(r"[0-9a-f]{40}", line) for line in lines):
        return commit_sha(lines[0]), base_ref, commit_sha(lines[1])
    base, base_ref = resolve_base(config, checkout)
    return base, base_ref, resolve_ref(checkout, onto_ref)
