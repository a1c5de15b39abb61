"""Everything a person or a script sees: rich tables on stdout, progress and notes on stderr, JSON shapes.

Core modules return frozen dataclasses; this module is the only place they become text. Each command has
one `show_*` function (terminal) and one `*_json` function (the contract's JSON object).
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mpspatch.model.series import relative_path

if TYPE_CHECKING:
    from rich.console import Console

    from mpspatch.commands.demo import DemoProgress as DemoProgressBase
    from mpspatch.commands.demo import DemoResult
    from mpspatch.commands.demo import Step as DemoStep
    from mpspatch.foundation.config import Stage
    from mpspatch.model.history import UpstreamCommit
    from mpspatch.model.series import SeriesStats
    from mpspatch.operations.drift import DriftReport
    from mpspatch.operations.rebase import AbortResult, RebaseResult
    from mpspatch.operations.regenerate import ImportResult, RegenerateResult
    from mpspatch.operations.split import SplitResult
    from mpspatch.reporting.status import StatusReport
    from mpspatch.verify.evidence import VerifyOutcome
    from mpspatch.verify.patched_tree import PatchedTree
    from mpspatch.verify.runner import Progress as VerifyProgressBase
    from mpspatch.verify.stages import StageResult

_out: Console | None = None
_err: Console | None = None


def out() -> Console:
    global _out
    if _out is None:
        from rich.console import Console

        _out = Console(highlight=False)
    return _out


def err() -> Console:
    global _err
    if _err is None:
        from rich.console import Console

        _err = Console(stderr=True, highlight=False)
    return _err


def _plain(value: Any) -> Any:
    """Dataclasses, tuples and paths to JSON-ready values; used only at this edge."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def emit_json(obj: Mapping[str, Any]) -> None:
    """Exactly one JSON object on stdout, nothing else: the --json contract."""
    sys.stdout.write(json.dumps(_plain(obj), indent=2, sort_keys=False) + "\n")
    sys.stdout.flush()


def error_line(message: str) -> None:
    # Plain write, not rich: the message may contain [brackets] rich would take for markup.
    sys.stderr.write(f"mpspatch: error: {message}\n")


def note(message: str) -> None:
    # soft_wrap: a note is one line however long, so logs and `grep` see it whole (rich would cut it at 80
    # columns when stderr is not a terminal).
    err().print(message, markup=False, soft_wrap=True)


# ------------------------------------------------------------------------------------------------ stats


def stats_json(stats: SeriesStats) -> dict[str, Any]:
    return {
        "patches": [str(p) for p in stats.patches],
        "files": stats.files,
        "insertions": stats.insertions,
        "deletions": stats.deletions,
        "lines": stats.lines,
        "categories": {
            c.name: {"files": list(c.files), "insertions": c.insertions, "deletions": c.deletions}
            for c in stats.categories
        },
        "uncategorized": list(stats.uncategorized),
        "outside_allowed": list(stats.outside_allowed),
        "unmatched_globs": list(stats.unmatched_globs),
    }


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
    out().print(table)
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


# ----------------------------------------------------------------------------------------------- status


def status_json(report: StatusReport) -> dict[str, Any]:
    lock = report.lock.lock
    return {
        "config": str(report.config.path),
        "series": [
            {"path": relative_path(p.path, report.config.root), "sha256": p.sha256, "files": len(p.files),
             "insertions": p.insertions, "deletions": p.deletions}
            for p in report.patches
        ],
        "series_sha256": report.series_sha256,
        "base_ref": lock.base_ref if lock else report.config.upstream.base,
        # The locked SHA once there is a lock; before that, the configured ref, so CI can still key caches.
        "base": lock.base if lock else report.config.upstream.base,
        "base_locked": lock is not None,
        "target": report.config.upstream.target,
        "lock": {"path": str(report.config.series.lock), "matches": report.lock.matches,
                 "problems": list(report.lock.problems)},
        "stats": stats_json(report.stats),
        "evidence": {"run_id": report.latest.run_id, "created_at": report.latest.created_at} if report.latest else None,
        "stages": [{"name": s.name, "state": s.state, "why": s.why, "run_id": s.run_id, "log": s.log}
                   for s in report.stages],
        "checks": [dataclasses.asdict(c) for c in report.checks],
        "human_actions": [{"id": r.requirement.id, "title": r.requirement.title, "action": r.requirement.target,
                           "blocking": r.requirement.blocking} for r in report.human_rows],
        "ready": report.ready,
        "gaps": [dataclasses.asdict(g) for g in report.gaps],
    }


