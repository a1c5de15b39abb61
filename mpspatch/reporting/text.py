"""Small text helpers the status report and the documents share: counted nouns, counts, relative paths."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path


def relative(path: Path, root: Path) -> str:
    """A path as the documents show it: relative to the config folder, so no machine path is written."""
    return Path(os.path.relpath(path, root)).as_posix()



def one_line(text: str) -> str:
    """Tool output folded onto one line: gap reasons sit in Markdown lists and tables."""
    return "; ".join(line.strip() for line in text.splitlines() if line.strip())


def count(n: int, noun: str) -> str:
    """'1 file', '2 files', '1 patch', '3 patches', with thousands separators."""
    if n == 1:
        return f"1 {noun}"
    return f"{n:,} {noun}es" if noun.endswith(("ch", "sh", "s", "x")) else f"{n:,} {noun}s"


def format_counts(counts: Sequence[tuple[str, int]]) -> str:
    return ", ".join(f"{key} {value:,}" for key, value in counts)

