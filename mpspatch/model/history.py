"""What upstream did between two commits, and what a merge of the series onto it would do.

Everything here reads the object database or writes objects only; no ref, index or working tree moves. The
functions take a repository path, so they run the same in mpspatch's shadow repository and in test repos.

- upstream_commits: the commits between base and onto that touch patched paths, with the PR behind each.
- merge_forecast: the series replayed onto `onto` exactly as a rebase replays it (patch k is merged onto the
  result of patch k-1, with patch k-1 as merge base) and where that replay would stop.
- already_upstream: which of the series' changes onto already has (whole files, single hunks, whole
  patches by patch-id) and the upstream commits that landed them.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from mpspatch.foundation.ids import CommitSha, TreePath, TreeSha
from mpspatch.git import objects
from mpspatch.git import verbs as git
from mpspatch.model.diff import Hunk, hunks_by_path
from mpspatch.model.store import StateFile

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
        conflicts = _conflicted_files(repo, merged, index)
        assumed: tuple[TreePath, ...] = ()
        if unresolved:
            assumed = tuple(TreePath(p) for p in git.diff_tree_paths(repo, parent, commit, sorted(unresolved)))
        steps.append(MergeStep(patch_index=index, commit=commit, tree=merged.tree, conflicts=conflicts,
                               assumed=assumed))
        ours_tree, parent = merged.tree, commit
        if conflicts:
            unresolved.update(c.path for c in conflicts)
            if index + 1 < len(series):
                ours_tree = _resolve_to_patch_side(repo, merged.tree, commit, conflicts)
    return MergeForecast(base=base, onto=onto, series=tuple(series), steps=tuple(steps))


def take_patch_side(content: bytes) -> bytes:
    """Resolve every conflict region of a merged file to its second side, keeping all merged text around it.

    In both merge-tree and a rebase the second side is the patch being replayed, so this is what
    `-X theirs` would have produced: upstream's other edits to the file survive.
    """
    out: list[bytes] = []
    state = "text"  # text | ours | base | theirs
    for line in content.splitlines(keepends=True):
        bare = line.rstrip(b"\r\n")
        if state == "text" and _MARKER_START.match(bare):
            state = "ours"
        elif state == "ours" and bare.startswith(b"|||||||"):
            state = "base"
        elif state in ("ours", "base") and bare == b"=======":
            state = "theirs"
        elif state == "theirs" and bare.startswith(b">>>>>>>") and bare[7:8] in (b" ", b""):
            state = "text"
        elif state in ("text", "theirs"):
            out.append(line)
    return b"".join(out)


def _resolve_to_patch_side(
    repo: Path, tree: TreeSha, commit: CommitSha, conflicts: Sequence[ConflictedFile]
) -> TreeSha:
    """The merged tree as a person would leave it after taking the patch's side of every conflict.

    Files with markers keep the merged text around each region; conflicts without markers (modify/delete,
    binary files) take the patch's whole file.
    """
    paths = [c.path for c in conflicts]
    blobs = objects.read_blobs(repo, [f"{tree}:{p}" for p in paths])
    contents: dict[str, bytes] = {
        p: take_patch_side(b) for p, b in zip(paths, blobs, strict=True) if b is not None and count_regions(b)
    }
    whole = [c.path for c in conflicts if c.path not in contents]
    return objects.rewrite_tree(repo, tree, source=commit, from_source=whole, contents=contents)


def count_regions(content: bytes) -> int:
    return len(_MARKER_START.findall(content))


def _conflicted_files(repo: Path, merged: objects.MergeTreeResult, patch_index: int) -> tuple[ConflictedFile, ...]:
    if merged.clean:
        return ()
    blobs = objects.read_blobs(repo, [f"{merged.tree}:{path}" for path in merged.conflicted])
    kinds: dict[str, list[str]] = {}
    for message in merged.messages:
        match = re.match(r"CONFLICT \((.+)\)$", message.kind)
        if match:
            for path in message.paths:
                kinds.setdefault(path, []).append(match.group(1))
    return tuple(
        ConflictedFile(
            path=TreePath(path),
            # A conflict without markers (modify/delete, binary) is still one thing to resolve, as rebase counts.
            regions=max(count_regions(blob), 1) if blob is not None else 1,
            kinds=tuple(dict.fromkeys(kinds.get(path, []))),
            patch_index=patch_index,
        )
        for path, blob in zip(merged.conflicted, blobs, strict=True)
    )


# ------------------------------------------------------------------------------------- already upstream


@dataclass(frozen=True)
class FileAbsorption:
    path: TreePath
    whole: bool  # the merge leaves the file exactly as onto has it: the change is all upstream
    hunks: int  # hunks of the series' change to this file (base to series tip, 3 lines of context)
    absorbed_hunks: int  # hunks onto already holds (they reverse-apply there)
    landed_by: tuple[CommitSha, ...]  # upstream commits that landed them, newest first

    @property
    def partly(self) -> bool:
        return not self.whole and self.absorbed_hunks > 0


@dataclass(frozen=True)
class PatchIdMatch:
    patch_index: int
    commit: CommitSha  # the series commit
    upstream: CommitSha  # the upstream commit with the same `git patch-id --stable`


@dataclass(frozen=True)
class AlreadyUpstream:
    files: tuple[FileAbsorption, ...]  # every series file with at least one change already upstream
    patch_ids: tuple[PatchIdMatch, ...]

    def get(self, path: str) -> FileAbsorption | None:
        return next((f for f in self.files if f.path == path), None)

    @property
    def landed_by(self) -> frozenset[CommitSha]:
        found = {sha for f in self.files for sha in f.landed_by}
        return frozenset(found | {m.upstream for m in self.patch_ids})


def already_upstream(
    repo: Path,
    base: CommitSha,
    series: Sequence[CommitSha],
    onto: CommitSha,
    result_tree: TreeSha,
    commits: Sequence[UpstreamCommit],
    *,
    series_diff: str | None = None,
) -> AlreadyUpstream:
    """Which changes of `series` (replayed into `result_tree`) onto already has, and who landed them.

    - whole file: the merged file equals onto's, so the series adds nothing to it any more;
    - per hunk: the hunk's post-image is in onto's file and its pre-image is not (it reverse-applies);
    - whole patch: a series commit's patch-id equals an upstream commit's (diffs limited to patched paths).

    `series_diff` is `git.diff_trees(repo, base, series[-1])` when the caller already has it (drift makes it
    while the merge runs). `commits` must be upstream_commits(base, onto) over at least the series' paths.
    """
    if not series:
        return AlreadyUpstream(files=(), patch_ids=())
    tip = series[-1]
    series_hunks = hunks_by_path(series_diff if series_diff is not None else git.diff_trees(repo, base, tip))
    paths = sorted(series_hunks)
    if not paths:
        return AlreadyUpstream(files=(), patch_ids=())
    # Files the merge leaves changed may still hold single hunks upstream already has, so onto's copies are
    # read while git finds which files those are: two independent git calls, run side by side.
    with_hunks = [p for p in paths if series_hunks[p]]
    with ThreadPoolExecutor(max_workers=2) as pool:
        changed_job = pool.submit(git.diff_tree_paths, repo, onto, result_tree, paths)
        onto_blobs = dict(zip(with_hunks, objects.read_blobs(repo, [f"{onto}:{p}" for p in with_hunks]), strict=True))
        still_changed = set(changed_job.result())
    found: list[tuple[str, bool, int, tuple[Hunk, ...]]] = []
    for path in paths:
        hunks = series_hunks[path]
        whole = path not in still_changed
        if whole:
            absorbed = hunks
        else:
            blob = onto_blobs.get(path)
            onto_lines = _split_lines(blob.decode("utf-8", errors="replace")) if blob is not None else []
            absorbed = tuple(h for h in hunks if hunk_in(onto_lines, h))
        if whole or absorbed:
            found.append((path, whole, len(hunks), absorbed))
    # Only the commits touching absorbed files are read in full, to see which of them carry the lines.
    upstream_lines = _lines_by_commit(objects.log_patches(repo, base, onto, [f[0] for f in found])) if found else ()
    results = tuple(
        FileAbsorption(path=TreePath(path), whole=whole, hunks=count, absorbed_hunks=len(absorbed),
                       landed_by=_landed_by(path, absorbed, upstream_lines, commits))
        for path, whole, count, absorbed in found
    )
    return AlreadyUpstream(files=results, patch_ids=_patch_id_matches(repo, base, series, paths, commits))


def _patch_id_matches(
    repo: Path, base: CommitSha, series: Sequence[CommitSha], paths: Sequence[str],
    commits: Sequence[UpstreamCommit],
) -> tuple[PatchIdMatch, ...]:
    """Series commits whose whole change an upstream commit made too (equal `git patch-id --stable`).

    Equal patch-ids need equal file sets and equal line counts per file, so only upstream commits touching
    exactly a series commit's patched paths are looked at, their `--numstat` is compared with the series
    commit's, and only the few that still match are diffed in full for `git patch-id`. Line counts and
    patch-ids are remembered per commit in the repository (see PatchIdCache), so a history is read once:
    later runs start no git process for commits they have seen, however long upstream's history grows.
    """
    if len(series) == 1:
        series_paths = {series[0]: frozenset(paths)}
    else:
        entries = objects.log_name_only(repo, base, series[-1], paths)
        series_paths = {e.sha: frozenset(e.paths) for e in entries}
    wanted = set(series_paths.values())
    candidates = [c.sha for c in commits if frozenset(c.paths) in wanted]
    if not candidates:
        return ()
    upstream_sets = {frozenset(c.paths) for c in commits if c.sha in set(candidates)}
    ours = [s for s in series if series_paths.get(s) in upstream_sets]
    if not ours:
        return ()
    cache = PatchIdCache.open(repo, paths)
    shapes = cache.numstats([*ours, *candidates])
    our_shapes = {shapes[s] for s in ours if s in shapes}
    maybe = [c for c in candidates if shapes.get(c) in our_shapes]
    if not maybe:
        cache.save()
        return ()
    ids = cache.patch_ids([*maybe, *ours])
    cache.save()
    by_id: dict[str, CommitSha] = {}
    for sha in maybe:  # newest first: keep the newest landing of a patch
        if sha in ids:
            by_id.setdefault(ids[sha], sha)
    return tuple(
        PatchIdMatch(patch_index=index, commit=commit, upstream=by_id[ids[commit]])
        for index, commit in enumerate(series)
        if commit in ids and ids[commit] in by_id
    )


PATCH_ID_CACHE = "mpspatch-patch-ids.json"
PATCH_ID_CACHE_VERSION = 1


@dataclass(frozen=True)
class PatchIdRecords:
    # "<commit>:<digest of the pathspec>" -> "<numstat shape>" or "<numstat shape>\n<patch-id>"; the patch-id
    # is only computed for commits whose shape matched a series commit's.
    entries: tuple[tuple[str, str], ...]


PATCH_ID_RECORDS = StateFile(
    what="the patch-id cache", model=PatchIdRecords, version=PATCH_ID_CACHE_VERSION,
    fix="delete it; the next forecast rebuilds it", rebuildable=True,
)


class PatchIdCache:
    """Line counts and patch-ids per commit, limited to one pathspec, kept in a file of the git directory.

    Both are functions of the commit and the pathspec only (commits never change), so a cached value can
    only save git work, never change an answer. Without a git directory it can write to, nothing is kept.
    """

    def __init__(self, repo: Path, paths: Sequence[str], file: Path | None) -> None:
        self.repo, self.paths, self.file = repo, tuple(sorted(paths)), file
        self.scope = hashlib.sha256("\0".join(self.paths).encode()).hexdigest()[:16]
        self.known: dict[str, str] = {}
        if file is not None:
            found = PATCH_ID_RECORDS.read(file)
            self.known = dict(found.entries) if found is not None else {}
        self.changed = False

    @classmethod
    def open(cls, repo: Path, paths: Sequence[str]) -> PatchIdCache:
        git_dir = repo / ".git" if (repo / ".git").is_dir() else repo if (repo / "objects").is_dir() else None
        return cls(repo, paths, git_dir / PATCH_ID_CACHE if git_dir is not None else None)

    def _key(self, sha: str) -> str:
        return f"{sha}:{self.scope}"

    def numstats(self, shas: Sequence[CommitSha]) -> dict[CommitSha, str]:
        """Each commit's `--numstat` over the pathspec as one string (one git call for those not cached)."""
        missing = [s for s in dict.fromkeys(shas) if self._key(s) not in self.known]
        if missing:
            for sha, shape in objects.numstats(self.repo, missing, self.paths).items():
                self.known[self._key(sha)] = shape
            self.changed = True
        return {s: self.known[self._key(s)].split("\n")[0] for s in shas if self._key(s) in self.known}

    def patch_ids(self, shas: Sequence[CommitSha]) -> dict[CommitSha, str]:
        """Each commit's `git patch-id --stable` over the pathspec (two git calls for those not cached)."""
        missing = [s for s in dict.fromkeys(shas) if "\n" not in self.known.get(self._key(s), "")]
        if missing:
            found = objects.patch_ids(self.repo, objects.show_patches(self.repo, missing, self.paths))
            for sha in missing:
                shape = self.known.get(self._key(sha), "").split("\n")[0]
                # A commit with no diff over the pathspec has no patch-id: remembered as an empty one.
                self.known[self._key(sha)] = f"{shape}\n{found.get(sha, '')}"
            self.changed = True
        ids = {s: self.known[self._key(s)].split("\n", 1)[1] for s in shas}
        return {s: i for s, i in ids.items() if i}

    def save(self) -> None:
        if self.file is None or not self.changed:
            return
        # A read-only repository keeps nothing: the answer is right, only the next run is slower.
        with contextlib.suppress(OSError):
            PATCH_ID_RECORDS.write(self.file, PatchIdRecords(entries=tuple(sorted(self.known.items()))))


