"""Conflict regions whose patch side upstream already has in place: found, and taken as upstream's side.

A region counts when the lines the patch adds there already appear, in order, in the region's upstream side
(whitespace-insensitive for C++, ObjC++, YAML and Python) and the lines it removes are gone there too. The
merge forecast (history.py) settles such regions in its merge-tree steps and the rebase in its worktree, from
the same files and this same test, so both count the same conflicts.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from mpspatch.foundation.ids import CommitSha, TreePath, TreeSha
from mpspatch.git import objects, trees
from mpspatch.model.regions import MergedFile, Region, line_map, onto_ranges, opcodes, parse


@dataclass(frozen=True)
class InPlace:
    """Conflict regions of one file whose patch side upstream already has, taken as upstream's (absorbed.py)."""

    path: TreePath
    patch_index: int
    lines: tuple[tuple[int, int], ...]  # each region's 1-based inclusive lines in onto's version of the file
    added: tuple[str, ...]  # the lines the patch adds in those regions, as the patch has them



# Languages where whitespace inside or around a line carries no meaning for "the same line": C++, ObjC++, YAML
# and Python (an indentation change re-landing the same line does not make it another line).
_LOOSE_SUFFIXES = (".h", ".hpp", ".hh", ".c", ".cc", ".cpp", ".cxx", ".cu", ".cuh", ".m", ".mm", ".metal",
                   ".yaml", ".yml", ".py", ".pyi")


def significant(line: str) -> str | None:
    """A line worth matching on: braces, blank lines and short tokens occur everywhere and prove nothing."""
    stripped = line.strip()
    return stripped if len(stripped) >= 6 and any(c.isalnum() for c in stripped) else None


@dataclass(frozen=True)
class RegionVerdict:
    region: int  # 0-based index among the file's regions
    added: tuple[str, ...]  # the lines the patch adds in this region


def line_norm(path: str) -> Callable[[bytes], str]:
    loose = path.endswith(_LOOSE_SUFFIXES)

    def norm(line: bytes) -> str:
        text = line.decode("utf-8", errors="replace").rstrip("\r\n")
        return "".join(text.split()) if loose else text

    return norm


_TOKEN = re.compile(r"\w+|[^\w\s]")


def _tokens(lines: Sequence[bytes]) -> list[str]:
    """The words and punctuation of `lines`, so re-wrapped text compares equal but `kernel` never matches the
    start of `kernel_v2`."""
    return [tok for line in lines for tok in _TOKEN.findall(line.decode("utf-8", errors="replace"))]


def _contains_run(needle: Sequence[str], haystack: Sequence[str]) -> bool:
    width = len(needle)
    return any(haystack[i : i + width] == needle for i in range(len(haystack) - width + 1))


def _subsequence(needle: Sequence[str], haystack: Sequence[str]) -> bool:
    rest = iter(haystack)
    return all(any(item == other for other in rest) for item in needle)


def absorbed_regions(path: str, merged: MergedFile, parent: bytes | None, patched: bytes | None
                     ) -> tuple[RegionVerdict, ...]:
    """The regions of a merged file whose patch side upstream already has in place.

    `parent` and `patched` are the file before and after the patch being replayed. A region counts when the
    lines the patch adds there all appear, in order, in the region's upstream side (for C++/ObjC++/YAML/Python
    whitespace does not count, and the added text may be re-wrapped over other lines), at least one of them
    says something (six characters with a letter or digit: a brace proves nothing), and the lines the patch
    removes there are gone from the upstream side too. A region where the patch adds and removes nothing is
    one git's merge narrowed down to upstream's own addition next to a line both sides added (the common line
    moved out of the region), so it counts too. Then taking upstream's side loses nothing of the patch. A
    region where the patch only removes lines is left to the person.
    """
    if parent is None or patched is None or not merged.regions:
        return ()
    norm = line_norm(path)
    loose = path.endswith(_LOOSE_SUFFIXES)
    before = parent.splitlines(keepends=True)
    after = patched.splitlines(keepends=True)
    codes = opcodes(before, after)
    found: list[RegionVerdict] = []
    for number, (region, (start, end)) in enumerate(zip(merged.regions, _patch_spans(merged, after), strict=True)):
        if start < 0:
            continue
        inside = [after[j] for tag, _, _, j1, j2 in codes if tag in ("insert", "replace")
                  for j in range(max(j1, start), min(j2, end))]
        removed = [before[i] for tag, i1, i2, j1, j2 in codes
                   if (tag == "delete" and start <= j1 <= end) or (tag == "replace" and j1 < end and j2 > start)
                   for i in range(i1, i2)]
        # Lines the patch adds right next to the region: both sides added them, so git moved them out of it.
        beside = [after[j] for tag, _, _, j1, j2 in codes if tag in ("insert", "replace") and (j2 == start or j1 == end)
                  for j in range(j1, j2) if not start <= j < end]
        if removed and not inside:
            continue
        if inside and not any(significant(line.decode("utf-8", errors="replace")) for line in inside):
            continue
        ours = [n for n in map(norm, region.upstream) if n or not loose]
        wanted = [n for n in map(norm, inside) if n or not loose]
        present = _subsequence(wanted, ours) or (loose and _contains_run(_tokens(inside), _tokens(region.upstream)))
        gone = {n for n in map(norm, removed) if n} - set(wanted)
        if present and not gone & set(ours):
            found.append(RegionVerdict(region=number, added=tuple(
                a.decode("utf-8", errors="replace").rstrip("\r\n") for a in (*inside, *beside))))
    return tuple(found)


