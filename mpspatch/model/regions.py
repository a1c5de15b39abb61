"""The conflict regions of a merged file, read from its markers: pure functions of bytes, no git.

In both `git merge-tree` (drift) and the rebase worktree, the first side of a region (`<<<<<<<` to `=======`)
is upstream (onto, plus the earlier patches of the series) and the second side (`=======` to `>>>>>>>`) is the
patch being replayed; a `|||||||` section, when the marker style has one, holds the merge base.

The text outside the regions is not onto's text: it also holds the patch's hunks that merged cleanly. So a
region's place in the onto version of the file is found by matching the merged text, with every region taken
on its upstream side, against onto's lines (difflib); a region's upstream lines are onto's own lines, so they
always match when the upstream side is onto's.
"""

from __future__ import annotations

import difflib
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

# Conflict markers start a line with exactly seven marker characters and then a space (the label) or the end.
_START = re.compile(rb"^<{7}(?: |\r?$)")
_BASE = re.compile(rb"^\|{7}(?: |\r?$)")
_SPLIT = re.compile(rb"^={7}\r?$")
_END = re.compile(rb"^>{7}(?: |\r?$)")


@dataclass(frozen=True)
class Region:
    upstream: tuple[bytes, ...]  # the first side's lines, line ends kept
    patch: tuple[bytes, ...]  # the second side's lines
    at: int  # 0-based index of the region's first upstream line in upstream_text() of the whole file


@dataclass(frozen=True)
class MergedFile:
    """A merged file cut into plain text and conflict regions, in order."""

    parts: tuple[bytes | Region, ...]  # plain lines (bytes) and regions
    raw: bytes  # the file as merged

    @property
    def regions(self) -> tuple[Region, ...]:
        return tuple(p for p in self.parts if isinstance(p, Region))

    def upstream_text(self) -> list[bytes]:
        """The merged lines with every region taken on its upstream side."""
        return [line for part in self.parts for line in (part.upstream if isinstance(part, Region) else (part,))]

    def patch_side(self) -> bytes:
        """The file with every region taken on its patch side, all merged text around the regions kept: what
        `-X theirs` would have produced (upstream's other edits to the file survive)."""
        return b"".join(line for part in self.parts for line in (part.patch if isinstance(part, Region) else (part,)))

    def resolve(self, to_upstream: Sequence[int]) -> bytes:
        """The file with the regions at these indexes (0-based, in order) replaced by their upstream side;
        every other byte (the other regions with their labels and base sections) is kept as it was."""
        return _rebuild(self.raw, set(to_upstream)) if to_upstream else self.raw


def parse(content: bytes) -> MergedFile:
    """Cut `content` into plain lines and regions. A file without markers is all plain text."""
    parts: list[bytes | Region] = []
    state = "text"
    upstream: list[bytes] = []
    patch: list[bytes] = []
    at = 0
    for line in content.splitlines(keepends=True):
        bare = line.rstrip(b"\r\n")
        if state == "text":
            if _START.match(bare):
                state, upstream, patch = "upstream", [], []
            else:
                parts.append(line)
                at += 1
        elif state == "upstream" and _BASE.match(bare):
            state = "base"
        elif state in ("upstream", "base") and _SPLIT.match(bare):
            state = "patch"
        elif state == "patch" and _END.match(bare):
            parts.append(Region(upstream=tuple(upstream), patch=tuple(patch), at=at))
            at += len(upstream)
            state = "text"
        elif state == "upstream":
            upstream.append(line)
        elif state == "patch":
            patch.append(line)
    if state != "text":  # an unfinished region is not a region: keep the text as it is
        return MergedFile(parts=tuple(content.splitlines(keepends=True)), raw=content)
    return MergedFile(parts=tuple(parts), raw=content)


def _rebuild(raw: bytes, chosen: set[int]) -> bytes:
    out: list[bytes] = []
    state = "text"
    number = -1
    held: list[bytes] = []
    upstream: list[bytes] = []
    for line in raw.splitlines(keepends=True):
        bare = line.rstrip(b"\r\n")
        if state == "text":
            if _START.match(bare):
                state, number, held, upstream = "upstream", number + 1, [line], []
            else:
                out.append(line)
            continue
        held.append(line)
        if state == "upstream" and _BASE.match(bare):
            state = "base"
        elif state in ("upstream", "base") and _SPLIT.match(bare):
            state = "patch"
        elif state == "patch" and _END.match(bare):
            out.extend(upstream if number in chosen else held)
            state = "text"
        elif state == "upstream":
            upstream.append(line)
    return b"".join(out)


