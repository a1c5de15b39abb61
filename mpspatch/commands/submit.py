"""`submit`: from a READY series to an issue, branches on the fork and one PR per part on GitHub.

The preconditions and the documents live here, at the edge, because they need the reporting layer (the same
status computation as `status`, and the same renders as `render-pr`/`render-issue`); what to push and which
`gh` calls to make is the operation's (operations/submit.py), which gets the documents as data.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

from mpspatch.foundation.config import Config
from mpspatch.foundation.errors import ProblemFound, StateError
from mpspatch.foundation.files import atomic_write_text
from mpspatch.git import github as gh
from mpspatch.model.series import relative_path
from mpspatch.model.stack import STACK, STACK_NAME, Stack, default_stack_dir, load_current_stack, part_context
from mpspatch.model.submission import read_submission
from mpspatch.model.workspace import Workspace
from mpspatch.operations.submit import Documents, Draft, SubmitResult, submit_series
from mpspatch.reporting.render import default_out, document, render_document
from mpspatch.reporting.report import Gap, StatusReport
from mpspatch.reporting.status import compute_status

# The one gap submit closes itself: it opens the issue when none is linked.
ISSUE_GAP = "check:issue-linked"


class NotReadyToSubmit(ProblemFound):
    """The series has blocking gaps: exit 1, naming them."""

    def __init__(self, gaps: tuple[Gap, ...]) -> None:
        listed = "; ".join(f"[{g.id}] {g.title}: {g.reason}" + (f" (fix: {g.fix})" if g.fix else "") for g in gaps)
        super().__init__(f"submit: NOT READY, {len(gaps)} blocking gap(s): {listed}; close them (see "
                         "`mpspatch status`) or pass --draft to open draft PRs")
        self.gaps = gaps


def submit(config: Config, *, dry_run: bool = False, draft: bool = False, compare: str | None = None) -> SubmitResult:
    Workspace(config).refuse_during_rebase("submit")
    gh.require_gh()
    record = read_submission(config)
    configured = config
    if config.render.issue is None and record is not None and record.issue is not None:
        config = _with_issue(config, record.issue)  # the issue a previous submit opened
    ws = Workspace(config)
    report = compute_status(ws)
    blocking = tuple(g for g in report.blocking_gaps if g.id != ISSUE_GAP)
    if blocking and not draft:
        raise NotReadyToSubmit(blocking)
    stack = current_stack(config)
    reports: dict[int | None, StatusReport] = {config.render.issue: report}

    def report_for(issue: int | None) -> StatusReport:
        if issue not in reports:
            reports[issue] = compute_status(Workspace(_with_issue(config, issue)))
        return reports[issue]

    # `render-pr` knows only [render].issue; a file rendered before the issue submit opened is current too.
    _refuse_stale(config, [report, lambda: report_for(configured.render.issue)], stack)

    def render(issue: int | None) -> Documents:
        current = report_for(issue)
        parts = _pr_drafts(current, stack)
        issue_doc = _draft(current, "issue") if issue is None else None
        return Documents(issue=issue_doc, parts=parts)

    result = submit_series(ws, stack, render, dry_run=dry_run, draft=draft, compare=compare)
    if not dry_run and result.issue is not None and result.issue != configured.render.issue:
        # The PR documents on disk now say Fixes #N, like the ones sent.
        with_issue = report_for(result.issue)
        for k, target in _pr_targets(config, stack):
            context = part_context(stack, k) if stack is not None and k else None
            atomic_write_text(target, render_document("pr", with_issue, part=context))
    return result


def current_stack(config: Config) -> Stack | None:
    """The stack `split` wrote, when there is one (refused when the series changed since); else None."""
    if STACK.read(default_stack_dir(config.root) / STACK_NAME) is None:
        return None
    return load_current_stack(config)


def _with_issue(config: Config, issue: int | None) -> Config:
    return replace(config, render=replace(config.render, issue=issue))


def _draft(report: StatusReport, kind: str, part: int | None = None, stack: Stack | None = None) -> Draft:
    context = part_context(stack, part) if stack is not None and part is not None else None
    doc = document(kind, report, part=context)
    return Draft(title=doc.title, body=doc.body, labels=doc.labels)


def _pr_drafts(report: StatusReport, stack: Stack | None) -> tuple[Draft, ...]:
    if stack is None:
        return (_draft(report, "pr"),)
    return tuple(_draft(report, "pr", p.index, stack) for p in stack.parts)


def _pr_targets(config: Config, stack: Stack | None) -> list[tuple[int, Path]]:
    """The PR documents `render-pr` writes: one, or one per part (index 0 for the single one)."""
    if stack is None:
        return [(0, default_out(config, "pr"))]
    return [(p.index, default_out(config, "pr", part=p.index)) for p in stack.parts]


def _refuse_stale(config: Config, reports: Sequence[StatusReport | Callable[[], StatusReport]],
                  stack: Stack | None) -> None:
    """Exit 2 when a document on disk differs from what would be sent: the user reviews the files, so the
    files must be what goes to GitHub. A file may equal the render of any of `reports` (computed when needed)."""
    wanted: list[tuple[Path, str, int | None, str]] = []
    for k, target in _pr_targets(config, stack):
        command = f"mpspatch render-pr --part {k}" if k else "mpspatch render-pr"
        wanted.append((target, "pr", k or None, command))
    if config.render.issue is None:
        wanted.append((default_out(config, "issue"), "issue", None, "mpspatch render-issue"))
    for target, kind, part, command in wanted:
        try:
            current: str | None = target.read_text(encoding="utf-8")
        except (FileNotFoundError, UnicodeDecodeError):
            current = None
        context = part_context(stack, part) if stack is not None and part else None
        fresh = (render_document(kind, r if isinstance(r, StatusReport) else r(), part=context) for r in reports)
        if current is None or current not in fresh:
            what = "does not exist" if current is None else "is stale"
            raise StateError(f"{relative_path(target, config.root)}: {what}, so what you reviewed is not what "
                             f"would be sent; run `{command}`, read it, then submit again")
