"""`stats`: the table by category, and the JSON model of the contract."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mpspatch.views.console import err, out, print_table

if TYPE_CHECKING:
    from mpspatch.model.series import SeriesStats


@dataclass(frozen=True)
class CategoryJson:
    files: tuple[str, ...]
    insertions: int
    deletions: int


@dataclass(frozen=True)
class StatsJson:
    patches: tuple[str, ...]
    files: int
    insertions: int
    deletions: int
    lines: int
    categories: Mapping[str, CategoryJson]  # in the configured order
    uncategorized: tuple[str, ...]
    outside_allowed: tuple[str, ...]
    unmatched_globs: tuple[str, ...]


def stats_json(stats: SeriesStats) -> StatsJson:
    return StatsJson(
        patches=tuple(str(p) for p in stats.patches),
        files=stats.files,
        insertions=stats.insertions,
        deletions=stats.deletions,
        lines=stats.lines,
        categories={c.name: CategoryJson(files=tuple(c.files), insertions=c.insertions, deletions=c.deletions)
                    for c in stats.categories},
        uncategorized=tuple(stats.uncategorized),
        outside_allowed=tuple(stats.outside_allowed),
        unmatched_globs=tuple(stats.unmatched_globs),
    )


def show_stats(stats: SeriesStats, *, verbose: bool = False) -> None:
    from rich.table import Table

    table = Table(title=f"{stats.files} files, +{stats.insertions} -{stats.deletions} ({stats.lines} patch lines)")
    table.add_column("Category")
    table.add_column("Files", justify="right")
    table.add_column("Insertions", justify="right", style="green")
    table.add_column("Deletions", justify="right", style="red")
    for c in stats.categories:
        table.add_row(c.name, str(len(c.files)), f"+{c.insertions}", f"-{c.deletions}")
    if stats.uncategorized:
        table.add_row("(uncategorized)", str(len(stats.uncategorized)), "", "", style="yellow")
    table.add_row("Total", str(stats.files), f"+{stats.insertions}", f"-{stats.deletions}", style="bold")
    print_table(table)
    if verbose:
        for c in stats.categories:
            for path in c.files:
                out().print(f"  {c.name}: {path}", markup=False)
    for path in stats.uncategorized:
        out().print(f"[yellow]uncategorized:[/] {path}")
    for path in stats.outside_allowed:
        out().print(f"[red]outside allowed_paths:[/] {path}")
    for pattern in stats.unmatched_globs:
        err().print(f"[yellow]warning:[/] category glob {pattern!r} matches no file in the series (a typo?)")
