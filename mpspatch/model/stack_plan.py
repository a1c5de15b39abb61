"""The plan of a stack: the series' cumulative diff cut into units and packed into parts under a line limit.

Pure functions of the parsed diff and the config's groups and categories: no git, no files. The operation
that builds, proves and writes the stack is operations/split.py.

- A *unit* is never divided: one hunk, or a whole file change without hunks (binary, pure rename, mode
  change), or a whole file whose hunks cannot be re-applied one by one (a C-quoted path, bytes that are not
  UTF-8).
- Every file goes to one *bucket*: the first pinned `[[split.groups]]` whose `paths` match, then the first
  group whose `tests` match (tests travel with the code they test), then the first matching `[categories]`
  entry, all in config order, otherwise "Other changes".
- Buckets are packed greedily in order. A bucket that fits the limit whole joins the part before it when the
  two fit together (so a series under the limit is one part); a larger bucket gets parts of its own, files in
  path order with its tests last (they land with the last of its code): a file that fits the limit stays in
  one part; a larger one is laid out hunk by hunk; a single hunk over the limit becomes a part of its own,
  flagged oversized.

operations/split.py applies this to one *segment* of the series at a time: the whole series when it has one
patch, otherwise runs of whole patches (so a part never mixes two patches' hunks unless it packs small whole
patches together, see `pack_patches`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from mpspatch.foundation.config import Category, SplitGroup
from mpspatch.foundation.errors import InputError
from mpspatch.foundation.globs import matches_any
from mpspatch.model.diff import FileChange

OTHER_BUCKET = "Other changes"
_HUNK_HEAD = re.compile(r"^@@ -\d+(?:,\d+)? \+\d+(?:,\d+)? @@(.*)$", re.DOTALL)


@dataclass(frozen=True)
class Unit:
    """An indivisible piece of the cumulative diff: one hunk, or a whole file change."""

    file: int  # index into the cumulative diff's files
    hunks: tuple[int, ...]  # the hunk indices it carries; empty for a change without hunks
    lines: int  # insertions plus deletions


@dataclass(frozen=True)
class PlannedPart:
    title: str
    slug: str
    bucket: str
    units: tuple[Unit, ...]
    lines: int
    oversized_hunk: bool



# ------------------------------------------------------------------------------------------------ planning


def slugify(text: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return slug[:48].rstrip("-") or "part"


def _splittable(change: FileChange) -> bool:
    # The hunks are re-applied from the parsed text: a C-quoted path would need git's quoting rules and
    # U+FFFD means the parser replaced bytes that were not UTF-8, so such a file moves as one piece.
    first = change.header.split("\n", 1)[0]
    return '"' not in first and not any("\ufffd" in h.text for h in change.hunks)


def units_of(index: int, change: FileChange) -> tuple[Unit, ...]:
    if not change.hunks or not _splittable(change):
        return (Unit(index, tuple(range(len(change.hunks))), change.changed_lines),)
    return tuple(Unit(index, (i,), h.insertions + h.deletions) for i, h in enumerate(change.hunks))


def bucket_of(path: str, groups: Sequence[SplitGroup], categories: Sequence[Category]) -> tuple[int, str]:
    """(order, title): pinned groups first, then their tests, then categories, all in config order, then the rest."""
    for order, group in enumerate(groups):
        if matches_any(path, group.globs):
            return order, group.title
    for order, group in enumerate(groups):
        if group.tests and matches_any(path, group.tests):
            return order, group.title
    for order, category in enumerate(categories):
        if matches_any(path, category.globs):
            return len(groups) + order, category.name
    return len(groups) + len(categories), OTHER_BUCKET


def _pack(
    units_by_file: Sequence[tuple[Unit, ...]], budget: int, max_lines: int
) -> list[tuple[tuple[Unit, ...], bool]]:
    parts: list[tuple[tuple[Unit, ...], bool]] = []
    current: list[Unit] = []
    size = 0

    def close() -> None:
        nonlocal current, size
        if current:
            parts.append((tuple(current), False))
        current, size = [], 0

    for units in units_by_file:
        total = sum(u.lines for u in units)
        if total <= budget:  # the whole file fits in a part: keep its hunks together
            if size + total > budget:
                close()
            current.extend(units)
            size += total
            continue
        for unit in units:  # too big for one part: hunks in file order, never inside a hunk
            if unit.lines > budget:
                close()
                parts.append(((unit,), unit.lines > max_lines))
                continue
            if size + unit.lines > budget:
                close()
            current.append(unit)
            size += unit.lines
    close()
    return parts


def _tests_with_code(
    packed: list[tuple[tuple[Unit, ...], bool]], is_test: Callable[[Unit], bool], budget: int
) -> list[tuple[tuple[Unit, ...], bool]]:
    """When the bucket's last part holds only tests, move the code units before it into it while they fit.

    The units keep their order, so the stack still applies; a part left empty goes.
    """
    if len(packed) < 2 or not all(is_test(u) for u in packed[-1][0]):
        return packed
    (previous, flag), (last, last_flag) = packed[-2], packed[-1]
    size = sum(u.lines for u in last)
    moved: list[Unit] = []
    while previous and not is_test(previous[-1]) and size + previous[-1].lines <= budget:
        size += previous[-1].lines
        moved.insert(0, previous[-1])
        previous = previous[:-1]
    head = packed[:-2] + ([(previous, flag)] if previous else [])
    return [*head, (tuple(moved) + last, last_flag)]


def plan_parts(
    changes: Sequence[FileChange],
    groups: Sequence[SplitGroup],
    categories: Sequence[Category],
    max_lines: int,
    *,
    budget: int | None = None,
) -> tuple[PlannedPart, ...]:
    """The ordered parts for the cumulative diff `changes`. Pure: no git, no files.

    Parts are packed up to `budget` lines (max_lines unless given); a hunk is flagged oversized only when it
    alone is over max_lines. A smaller budget leaves room for git's re-diff of a part being a little longer
    than its hunks (see operations/split.py).
    """
    if max_lines <= 0:
        raise InputError(f"--max-lines {max_lines}: must be a positive number of lines; e.g. --max-lines 2000")
    limit = budget or max_lines
    buckets: dict[tuple[int, str], list[int]] = {}
    for index, change in enumerate(changes):
        buckets.setdefault(bucket_of(change.path, groups, categories), []).append(index)
    tests = tuple(t for g in groups for t in g.tests)
    planned: list[PlannedPart] = []
    open_part: list[tuple[str, tuple[Unit, ...]]] = []  # whole small buckets packed together so far

    def close() -> None:
        if open_part:
            title = _joined([t for t, _ in open_part])
            units = tuple(u for _, us in open_part for u in us)
            planned.append(PlannedPart(title=title, slug=slugify(title), bucket=title, units=units,
                                       lines=sum(u.lines for u in units), oversized_hunk=False))
            open_part.clear()

    for order, title in sorted(buckets):
        # Code first, then the tests that travel with it, each in path order.
        files = sorted(buckets[(order, title)],
                       key=lambda i: (bool(tests) and matches_any(changes[i].path, tests), changes[i].path))
        file_units = [units_of(i, changes[i]) for i in files]
        total = sum(u.lines for us in file_units for u in us)
        if total <= limit:
            if sum(u.lines for _, us in open_part for u in us) + total > limit:
                close()
            open_part.append((title, tuple(u for us in file_units for u in us)))
            continue
        close()
        packed = _pack(file_units, limit, max_lines)
        if tests:
            packed = _tests_with_code(packed, lambda u: matches_any(changes[u.file].path, tests), limit)
        for number, (units, oversized) in enumerate(packed, start=1):
            part_title = title if len(packed) == 1 else f"{title}, part {number} of {len(packed)}"
            slug = slugify(title) if len(packed) == 1 else f"{slugify(title)}-{number}"
            planned.append(PlannedPart(title=part_title, slug=slug, bucket=title, units=units,
                                       lines=sum(u.lines for u in units), oversized_hunk=oversized))
    close()
    return tuple(planned)


def _joined(titles: Sequence[str]) -> str:
    if len(titles) <= 2:
        return " and ".join(titles)
    return ", ".join(titles[:-1]) + f" and {titles[-1]}"


def pack_patches(sizes: Sequence[int], limit: int) -> tuple[tuple[int, ...], ...]:
    """Runs of consecutive patch indices: small whole patches packed together greedily up to `limit`.

    A patch over the limit is a run of its own (the planner then cuts it by buckets); the order never changes.
    """
    runs: list[list[int]] = []
    size = 0
    for index, lines in enumerate(sizes):
        if runs and size + lines <= limit:
            runs[-1].append(index)
            size += lines
        else:
            runs.append([index])
            size = lines
    return tuple(tuple(r) for r in runs)


def patch_subject(text: str, fallback: str) -> str:
    """The subject of a `git format-patch` mail (folded lines joined, `[PATCH ...]` dropped), else `fallback`."""
    match = re.search(r"^Subject: (.*(?:\n[ \t].*)*)", text, re.MULTILINE)
    if match:
        subject = re.sub(r"\s*\n[ \t]+", " ", match.group(1)).strip()
        subject = re.sub(r"^\[PATCH[^\]]*\]\s*", "", subject).strip()
        if subject:
            return subject
    return re.sub(r"^\d+-", "", fallback).replace("-", " ").strip() or fallback


def planned_net(part: PlannedPart, changes: Sequence[FileChange]) -> int:
    """Insertions minus deletions of the part's hunks: the one size no re-diff of the part can change."""
    net = 0
    for unit in part.units:
        change = changes[unit.file]
        if change.hunks:
            net += sum(change.hunks[i].insertions - change.hunks[i].deletions for i in unit.hunks)
        else:
            net += change.insertions - change.deletions
    return net


