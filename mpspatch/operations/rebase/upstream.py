"""What upstream did to the series' paths during a rebase: the commits, the conflicts and the changes upstream
already has. The detection itself is model/history.py's, shared with `drift`, so the two never disagree."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mpspatch.foundation.ids import CommitSha, TreeSha
from mpspatch.git import verbs as git
from mpspatch.model.state import RebaseState
from mpspatch.operations.rebase.results import AbsorbedChange, ConflictedPath

if TYPE_CHECKING:
    from mpspatch.model.history import UpstreamCommit

@dataclass(frozen=True)
class UpstreamView:
    """What upstream did to the patched paths, and which of the series' changes it already has."""

    commits: tuple[UpstreamCommit, ...]  # base..onto touching the series' paths, newest first
    tree: TreeSha  # the rebased tree the absorbed check compared against onto
    absorbed: tuple[AbsorbedChange, ...]
    notes: tuple[str, ...]


def series_upstream(repo: Path, state: RebaseState, paths: Sequence[str] | None = None
                    ) -> tuple[UpstreamCommit, ...]:
    """The commits in base..onto touching `paths` (default: every path of the series), newest first: one
    `git log`, whose cost grows with upstream history exactly as git's own does."""
    from mpspatch.model.history import upstream_commits  # not needed by --abort or start-up

    return upstream_commits(repo, state.base, state.onto, state.paths if paths is None else paths)


def index_history(repo: Path, state: RebaseState) -> bool:
    """Make single-path logs over base..onto cheap (objects.index_history): run beside `git rebase`."""
    from mpspatch.git import objects

    return objects.index_history(repo, [state.onto, state.base])


def stop_upstream(repo: Path, state: RebaseState, paths: Sequence[str]) -> tuple[UpstreamCommit, ...]:
    """The upstream commits (base..onto) of a stop's conflicted paths: one `git log` per path, which the
    commit-graph's Bloom filters keep from growing with upstream history."""
    from mpspatch.model.history import upstream_commits_of_each

    return upstream_commits_of_each(repo, state.base, state.onto, paths)


def upstream_check(repo: Path, state: RebaseState, result: str,
                   commits: tuple[UpstreamCommit, ...] | None = None) -> UpstreamView:
    """Upstream commits plus the already-upstream check against `result`, the rebased tip.

    The check needs the final tree, so it runs once, when the rebase is done; a stop reports only its own
    conflicts (see conflict_report).
    """
    if commits is None:
        commits = series_upstream(repo, state)
    tree = git.tree_sha_of(repo, result)
    absorbed, notes = find_absorbed(repo, state.base, state.onto, state.series, commits, tree)
    return UpstreamView(commits, tree, absorbed, notes)


def count_regions(path: Path) -> int:
    """Conflict regions in a worktree file, counted as drift counts them; a conflict without markers is one."""
    from mpspatch.model.history import count_regions as count_markers  # lazily, like the rest of history here

    try:
        return count_markers(path.read_bytes()) or 1
    except (FileNotFoundError, IsADirectoryError):
        return 1


def conflict_report(worktree: Path, paths: Sequence[str], upstream: Sequence[UpstreamCommit]
                    ) -> tuple[ConflictedPath, ...]:
    """Each conflicted path with its regions and the upstream commits (base..onto) that touched it."""
    return tuple(
        ConflictedPath(path=p, regions=count_regions(worktree / p),
                       upstream_commits=tuple(c for c in upstream if p in c.paths))
        for p in sorted(paths)
    )


def find_absorbed(repo: Path, base: CommitSha, onto: CommitSha, series: Sequence[CommitSha],
                  commits: Sequence[UpstreamCommit], result_tree: TreeSha
                  ) -> tuple[tuple[AbsorbedChange, ...], tuple[str, ...]]:
    """The series' changes onto already has, per file, with the PRs that landed them; plus notes.

    model/absorbed.py does the detection (whole files that merge to no change, hunks that
    reverse-apply to onto, equal patch-ids), so `drift` and `rebase` can never disagree. `result_tree` is
    the tree after the last patch: the rebased tip's, or a merge-tree forecast of it.
    """
    from mpspatch.model import history
    from mpspatch.model.absorbed import already_upstream

    found = already_upstream(repo, base, series, onto, result_tree, commits)
    by_sha = {c.sha: c for c in commits}
    changes = tuple(
        AbsorbedChange(path=f.path, pull_requests=history.pull_requests(by_sha[s] for s in f.landed_by if s in by_sha),
                       whole_file=f.whole, hunks=f.absorbed_hunks, of_hunks=f.hunks)
        for f in found.files
    )
    notes = tuple(
        f"patch {m.patch_index + 1} has the same patch-id as upstream {m.upstream[:12]}: it is already upstream"
        for m in found.patch_ids
    )
    return changes, notes