def _patch_spans(merged: MergedFile, after: Sequence[bytes]) -> list[tuple[int, int]]:
    """Each region's patch side as a 0-based [start, end) span of the patched file's lines; (-1, -1) when it
    cannot be placed. The merged text with every region on its patch side is matched against the patched
    file, so the patch's side, or the spot of an empty one, is found even when upstream moved things around."""
    view: list[bytes] = []
    spans: list[tuple[int, int]] = []
    for part in merged.parts:
        if isinstance(part, Region):
            spans.append((len(view), len(view) + len(part.patch)))
            view.extend(part.patch)
        else:
            view.append(part)
    where = line_map(view, after)
    placed: list[tuple[int, int]] = []
    for start, end in spans:
        if end > start:
            mapped = [where.get(i) for i in range(start, end)]
            if None in mapped or mapped != list(range(mapped[0] or 0, (mapped[0] or 0) + end - start)):
                placed.append((-1, -1))
            else:
                first = mapped[0] or 0
                placed.append((first, first + end - start))
            continue
        if start - 1 in where:
            spot = where[start - 1] + 1
        elif start in where:
            spot = where[start]
        elif start == 0:
            spot = 0
        else:
            placed.append((-1, -1))
            continue
        placed.append((spot, spot))
    return placed


@dataclass(frozen=True)
class Settled:
    """A merge-tree step after its absorbed-in-place regions were taken as upstream's side."""

    tree: TreeSha  # the step's tree with those regions resolved
    regions_left: dict[str, int]  # per file touched, the regions still in conflict (0: no conflict any more)
    contents: dict[str, bytes]  # per file touched, its text in `tree`
    found: tuple[InPlace, ...]


@dataclass(frozen=True)
class SettledFile:
    """One merged file with its absorbed-in-place regions taken as upstream's side."""

    text: bytes  # the file with those regions resolved; every other region kept with its markers
    left: int  # the regions still in conflict
    found: InPlace


def settle_file(path: str, merged: bytes, parent: bytes | None, patched: bytes | None, onto_blob: bytes | None,
                patch_index: int) -> SettledFile | None:
    """`merged` (a conflicted file) with the regions whose patch side upstream already has taken as upstream's;
    None when there is no such region. `parent` and `patched` are the file before and after the patch."""
    parsed = parse(merged)
    verdicts = absorbed_regions(path, parsed, parent, patched)
    if not verdicts:
        return None
    chosen = [v.region for v in verdicts]
    ranges = onto_ranges(parsed, onto_blob)
    return SettledFile(text=parsed.resolve(chosen), left=len(parsed.regions) - len(chosen),
                       found=InPlace(path=TreePath(path), patch_index=patch_index,
                                     lines=tuple(ranges[i] for i in chosen),
                                     added=tuple(line for v in verdicts for line in v.added)))


def settle_in_place(repo: Path, tree: TreeSha, commit: CommitSha, onto: CommitSha, paths: Sequence[str],
                    patch_index: int) -> Settled:
    """Take the absorbed-in-place regions of a merge-tree step's conflicted `paths` as upstream's side.

    The rebase makes the same resolution in its worktree (operations/rebase), with settle_file on the same
    files, so both count the same conflicts.
    """
    specs = [s for p in paths for s in (f"{tree}:{p}", f"{commit}^:{p}", f"{commit}:{p}", f"{onto}:{p}")]
    blobs = objects.read_blobs(repo, specs)
    contents: dict[str, bytes] = {}
    regions_left: dict[str, int] = {}
    found: list[InPlace] = []
    for number, path in enumerate(paths):
        merged, parent, patched, onto_blob = blobs[4 * number : 4 * number + 4]
        settled = settle_file(path, merged, parent, patched, onto_blob, patch_index) if merged is not None else None
        if settled is None:
            continue
        contents[path] = settled.text
        regions_left[path] = settled.left
        found.append(settled.found)
    if not contents:
        return Settled(tree, {}, {}, ())
    return Settled(trees.rewrite_tree(repo, tree, source=commit, contents=contents), regions_left, contents,
                   tuple(found))
