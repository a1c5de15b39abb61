"""`verify`: live progress on stderr, the results table, and the JSON model of the contract."""

from __future__ import annotations

import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mpspatch.views.console import (
    STATUS_STYLE,
    counts_text,
    duration,
    err,
    escape,
    out,
    print_table,
    show_comparison,
)

if TYPE_CHECKING:
    from mpspatch.foundation.config import Stage
    from mpspatch.verify.evidence import VerifyOutcome
    from mpspatch.verify.patched_tree import PatchedTree
    from mpspatch.verify.runner import Progress
    from mpspatch.verify.stages import StageResult


@dataclass(frozen=True)
class StageJson:
    name: str
    kind: str
    status: str  # passed | failed | skipped | error
    reason: str
    duration_s: float
    counts: Mapping[str, int]
    log: str | None  # absolute
    cached_from: str | None
    details: tuple[str, ...]
    selected_tests: tuple[str, ...] = ()  # `select_tests` stages: the targets `{tests}` became


@dataclass(frozen=True)
class RegressionJson:
    stage: str
    kind: str  # test | race | lint
    id: str
    since_run: str


@dataclass(frozen=True)
class PreexistingJson:
    stage: str
    kind: str  # test | race | lint
    id: str
    failed_in: str  # an earlier run, on another base, in which it failed too


@dataclass(frozen=True)
class VerifyJson:
    run_id: str
    evidence: str
    base: str | None
    base_ref: str
    onto: str | None
    tree: str | None
    worktree: str
    interrupted: bool
    stages: tuple[StageJson, ...]
    regressions: tuple[RegressionJson, ...]
    part: int | None  # `--part K`: the stages ran on stack parts 1..K
    preexisting: tuple[PreexistingJson, ...] = ()  # failing now and on an earlier base: not regressions


def stages_json(outcome: VerifyOutcome) -> tuple[StageJson, ...]:
    return tuple(
        StageJson(name=s.name, kind=s.kind, status=s.status, reason=s.reason, duration_s=round(s.duration_s, 3),
                  counts=dict(s.counts), log=str((outcome.run_dir / s.log).resolve()) if s.log else None,
                  cached_from=s.cached_from, details=tuple(s.details), selected_tests=s.selected_tests)
        for s in outcome.run.stages
    )


def verify_json(outcome: VerifyOutcome) -> VerifyJson:
    run = outcome.run
    return VerifyJson(run_id=run.run_id, evidence=str(outcome.evidence), base=run.base, base_ref=run.base_ref,
                      onto=run.onto, tree=run.tree, worktree=str(outcome.tree.path), interrupted=outcome.interrupted,
                      stages=stages_json(outcome),
                      regressions=tuple(RegressionJson(stage=r.stage, kind=r.kind, id=r.id, since_run=r.since_run)
                                        for r in run.regressions),
                      part=run.part,
                      preexisting=tuple(PreexistingJson(stage=p.stage, kind=p.kind, id=p.id, failed_in=p.failed_in)
                                        for p in run.preexisting))


def show_verify(outcome: VerifyOutcome) -> None:
    from rich.table import Table

    run = outcome.run
    table = Table(title=f"verify run {run.run_id}")
    for column, justify in (("Stage", "left"), ("Kind", "left"), ("Status", "left"), ("Time", "right"),
                            ("Counts", "left"), ("Reason", "left")):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for s in run.stages:
        style = STATUS_STYLE.get(s.status, "")
        table.add_row(s.name, s.kind, f"[{style}]{s.status}[/]", duration(s.duration_s) if s.duration_s else "",
                      counts_text(dict(s.counts)), s.reason or "")
    console = out()
    print_table(table, console)
    for s in run.stages:
        if s.status in ("failed", "error") and s.details:
            console.print(f"[bold]{s.name}[/]:")
            for line in s.details[:12]:
                console.print(f"  {line}", markup=False)
            if s.log:
                console.print(f"  log: {(outcome.run_dir / s.log).resolve()}", markup=False)
    show_comparison(console, run.regressions, run.preexisting)
    base = f"{run.base_ref} {run.base[:12]}" if run.base else run.base_ref
    parts = f"stack parts 1..{run.part}, " if run.part else ""
    console.print(f"tree {run.tree or '?'} ({parts}base {base}) in {outcome.tree.path}", markup=False, style="dim")
    console.print(f"evidence: {outcome.evidence}", markup=False)


@contextmanager
def verify_progress() -> Iterator[Progress]:
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
                table.add_row(f"[bold]{name}[/]", "", f"running {duration(time.monotonic() - started)}")
                last = _last_log_line(log)
                if last:
                    table.add_row("", "", f"[dim]{escape(last[:110])}[/]")
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
            style = STATUS_STYLE.get(result.status, "")
            text = f"[{style}]{result.status}[/]" + (f" {escape(result.reason)}" if result.reason else "")
            if result.duration_s:
                text += f" ({duration(result.duration_s)})"
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


def annotate_for_github(outcome: VerifyOutcome) -> None:
    """Under GitHub Actions, one workflow command per finding on stderr (the runner reads both streams), so a
    failed stage shows at its file and line in the PR without opening an artifact; stdout stays the JSON."""
    from mpspatch.reporting.annotations import annotation_lines
    from mpspatch.views.console import plain

    data = plain(verify_json(outcome))
    if isinstance(data, dict):
        sys.stderr.write("".join(line + "\n" for line in annotation_lines(data)))
        sys.stderr.flush()