def show_status(report: StatusReport) -> None:
    console = out()
    data = status_json(report)
    console.print(f"[bold]Series[/] ({len(report.patches)} patch(es), {report.stats.files} files, "
                  f"+{report.stats.insertions} -{report.stats.deletions})")
    for item in data["series"]:
        console.print(f"  {item['path']}  sha256 {item['sha256'][:12]}", markup=False)
    base = data["base"] if data["base_locked"] else "(not locked)"
    console.print(f"[bold]Base[/] {data['base_ref']} {base}   [bold]Target[/] {data['target']}", markup=True)
    lock_state = "[green]matches[/]" if report.lock.matches else "[red]does not match[/]"
    console.print(f"[bold]Lock[/] {lock_state}")
    for problem in report.lock.problems:
        console.print(f"  - {problem}", markup=False)
    latest = report.latest
    evidence = f"run {latest.run_id} ({latest.created_at})" if latest else "none yet (run `mpspatch verify`)"
    console.print(f"[bold]Evidence[/] {evidence}", highlight=False)
    for stage in report.stages:
        console.print(f"  {stage.name}: {stage.why or 'passed'}", markup=False)
    blocking = len(report.blocking_gaps)
    verdict = "[green]READY[/]" if report.ready else f"[red]NOT READY[/] — {blocking} blocking gap(s)"
    console.print(f"[bold]Readiness[/] {verdict}")
    for gap in report.gaps:
        marker = "blocking" if gap.blocking else "advisory"
        fix = f"; fix: {gap.fix}" if gap.fix else ""
        console.print(f"  - [{gap.id}] {gap.title}: {gap.reason} ({marker}){fix}", markup=False)
    for row in report.human_rows:
        console.print(f"  - HUMAN ACTION [{row.requirement.id}] {row.requirement.target}", markup=False)


# ----------------------------------------------------------------------------------------------- render
# (issue 6: render-pr, render-issue, render-audit)


def show_diff(diff: str) -> None:
    """A unified diff on stdout, byte for byte: rich would re-wrap it and read [brackets] as markup."""
    sys.stdout.write(diff)
    sys.stdout.flush()


# ----------------------------------------------------------------------------------- split (issue 9)


def split_json(result: SplitResult) -> dict[str, Any]:
    stack = result.stack
    branches = {b.part: b for b in result.branches}
    return {
        "out": str(result.out_dir),
        "stack": str(result.out_dir / "stack.json"),
        "base": stack.base,
        "base_ref": stack.base_ref,
        "series_sha256": list(stack.series_sha256),
        "tree": stack.tree,
        "max_lines": stack.max_lines,
        "within_limit": stack.within_limit,
        "parts": [
            {"index": p.index, "title": p.title, "path": str(result.out_dir / p.path), "lines": p.lines,
             "files": list(p.files), "insertions": p.insertions, "deletions": p.deletions,
             "oversized_hunk": p.oversized_hunk, "depends_on": list(p.depends_on), "commit": p.commit,
             "branch": branches[p.index].name if p.index in branches else None}
            for p in stack.parts
        ],
        "branches": [{"name": b.name, "commit": b.commit, "part": b.part} for b in result.branches],
    }


def show_split(result: SplitResult) -> None:
    from rich.markup import escape
    from rich.table import Table

    stack = result.stack
    table = Table(title=f"{len(stack.parts)} parts of at most {stack.max_lines} changed lines "
                        f"(+{stack.insertions} -{stack.deletions} in all)")
    table.add_column("#", justify="right")
    table.add_column("Part")
    table.add_column("Lines", justify="right")
    table.add_column("Files", justify="right")
    table.add_column("Patch")
    for p in stack.parts:
        flag = " [red](oversized hunk)[/]" if p.oversized_hunk else ""
        table.add_row(str(p.index), escape(p.title) + flag, str(p.lines), str(len(p.files)), p.path)
    out().print(table)
    note(f"proven: the parts apply one after another at {stack.base_ref} ({stack.base[:12]}) and give the "
         f"series tree {stack.tree[:12]}")
    note(f"wrote {result.out_dir}")
    for b in result.branches:
        note(f"branch {b.name} -> {b.commit[:12]}")
    for p in stack.parts:
        if p.oversized_hunk:
            err().print(f"[yellow]warning:[/] part {p.index} is one hunk of {p.lines} lines, over the limit of "
                        f"{stack.max_lines}; split that change by hand", markup=True)