# ----------------------------------------------------------------------------------------- hunk matching


def _split_lines(text: str) -> list[str]:
    lines = text.split("\n")
    return lines[:-1] if lines and lines[-1] == "" else lines


def _find(haystack: Sequence[str], needle: Sequence[str]) -> bool:
    if not needle:
        return True
    first, size = needle[0], len(needle)
    return any(
        haystack[i] == first and list(haystack[i : i + size]) == list(needle)
        for i in range(len(haystack) - size + 1)
    )


def hunk_in(onto_lines: Sequence[str], hunk: Hunk) -> bool:
    """True when onto already holds this hunk: `git apply -R` would find its post-image and not its pre-image.

    The second condition keeps a hunk that only adds lines from counting as upstream when onto merely
    kept the old text (an added block whose context also happens to repeat elsewhere).
    """
    after, before = hunk.after, hunk.before
    if after == before:
        return False
    if not after:  # the hunk empties the file
        return not onto_lines
    return _find(onto_lines, after) and not _find(onto_lines, before)


# -------------------------------------------------------------------------------------------- attribution


@dataclass(frozen=True)
class _CommitLines:
    sha: CommitSha
    added: Mapping[str, frozenset[str]]
    removed: Mapping[str, frozenset[str]]


def _significant(line: str) -> str | None:
    """A line worth matching on: braces, blank lines and short tokens occur everywhere and prove nothing."""
    stripped = line.strip()
    return stripped if len(stripped) >= 6 and any(c.isalnum() for c in stripped) else None


