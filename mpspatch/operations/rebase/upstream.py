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
    from mpspatch.model.in_place import InPlace


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


def conflict_report(worktree: Path, paths: Sequence[str], upstream: Sequence[UpstreamCommit],
                    state: RebaseState | None = None, shadow: Path | None = None) -> tuple[ConflictedPath, ...]:
    """Each conflicted path with its regions and the upstream commits (base..onto) that touched it; with the
    state and the shadow, each region's lines in onto and the commits that wrote them (model/blame.py, as
    drift blames them), and the other commits apart under `touched`."""
    from mpspatch.model.blame import blame_file

    ordered = sorted(paths)
    onto_blobs: dict[str, bytes | None] = {}
    if state is not None and shadow is not None and paths:
        from mpspatch.git import objects

        onto_blobs = dict(zip(ordered, objects.read_blobs(shadow, [f"{state.onto}:{p}" for p in ordered]),
                              strict=True))

    def report(p: str) -> ConflictedPath:
        commits = tuple(c for c in upstream if p in c.paths)
        if state is None or shadow is None:
            return ConflictedPath(path=p, regions=count_regions(worktree / p), upstream_commits=commits,
                                  touched=commits)
        try:
            merged: bytes | None = (worktree / p).read_bytes()
        except (FileNotFoundError, IsADirectoryError):
            merged = None
        blamed = blame_file(shadow, state.base, state.onto, p, merged, onto_blobs.get(p), upstream)
        return ConflictedPath(path=p, regions=count_regions(worktree / p), upstream_commits=commits,
                              blame=blamed.regions, touched=blamed.touched)

    if len(ordered) < 2 or state is None or shadow is None:
        return tuple(report(p) for p in ordered)
    from concurrent.futures import ThreadPoolExecutor  # one git blame per file, side by side

    with ThreadPoolExecutor(max_workers=min(4, len(ordered))) as pool:
        return tuple(pool.map(report, ordered))


NOTE_SUFFIX = ".mpspatch-conflict.txt"


def conflict_note(conflict: ConflictedPath, patch: str | None, state: RebaseState) -> str:
    """The note written next to a conflicted file in the rebase worktree: who caused each region."""
    def who(commit: UpstreamCommit) -> str:
        pr = f"#{commit.pull_request}" if commit.pull_request is not None else "(no PR trailer)"
        return f"{commit.sha[:12]} {pr} {commit.subject}"

    lines = [f"mpspatch: {conflict.path} conflicts while replaying {patch or 'the series'} onto {state.onto_ref} "
             f"({state.onto[:12]}): {conflict.regions} region(s).", ""]
    if conflict.blame:
        lines.append("Each region's lines in the onto version, and the upstream commits that wrote them:")
        for region in conflict.blame:
            lines.append(f"  lines {region.lines[0]}-{region.lines[1]}:")
            lines.extend(f"    {who(c)}" for c in region.causes)
            if not region.causes:
                lines.append("    no upstream commit since the base (the lines are older)")
    if conflict.touched:
        lines += ["", "Also touched the file since the base, without overlapping a region:"]
        lines.extend(f"  {who(c)}" for c in conflict.touched)
    lines += ["", "Resolve the conflict markers in the file, then run `mpspatch rebase --continue`; this note is "
              "removed then."]
    return "\n".join(lines) + "\n"


def write_conflict_notes(worktree: Path, conflicts: Sequence[ConflictedPath], patch: str | None,
                         state: RebaseState) -> None:
    for conflict in conflicts:
        target = worktree / (conflict.path + NOTE_SUFFIX)
        if target.parent.is_dir():
            target.write_text(conflict_note(conflict, patch, state), encoding="utf-8")


def remove_conflict_notes(worktree: Path, paths: Sequence[str]) -> None:
    """Drop the notes of a stop before git stages the worktree, so no note ever lands in a patch."""
    for path in paths:
        (worktree / (path + NOTE_SUFFIX)).unlink(missing_ok=True)


def settle_in_place(shadow: Path, worktree: Path, state: RebaseState, pick: CommitSha | None,
                    paths: Sequence[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Resolve, in the worktree, the conflict regions whose patch side upstream already has (model/in_place.py's
    settle_file, as drift's forecast resolves them), and stage the files left with no region. Returns the paths
    staged and one note per file touched."""
    from mpspatch.git import objects, rebasing
    from mpspatch.model.in_place import settle_file

    if pick is None or not paths:
        return (), ()
    ordered = sorted(paths)
    specs = [s for p in ordered for s in (f"{pick}^:{p}", f"{pick}:{p}", f"{state.onto}:{p}")]
    blobs = objects.read_blobs(shadow, specs)
    index = state.series.index(pick) if pick in state.series else 0
    staged: list[str] = []
    notes: list[str] = []
    for number, path in enumerate(ordered):
        file = worktree / path
        try:
            merged = file.read_bytes()
        except (FileNotFoundError, IsADirectoryError):
            continue
        parent, patched, onto_blob = blobs[3 * number : 3 * number + 3]
        settled = settle_file(path, merged, parent, patched, onto_blob, index)
        if settled is None:
            continue
        file.write_bytes(settled.text)
        where = ", ".join(f"{start}-{end}" for start, end in settled.found.lines)
        notes.append(f"{path}: {len(settled.found.lines)} conflict region(s) resolved to upstream's side (onto "
                     f"lines {where}): the patch's change there is already upstream"
                     + (f"; {settled.left} region(s) left to resolve" if settled.left else ""))
        if not settled.left:
            staged.append(path)
    rebasing.stage_paths(worktree, staged)
    return tuple(staged), tuple(notes)


def find_absorbed(repo: Path, base: CommitSha, onto: CommitSha, series: Sequence[CommitSha],
                  commits: Sequence[UpstreamCommit], result_tree: TreeSha, in_place: Sequence[InPlace] = ()
                  ) -> tuple[tuple[AbsorbedChange, ...], tuple[str, ...]]:
    """The series' changes onto already has, per file, with the PRs that landed them; plus notes.

    model/absorbed.py does the detection (whole files that merge to no change, hunks that
    reverse-apply to onto, equal patch-ids), so `drift` and `rebase` can never disagree. `result_tree` is
    the tree after the last patch: the rebased tip's, or a merge-tree forecast of it.
    """
    from mpspatch.model import history
    from mpspatch.model.absorbed import already_upstream

    found = already_upstream(repo, base, series, onto, result_tree, commits, in_place=in_place)
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