def onto_ranges(merged: MergedFile, onto: bytes | None) -> tuple[tuple[int, int], ...]:
    """Each region's 1-based inclusive line range in the onto version of the file.

    A region whose upstream side is empty (upstream deleted the lines the patch changes) gets the onto lines
    around the spot: the line before it and the line after it, as far as the file has them.
    """
    regions = merged.regions
    if not regions:
        return ()
    mine = merged.upstream_text()
    theirs = (onto or b"").splitlines(keepends=True)
    where = line_map(mine, theirs)  # index in `mine` -> 0-based onto line
    found: list[tuple[int, int]] = []
    total = max(len(theirs), 1)
    for region in regions:
        mapped = [where[i] for i in range(region.at, region.at + len(region.upstream)) if i in where]
        if mapped:
            found.append((min(mapped) + 1, max(mapped) + 1))
            continue
        before = next((where[i] for i in range(region.at - 1, -1, -1) if i in where), -1)
        after = next((where[i] for i in range(region.at + len(region.upstream), len(mine)) if i in where), len(theirs))
        start, end = before + 1, after + 1  # 1-based: the line before (or the first), the line after (or the last)
        found.append((min(max(start, 1), total), min(max(end, start, 1), total)))
    return tuple(found)


# ------------------------------------------------------------------------------------------ line matching

# Below this many line pairs, difflib's exact matcher is cheap; above it, unique lines anchor the match first.
_SMALL = 250_000


def line_map(a: Sequence[bytes], b: Sequence[bytes]) -> dict[int, int]:
    """Equal lines of `a` and `b` as a monotonic map from an index of `a` to one of `b`.

    A patience-style match: common ends first, then lines that occur once in each side anchor the rest,
    and difflib matches only the small gaps between anchors. difflib alone is quadratic on files full of
    repeated lines (native_functions.yaml's `  dispatch:`), which PyTorch's files are.
    """
    found: dict[int, int] = {}
    _match(a, 0, len(a), b, 0, len(b), found)
    return found


def _match(a: Sequence[bytes], alo: int, ahi: int, b: Sequence[bytes], blo: int, bhi: int,
           found: dict[int, int]) -> None:
    while alo < ahi and blo < bhi and a[alo] == b[blo]:
        found[alo] = blo
        alo, blo = alo + 1, blo + 1
    while alo < ahi and blo < bhi and a[ahi - 1] == b[bhi - 1]:
        ahi, bhi = ahi - 1, bhi - 1
        found[ahi] = bhi
    if alo == ahi or blo == bhi:
        return
    anchors = [] if (ahi - alo) * (bhi - blo) <= _SMALL else _anchors(a, alo, ahi, b, blo, bhi)
    if not anchors:
        matcher = difflib.SequenceMatcher(None, a[alo:ahi], b[blo:bhi], autojunk=(ahi - alo) * (bhi - blo) > _SMALL)
        for i, j, size in matcher.get_matching_blocks():
            for k in range(size):
                found[alo + i + k] = blo + j + k
        return
    for i, j in anchors:
        _match(a, alo, i, b, blo, j, found)
        found[i] = j
        alo, blo = i + 1, j + 1
    _match(a, alo, ahi, b, blo, bhi, found)


def _anchors(a: Sequence[bytes], alo: int, ahi: int, b: Sequence[bytes], blo: int, bhi: int
             ) -> list[tuple[int, int]]:
    """Lines unique on both sides, paired, longest run increasing on both sides (patience sorting)."""
    count_a = Counter(a[alo:ahi])
    count_b = Counter(b[blo:bhi])
    where_b = {b[j]: j for j in range(blo, bhi) if count_b[b[j]] == 1}
    pairs = [(i, where_b[a[i]]) for i in range(alo, ahi) if count_a[a[i]] == 1 and a[i] in where_b]
    tails: list[int] = []  # tails[k]: index in pairs ending the best run of length k + 1
    back: list[int] = [-1] * len(pairs)
    for n, (_, j) in enumerate(pairs):
        k = _bisect(pairs, tails, j)
        if k > 0:
            back[n] = tails[k - 1]
        if k == len(tails):
            tails.append(n)
        else:
            tails[k] = n
    run: list[tuple[int, int]] = []
    n = tails[-1] if tails else -1
    while n >= 0:
        run.append(pairs[n])
        n = back[n]
    return run[::-1]


def _bisect(pairs: Sequence[tuple[int, int]], tails: Sequence[int], j: int) -> int:
    lo, hi = 0, len(tails)
    while lo < hi:
        mid = (lo + hi) // 2
        if pairs[tails[mid]][1] < j:
            lo = mid + 1
        else:
            hi = mid
    return lo


def opcodes(a: Sequence[bytes], b: Sequence[bytes]) -> list[tuple[str, int, int, int, int]]:
    """difflib-style opcodes (`insert`, `delete`, `replace`; `equal` left out) from line_map."""
    found: list[tuple[str, int, int, int, int]] = []
    i = j = 0
    for ai, bj in [*sorted(line_map(a, b).items()), (len(a), len(b))]:
        if ai > i or bj > j:
            found.append(("replace" if ai > i and bj > j else "delete" if ai > i else "insert", i, ai, j, bj))
        i, j = ai + 1, bj + 1
    return found