# --------------------------------------------------------------------------------- intermediate states


def subset_patch(change: FileChange, hunks: Sequence[int]) -> str:
    """A patch that applies only `hunks` of `change` to the base file.

    The kept hunks still find their place by their source lines (all relative to the base); their target
    starts are recomputed as if the left-out hunks did not exist. The index line is dropped because the
    result is an intermediate blob, not the one it names.
    """
    header = [line for line in change.header.splitlines() if not line.startswith("index ")]
    old = change.old_path or change.path
    text = "\n".join(header) + f"\n--- a/{old}\n+++ b/{change.path}\n"
    offset = 0
    for i in sorted(hunks):
        hunk = change.hunks[i]
        start = hunk.source_start - (1 if hunk.source_length else 0) + offset + (1 if hunk.target_length else 0)
        first, _, body = hunk.text.partition("\n")
        match = _HUNK_HEAD.match(first)
        if not match:
            raise ValueError(f"{change.path}: hunk {i + 1} has no @@ header; cannot re-apply it")
        text += (f"@@ -{_span(hunk.source_start, hunk.source_length)} +{_span(start, hunk.target_length)} @@"
                 f"{match.group(1)}\n{body}")
        offset += hunk.target_length - hunk.source_length
    return text


def _span(start: int, length: int) -> str:
    return str(start) if length == 1 else f"{start},{length}"