# =================================================================================== issue 3: rebase, import,
# regenerate


def _commit_json(commit: UpstreamCommit) -> dict[str, Any]:
    return {"sha": commit.sha, "subject": commit.subject, "pull_request": commit.pull_request}


def rebase_json(result: RebaseResult) -> dict[str, Any]:
    return {
        "status": result.status,
        "base": result.base,
        "base_ref": result.base_ref,
        "onto": result.onto,
        "onto_ref": result.onto_ref,
        "conflicts": [
            {"path": c.path, "regions": c.regions, "upstream_commits": [_commit_json(u) for u in c.upstream_commits]}
            for c in result.conflicts
        ],
        "absorbed": [
            {"path": a.path, "pull_requests": list(a.pull_requests), "whole_file": a.whole_file, "hunks": a.hunks,
             "of_hunks": a.of_hunks}
            for a in result.absorbed
        ],
        "worktree": str(result.worktree) if result.worktree else None,
        "patches": [str(p) for p in result.patches],
        "stopped_at": result.stopped_at,
        "reused_resolutions": list(result.reused_resolutions),
        "changes": [
            {"path": str(c.path), "old_sha256": c.old_sha256, "new_sha256": c.new_sha256, "old_files": c.old_files,
             "new_files": c.new_files, "old_lines": c.old_lines, "new_lines": c.new_lines}
            for c in result.changes
        ],
        "range_diff": result.range_diff,
        "previous": str(result.previous_dir) if result.previous_dir else None,
        "notes": list(result.notes),
    }


def _pr(number: int | None) -> str:
    return f"#{number}" if number is not None else "(no PR trailer)"


def show_rebase(result: RebaseResult, root: Path) -> None:
    from rich.markup import escape
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
            prs = ", ".join(_pr(n) for n in a.pull_requests) or "(no PR trailer)"
            console.print(f"  {a.path}: {how}, landed by {prs}", markup=False)
    for path in result.reused_resolutions:
        console.print(f"  reused your earlier resolution of {path} (rerere)", markup=False)
    if result.status == "conflict":
        stop = f" while applying {result.stopped_at}" if result.stopped_at else ""
        table = Table(title=f"Conflicts{stop}")
        table.add_column("Path", overflow="fold")
        table.add_column("Regions", justify="right")
        table.add_column("Upstream commits since the base")
        for c in result.conflicts:
            commits = "\n".join(f"{u.sha[:12]} {_pr(u.pull_request)} {u.subject}" for u in c.upstream_commits)
            table.add_row(escape(c.path), str(c.regions), escape(commits or "(none)"))
        console.print(table)
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
        console.print("[bold]What changed in the series[/] (git range-diff, old -> new):")
        console.print(result.range_diff.rstrip("\n"), markup=False, highlight=False)
    if result.previous_dir:
        console.print(f"previous versions kept in {relative_path(result.previous_dir, root)}", markup=False)
    console.print(f"[green]rebased[/] onto {escape(result.onto_ref)}; series.lock records {result.onto[:12]}")


def rebase_abort_json(result: AbortResult) -> dict[str, Any]:
    return {"status": "aborted", "worktree": str(result.worktree), "restored": [str(p) for p in result.restored]}


def show_rebase_abort(result: AbortResult, root: Path) -> None:
    for path in result.restored:
        note(f"restored {relative_path(path, root)} from the backup")
    out().print(f"rebase aborted; removed {relative_path(result.worktree, root)}; patch files and lock are as before",
                markup=False)


# ========================================================================================== issue 4: drift

_OUTCOME_STYLE = {"clean": "green", "conflict": "bold red", "absorbed": "cyan", "partly absorbed": "yellow"}


