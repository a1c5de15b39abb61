"""The patch series: parsed patches, their statistics by category, and the series lock.

model/diff.py does the parsing (unidiff underneath). This module adds what unidiff leaves out: a line number
when a patch is malformed, categories and allowed paths, and the lock that ties the series to a base commit.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from mpspatch.foundation.config import Category, Config
from mpspatch.foundation.errors import InputError, PatchFormatError
from mpspatch.foundation.files import sha256_bytes, utf8_patch
from mpspatch.foundation.globs import matches_any
from mpspatch.foundation.ids import CommitSha, ContentSha256, TreePath
from mpspatch.model.diff import DiffParseError, FileChange, parse_diff
from mpspatch.model.store import StateFile

LOCK_VERSION = 1


@dataclass(frozen=True)
class Patch:
    path: Path
    sha256: ContentSha256
    line_count: int
    mail_header: bool  # came from `git format-patch`
    files: tuple[FileChange, ...]

    @property
    def insertions(self) -> int:
        return sum(f.insertions for f in self.files)

    @property
    def deletions(self) -> int:
        return sum(f.deletions for f in self.files)

    @property
    def has_index_lines(self) -> bool:
        return all(f.has_index_line for f in self.files)


@dataclass(frozen=True)
class CategoryStats:
    name: str
    files: tuple[TreePath, ...]
    insertions: int
    deletions: int


@dataclass(frozen=True)
class SeriesStats:
    patches: tuple[Path, ...]
    files: int
    insertions: int
    deletions: int
    lines: int  # lines in the patch files themselves
    categories: tuple[CategoryStats, ...]
    uncategorized: tuple[TreePath, ...]
    outside_allowed: tuple[TreePath, ...]
    unmatched_globs: tuple[str, ...]  # category globs that matched nothing: usually a typo

    @property
    def changed_lines(self) -> int:
        return self.insertions + self.deletions


# ---------------------------------------------------------------------------------------------- parsing

_HUNK_HEADER = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")


def parse_patch(path: Path) -> Patch:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise PatchFormatError(
            f"{path}: patch file not found; bring it in with `mpspatch import SOURCE` or fix [series].patches"
        ) from None
    except IsADirectoryError:
        raise PatchFormatError(f"{path}: is a folder, not a patch file; name the .patch file itself") from None
    return parse_patch_bytes(path, data)


def parse_patch_bytes(path: Path, data: bytes) -> Patch:
    # Read leniently: stats, status and split handle bytes that are not UTF-8. The commands that write a patch
    # back (import, regenerate, rebase) refuse them first with `require_utf8`, so none becomes U+FFFD.
    text = data.decode("utf-8", errors="replace")
    if not text.strip():
        raise PatchFormatError(f"{path}: the patch is empty; regenerate it with `git diff --full-index BASE`")
    text = _undo_whole_file_crlf(text)
    try:
        files = parse_diff(text)
    except DiffParseError as exc:
        where = _locate_error(text) or f" {exc}; the patch is malformed, regenerate it"
        raise PatchFormatError(f"{path}:{where}") from None
    if not files:
        line = _first_content_line(text)
        raise PatchFormatError(f"{path}:{line}: no diff found, this is not a patch; expected `diff --git` output")
    problem = _locate_error(text)
    if problem:
        raise PatchFormatError(f"{path}:{problem}")
    return Patch(
        path=path,
        sha256=sha256_bytes(data),
        line_count=text.count("\n"),
        mail_header=text.startswith("From ") and "\nSubject:" in text.split("\ndiff --git", 1)[0],
        files=files,
    )


def require_utf8(path: Path, data: bytes | None = None) -> None:
    """Refuse, naming the line, a patch whose bytes are not UTF-8: writing it back would rewrite them."""
    try:
        utf8_patch(path.read_bytes() if data is None else data, str(path))
    except InputError as exc:
        raise PatchFormatError(exc.message) from None


def _undo_whole_file_crlf(text: str) -> str:
    """A patch saved with CRLF everywhere (an editor or a Windows checkout did it) is a text-mode accident.

    Lines inside hunks that carry CRLF on purpose are left alone: only when every diff header line ends with
    CR is the whole file taken to have been converted.
    """
    headers = [line for line in text.split("\n") if line.startswith("diff --git ")]
    if headers and all(line.endswith("\r") for line in headers):
        return text.replace("\r\n", "\n")
    return text


def _first_content_line(text: str) -> int:
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            return number
    return 1


def _locate_error(text: str) -> str:
    """Walk the hunks the way `git apply` would and return 'LINE: what is wrong; fix', or '' if all fit.

    unidiff reports what is wrong but not where; a user with a 7,000-line patch needs the line.
    """
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        match = _HUNK_HEADER.match(lines[i])
        if not match:
            i += 1
            continue
        header_line = i + 1
        old_left = int(match.group(2) or 1)
        new_left = int(match.group(4) or 1)
        i += 1
        while old_left > 0 or new_left > 0:
            if i >= len(lines) or (i == len(lines) - 1 and lines[i] == ""):
                return (f"{header_line}: hunk is truncated at end of file (needs {old_left} more old and "
                        f"{new_left} more new lines); regenerate the patch or fix the @@ counts")
            line = lines[i].rstrip("\r")
            tag = line[:1]
            if tag == " " or line == "":
                old_left, new_left = old_left - 1, new_left - 1
            elif tag == "-":
                old_left -= 1
            elif tag == "+":
                new_left -= 1
            elif tag == "\\":
                pass
            else:
                return (f"{i + 1}: hunk that starts at line {header_line} ends early ({old_left} old and "
                        f"{new_left} new lines missing); fix the @@ counts or regenerate the patch")
            if old_left < 0 or new_left < 0:
                return (f"{header_line}: hunk has more lines than its @@ header says; "
                        "fix the counts or regenerate the patch")
            i += 1
        # "-- " opens the format-patch signature; "--- "/"+++ " open the next file.
        if i < len(lines) and lines[i][:1] in ("+", "-", " ") and not lines[i].startswith(("--- ", "+++ ", "-- ")):
            return (f"{i + 1}: line after the hunk at line {header_line} looks like hunk content; the @@ "
                    "header undercounts its lines; fix the counts or regenerate the patch")
    return ""


def parse_series(paths: Sequence[Path]) -> tuple[Patch, ...]:
    return tuple(parse_patch(p) for p in paths)


def load_series(config: Config) -> tuple[Patch, ...]:
    """The configured series for the commands that act on it: rebase, drift, verify and split.

    Paths outside [series].allowed_paths are refused here, as `import` and `regenerate` refuse them on the way
    in: a hand-edited patch must not reach a rebase, evidence or a PR stack. `stats`, `status` and `lock`
    parse the series without this check: the first two report such paths, and a lock only records the bytes.
    """
    patches = parse_series(config.series.patches)
    for patch in patches:
        outside = outside_allowed(patch, config.series.allowed_paths)
        if outside:
            raise InputError(f"{patch.path}: {len(outside)} path(s) outside [series].allowed_paths: "
                             f"{', '.join(outside)}; drop them from the patch or add their prefixes to "
                             f"allowed_paths in {config.path}")
    return patches


# ------------------------------------------------------------------------------------------- statistics


def categorize(path: str, categories: Sequence[Category]) -> str | None:
    """The first category with a matching glob wins, as in the config's order."""
    for category in categories:
        if matches_any(path, category.globs):
            return category.name
    return None