def _lines_by_commit(log_text: str) -> tuple[_CommitLines, ...]:
    chunks = re.split(r"^commit ([0-9a-f]{40})$", log_text, flags=re.M)
    found: list[_CommitLines] = []
    for sha, body in zip(chunks[1::2], chunks[2::2], strict=True):
        added: dict[str, frozenset[str]] = {}
        removed: dict[str, frozenset[str]] = {}
        for path, hunks in hunks_by_path(body).items():
            added[path] = frozenset(s for h in hunks for s in map(_significant, h.added_lines) if s)
            removed[path] = frozenset(s for h in hunks for s in map(_significant, h.removed_lines) if s)
        found.append(_CommitLines(sha=CommitSha(sha), added=added, removed=removed))
    return tuple(found)


def _landed_by(
    path: str, absorbed: Sequence[Hunk], upstream: Sequence[_CommitLines], commits: Sequence[UpstreamCommit]
) -> tuple[CommitSha, ...]:
    """Upstream commits that added the lines the absorbed hunks add in `path`, newest first.

    Added lines are the evidence: an upstream commit that rewrote the same line differently also removed
    it, so removed lines only count for hunks that add nothing (pure deletions). When no line matches
    (a change made only of short lines), every upstream commit touching the file is named.
    """
    ours_added = {s for h in absorbed for s in map(_significant, h.added_lines) if s}
    ours_removed = {s for h in absorbed if not h.added_lines for s in map(_significant, h.removed_lines) if s}
    # A commit that adds every one of our lines landed the change; one that shares a line or two (a sibling
    # function with the same guard) only looks alike, so partial matches count only when no commit has all.
    complete = tuple(
        c.sha for c in upstream
        if (ours_added or ours_removed)
        and ours_added <= c.added.get(path, frozenset()) and ours_removed <= c.removed.get(path, frozenset())
    )
    if complete:
        return complete
    matched = tuple(
        c.sha for c in upstream
        if ours_added & c.added.get(path, frozenset()) or ours_removed & c.removed.get(path, frozenset())
    )
    return matched or tuple(c.sha for c in touching(commits, path))