def _drift_commit_json(commit: UpstreamCommit) -> dict[str, Any]:
    return {"sha": commit.sha, "subject": commit.subject, "pull_request": commit.pull_request,
            "paths": list(commit.paths)}


def drift_json(report: DriftReport) -> dict[str, Any]:
    return {
        "status": report.status,
        "base": report.base,
        "base_ref": report.base_ref,
        "onto": report.onto,
        "onto_ref": report.onto_ref,
        "patches": list(report.patches),
        "stopped_at": report.stopped_at,
        "stops": list(report.stops),
        "conflicts": [
            {"path": c.path, "regions": c.regions, "patch": c.patch, "kinds": list(c.kinds), "assumed": c.assumed,
             "pull_requests": [u.pull_request for u in c.upstream if u.pull_request is not None],
             "upstream_commits": [_drift_commit_json(u) for u in c.upstream]}
            for c in report.conflicts
        ],
        "absorbed": [
            {"path": a.path, "pull_requests": list(a.pull_requests), "whole_file": a.whole_file, "hunks": a.hunks,
             "of_hunks": a.of_hunks, "upstream_commits": [u.sha for u in a.landed_by]}
            for a in report.absorbed
        ],
        "landed_patches": [
            {"patch": m.patch, "sha": m.upstream.sha, "pull_request": m.upstream.pull_request}
            for m in report.landed_patches
        ],
        "files": [
            {"path": f.path, "outcome": f.outcome, "regions": f.regions, "hunks": f.hunks,
             "absorbed_hunks": f.absorbed_hunks,
             "pull_requests": [u.pull_request for u in f.upstream if u.pull_request is not None]}
            for f in report.files
        ],
        "upstream_commits": [
            {**_drift_commit_json(d.commit), "conflicting": d.conflicting, "absorbed": d.absorbed}
            for d in report.upstream
        ],
    }


def show_drift(report: DriftReport) -> None:
    from rich.markup import escape
    from rich.table import Table

    console = out()
    console.print(f"[bold]{escape(report.base_ref)}[/] {report.base[:12]} -> [bold]{escape(report.onto_ref)}[/] "
                  f"{report.onto[:12]}  ({len(report.upstream)} upstream commits touch the patched files)")
    table = Table(title="Forecast per file")
    table.add_column("File", overflow="fold")
    table.add_column("Outcome")
    table.add_column("Regions", justify="right")
    table.add_column("Already upstream", justify="right")
    table.add_column("Upstream PRs since the base")
    for f in report.files:
        prs = ", ".join(_pr(u.pull_request) for u in f.upstream if u.pull_request is not None)
        bare = sum(1 for u in f.upstream if u.pull_request is None)
        if bare:
            prs = f"{prs} +{bare} without PR" if prs else f"{bare} without PR"
        table.add_row(escape(f.path), f"[{_OUTCOME_STYLE[f.outcome]}]{f.outcome}[/]", str(f.regions or ""),
                      f"{f.absorbed_hunks}/{f.hunks}" if f.absorbed_hunks else "", escape(prs))
    console.print(table)
    if report.upstream:
        commits = Table(title="Upstream commits touching patched files (newest first)")
        commits.add_column("Commit")
        commits.add_column("PR")
        commits.add_column("Subject", overflow="fold")
        commits.add_column("Patched files", overflow="fold")
        commits.add_column("Marks")
        for d in report.upstream:
            marks = ", ".join(m for m, on in (("[red]conflicts[/]", d.conflicting), ("[cyan]absorbed[/]", d.absorbed))
                              if on)
            commits.add_row(d.commit.sha[:12], _pr(d.commit.pull_request), escape(d.commit.subject),
                            escape("\n".join(d.commit.paths)), marks)
        console.print(commits)
    for m in report.landed_patches:
        console.print(f"{m.patch} landed whole upstream as {m.upstream.sha[:12]} {_pr(m.upstream.pull_request)} "
                      "(same patch-id)", markup=False)
    if report.conflicts:
        console.print(f"[bold red]{len(report.conflicts)} conflict(s) predicted[/]: `mpspatch rebase --onto "
                      f"{escape(report.onto_ref)}` will stop on {escape(', then '.join(report.stops))}")
    else:
        console.print(f"[green]no conflicts predicted[/] onto {escape(report.onto_ref)}")


