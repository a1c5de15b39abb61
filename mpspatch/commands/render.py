"""`render-pr`, `render-issue`, `render-audit`: write a document, or with `check` compare it to a fresh render."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from mpspatch.foundation.config import Config
from mpspatch.foundation.files import atomic_write_text
from mpspatch.model.series import relative_path
from mpspatch.model.workspace import Workspace
from mpspatch.reporting.document_data import status_line
from mpspatch.reporting.render import Document, default_out, document, unified_diff
from mpspatch.reporting.report import StatusReport
from mpspatch.reporting.status import compute_status


class RenderState(StrEnum):
    WRITTEN = "written"
    UP_TO_DATE = "up to date"  # --check: the file equals a fresh render
    STALE = "stale"  # --check: it differs
    MISSING = "missing"  # --check: there is no file yet


@dataclass(frozen=True)
class Rendered:
    kind: str  # pr | issue | audit
    target: Path
    label: str  # the target as messages and the diff name it: relative to the cwd
    state: RenderState
    diff: str  # from the file to the fresh render; "" unless stale or missing
    status_line: str  # the readiness verdict the document carries
    document: Document | None = None  # the title, labels, cc and reviewers beside the body
    ready: bool = False
    gaps: int = 0  # blocking gaps

    @property
    def problem(self) -> bool:
        """--check found the file out of date: the command exits 1."""
        return self.state in (RenderState.STALE, RenderState.MISSING)


def render(config: Config, kind: str, *, out: Path | None = None, check: bool = False, part: int | None = None,
           report: StatusReport | None = None) -> Rendered:
    """Render document `kind` (for stack part `part`, when given) to `out` (default: under [render].out_dir).

    `report` lets a caller that renders several documents compute the status once for all of them.
    """
    context = None
    if part is not None:
        from mpspatch.model.stack import load_current_stack, part_context

        context = part_context(load_current_stack(config), part)
    target = out if out is not None else default_out(config, kind, part=part)
    label = relative_path(target.absolute(), Path.cwd())
    report = report if report is not None else compute_status(Workspace(config))
    if context is not None:
        from mpspatch.reporting.status import with_part_evidence

        report = with_part_evidence(report, context.index, context.tree)
    doc = document(kind, report, part=context)
    fresh = doc.body
    verdict = status_line(report)

    def rendered(state: RenderState, diff: str = "") -> Rendered:
        return Rendered(kind=kind, target=target, label=label, state=state, diff=diff, status_line=verdict,
                        document=doc, ready=report.ready, gaps=len(report.blocking_gaps))

    if not check:
        atomic_write_text(target, fresh)
        return rendered(RenderState.WRITTEN)
    current = _read(target)
    if current == fresh:
        return rendered(RenderState.UP_TO_DATE)
    state = RenderState.STALE if target.exists() else RenderState.MISSING
    return rendered(state, unified_diff(current, fresh, label))


def _read(target: Path) -> str:
    """The document as it is on disk; "" when there is none, so the diff shows the whole fresh render."""
    try:
        return target.read_text(encoding="utf-8")
    except FileNotFoundError:
        return ""
    except UnicodeDecodeError:
        return target.read_bytes().decode("utf-8", errors="replace")
