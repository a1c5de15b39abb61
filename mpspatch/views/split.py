"""`split`: the table of stack parts and the JSON model of the contract."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from mpspatch.views.console import err, escape, note, print_table

if TYPE_CHECKING:
    from mpspatch.operations.split import SplitResult


@dataclass(frozen=True)
class PartJson:
    index: int
    title: str
    path: str  # the part's patch file
    lines: int
    files: tuple[str, ...]
    insertions: int
    deletions: int
    oversized_hunk: bool
    depends_on: tuple[int, ...]
    commit: str
    branch: str | None


@dataclass(frozen=True)
class BranchJson:
    name: str
    commit: str
    part: int


@dataclass(frozen=True)
class SplitJson:
    out: str
    stack: str  # the stack.json written
    base: str
    base_ref: str
    series_sha256: tuple[str, ...]
    tree: str
    max_lines: int
    within_limit: bool
    parts: tuple[PartJson, ...]
    branches: tuple[BranchJson, ...]


def split_json(result: SplitResult) -> SplitJson:
    stack = result.stack
    branches = {b.part: b.name for b in result.branches}
    return SplitJson(
        out=str(result.out_dir),
        stack=str(result.out_dir / "stack.json"),
        base=stack.base,
        base_ref=stack.base_ref,
        series_sha256=tuple(stack.series_sha256),
        tree=stack.tree,
        max_lines=stack.max_lines,
        within_limit=stack.within_limit,
        parts=tuple(
            PartJson(index=p.index, title=p.title, path=str(result.out_dir / p.path), lines=p.lines,
                     files=tuple(p.files), insertions=p.insertions, deletions=p.deletions,
                     oversized_hunk=p.oversized_hunk, depends_on=tuple(p.depends_on), commit=p.commit,
                     branch=branches.get(p.index))
            for p in stack.parts
        ),
        branches=tuple(BranchJson(name=b.name, commit=b.commit, part=b.part) for b in result.branches),
    )


def show_split(result: SplitResult) -> None:
    from rich.table import Table

    stack = result.stack
    table = Table(title=f"{len(stack.parts)} parts of at most {stack.max_lines} changed lines "
                        f"(+{stack.insertions} -{stack.deletions} in all)")
    table.add_column("#", justify="right")
    table.add_column("Part")
    table.add_column("Lines", justify="right")
    table.add_column("Files", justify="right")
    table.add_column("Patch", no_wrap=True)
    for p in stack.parts:
        flag = " [red](oversized hunk)[/]" if p.oversized_hunk else ""
        table.add_row(str(p.index), escape(p.title) + flag, str(p.lines), str(len(p.files)), p.path)
    print_table(table)
    note(f"proven: the parts apply one after another at {stack.base_ref} ({stack.base[:12]}) and give the "
         f"series tree {stack.tree[:12]}")
    note(f"wrote {result.out_dir}")
    for b in result.branches:
        note(f"branch {b.name} -> {b.commit[:12]}")
    for p in stack.parts:
        if p.oversized_hunk:
            err().print(f"[yellow]warning:[/] part {p.index} is one hunk of {p.lines} lines, over the limit of "
                        f"{stack.max_lines}; split that change by hand", markup=True)
