"""`rebase` (start, --continue, --abort), `import` and `regenerate`: terminal views and JSON models."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mpspatch.model.series import relative_path
from mpspatch.views.console import escape, note, out, pr_label, print_table
from mpspatch.views.drift import CauseJson, RegionBlameJson, blame_json, region_causes

if TYPE_CHECKING:
    from mpspatch.model.history import UpstreamCommit
    from mpspatch.operations.rebase import AbortResult, RebaseResult
    from mpspatch.operations.regenerate import ImportResult, RegenerateResult


@dataclass(frozen=True)
class CommitJson:
    sha: str
    subject: str
    pull_request: int | None

    @classmethod
    def of(cls, commit: UpstreamCommit) -> CommitJson:
        return cls(sha=commit.sha, subject=commit.subject, pull_request=commit.pull_request)


@dataclass(frozen=True)
class RebaseConflictJson:
    path: str
    regions: int
    upstream_commits: tuple[CommitJson, ...]
    blame: tuple[RegionBlameJson, ...]  # as `drift --json` gives it
    touched: tuple[CauseJson, ...]


@dataclass(frozen=True)
class RebaseAbsorbedJson:
    path: str
    pull_requests: tuple[int, ...]
    whole_file: bool
    hunks: int
    of_hunks: int


@dataclass(frozen=True)
class PatchChangeJson:
    path: str
    old_sha256: str
    new_sha256: str
    old_files: int
    new_files: int
    old_lines: int
    new_lines: int


@dataclass(frozen=True)
class RebaseJson:
    status: str  # rebased | conflict
    base: str
    base_ref: str
    onto: str
    onto_ref: str
    conflicts: tuple[RebaseConflictJson, ...]
    absorbed: tuple[RebaseAbsorbedJson, ...]
    worktree: str | None
    patches: tuple[str, ...]
    stopped_at: str | None
    reused_resolutions: tuple[str, ...]
    changes: tuple[PatchChangeJson, ...]
    range_diff: str
    range_diff_file: str | None  # where the whole range_diff is kept, or null
    previous: str | None
    notes: tuple[str, ...]


def rebase_json(result: RebaseResult) -> RebaseJson:
    return RebaseJson(
        status=result.status,
        base=result.base,
        base_ref=result.base_ref,
        onto=result.onto,
        onto_ref=result.onto_ref,
        conflicts=tuple(RebaseConflictJson(path=c.path, regions=c.regions,
                                           upstream_commits=tuple(CommitJson.of(u) for u in c.upstream_commits),
                                           blame=blame_json(c.blame), touched=tuple(CauseJson.of(u) for u in c.touched))
                        for c in result.conflicts),
        absorbed=tuple(RebaseAbsorbedJson(path=a.path, pull_requests=tuple(a.pull_requests), whole_file=a.whole_file,
                                          hunks=a.hunks, of_hunks=a.of_hunks) for a in result.absorbed),
        worktree=str(result.worktree) if result.worktree else None,
        patches=tuple(str(p) for p in result.patches),
        stopped_at=result.stopped_at,
        reused_resolutions=tuple(result.reused_resolutions),
        changes=tuple(PatchChangeJson(path=str(c.path), old_sha256=c.old_sha256, new_sha256=c.new_sha256,
                                      old_files=c.old_files, new_files=c.new_files, old_lines=c.old_lines,
                                      new_lines=c.new_lines) for c in result.changes),
        range_diff=result.range_diff,
        range_diff_file=str(result.range_diff_file) if result.range_diff_file else None,
        previous=str(result.previous_dir) if result.previous_dir else None,
        notes=tuple(result.notes),
    )


def show_rebase_started() -> None:
    note("rebasing in the shadow repository; your clone is only read")


def show_rebase(result: RebaseResult, root: Path) -> None:
    from rich.table import Table

    console = out()
    for line in result.notes:
        note(f"note: {line}")
    console.print(f"[bold]{result.base_ref}[/] {result.base[:12]} -> [bold]{escape(result.onto_ref)}[/] "
                  f"{result.onto[:12]}")
    if result.absorbed:
        console.print("[bold]Already upstream[/] (dropped from the patch):")
        for a in result.absorbed:
            how = "whole file" if a.whole_file else f"{a.hunks} of {a.of_hunks} hunks"
            prs = ", ".join(pr_label(n) for n in a.pull_requests) or "(no PR trailer)"
            console.print(f"  {a.path}: {how}, landed by {prs}", markup=False)
    for path in result.reused_resolutions:
        console.print(f"  reused your earlier resolution of {path} (rerere)", markup=False)
    if result.status == "conflict":
        stop = f" while applying {result.stopped_at}" if result.stopped_at else ""
        table = Table(title=f"Conflicts{stop}")
        table.add_column("Path", no_wrap=True)  # a path is never folded
        table.add_column("Regions", justify="right")
        table.add_column("Regions (onto lines): upstream commits that wrote them", overflow="fold")
        table.add_column("Also touched the file")
        for c in result.conflicts:
            causes = "\n".join(region_causes(c.blame))
            touched = "\n".join(f"{u.sha[:12]} {pr_label(u.pull_request)} {u.subject}" for u in c.touched)
            table.add_row(escape(c.path), str(c.regions), escape(causes or "(no markers)"), escape(touched))
        print_table(table, console)
        where = relative_path(result.worktree, root) if result.worktree else "?"
        console.print(f"Resolve the conflicts in [bold]{escape(where)}[/], then run "
                      "[bold]mpspatch rebase --continue[/] (or [bold]mpspatch rebase --abort[/]).")
        return
    for change in result.changes:
        verdict = "unchanged" if change.old_sha256 == change.new_sha256 else "rewritten"
        console.print(f"  {relative_path(change.path, root)}: {verdict}, "
                      f"{change.old_files} -> {change.new_files} files, "
                      f"{change.old_lines} -> {change.new_lines} changed lines", markup=False)
    if result.range_diff.strip():
        kept = f"; all of it in {relative_path(result.range_diff_file, root)}" if result.range_diff_file else ""
        console.print(f"[bold]What changed in the series[/] (git range-diff, old -> new{escape(kept)}):")
        for entry in result.range_diff_summary:
            size = {"changed": f" (+{entry.added} -{entry.removed})",
                    "replaced": " (too different from the old version for range-diff to compare)",
                    }.get(entry.verdict, "")
            console.print(f"  patch {entry.name}: {entry.verdict}{size}", markup=False)
    if result.previous_dir:
        console.print(f"previous versions kept in {relative_path(result.previous_dir, root)}", markup=False)
    console.print(f"[green]rebased[/] onto {escape(result.onto_ref)}; series.lock records {result.onto[:12]}")


@dataclass(frozen=True)
class KeptEditJson:
    path: str  # the patch file that was edited while the rebase was stopped
    kept: str  # where its edited version was kept


@dataclass(frozen=True)
class AbortJson:
    status: str  # always "aborted"
    worktree: str
    restored: tuple[str, ...]
    kept: tuple[KeptEditJson, ...]
    state_discarded: bool


def rebase_abort_json(result: AbortResult) -> AbortJson:
    return AbortJson(status="aborted", worktree=str(result.worktree), restored=tuple(str(p) for p in result.restored),
                     kept=tuple(KeptEditJson(path=str(p), kept=str(k)) for p, k in result.kept),
                     state_discarded=result.state_discarded)


def show_rebase_abort(result: AbortResult, root: Path) -> None:
    if result.state_discarded:
        note("the rebase state could not be read; removed it with the worktree")
    for path, kept in result.kept:
        note(f"your edit of {relative_path(path, root)} is kept in {relative_path(kept, root)}")
    for path in result.restored:
        note(f"restored {relative_path(path, root)} from the backup")
    out().print(f"rebase aborted; removed {relative_path(result.worktree, root)}; patch files and lock are as before "
                "the rebase", markup=False)


# ----------------------------------------------------------------------------------------------- import


@dataclass(frozen=True)
class ImportJson:
    source: str
    kind: str  # file | url | fork
    patch: str
    files: int
    insertions: int
    deletions: int
    canonical: bool
    base: str | None
    previous: str | None
    notes: tuple[str, ...]


def import_json(result: ImportResult) -> ImportJson:
    return ImportJson(
        source=result.source, kind=result.kind, patch=str(result.patch), files=result.files,
        insertions=result.insertions, deletions=result.deletions, canonical=result.canonical, base=result.base,
        previous=str(result.previous) if result.previous else None, notes=tuple(result.notes),
    )


def show_import(result: ImportResult, root: Path) -> None:
    for line in result.notes:
        note(f"note: {line}")
    form = "canonical form" if result.canonical else "as downloaded/read"
    base = f", checked at base {result.base[:12]}" if result.base else ""
    out().print(f"imported {result.kind} {result.source} into {relative_path(result.patch, root)} ({form}{base}): "
                f"{result.files} files, +{result.insertions} -{result.deletions}", markup=False)
    if result.previous:
        out().print(f"previous version kept in {relative_path(result.previous, root)}", markup=False)


# ------------------------------------------------------------------------------------------- regenerate


@dataclass(frozen=True)
class PatchSyncJson:
    path: str
    in_sync: bool
    added: int
    removed: int
    diff: str


@dataclass(frozen=True)
class RegenerateJson:
    source: str
    check: bool
    base: str
    in_sync: bool
    patches: tuple[PatchSyncJson, ...]
    written: tuple[str, ...]
    notes: tuple[str, ...]


def regenerate_json(result: RegenerateResult) -> RegenerateJson:
    return RegenerateJson(
        source=result.source, check=result.check, base=result.base, in_sync=result.in_sync,
        patches=tuple(PatchSyncJson(path=str(p.path), in_sync=p.in_sync, added=p.added, removed=p.removed,
                                    diff=p.diff) for p in result.patches),
        written=tuple(str(p) for p in result.written), notes=tuple(result.notes),
    )


def show_regenerate(result: RegenerateResult, root: Path) -> None:
    for line in result.notes:
        note(f"note: {line}")
    for item in result.patches:
        name = relative_path(item.path, root)
        if item.in_sync:
            out().print(f"{name}: in sync with the {result.source}", markup=False)
            continue
        action = "out of sync" if result.check else "rewritten"
        out().print(f"{name}: {action} (+{item.added} -{item.removed} patch lines)", markup=False)
        if result.check:
            out().print(item.diff.rstrip("\n"), markup=False, highlight=False)