def import_json(result: ImportResult) -> dict[str, Any]:
    return {
        "source": result.source,
        "kind": result.kind,
        "patch": str(result.patch),
        "files": result.files,
        "insertions": result.insertions,
        "deletions": result.deletions,
        "canonical": result.canonical,
        "base": result.base,
        "previous": str(result.previous) if result.previous else None,
        "notes": list(result.notes),
    }


def show_import(result: ImportResult, root: Path) -> None:
    for line in result.notes:
        note(f"note: {line}")
    form = "canonical form" if result.canonical else "as downloaded/read"
    base = f", checked at base {result.base[:12]}" if result.base else ""
    out().print(f"imported {result.kind} {result.source} into {relative_path(result.patch, root)} ({form}{base}): "
                f"{result.files} files, +{result.insertions} -{result.deletions}", markup=False)
    if result.previous:
        out().print(f"previous version kept in {relative_path(result.previous, root)}", markup=False)


def regenerate_json(result: RegenerateResult) -> dict[str, Any]:
    return {
        "source": result.source,
        "check": result.check,
        "base": result.base,
        "in_sync": result.in_sync,
        "patches": [{"path": str(p.path), "in_sync": p.in_sync, "added": p.added, "removed": p.removed,
                     "diff": p.diff} for p in result.patches],
        "written": [str(p) for p in result.written],
        "notes": list(result.notes),
    }


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


# ==================================================================================================
# issue 5: verify — live progress on stderr, the results table, and the --json shape
# ==================================================================================================

_STATUS_STYLE = {"passed": "green", "failed": "red", "error": "bold red", "skipped": "yellow"}


