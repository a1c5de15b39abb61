"""The split stack as data: the parts `mpspatch split` wrote, their `stack.json`, and one part's PR context.

`split` writes the stack; `status` (the pr-size check), `render-pr --part K` and verify read it. They share
this model, so none of them needs the split operation to understand the file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mpspatch.foundation.config import Config
from mpspatch.foundation.errors import InputError, StateError
from mpspatch.foundation.ids import CommitSha, ContentSha256, TreePath, TreeSha
from mpspatch.model.series import parse_series
from mpspatch.model.store import StateFile

STACK_VERSION = 1
STACK_NAME = "stack.json"
# Where `split` writes the stack when --out is not given, relative to the config folder.
DEFAULT_DIR = "patches/stack"


@dataclass(frozen=True)
class Part:
    index: int  # 1-based place in the stack
    title: str
    slug: str
    path: str  # file name inside the stack folder
    lines: int
    insertions: int
    deletions: int
    files: tuple[TreePath, ...]
    oversized_hunk: bool
    depends_on: tuple[int, ...]  # the parts this one applies on (the stack is linear: the previous one)
    commit: CommitSha  # the commit named on the patch's `From` line
    tree: TreeSha  # the tree after this part


@dataclass(frozen=True)
class Stack:
    parts: tuple[Part, ...]
    max_lines: int
    base: CommitSha
    base_ref: str
    series_sha256: tuple[ContentSha256, ...]
    tree: TreeSha  # the tree of the whole series at base, which the last part reaches
    insertions: int
    deletions: int

    @property
    def within_limit(self) -> bool:
        """Every part is within max_lines; an oversized hunk cannot be cut, so it still counts as a gap."""
        return all(p.lines <= self.max_lines for p in self.parts)


STACK = StateFile(
    what="the stack", model=Stack, version=STACK_VERSION,
    fix="run `mpspatch split` to write a fresh one",
)


@dataclass(frozen=True)
class PartRef:
    index: int
    title: str


@dataclass(frozen=True)
class PartContext:
    """What one part's PR description needs: its place in the stack, what it builds on, its size and files."""

    index: int
    total: int
    title: str
    subject: str  # "[MPS] <title> (k/n)"
    lines: int
    insertions: int
    deletions: int
    files: tuple[TreePath, ...]
    oversized_hunk: bool
    max_lines: int
    depends_on: tuple[PartRef, ...]
    followed_by: tuple[PartRef, ...]
    base: CommitSha
    base_ref: str
    tree: TreeSha | None = None  # the tree after this part: evidence made on it is this part's own


def default_stack_dir(root: Path) -> Path:
    return root / DEFAULT_DIR


def read_stack(path: Path) -> Stack:
    """The stack in `path`; StateError when there is none or it is not valid."""
    return STACK.load(path)


def load_current_stack(config: Config, out_dir: Path | None = None) -> Stack:
    """The written stack, refused when the series changed since it was split."""
    path = (out_dir or default_stack_dir(config.root)) / STACK_NAME
    stack = read_stack(path)
    current = tuple(p.sha256 for p in parse_series(config.series.patches))
    if stack.series_sha256 != current:
        raise StateError(f"{path}: the series changed since this stack was split; run `mpspatch split` again")
    return stack


def part_context(stack: Stack, index: int) -> PartContext:
    """The data `render-pr --part K` needs for part `index` (1-based)."""
    total = len(stack.parts)
    if not 1 <= index <= total:
        raise InputError(f"--part {index}: the stack has parts 1 to {total}; pick one of those")
    part = stack.parts[index - 1]
    refs = {p.index: PartRef(p.index, p.title) for p in stack.parts}
    return PartContext(
        index=index, total=total, title=part.title, subject=f"[MPS] {part.title} ({index}/{total})",
        lines=part.lines, insertions=part.insertions, deletions=part.deletions, files=part.files,
        oversized_hunk=part.oversized_hunk, max_lines=stack.max_lines,
        depends_on=tuple(refs[d] for d in part.depends_on),
        followed_by=tuple(refs[p.index] for p in stack.parts if index in p.depends_on),
        base=stack.base, base_ref=stack.base_ref, tree=part.tree,
    )
