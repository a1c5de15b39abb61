"""Which lint findings the series caused: a finding on a line the series adds or changes is `new`; any other
is `preexisting`, already in the upstream file under the same style, and not the submitter's to fix.

The lines come from the series' hunks (model/diff.py) between the base and the patched commit, so line numbers
are those of the patched files the linters read. This is what PyTorch's CI does: it lints changed lines.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from mpspatch.git import verbs as git
from mpspatch.model.diff import hunks_by_path

# Path -> the line numbers (1-based, in the patched file) that the series adds or changes.
ChangedLines = Mapping[str, frozenset[int]]

NEW = "new"
PREEXISTING = "preexisting"


def changed_lines_of(diff_text: str) -> dict[str, frozenset[int]]:
    """The added or changed lines of each file of a unified diff, numbered as in the file after the change."""
    changed: dict[str, frozenset[int]] = {}
    for path, hunks in hunks_by_path(diff_text).items():
        lines: set[int] = set()
        for hunk in hunks:
            number = hunk.target_start
            for line in hunk.lines:
                if line.startswith("+"):
                    lines.add(number)
                    number += 1
                elif line.startswith(" "):
                    number += 1
        changed[str(path)] = frozenset(lines)
    return changed


def changed_lines(shadow: Path, base: str, commit: str, paths: tuple[str, ...] = ()) -> dict[str, frozenset[int]]:
    """The lines the series adds or changes between `base` and `commit` in the shadow repository."""
    if base == commit:
        return {}
    return changed_lines_of(git.diff_trees(shadow, base, commit, paths))


def classify(path: str, line: int | None, changed: ChangedLines, *, spans_next: bool = False) -> str:
    """`new` or `preexisting` for one finding.

    A finding with no line (a whole-file message) is new when the series changes the file at all: it cannot
    be pinned to upstream's lines. `spans_next` marks a clang-format replacement that starts at the end of
    `line` and covers the line break, as a wrong indentation of the next line is reported; it is new when
    either line is the series'.
    """
    lines = changed.get(path)
    if not lines:
        return PREEXISTING
    if line is None:
        return NEW
    if line in lines or (spans_next and line + 1 in lines):
        return NEW
    return PREEXISTING