def _counts_text(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in counts.items())


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs:02d}s" if minutes < 60 else f"{minutes // 60}h{minutes % 60:02d}m"


def verify_json(outcome: VerifyOutcome) -> dict[str, Any]:
    run = outcome.run
    return {
        "run_id": run.run_id,
        "evidence": str(outcome.evidence),
        "base": run.base,
        "base_ref": run.base_ref,
        "onto": run.onto,
        "tree": run.tree,
        "worktree": str(outcome.tree.path),
        "interrupted": outcome.interrupted,
        "stages": [
            {
                "name": s.name,
                "kind": s.kind,
                "status": s.status,
                "reason": s.reason,
                "duration_s": round(s.duration_s, 3),
                "counts": dict(s.counts),
                "log": str((outcome.run_dir / s.log).resolve()) if s.log else None,
                "cached_from": s.cached_from,
                "details": list(s.details),
            }
            for s in run.stages
        ],
    }


def show_verify(outcome: VerifyOutcome) -> None:
    from rich.table import Table

    run = outcome.run
    table = Table(title=f"verify run {run.run_id}")
    for column, justify in (("Stage", "left"), ("Kind", "left"), ("Status", "left"), ("Time", "right"),
                            ("Counts", "left"), ("Reason", "left")):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for s in run.stages:
        style = _STATUS_STYLE.get(s.status, "")
        table.add_row(s.name, s.kind, f"[{style}]{s.status}[/]", _duration(s.duration_s) if s.duration_s else "",
                      _counts_text(dict(s.counts)), s.reason or "")
    console = out()
    console.print(table)
    for s in run.stages:
        if s.status in ("failed", "error") and s.details:
            console.print(f"[bold]{s.name}[/]:")
            for line in s.details[:12]:
                console.print(f"  {line}", markup=False)
            if s.log:
                console.print(f"  log: {(outcome.run_dir / s.log).resolve()}", markup=False)
    base = f"{run.base_ref} {run.base[:12]}" if run.base else run.base_ref
    console.print(f"tree {run.tree or '?'} (base {base}) in {outcome.tree.path}", markup=False, style="dim")
    console.print(f"evidence: {outcome.evidence}", markup=False)


@contextmanager
def verify_progress() -> Iterator[VerifyProgressBase]:
    """A live display of the running stages on stderr (plain lines when stderr is not a terminal)."""
    from mpspatch.verify.runner import Progress

    class _Live(Progress):
        def __init__(self) -> None:
            self.rows: dict[str, list[str]] = {}  # name -> [status text, kind]
            self.running: tuple[str, float, Path | None] | None = None
            self.live: Any = None
            self.interactive = err().is_terminal


        def __rich__(self) -> Any:
            import time

            from rich.table import Table

            table = Table.grid(padding=(0, 2))
            for name, (state, kind) in self.rows.items():
                table.add_row(name, kind, state)
            if self.running is not None:
                name, started, log = self.running
                table.add_row(f"[bold]{name}[/]", "", f"running {_duration(time.monotonic() - started)}")
                last = _last_log_line(log)
                if last:
                    table.add_row("", "", f"[dim]{_escape(last[:110])}[/]")
            return table

        def tree_ready(self, tree: PatchedTree) -> None:
            mode = "full" if tree.full else "sparse"
            reuse = "reused" if tree.reused else "checked out"
            self._say(f"patched tree {tree.tree[:12]} {reuse} ({mode}) at {tree.path}")

        def stage_started(self, stage: Stage, index: int, total: int, log: Path | None) -> None:
            import time

            self.running = (stage.name, time.monotonic(), log)
            if not self.interactive:
                # CI logs show this line while an hour-long build runs; it says where to look.
                self._say(f"[{index + 1}/{total}] {stage.name}: running (log {log})")

        def stage_finished(self, result: StageResult, index: int, total: int) -> None:
            self.running = None
            style = _STATUS_STYLE.get(result.status, "")
            text = f"[{style}]{result.status}[/]" + (f" {_escape(result.reason)}" if result.reason else "")
            if result.duration_s:
                text += f" ({_duration(result.duration_s)})"
            self.rows[result.name] = [text, result.kind]
            if not self.interactive:
                err().print(f"[{index + 1}/{total}] {result.name}: {text}", soft_wrap=True)

        def _say(self, message: str) -> None:
            if self.live is not None:
                self.live.console.print(message, markup=False)
            else:
                err().print(message, markup=False, soft_wrap=True)

    display = _Live()
    if not display.interactive:
        yield display
        return
    from rich.live import Live

    # transient: the live rows disappear at the end and the results table (stdout) takes their place.
    with Live(display, console=err(), refresh_per_second=4, transient=True) as live:
        display.live = live
        try:
            yield display
        finally:
            display.live = None


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def _last_log_line(log: Path | None) -> str:
    if log is None:
        return ""
    try:
        with log.open("rb") as handle:
            handle.seek(0, 2)
            size = handle.tell()
            handle.seek(max(0, size - 4096))
            chunk = handle.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    lines = [line.strip() for line in chunk.replace("\r", "\n").splitlines() if line.strip()]
    return lines[-1] if lines else ""


# ==================================================================================================
# issue 7: demo — a status line per step on stderr, the summary of where everything landed, --json
# ==================================================================================================

_STEP_STYLE = {"ok": "green", "failed": "red", "skipped": "yellow"}


@contextmanager
def demo_progress() -> Iterator[DemoProgressBase]:
    """One line per finished step with its time on stderr; the verify step shows verify's own live display."""
    from mpspatch.commands.demo import DemoProgress

    class _Steps(DemoProgress):
        def __init__(self) -> None:
            self.spinner: Any = None
            self.interactive = err().is_terminal

        def step_started(self, name: str, index: int, total: int) -> None:
            # verify brings its own live display, and rich allows one at a time.
            if self.interactive and name != "verify":
                self.spinner = err().status(f"[{index + 1}/{total}] {name}", spinner="dots")
                self.spinner.start()

        def step_finished(self, step: DemoStep, index: int, total: int) -> None:
            self._stop()
            style = _STEP_STYLE.get(step.status, "")
            timing = _duration(step.duration_s) if step.status != "skipped" else "—"
            err().print(f"[{index + 1:>2}/{total}] {step.name:<12} {timing:>6}  [{style}]{step.status:<7}[/] "
                        f"{_escape(step.detail)}", soft_wrap=True, highlight=False)

        def verifying(self) -> Any:
            return verify_progress()

        def _stop(self) -> None:
            if self.spinner is not None:
                self.spinner.stop()
                self.spinner = None

    display = _Steps()
    try:
        yield display
    finally:
        display._stop()


def demo_json(result: DemoResult) -> dict[str, Any]:
    sample = result.sample
    rebase = result.rebase
    outcome = result.verify
    docs = result.documents
    return {
        "dir": str(sample.root),
        "upstream": str(sample.upstream),
        "project": str(sample.project),
        "config": str(sample.config),
        "patches": [str(sample.patch)],
        "break_race": sample.break_race,
        "cxx": result.toolchain.cxx,
        "steps": [{"name": s.name, "status": s.status, "duration_s": s.duration_s, "detail": s.detail}
                  for s in result.steps],
        "rebase": {
            "status": rebase.status, "base": rebase.base, "base_ref": rebase.base_ref, "onto": rebase.onto,
            "onto_ref": rebase.onto_ref,
            "absorbed": [{"path": a.path, "pull_requests": list(a.pull_requests)} for a in rebase.absorbed],
            "conflicts": [{"path": c.path, "regions": c.regions} for c in rebase.conflicts],
        },
        "run_id": outcome.run.run_id if outcome else None,
        "evidence": str(outcome.evidence) if outcome else None,
        "stages": verify_json(outcome)["stages"] if outcome else [],
        "documents": None if docs is None else {"pr": str(docs.pr), "issue": str(docs.issue),
                                                "audit": str(docs.audit)},
        "ready": result.ready,
        "status_line": result.status_line,
        "gaps": [dataclasses.asdict(g) for g in result.gaps],
        "duration_s": result.duration_s,
    }


def show_demo(result: DemoResult) -> None:
    """Where everything landed, one item per line; paths are never wrapped, so they can be copied."""
    sample = result.sample
    console = out()

    def line(label: str, text: str) -> None:
        console.print(f"[bold]{label:<15}[/] {_escape(text)}", soft_wrap=True)

    line("sample", str(sample.root))
    line("upstream repo", f"{sample.upstream}  (git history, tags v1.0 v1.1 v1.2)")
    line("project", f"{sample.project}  (mpspatch.toml, audit/requirements.toml, docs/prose/)")
    rebase = result.rebase
    moved = ""
    if rebase.status == "rebased":
        moved = f"  (rebased {rebase.base_ref} -> {rebase.onto_ref} {rebase.onto[:12]})"
    line("patch", f"{sample.patch}{moved}")
    for a in rebase.absorbed:
        line("", f"already upstream, dropped: {a.path} ({', '.join(_pr(n) for n in a.pull_requests)})")
    if result.verify is not None:
        line("evidence", str(result.verify.evidence))
        for s in result.verify.run.stages:
            style = _STATUS_STYLE.get(s.status, "")
            counts = _counts_text(dict(s.counts))
            console.print(f"{'':<15}  {s.name:<6} [{style}]{s.status:<7}[/] {_duration(s.duration_s):>6}  "
                          f"{_escape(counts)}", soft_wrap=True)
    if result.documents is not None:
        line("PR description", str(result.documents.pr))
        line("GitHub issue", str(result.documents.issue))
        line("audit", str(result.documents.audit))
    verdict = "[bold green]READY FOR SUBMISSION[/]" if result.ready else f"[bold red]{_escape(result.status_line)}[/]"
    console.print(f"[bold]{'readiness':<15}[/] {verdict}")
    for gap in result.gaps:
        marker = "blocking" if gap.blocking else "advisory"
        console.print(f"{'':<15}  - [{gap.id}] {gap.title}: {gap.reason} ({marker})", markup=False, soft_wrap=True)
    if sample.break_race and not result.ready:
        console.print("The race was injected on purpose (--break race): TSan caught it, the audit says NOT READY, "
                      "and the demo exits 1.", markup=False, soft_wrap=True)
    line("total time", _duration(result.duration_s))
    console.print(f"Look around: cd {sample.project} && {_this_program()} status", markup=False, soft_wrap=True)


def _this_program() -> str:
    """How to call this mpspatch again from another folder: `make demo` runs .venv/bin/mpspatch off PATH."""
    import shutil

    running = Path(sys.argv[0]).resolve()
    on_path = shutil.which("mpspatch")
    if on_path is not None and Path(on_path).resolve() == running:
        return "mpspatch"
    if running.name == "mpspatch" and running.is_file():
        return str(Path(sys.argv[0]).absolute())
    return f"{sys.executable} -m mpspatch.cli"
