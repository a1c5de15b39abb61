"""What a rebase and an abort report: the types the views and the demo read."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

from mpspatch.foundation.ids import CommitSha, ContentSha256
from mpspatch.git import rebasing

if TYPE_CHECKING:
    from mpspatch.model.blame import RegionBlame
    from mpspatch.model.history import UpstreamCommit


@dataclass(frozen=True)
class ConflictedPath:
    path: str
    regions: int  # `<<<<<<<` markers in the file; 1 for a conflict without markers (modify/delete)
    upstream_commits: tuple[UpstreamCommit, ...]  # base..onto commits touching the path, newest first
    blame: tuple[RegionBlame, ...] = ()  # per region: its lines in onto and the upstream commits that wrote them
    touched: tuple[UpstreamCommit, ...] = ()  # commits of upstream_commits that are no region's cause


@dataclass(frozen=True)
class AbsorbedChange:
    """A change of the series that upstream has already made: it merges to no change and is dropped."""

    path: str
    pull_requests: tuple[int, ...]
    whole_file: bool  # False: only some hunks are upstream ("partly absorbed")
    hunks: int  # hunks of the series' change to this file that upstream already has
    of_hunks: int


@dataclass(frozen=True)
class PatchChange:
    path: Path
    old_sha256: ContentSha256
    new_sha256: ContentSha256
    old_files: int
    new_files: int
    old_lines: int  # insertions + deletions
    new_lines: int

    @property
    def empty(self) -> bool:
        return self.new_files == 0


class RebaseStatus(StrEnum):
    REBASED = "rebased"
    CONFLICT = "conflict"


@dataclass(frozen=True)
class RebaseResult:
    status: RebaseStatus
    base: CommitSha
    base_ref: str
    onto: CommitSha
    onto_ref: str
    conflicts: tuple[ConflictedPath, ...]
    absorbed: tuple[AbsorbedChange, ...]
    worktree: Path | None  # where conflicts are resolved; None once rebased
    patches: tuple[Path, ...]  # patch files rewritten
    stopped_at: str | None  # the patch being replayed when the rebase stopped
    reused_resolutions: tuple[str, ...]  # paths rerere resolved from an earlier resolution
    changes: tuple[PatchChange, ...]
    range_diff: str
    range_diff_summary: tuple[rebasing.RangeDiffEntry, ...]  # one entry per patch of range_diff
    range_diff_file: Path | None  # where the whole range_diff is kept once rebased
    previous_dir: Path | None  # where the previous patch files and lock were kept
    notes: tuple[str, ...]


@dataclass(frozen=True)
class AbortResult:
    worktree: Path
    restored: tuple[Path, ...]  # files put back from the backup (after an interrupted write, or with --force)
    kept: tuple[tuple[Path, Path], ...] = ()  # (--force) each edited patch file and where its edit was kept
    state_discarded: bool = False  # (--force) the state file could not be read and was removed as it was
