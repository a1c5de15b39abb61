"""What upstream did between two commits, and what a merge of the series onto it would do.

Everything here reads the object database or writes objects only; no ref, index or working tree moves. The
functions take a repository path, so they run the same in mpspatch's shadow repository and in test repos.

- upstream_commits: the commits between base and onto that touch patched paths, with the PR behind each.
- merge_forecast: the series replayed onto `onto` exactly as a rebase replays it (patch k is merged onto the
  result of patch k-1, with patch k-1 as merge base) and where that replay would stop. Conflict regions whose
  patch side upstream already has in place are resolved to upstream's side, as the rebase resolves them
  (model/absorbed.py decides which, and is imported inside merge_forecast since it reads this module's types).

Which of the series' changes onto already has is model/absorbed.py's.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from mpspatch.foundation.ids import CommitSha, TreePath, TreeSha
from mpspatch.git import objects, trees
from mpspatch.git import verbs as git
from mpspatch.model.in_place import InPlace, settle_in_place
from mpspatch.model.regions import parse

# PyTorch's merge bot ends every landed commit with this line. The repository part is left open so forks
# and mirrors that keep the trailer are read the same way.
_PR_TRAILER = re.compile(r"^Pull Request resolved:\s*https?://github\.com/[^/\s]+/[^/\s]+/pull/(\d+)/?\s*$", re.M)
# Conflict markers start a line with exactly seven '<' and then a space (the label) or the line end.
_MARKER_START = re.compile(rb"^<{7}(?: |\r?$)", re.M)


# ------------------------------------------------------------------------------------- upstream commits


@dataclass(frozen=True)
class UpstreamCommit:
    sha: CommitSha
    subject: str
    pull_request: int | None  # from the `Pull Request resolved: .../pull/N` trailer, None without one
    paths: tuple[TreePath, ...]  # the patched paths this commit touches


def pull_request_of(message: str) -> int | None:
    """The PR number from the last `Pull Request resolved:` trailer in a commit message, if any."""
    found = _PR_TRAILER.findall(message)
    return int(found[-1]) if found else None


def upstream_commits(repo: Path, base: str, onto: str, paths: Sequence[str]) -> tuple[UpstreamCommit, ...]:
    """Commits reachable from onto but not from base that touch `paths`, newest first (one `git log`)."""
    wanted = set(paths)
    return tuple(
        UpstreamCommit(
            sha=entry.sha,
            subject=entry.subject,
            pull_request=pull_request_of(entry.body),
            paths=tuple(TreePath(p) for p in entry.paths if p in wanted),
        )
        for entry in objects.log_name_only(repo, base, onto, sorted(wanted))
    )


# One single-path `git log` over the commit-graph's changed-path filters costs about as much as this many
# commits of a multi-path walk (which git 2.39 cannot filter): the process start and the walk of the graph.
_PATH_LOG_COMMITS = 40


def upstream_commits_indexed(repo: Path, base: str, onto: str, paths: Sequence[str], *,
                             indexed: bool) -> tuple[UpstreamCommit, ...]:
    """upstream_commits, read as one `git log` per path when that is cheaper: `indexed` says the repository's
    commit-graph covers onto (objects.index_history), whose changed-path filters git 2.39 uses only for a
    single-path log, so each of those skips the commits that cannot touch its path instead of diffing every
    one. The logs run side by side; one `git rev-list` of base..onto (which needs no diff) puts the commits in
    the order the single log gives, and a commit touching several paths is listed once with all of them.

    A short history, many paths or no graph: the single log of upstream_commits.
    """
    wanted = sorted(set(paths))
    order = objects.walk_order(repo, base, onto) if indexed and wanted else ()
    if len(order) < _PATH_LOG_COMMITS * len(wanted):
        return upstream_commits(repo, base, onto, wanted)
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=4) as pool:
        logs = list(pool.map(lambda p: objects.log_name_only(repo, base, onto, [p]), wanted))
    found: dict[str, tuple[objects.LogEntry, set[str]]] = {}
    for path, entries in zip(wanted, logs, strict=True):
        for entry in entries:
            found.setdefault(entry.sha, (entry, set()))[1].add(path)
    position = {sha: n for n, sha in enumerate(order)}
    return tuple(
        UpstreamCommit(sha=entry.sha, subject=entry.subject, pull_request=pull_request_of(entry.body),
                       paths=tuple(TreePath(p) for p in sorted(touched)))
        for entry, touched in sorted(found.values(), key=lambda item: position.get(item[0].sha, len(position)))
    )


def upstream_commits_of_each(repo: Path, base: str, onto: str, paths: Sequence[str]) -> tuple[UpstreamCommit, ...]:
    """upstream_commits for a few paths, one `git log` per path (see objects.log_each_path): each path's
    commits in log order, each naming only that path. For the handful of paths a rebase stop reports."""
    return tuple(
        UpstreamCommit(sha=entry.sha, subject=entry.subject, pull_request=pull_request_of(entry.body),
                       paths=(TreePath(path),))
        for path, entries in objects.log_each_path(repo, base, onto, paths).items()
        for entry in entries
    )


def touching(commits: Iterable[UpstreamCommit], path: str) -> tuple[UpstreamCommit, ...]:
    return tuple(c for c in commits if path in c.paths)


def pull_requests(commits: Iterable[UpstreamCommit]) -> tuple[int, ...]:
    """The distinct PR numbers of `commits`, in their order (newest first for log order)."""
    return tuple(dict.fromkeys(c.pull_request for c in commits if c.pull_request is not None))


# --------------------------------------------------------------------------------------- merge forecast


@dataclass(frozen=True)
class ConflictedFile:
    path: TreePath
    regions: int  # `<<<<<<<` markers in the merged file; 1 for a conflict without markers (modify/delete)
    kinds: tuple[str, ...]  # git's conflict types for this path, e.g. "contents", "modify/delete"
    patch_index: int  # 0-based position of the patch whose replay stops on it


@dataclass(frozen=True)
class MergeStep:
    patch_index: int  # 0-based position of the patch in the series
    commit: CommitSha  # the series commit merged in this step
    tree: TreeSha  # the merged tree (conflicted files hold markers)
    conflicts: tuple[ConflictedFile, ...]
    # Paths a previous step left conflicted that this patch touches again: its outcome there assumes the
    # earlier conflict was resolved to the patch's own version, which a person may not do.
    assumed: tuple[TreePath, ...] = ()
    # Regions upstream already has in place (model/absorbed.py): resolved to upstream's side in `tree` and not
    # counted in `conflicts`, as the rebase resolves them by itself.
    in_place: tuple[InPlace, ...] = ()


@dataclass(frozen=True)
class MergeForecast:
    base: CommitSha
    onto: CommitSha
    series: tuple[CommitSha, ...]
    steps: tuple[MergeStep, ...]  # one per patch, oldest first

    @property
    def clean(self) -> bool:
        return not self.conflicts

    @property
    def conflicts(self) -> tuple[ConflictedFile, ...]:
        """Every conflict the rebase will stop on, patch by patch, in replay order."""
        return tuple(c for step in self.steps for c in step.conflicts)

    @property
    def in_place(self) -> tuple[InPlace, ...]:
        return tuple(r for step in self.steps for r in step.in_place)

    @property
    def stops(self) -> tuple[int, ...]:
        """Indexes of the patches the rebase stops on (after each stop, `--continue` goes on to the next)."""
        return tuple(step.patch_index for step in self.steps if step.conflicts)

    @property
    def stopped_at(self) -> int | None:
        """The first patch the rebase stops on, or None when every patch merges cleanly."""
        return self.stops[0] if self.stops else None

    @property
    def result_tree(self) -> TreeSha:
        """The tree after the last patch (earlier conflicts taken as resolved to the patch's version)."""
        return self.steps[-1].tree


def forecast_start(repo: Path, base: CommitSha, onto: CommitSha) -> CommitSha:
    """The first `ours` of the replay: onto's tree on top of base (see merge_forecast).

    It depends on base and onto only, so a caller can make it while the series commits are still being
    built and pass it to merge_forecast as `start`.
    """
    return objects.commit_tree(repo, f"{onto}^{{tree}}", [base], "mpspatch forecast: result before patch 1")


def merge_forecast(
    repo: Path,
    base: CommitSha,
    series: Sequence[CommitSha],
    onto: CommitSha,
    *,
    git_checked: bool = False,
    start: CommitSha | None = None,
) -> MergeForecast:
    """Replay `series` (commits on top of `base`, oldest first) onto `onto` with `git merge-tree`.

    A rebase merges patch k onto the result so far with patch k-1 as the merge base. merge-tree in git
    2.38/2.39 picks the base itself, so each step merges a throwaway commit holding the result so far whose
    only parent is patch k-1: then the merge base git finds is exactly the one the rebase uses, even when
    base is not an ancestor of onto (a release tag off a release branch, for instance).

    Where the rebase would stop, the user resolves and continues. To forecast the later stops too, the
    replay goes on with every conflict region resolved to the patch's side (see take_patch_side); only a
    later patch that touches such a file again depends on that assumption, and its step names those paths
    in `assumed`.

    `git_checked` says the caller already ran objects.require_merge_tree(), and `start` is forecast_start()'s
    commit when the caller made it already (drift does both alongside other work).
    """
    if not series:
        raise ValueError("merge_forecast needs at least one series commit")

    if not git_checked:
        objects.require_merge_tree()
    ours_tree: str = f"{onto}^{{tree}}"
    parent = base
    unresolved: set[str] = set()
    steps: list[MergeStep] = []
    for index, commit in enumerate(series):
        if index == 0 and start is not None:
            ours = start
        else:
            ours = objects.commit_tree(repo, ours_tree, [parent], f"mpspatch forecast: result before patch {index + 1}")
        merged = objects.merge_tree(repo, ours, commit)
        conflicts, merged_blobs = _conflicted_files(repo, merged, index)
        tree, in_place = merged.tree, tuple[InPlace, ...]()
        if conflicts:
            settled = settle_in_place(repo, merged.tree, commit, onto, [c.path for c in conflicts], index)
            tree, in_place = settled.tree, settled.found
            merged_blobs = {**merged_blobs, **settled.contents}  # the settled files as `tree` has them
            left = settled.regions_left  # a file with no region left is no conflict any more
            conflicts = tuple(c if c.path not in left else replace(c, regions=left[c.path])
                              for c in conflicts if left.get(c.path, 1) > 0)
        assumed: tuple[TreePath, ...] = ()
        if unresolved:
            assumed = tuple(TreePath(p) for p in git.diff_tree_paths(repo, parent, commit, sorted(unresolved)))
        steps.append(MergeStep(patch_index=index, commit=commit, tree=tree, conflicts=conflicts,
                               assumed=assumed, in_place=in_place))
        ours_tree, parent = tree, commit
        if conflicts:
            unresolved.update(c.path for c in conflicts)
            if index + 1 < len(series):
                ours_tree = _resolve_to_patch_side(repo, tree, commit, conflicts, merged_blobs)
    return MergeForecast(base=base, onto=onto, series=tuple(series), steps=tuple(steps))


def take_patch_side(content: bytes) -> bytes:
    """Resolve every conflict region of a merged file to its second side, keeping all merged text around it.

    In both merge-tree and a rebase the second side is the patch being replayed (model/regions.py reads the
    markers).
    """
    return parse(content).patch_side()


def _resolve_to_patch_side(
    repo: Path, tree: TreeSha, commit: CommitSha, conflicts: Sequence[ConflictedFile],
    merged_blobs: Mapping[str, bytes | None],
) -> TreeSha:
    """The merged tree as a person would leave it after taking the patch's side of every conflict.

    Files with markers keep the merged text around each region; conflicts without markers (modify/delete,
    binary files) take the patch's whole file. `merged_blobs` holds the conflicted files as `tree` has
    them (_conflicted_files read them already).
    """
    blobs = {c.path: merged_blobs.get(c.path) for c in conflicts}
    contents: dict[str, bytes] = {p: take_patch_side(b) for p, b in blobs.items() if b is not None and count_regions(b)}
    whole = [c.path for c in conflicts if c.path not in contents]
    return trees.rewrite_tree(repo, tree, source=commit, from_source=whole, contents=contents)


def count_regions(content: bytes) -> int:
    return len(_MARKER_START.findall(content))


def _conflicted_files(
    repo: Path, merged: objects.MergeTreeResult, patch_index: int
) -> tuple[tuple[ConflictedFile, ...], dict[str, bytes | None]]:
    """The step's conflicts, and the conflicted files as the merged tree holds them (with their markers)."""
    if merged.clean:
        return (), {}
    blobs = objects.read_blobs(repo, [f"{merged.tree}:{path}" for path in merged.conflicted])
    kinds: dict[str, list[str]] = {}
    for message in merged.messages:
        match = re.match(r"CONFLICT \((.+)\)$", message.kind)
        if match:
            for path in message.paths:
                kinds.setdefault(path, []).append(match.group(1))
    conflicts = tuple(
        ConflictedFile(
            path=TreePath(path),
            # A conflict without markers (modify/delete, binary) is still one thing to resolve, as rebase counts.
            regions=max(count_regions(blob), 1) if blob is not None else 1,
            kinds=tuple(dict.fromkeys(kinds.get(path, []))),
            patch_index=patch_index,
        )
        for path, blob in zip(merged.conflicted, blobs, strict=True)
    )
    return conflicts, dict(zip(merged.conflicted, blobs, strict=True))
