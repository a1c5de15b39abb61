"""Unified diffs as files and hunks: the one parser (unidiff underneath) and the one C-path unquoter.

Patch files (series), the cumulative diff split cuts up, and the diffs history reads from git all go through
`parse_diff`, so a path or a hunk means the same thing everywhere.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from mpspatch.foundation.ids import TreePath


class DiffParseError(ValueError):
    """unidiff refused the text; callers that know where it came from turn this into their own error."""


@dataclass(frozen=True)
class Hunk:
    source_start: int
    source_length: int
    target_start: int
    target_length: int
    insertions: int
    deletions: int
    text: str  # the hunk exactly as in the patch, header line included

    @property
    def lines(self) -> tuple[str, ...]:
        """The body lines with their ' ', '+' or '-' prefix; "\\ No newline" markers left out."""
        body = self.text.split("\n")[1:]
        return tuple(line for line in body if line[:1] in (" ", "+", "-"))

    @property
    def before(self) -> list[str]:
        return [line[1:] for line in self.lines if line[:1] in (" ", "-")]

    @property
    def after(self) -> list[str]:
        return [line[1:] for line in self.lines if line[:1] in (" ", "+")]

    @property
    def added_lines(self) -> list[str]:
        return [line[1:] for line in self.lines if line.startswith("+")]

    @property
    def removed_lines(self) -> list[str]:
        return [line[1:] for line in self.lines if line.startswith("-")]


class ChangeStatus(StrEnum):
    ADDED = "added"
    DELETED = "deleted"
    MODIFIED = "modified"
    RENAMED = "renamed"


@dataclass(frozen=True)
class FileChange:
    path: TreePath  # the path after the change (the old path for a deletion)
    old_path: TreePath | None  # set for renames and copies
    status: ChangeStatus
    insertions: int
    deletions: int
    binary: bool
    old_mode: str | None
    new_mode: str | None
    has_index_line: bool
    header: str  # the `diff --git` header lines, before the first hunk
    hunks: tuple[Hunk, ...]

    @property
    def changed_lines(self) -> int:
        return self.insertions + self.deletions


def parse_diff(text: str) -> tuple[FileChange, ...]:
    """Every file of a unified diff, in order. Raises DiffParseError when unidiff cannot read it."""
    from unidiff.errors import UnidiffParseError
    from unidiff.patch import PatchSet

    try:
        patch_set = PatchSet(text)
    except UnidiffParseError as exc:
        raise DiffParseError(str(exc)) from None
    return tuple(_file_change(pf) for pf in patch_set)


def hunks_by_path(text: str) -> dict[TreePath, tuple[Hunk, ...]]:
    """The hunks of each file of a `git diff` (made without renames), keyed by the path after the change.

    Binary and mode-only changes have no hunks and are still listed.
    """
    found: dict[TreePath, tuple[Hunk, ...]] = {}
    for change in parse_diff(text):
        found[change.path] = found.get(change.path, ()) + change.hunks
    return found


def _file_change(pf: object) -> FileChange:
    from unidiff.patch import PatchedFile

    assert isinstance(pf, PatchedFile)
    header = str(pf.patch_info or "")
    old_mode = _header_value(header, ("old mode ", "deleted file mode "))
    new_mode = _header_value(header, ("new mode ", "new file mode "))
    if pf.is_added_file:
        status = ChangeStatus.ADDED
    elif pf.is_removed_file:
        status = ChangeStatus.DELETED
    elif pf.is_rename:
        status = ChangeStatus.RENAMED
    else:
        status = ChangeStatus.MODIFIED
    hunks = tuple(
        Hunk(
            source_start=h.source_start,
            source_length=h.source_length,
            target_start=h.target_start,
            target_length=h.target_length,
            insertions=h.added,
            deletions=h.removed,
            text=str(h),
        )
        for h in pf
    )
    # git C-quotes names with tabs, quotes or non-ASCII bytes; the model holds the real path.
    old_path = _strip_prefix(unquote_path(pf.source_file)) if pf.is_rename else None
    return FileChange(
        path=unquote_path(pf.path),
        old_path=TreePath(old_path) if old_path else None,
        status=status,
        insertions=pf.added,
        deletions=pf.removed,
        binary=bool(pf.is_binary_file),
        old_mode=old_mode,
        new_mode=new_mode,
        # A pure rename or mode change has no content to merge, so it needs no index line.
        has_index_line="\nindex " in "\n" + header or (not hunks and not pf.is_binary_file),
        header=header,
        hunks=hunks,
    )


def _strip_prefix(name: str) -> str:
    return name[2:] if name.startswith(("a/", "b/")) else name


def _header_value(header: str, prefixes: tuple[str, ...]) -> str | None:
    for line in header.splitlines():
        for prefix in prefixes:
            if line.startswith(prefix):
                return line[len(prefix) :].strip()
    return None


_C_ESCAPES = {"a": 7, "b": 8, "t": 9, "n": 10, "v": 11, "f": 12, "r": 13, '"': 34, "\\": 92}
_OCTAL = re.compile(r"[0-3][0-7]{2}")


def unquote_path(name: str) -> TreePath:
    """The real path behind a name git C-quoted in a diff header (`"a\\tb.h"` is a name with a tab).

    Octal escapes are bytes of the UTF-8 name, so `"caf\\303\\251.md"` is `café.md`.
    """
    if len(name) < 2 or name[0] != '"' or name[-1] != '"':
        return TreePath(name)
    body, raw, i = name[1:-1], bytearray(), 0
    while i < len(body):
        if body[i] == "\\" and i + 1 < len(body):
            if _OCTAL.fullmatch(body[i + 1 : i + 4]):
                raw.append(int(body[i + 1 : i + 4], 8))
                i += 4
                continue
            if body[i + 1] in _C_ESCAPES:
                raw.append(_C_ESCAPES[body[i + 1]])
                i += 2
                continue
        raw += body[i].encode("utf-8")
        i += 1
    return TreePath(raw.decode("utf-8", errors="replace"))
