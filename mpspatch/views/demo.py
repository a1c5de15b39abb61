"""`demo`: a status line per step on stderr, the summary of where everything landed, and the JSON model."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mpspatch.views.console import STATUS_STYLE, counts_text, duration, err, escape, out, pr_label
from mpspatch.views.status import GapJson
from mpspatch.views.verify import StageJson, stages_json, verify_progress

if TYPE_CHECKING:
    from mpspatch.commands.demo import DemoProgress, DemoResult, Step
    from mpspatch.verify.runner import Progress

_STEP_STYLE = {"ok": "green", "failed": "red", "skipped": "yellow"}


@contextmanager
def demo_progress() -> Iterator[DemoProgress]:
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

        def step_finished(self, step: Step, index: int, total: int) -> None:
            self._stop()
            style = _STEP_STYLE.get(step.status, "")
            timing = duration(step.duration_s) if step.status != "skipped" else "—"
            err().print(f"[{index + 1:>2}/{total}] {step.name:<12} {timing:>6}  [{style}]{step.status:<7}[/] "
                        f"{escape(step.detail)}", soft_wrap=True, highlight=False)

        def verifying(self) -> AbstractContextManager[Progress]:
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


@dataclass(frozen=True)
class StepJson:
    name: str
    status: str  # ok | failed | skipped
    duration_s: float
    detail: str


@dataclass(frozen=True)
class DemoAbsorbedJson:
    path: str
    pull_requests: tuple[int, ...]


@dataclass(frozen=True)
class DemoConflictJson:
    path: str
    regions: int


@dataclass(frozen=True)
class DemoRebaseJson:
    status: str
    base: str
    base_ref: str
    onto: str
    onto_ref: str
    absorbed: tuple[DemoAbsorbedJson, ...]
    conflicts: tuple[DemoConflictJson, ...]


@dataclass(frozen=True)
class DocumentsJson:
    pr: str
    issue: str
    audit: str


@dataclass(frozen=True)
class DemoJson:
    dir: str
    upstream: str
    project: str
    config: str
    patches: tuple[str, ...]
    break_race: bool
    cxx: str
    steps: tuple[StepJson, ...]
    rebase: DemoRebaseJson
    run_id: str | None
    evidence: str | None
    stages: tuple[StageJson, ...]
    documents: DocumentsJson | None
    ready: bool
    status_line: str
    gaps: tuple[GapJson, ...]
    duration_s: float


def demo_json(result: DemoResult) -> DemoJson:
    sample = result.sample
    rebase = result.rebase
    outcome = result.verify
    docs = result.documents
    return DemoJson(
        dir=str(sample.root),
        upstream=str(sample.upstream),
        project=str(sample.project),
        config=str(sample.config),
        patches=(str(sample.patch),),
        break_race=sample.break_race,
        cxx=result.toolchain.cxx,
        steps=tuple(StepJson(name=s.name, status=s.status, duration_s=s.duration_s, detail=s.detail)
                    for s in result.steps),
        rebase=DemoRebaseJson(
            status=rebase.status, base=rebase.base, base_ref=rebase.base_ref, onto=rebase.onto,
            onto_ref=rebase.onto_ref,
            absorbed=tuple(DemoAbsorbedJson(path=a.path, pull_requests=tuple(a.pull_requests))
                           for a in rebase.absorbed),
            conflicts=tuple(DemoConflictJson(path=c.path, regions=c.regions) for c in rebase.conflicts),
        ),
        run_id=outcome.run.run_id if outcome else None,
        evidence=str(outcome.evidence) if outcome else None,
        stages=stages_json(outcome) if outcome else (),
        documents=None if docs is None else DocumentsJson(pr=str(docs.pr), issue=str(docs.issue),
                                                          audit=str(docs.audit)),
        ready=result.ready,
        status_line=result.status_line,
        gaps=tuple(GapJson.of(g) for g in result.gaps),
        duration_s=result.duration_s,
    )


def show_demo(result: DemoResult) -> None:
    """Where everything landed, one item per line; paths are never wrapped, so they can be copied."""
    sample = result.sample
    console = out()

    def line(label: str, text: str) -> None:
        console.print(f"[bold]{label:<15}[/] {escape(text)}", soft_wrap=True)

    line("sample", str(sample.root))
    line("upstream repo", f"{sample.upstream}  (git history, tags v1.0 v1.1 v1.2)")
    line("project", f"{sample.project}  (mpspatch.toml, audit/requirements.toml, docs/prose/)")
    rebase = result.rebase
    moved = ""
    if rebase.status == "rebased":
        moved = f"  (rebased {rebase.base_ref} -> {rebase.onto_ref} {rebase.onto[:12]})"
    line("patch", f"{sample.patch}{moved}")
    for a in rebase.absorbed:
        line("", f"already upstream, dropped: {a.path} ({', '.join(pr_label(n) for n in a.pull_requests)})")
    if result.verify is not None:
        line("evidence", str(result.verify.evidence))
        for s in result.verify.run.stages:
            style = STATUS_STYLE.get(s.status, "")
            counts = counts_text(dict(s.counts))
            console.print(f"{'':<15}  {s.name:<6} [{style}]{s.status:<7}[/] {duration(s.duration_s):>6}  "
                          f"{escape(counts)}", soft_wrap=True)
    if result.documents is not None:
        line("PR description", str(result.documents.pr))
        line("GitHub issue", str(result.documents.issue))
        line("audit", str(result.documents.audit))
    verdict = "[bold green]READY FOR SUBMISSION[/]" if result.ready else f"[bold red]{escape(result.status_line)}[/]"
    console.print(f"[bold]{'readiness':<15}[/] {verdict}")
    for gap in result.gaps:
        marker = "blocking" if gap.blocking else "advisory"
        console.print(f"{'':<15}  - [{gap.id}] {gap.title}: {gap.reason} ({marker})", markup=False, soft_wrap=True)
    if sample.break_race and not result.ready:
        console.print("The race was injected on purpose (--break race): TSan caught it, the audit says NOT READY, "
                      "and the demo exits 1.", markup=False, soft_wrap=True)
    line("total time", duration(result.duration_s))
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
