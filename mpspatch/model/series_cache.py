"""The series as commits in the shadow, remembered between commands by a hash of what makes them.

git/commits.build_series makes deterministic commits (pinned identity and dates), so the same base and the
same patch names and bytes always give the same SHAs and notes: a remembered build can only save the
applies (a handful of git processes per patch), never change a result. drift and rebase share it, so the
forecast a user runs first makes the rebase that follows cheaper, and the other way round.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mpspatch.foundation.files import sha256_file
from mpspatch.foundation.ids import CommitSha
from mpspatch.git import shadow as shadow_repo
from mpspatch.git import verbs as git
from mpspatch.git.commits import SeriesBuild, build_series
from mpspatch.model.store import StateFile

# drift is the one that records (see cached_build), so the file and the ref keep drift's names; version 2
# added the notes, so a version-1 file from before is rebuilt.
CACHE_FILE = "mpspatch-drift-series.json"
CACHE_VERSION = 2
# Keeps the remembered commits from the shadow's gc.
CACHE_REF = "refs/mpspatch/drift/series"


@dataclass(frozen=True)
class CachedBuild:
    key: str  # sha256 over the cache version, the base, and each patch's name and bytes
    commits: tuple[CommitSha, ...]
    notes: tuple[str, ...]


# A cache: one that cannot be read is rebuilt, never an error.
SERIES_BUILD = StateFile(
    what="the series build cache", model=CachedBuild, version=CACHE_VERSION,
    fix="delete it; the next drift or rebase rebuilds it", rebuildable=True,
)


def build_key(base: CommitSha, patches: Sequence[Path]) -> str:
    digest = hashlib.sha256(f"{CACHE_VERSION}\0{base}".encode())
    for patch in patches:
        digest.update(f"\0{patch.name}\0".encode())
        digest.update(sha256_file(patch).encode())
    return digest.hexdigest()


def cached_build(shadow: Path, base: CommitSha, patches: Sequence[Path], *, remember: bool = True) -> SeriesBuild:
    """build_series, or the last build when base and every patch's name and bytes are the same and its tip
    is still in the shadow. A series that does not apply raises as build_series does (it is never cached).

    Without `remember`, a new build is not recorded: a rebase leaves no ref behind but its own, and moves the
    base anyway; it still takes what an earlier drift recorded."""
    key = build_key(base, patches)
    cache = shadow / CACHE_FILE
    known = SERIES_BUILD.read(cache)
    if known is not None and known.key == key and known.commits and git.has_commit(shadow, known.commits[-1]):
        return SeriesBuild(base=base, commits=known.commits, notes=known.notes)
    build = build_series(shadow, base, patches)
    if remember and build.commits:
        shadow_repo.pin_ref(shadow, CACHE_REF, build.commits[-1])
        SERIES_BUILD.write(cache, CachedBuild(key=key, commits=build.commits, notes=build.notes))
    return build