SYMLINK_MODE = "120000"


def _components(path: str) -> tuple[str, ...] | None:
    """The components of a tree path, or None when it is not one: absolute, empty, or with `..` or `.`."""
    if not path or path.startswith("/") or "\0" in path:
        return None
    parts = tuple(p for p in path.split("/") if p != "")
    if not parts or any(p in (".", "..") for p in parts):
        return None
    return parts


def is_allowed(path: str, allowed_paths: Sequence[str]) -> bool:
    """Whether `path` lies in the tree and under one of `allowed_paths`, compared by whole path components.

    `test/test_mps.py` allows that file (or folder) and nothing named `test/test_mps.pyEVIL`; a path with `..`
    or a leading `/` is never allowed, whatever the prefixes say.
    """
    parts = _components(path)
    if parts is None:
        return False
    if not allowed_paths:
        return True
    for prefix in allowed_paths:
        wanted = _components(prefix)
        if wanted is not None and parts[: len(wanted)] == wanted:
            return True
    return False


def symlink_target(change: FileChange) -> str | None:
    """The target a change makes its path a symlink to, or None when the new file is no symlink."""
    if change.new_mode != SYMLINK_MODE:
        return None
    added = [line for hunk in change.hunks for line in hunk.added_lines]
    return added[0] if added else ""


def leaves_tree(path: str, target: str) -> bool:
    """Whether a symlink at `path` pointing at `target` resolves outside the tree (or is absolute)."""
    if not target or target.startswith("/"):
        return True
    depth = len(path.split("/")) - 1  # folders between the tree root and the link
    for part in target.split("/"):
        if part == "..":
            depth -= 1
            if depth < 0:
                return True
        elif part not in ("", "."):
            depth += 1
    return False


def outside_allowed(patch: Patch, allowed: Sequence[str]) -> list[str]:
    """The paths of `patch` (both sides of a rename) that no allowed prefix covers, sorted, and every symlink
    the patch makes that points out of the tree, as `path -> target (symlink out of the tree)`."""
    outside = [path for path in series_paths((patch,)) if not is_allowed(path, allowed)]
    return outside + [str(p) for p in escaping_symlinks((patch,))]


