"""What upstream landed of the series: `landed.json` beside the series lock, written when a rebase finishes.

A rebase drops the changes onto already has. Once the patch files are rewritten, nothing in them says what
went away or which upstream pull request took it, yet the PR description and the audit must say so, and prose
that still describes a dropped file must be caught. So each finished rebase that dropped something adds its
findings here, one entry per file, next to the lock (it travels with the series, so CI renders the same).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from mpspatch.foundation.config import Config
from mpspatch.foundation.ids import CommitSha
from mpspatch.model.store import StateFile

LANDED_NAME = "landed.json"
LANDED_VERSION = 1


@dataclass(frozen=True)
class LandedChange:
    """A change of the series that a rebase found upstream and dropped."""

    path: str
    whole_file: bool  # False: only `hunks` of the file's `of_hunks` hunks were upstream
    hunks: int
    of_hunks: int
    pull_requests: tuple[int, ...]  # from the merge bot's trailer; empty when no landing commit names one
    onto: CommitSha  # the upstream commit the rebase went onto
    onto_ref: str


@dataclass(frozen=True)
class LandedRecord:
    changes: tuple[LandedChange, ...]  # in the order the rebases found them


LANDED = StateFile(
    what="the record of changes landed upstream", model=LandedRecord, version=LANDED_VERSION,
    fix="delete it; the next rebase that drops an already-upstream change writes a fresh one",
    sort_keys=False,
)


def landed_path(config: Config) -> Path:
    """Beside the series lock, so it is committed with the series."""
    return config.series.lock.with_name(LANDED_NAME)


def read_landed(config: Config) -> tuple[LandedChange, ...]:
    record = LANDED.read(landed_path(config))
    return record.changes if record is not None else ()


def record_landed(config: Config, found: Iterable[LandedChange]) -> tuple[LandedChange, ...]:
    """Add what one rebase dropped to the record and write it; nothing is written when nothing was dropped.

    An entry for the same file and the same onto replaces the earlier one, so finishing an interrupted rebase
    a second time does not count a change twice.
    """
    new = tuple(found)
    if not new:
        return read_landed(config)
    fresh = {(c.path, c.onto) for c in new}
    kept = tuple(c for c in read_landed(config) if (c.path, c.onto) not in fresh)
    changes = (*kept, *new)
    LANDED.write(landed_path(config), LandedRecord(changes))
    return changes


def forget_landed(config: Config, onto: CommitSha) -> None:
    """Drop the entries a rebase onto `onto` recorded (that rebase was aborted after it wrote them)."""
    changes = read_landed(config)
    kept = tuple(c for c in changes if c.onto != onto)
    if kept == changes:
        return
    if kept:
        LANDED.write(landed_path(config), LandedRecord(kept))
    else:
        landed_path(config).unlink(missing_ok=True)


@dataclass(frozen=True)
class LandedByPullRequest:
    """What one upstream pull request (None: none named) landed of the series."""

    pull_request: int | None
    changes: tuple[LandedChange, ...]


def by_pull_request(changes: Iterable[LandedChange]) -> tuple[LandedByPullRequest, ...]:
    """The changes grouped by the pull request that landed them, in PR order; a change two PRs landed
    together is listed under each. Changes no PR is named for come last."""
    groups: dict[int | None, list[LandedChange]] = {}
    for change in changes:
        for pr in change.pull_requests or (None,):
            groups.setdefault(pr, []).append(change)
    order = sorted(k for k in groups if k is not None) + ([None] if None in groups else [])
    return tuple(LandedByPullRequest(pr, tuple(groups[pr])) for pr in order)
