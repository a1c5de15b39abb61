"""What submit takes in (the rendered documents) and what it reports: the plan's steps, each part's PR, the
landed and stale parts, the comparison with an earlier version."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from mpspatch.foundation.config import SubmitMethod
from mpspatch.foundation.ids import CommitSha
from mpspatch.model.submission import (
    LabelRecord,
)

# --------------------------------------------------------------------------------------------- data in


@dataclass(frozen=True)
class Draft:
    """One rendered document as GitHub takes it."""

    title: str
    body: str
    labels: tuple[str, ...]


@dataclass(frozen=True)
class Documents:
    issue: Draft | None  # None when the issue already exists
    parts: tuple[Draft, ...]  # one PR description per part, in stack order


# The caller renders the documents for an issue number (None: not known yet), so the PR can say Fixes #N.
Renderer = Callable[[int | None], Documents]


# -------------------------------------------------------------------------------------------- data out


@dataclass(frozen=True)
class Step:
    """One command submit ran (or, with --dry-run, would run), exactly as typed."""

    command: str
    purpose: str
    outcome: str  # "" with --dry-run


@dataclass(frozen=True)
class PatchChange:
    """One line of a range-diff summary: a patch of the old version against the new one."""

    old: int | None  # 1-based position in the old version; None when added
    new: int | None  # None when dropped
    change: str  # unchanged | changed | added | dropped
    subject: str


@dataclass(frozen=True)
class Comparison:
    since: str  # "v1"
    changes: tuple[PatchChange, ...]
    text: str  # the range-diff itself


@dataclass(frozen=True)
class PartResult:
    index: int
    title: str
    branch: str
    commit: CommitSha
    pushed: bool  # False when the fork already had this commit from the last version
    pr: int | None
    url: str
    action: str  # created | updated | would create | would update | ghstack
    labels: tuple[LabelRecord, ...]
    message: str  # the pushed commit's message


@dataclass(frozen=True)
class LandedPart:
    """A part of the last version that landed upstream, by the merge bot's trailer naming its PR."""

    index: int  # its place in the last version
    title: str
    pr: int
    url: str
    upstream: CommitSha  # the upstream commit whose trailer names the PR


@dataclass(frozen=True)
class StalePart:
    """A branch (and PR) of an earlier part that the stack no longer has: reported, not deleted."""

    index: int  # its place in the version that last had it
    title: str
    branch: str
    pr: int | None
    url: str


@dataclass(frozen=True)
class SubmitResult:
    dry_run: bool
    draft: bool
    method: SubmitMethod
    repo: str
    fork: str
    issue: int | None
    issue_url: str
    issue_created: bool
    version: str  # "v2"; with --dry-run, the version this run would record
    new_version: bool
    parts: tuple[PartResult, ...]
    steps: tuple[Step, ...]
    comparison: Comparison | None
    notes: tuple[str, ...]
    landed: tuple[LandedPart, ...] = ()
    stale: tuple[StalePart, ...] = ()