def escaping_symlinks(patches: Iterable[Patch]) -> list[TreePath]:
    found: list[TreePath] = []
    for patch in patches:
        for change in patch.files:
            target = symlink_target(change)
            if target is not None and leaves_tree(change.path, target):
                found.append(TreePath(f"{change.path} -> {target} (a symlink out of the tree)"))
    return found


def series_paths(patches: Iterable[Patch], *, renamed_from: bool = True) -> tuple[TreePath, ...]:
    """Every path the series touches, sorted, without repeats.

    With `renamed_from`, the paths renamed files had before are included too: upstream may have touched
    them, and a rebase or a split needs their base blobs.
    """
    found: set[TreePath] = set()
    for patch in patches:
        for change in patch.files:
            found.add(change.path)
            if renamed_from and change.old_path:
                found.add(change.old_path)
    return tuple(sorted(found))


def compute_stats(
    patches: Sequence[Patch], categories: Sequence[Category], allowed_paths: Sequence[str]
) -> SeriesStats:
    per_file: dict[TreePath, list[int]] = {}
    for patch in patches:
        for change in patch.files:
            counts = per_file.setdefault(change.path, [0, 0])
            counts[0] += change.insertions
            counts[1] += change.deletions
    by_category: dict[str, list[TreePath]] = {c.name: [] for c in categories}
    uncategorized: list[TreePath] = []
    for path in per_file:
        name = categorize(path, categories)
        (by_category[name] if name else uncategorized).append(path)
    category_stats = tuple(
        CategoryStats(
            name=c.name,
            files=tuple(sorted(by_category[c.name])),
            insertions=sum(per_file[p][0] for p in by_category[c.name]),
            deletions=sum(per_file[p][1] for p in by_category[c.name]),
        )
        for c in categories
    )
    unmatched = tuple(
        g for c in categories for g in c.globs if not any(matches_any(p, (g,)) for p in per_file)
    )
    return SeriesStats(
        patches=tuple(p.path for p in patches),
        files=len(per_file),
        insertions=sum(c[0] for c in per_file.values()),
        deletions=sum(c[1] for c in per_file.values()),
        lines=sum(p.line_count for p in patches),
        categories=category_stats,
        uncategorized=tuple(sorted(uncategorized)),
        outside_allowed=tuple(p for p in series_paths(patches) if not is_allowed(p, allowed_paths))
        + tuple(escaping_symlinks(patches)),
        unmatched_globs=unmatched,
    )


# ----------------------------------------------------------------------------------------------- lock


@dataclass(frozen=True)
class LockedPatch:
    path: str  # relative to the config folder, POSIX separators
    sha256: ContentSha256


@dataclass(frozen=True)
class SeriesLock:
    base: CommitSha
    base_ref: str
    patches: tuple[LockedPatch, ...]
    written_at: str  # ISO 8601, UTC
    written_by: str  # the command that wrote it and the mpspatch version: "mpspatch lock (mpspatch 0.1.0)"


SERIES_LOCK = StateFile(
    what="the series lock", model=SeriesLock, version=LOCK_VERSION,
    fix="delete it and run `mpspatch lock` to write a fresh one",
)


@dataclass(frozen=True)
class LockCheck:
    lock: SeriesLock | None
    matches: bool
    problems: tuple[str, ...]


def relative_path(path: Path, root: Path) -> str:
    """`path` relative to `root` in POSIX form, or whole when it lies outside `root`."""
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


def make_lock(config: Config, base: CommitSha, base_ref: str, patches: Sequence[Patch], command: str) -> SeriesLock:
    from mpspatch import __version__

    return SeriesLock(
        base=base,
        base_ref=base_ref,
        patches=tuple(LockedPatch(path=relative_path(p.path, config.root), sha256=p.sha256) for p in patches),
        written_at=datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z"),
        written_by=f"{command} (mpspatch {__version__})",
    )


def write_lock(path: Path, lock: SeriesLock) -> None:
    SERIES_LOCK.write(path, lock)


def read_lock(path: Path) -> SeriesLock | None:
    return SERIES_LOCK.read(path)


def check_lock(config: Config, patches: Sequence[Patch]) -> LockCheck:
    lock = read_lock(config.series.lock)
    if lock is None:
        return LockCheck(lock=None, matches=False, problems=("no series.lock yet: run `mpspatch lock`",))
    problems: list[str] = []
    locked = {p.path: p.sha256 for p in lock.patches}
    current = {relative_path(p.path, config.root): p.sha256 for p in patches}
    for path, digest in current.items():
        if path not in locked:
            problems.append(f"{path} is in the series but not in the lock")
        elif locked[path] != digest:
            problems.append(
                f"{path} changed since the lock was written (sha256 {digest[:12]}, locked {locked[path][:12]})"
            )
    problems.extend(f"{path} is in the lock but not in the series" for path in locked if path not in current)
    if [p.path for p in lock.patches] != list(current) and not problems:
        problems.append("the lock lists the patches in a different order than [series].patches")
    return LockCheck(lock=lock, matches=not problems, problems=tuple(problems))