# ------------------------------------------------------------------------------------------- messages


def part_message(plan: Sequence[PlannedPart], k: int, changes: Sequence[FileChange], series_title: str,
                 base_ref: str) -> str:
    """The commit message of part `k` (1-based): its place in the stack, what it applies on, its files.

    `changes` is the diff part k's units index into (its segment of the series).
    """
    part, total = plan[k - 1], len(plan)
    lines = [f"[MPS] {part.title} ({k}/{total})", ""]
    lines.append(f"Part {k} of {total} of: {series_title}.")
    if k == 1:
        lines.append(f"It applies on {base_ref}.")
    else:
        lines.append(f"It applies on part {k - 1} ({plan[k - 2].title}).")
    lines += ["", "Files:"]
    hunks: dict[int, list[int]] = {}
    for unit in part.units:
        hunks.setdefault(unit.file, []).extend(unit.hunks)
    for index in sorted(hunks, key=lambda i: changes[i].path):
        change = changes[index]
        own = sorted(hunks[index])
        note = ""
        if change.hunks and len(own) < len(change.hunks):
            span = f"{own[0] + 1}" if len(own) == 1 else f"{own[0] + 1}-{own[-1] + 1}"
            note = f" (hunks {span} of {len(change.hunks)})"
        lines.append(f"  {change.path}{note}")
    return "\n".join(lines) + "\n"
