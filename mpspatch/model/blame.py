"""The upstream commits behind each conflict region: blame of the region's lines in onto, within base..onto.

A region's upstream side is onto's text (see model/regions.py for how its lines are found), so `git blame
base..onto` over those lines names the upstream commits that last wrote them: the commits whose changes
overlap the region and made it conflict. Lines older than base belong to no upstream commit. Commits that
touched the file without writing any region's line are listed apart as `touched`, never as causes.

One `git blame --porcelain` per conflicted file, with one `-L` per region; only conflicted files are blamed,
and only base..onto is walked. drift and rebase both call `blame_file`, so they name the same causes.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from mpspatch.foundation.ids import CommitSha, TreePath
from mpspatch.git import objects
from mpspatch.model.history import MergeForecast, UpstreamCommit, touching
from mpspatch.model.regions import MergedFile, onto_ranges, parse


@dataclass(frozen=True)
class RegionBlame:
    lines: tuple[int, int]  # 1-based, inclusive, in the onto version of the file
    causes: tuple[UpstreamCommit, ...]  # upstream commits that wrote these lines, newest first

    @property
    def start(self) -> int:
        return self.lines[0]

    @property
    def end(self) -> int:
        return self.lines[1]


@dataclass(frozen=True)
class FileBlame:
    path: TreePath
    regions: tuple[RegionBlame, ...]  # one per conflict region, in file order
    touched: tuple[UpstreamCommit, ...]  # base..onto commits touching the file that are no region's cause

    @property
    def causes(self) -> tuple[UpstreamCommit, ...]:
        """Every region's causes, once each, newest first."""
        found = {c.sha: c for r in self.regions for c in r.causes}
        return tuple(found.values())


def blame_ranges(repo: Path, base: CommitSha, onto: CommitSha, path: str, ranges: Sequence[tuple[int, int]],
                 commits: Sequence[UpstreamCommit]) -> tuple[tuple[UpstreamCommit, ...], ...]:
    """For each 1-based inclusive onto line range, the upstream commits (base..onto) that wrote its lines.

    Commits are ordered as `commits` lists them (newest first); a commit blame names that `commits` lacks
    (a merge commit's own edit, say) is kept with its subject and no PR number.
    """
    if not ranges:
        return ()
    return _causes(path, ranges, objects.blame_lines(repo, base, onto, path, ranges), commits)


def _causes(path: str, ranges: Sequence[tuple[int, int]], blamed: Sequence[objects.BlamedLine] | None,
            commits: Sequence[UpstreamCommit]) -> tuple[tuple[UpstreamCommit, ...], ...]:
    """blame_ranges' answer from git's blame of the ranges (None: git could not blame the file)."""
    if blamed is None:
        return tuple(() for _ in ranges)
    order = {c.sha: n for n, c in enumerate(commits)}
    known = {c.sha: c for c in commits}
    found: list[tuple[UpstreamCommit, ...]] = []
    for start, end in ranges:
        shas: dict[CommitSha, UpstreamCommit] = {}
        for line in blamed:
            if start <= line.line <= end and not line.boundary and line.sha not in shas:
                shas[line.sha] = known.get(line.sha) or UpstreamCommit(
                    sha=line.sha, subject=line.summary, pull_request=None, paths=(TreePath(path),))
        found.append(tuple(sorted(shas.values(), key=lambda c: order.get(c.sha, -1))))
    return tuple(found)


def blame_file(repo: Path, base: CommitSha, onto: CommitSha, path: str, merged: bytes | None, onto_blob: bytes | None,
               commits: Sequence[UpstreamCommit]) -> FileBlame:
    """Region blame of one conflicted file from its merged text (with markers) and onto's version of it.

    A conflict without markers (modify/delete, binary) has no region to blame: every commit touching the file
    stays under `touched`.
    """
    parsed: MergedFile | None = parse(merged) if merged is not None else None
    ranges = onto_ranges(parsed, onto_blob) if parsed is not None and onto_blob is not None else ()
    causes = blame_ranges(repo, base, onto, path, ranges, commits)
    return _file_blame(path, ranges, causes, commits)


def _file_blame(path: str, ranges: Sequence[tuple[int, int]], causes: Sequence[tuple[UpstreamCommit, ...]],
                commits: Sequence[UpstreamCommit]) -> FileBlame:
    regions = tuple(RegionBlame(lines=r, causes=c) for r, c in zip(ranges, causes, strict=True))
    named = {c.sha for r in regions for c in r.causes}
    return FileBlame(path=TreePath(path), regions=regions,
                     touched=tuple(c for c in touching(commits, path) if c.sha not in named))


@dataclass(frozen=True)
class BlamedConflict:
    """One conflicted file blamed by git, before the upstream commits that name its causes are known."""

    path: TreePath
    ranges: tuple[tuple[int, int], ...]  # the regions' lines in onto
    lines: tuple[objects.BlamedLine, ...] | None  # None when git could not blame the file


def blame_conflicts(repo: Path, forecast: MergeForecast) -> tuple[BlamedConflict, ...]:
    """git's blame of every conflict of a merge forecast, in the order of `forecast.conflicts`.

    Needs the forecast only, not upstream's log, so drift runs it while that log is still being read. The
    merged texts and onto's versions come in one `cat-file --batch`; the blames (one per conflicted file)
    run side by side, since each is a separate git process.
    """
    conflicts = forecast.conflicts
    if not conflicts:
        return ()
    specs = [s for c in conflicts for s in (f"{forecast.steps[c.patch_index].tree}:{c.path}",
                                            f"{forecast.onto}:{c.path}")]
    blobs = objects.read_blobs(repo, specs)

    def blame(n: int) -> BlamedConflict:
        merged, onto_blob = blobs[2 * n], blobs[2 * n + 1]
        parsed: MergedFile | None = parse(merged) if merged is not None else None
        ranges = tuple(onto_ranges(parsed, onto_blob)) if parsed is not None and onto_blob is not None else ()
        path = conflicts[n].path
        lines = objects.blame_lines(repo, forecast.base, forecast.onto, path, ranges) if ranges else ()
        return BlamedConflict(path=path, ranges=ranges, lines=lines)

    with ThreadPoolExecutor(max_workers=min(4, len(conflicts))) as pool:
        return tuple(pool.map(blame, range(len(conflicts))))


def name_causes(blamed: Sequence[BlamedConflict], commits: Sequence[UpstreamCommit]) -> tuple[FileBlame, ...]:
    """blame_conflicts' files with each region's causes taken from `commits` (upstream's log, newest first)."""
    return tuple(_file_blame(b.path, b.ranges, _causes(b.path, b.ranges, b.lines, commits), commits) for b in blamed)


def forecast_blames(repo: Path, forecast: MergeForecast, commits: Sequence[UpstreamCommit]
                    ) -> tuple[FileBlame, ...]:
    """Region blame of every conflict of a merge forecast, in the order of `forecast.conflicts`."""
    return name_causes(blame_conflicts(repo, forecast), commits)
