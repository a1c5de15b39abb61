"""Which of the series' changes upstream already has, and the upstream commits that landed them.

Like history.py, this reads the object database only. Three detections, cheapest first: whole files that a
merge leaves exactly as onto has them, single hunks that reverse-apply to onto, and whole patches whose
`git patch-id --stable` equals an upstream commit's (cached per repository, since the scan grows with history).
`drift` and `rebase` both call `already_upstream`, so they can never disagree.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from mpspatch.foundation.ids import CommitSha, TreePath, TreeSha
from mpspatch.git import objects
from mpspatch.git import verbs as git
from mpspatch.model.diff import Hunk, hunks_by_path
from mpspatch.model.history import UpstreamCommit, touching
from mpspatch.model.in_place import InPlace, line_norm, significant
from mpspatch.model.store import StateFile


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
    in_place: Sequence[InPlace] = (),
) -> AlreadyUpstream:
    """Which changes of `series` (replayed into `result_tree`) onto already has, and who landed them.

    - whole file: the merged file equals onto's, so the series adds nothing to it any more;
    - per hunk: the hunk's post-image is in onto's file and its pre-image is not (it reverse-applies);
    - whole patch: a series commit's patch-id equals an upstream commit's (diffs limited to patched paths).

    - in place: conflict regions of the replay whose patch side upstream already has (`in_place`, from the
      forecast's steps; see absorbed_regions). A hunk whose added lines all lie in such regions counts, and
      the upstream commits that wrote those regions' lines in onto (region blame) are credited.

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
    placed: dict[str, list[str]] = {}
    for region in in_place:
        placed.setdefault(region.path, []).extend(region.added)
    found: list[tuple[str, bool, int, tuple[Hunk, ...]]] = []
    for path in paths:
        hunks = series_hunks[path]
        whole = path not in still_changed
        if whole:
            absorbed = hunks
        else:
            blob = onto_blobs.get(path)
            onto_lines = _split_lines(blob.decode("utf-8", errors="replace")) if blob is not None else []
            absorbed = tuple(h for h in hunks if hunk_in(onto_lines, h) or _covered(path, h, placed.get(path)))
        if whole or absorbed:
            found.append((path, whole, len(hunks), absorbed))
    # Only the commits touching absorbed files are read in full, to see which of them carry the lines. They
    # are known from `commits` already, so git diffs just those (no second walk over base..onto).
    # The whole-patch check shares no git call with the per-file credit, so it runs beside it.
    with ThreadPoolExecutor(max_workers=1) as pool:
        patch_ids = pool.submit(_patch_id_matches, repo, base, series, paths, commits)
        absorbed_paths = {f[0] for f in found}
        touched = list(dict.fromkeys(c.sha for c in commits if absorbed_paths.intersection(c.paths)))
        upstream_lines = (_lines_by_commit(objects.show_patches(repo, touched, sorted(absorbed_paths)))
                          if touched else ())
        credited = _in_place_credit(repo, base, onto, in_place, commits, {f[0] for f in found})
        results = tuple(
            FileAbsorption(path=TreePath(path), whole=whole, hunks=count, absorbed_hunks=len(absorbed),
                           landed_by=credited[path] if path in credited
                           else _landed_by(path, absorbed, upstream_lines, commits))
            for path, whole, count, absorbed in found
        )
        return AlreadyUpstream(files=results, patch_ids=patch_ids.result())


def _covered(path: str, hunk: Hunk, in_place: Sequence[str] | None) -> bool:
    """Whether every line `hunk` adds lies in a region upstream already has in place (it adds at least one)."""
    if not in_place or not hunk.added_lines:
        return False
    norm = line_norm(path)
    held = {norm(line.encode("utf-8")) for line in in_place}
    return all(norm(line.encode("utf-8")) in held for line in hunk.added_lines)


def _in_place_credit(repo: Path, base: CommitSha, onto: CommitSha, in_place: Sequence[InPlace],
                     commits: Sequence[UpstreamCommit], paths: set[str]) -> dict[str, tuple[CommitSha, ...]]:
    """The upstream commits that wrote the regions absorbed in place, per file (one blame per file)."""
    from mpspatch.model.blame import blame_ranges  # blame.py is needed only when something was absorbed in place

    ranges: dict[str, list[tuple[int, int]]] = {}
    for region in in_place:
        if region.path in paths:
            ranges.setdefault(region.path, []).extend(region.lines)
    credited: dict[str, tuple[CommitSha, ...]] = {}
    for path, spans in ranges.items():
        causes = blame_ranges(repo, base, onto, path, spans, commits)
        order = {c.sha: n for n, c in enumerate(commits)}  # newest first, as everywhere else
        shas = tuple(sorted({c.sha for found in causes for c in found}, key=lambda s: order.get(s, -1)))
        if shas:
            credited[path] = shas
    return credited


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


def _lines_by_commit(log_text: str) -> tuple[_CommitLines, ...]:
    chunks = re.split(r"^commit ([0-9a-f]{40})$", log_text, flags=re.M)
    found: list[_CommitLines] = []
    for sha, body in zip(chunks[1::2], chunks[2::2], strict=True):
        added: dict[str, frozenset[str]] = {}
        removed: dict[str, frozenset[str]] = {}
        for path, hunks in hunks_by_path(body).items():
            added[path] = frozenset(s for h in hunks for s in map(significant, h.added_lines) if s)
            removed[path] = frozenset(s for h in hunks for s in map(significant, h.removed_lines) if s)
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
    ours_added = {s for h in absorbed for s in map(significant, h.added_lines) if s}
    ours_removed = {s for h in absorbed if not h.added_lines for s in map(significant, h.removed_lines) if s}
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
