"""`mpspatch report --html`: one self-contained page with the readiness, the stage history and the drift chart.

The page is data from compute_status (readiness, gaps, checklist), every stored evidence run (a stage's status
run by run) and the drift history (reporting/trend.py), rendered by `report.html.j2` through the shared Jinja
environment with HTML autoescaping on. Nothing on the page is fetched: the CSS is inline, the chart an inline
SVG, and no link points off the page.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from mpspatch.reporting.document_data import status_line
from mpspatch.reporting.render import environment, template_folders
from mpspatch.reporting.report import Gap, Row, StatusReport
from mpspatch.reporting.trend import DEFAULT_NIGHTS, ChartGeometry, DriftNight, chart_geometry
from mpspatch.verify.evidence import EvidenceRun

TEMPLATE = "report.html.j2"
MAX_RUNS = 30  # the newest runs shown in the stage history


@dataclass(frozen=True)
class StageCell:
    status: str  # passed | failed | error | skipped, or "" when the run did not hold the stage
    title: str  # the reason or the counts, for the cell's tooltip


@dataclass(frozen=True)
class RunRow:
    run_id: str
    created_at: str
    base_ref: str
    part: int | None
    cells: tuple[StageCell, ...]  # one per ReportPage.stage_names


@dataclass(frozen=True)
class ReportPage:
    title: str
    verdict: str  # READY FOR SUBMISSION, or NOT READY — N gaps
    ready: bool
    base_ref: str
    series_sha256: str
    patches: int
    blocking: tuple[Gap, ...]
    advisory: tuple[Gap, ...]
    rows: tuple[Row, ...]
    stage_names: tuple[str, ...]
    runs: tuple[RunRow, ...]  # newest first
    older_runs: int  # runs left off the table
    history_given: bool
    nights: tuple[DriftNight, ...]  # newest first, as the table lists them
    chart: ChartGeometry | None
    version: str


def _cell(run: EvidenceRun, name: str) -> StageCell:
    result = run.stage(name)
    if result is None:
        return StageCell(status="", title="not run")
    counts = ", ".join(f"{k} {v}" for k, v in result.counts)
    return StageCell(status=str(result.status), title=result.reason or counts or str(result.status))


def page_data(report: StatusReport, runs: Sequence[EvidenceRun], nights: Sequence[DriftNight] | None) -> ReportPage:
    from mpspatch import __version__

    names = list(s.name for s in report.stages)
    for run in runs:
        names += [s.name for s in run.stages if s.name not in names]
    newest = list(reversed(runs))[:MAX_RUNS]
    shown = list(nights or ())[-DEFAULT_NIGHTS:]
    return ReportPage(
        title=f"{report.config.root.name}: readiness, verification history and drift",
        verdict=status_line(report), ready=report.ready, base_ref=report.base_ref,
        series_sha256=report.series_sha256, patches=len(report.patches),
        blocking=report.blocking_gaps, advisory=report.advisory_gaps, rows=report.rows,
        stage_names=tuple(names),
        runs=tuple(RunRow(run_id=r.run_id, created_at=r.created_at, base_ref=r.base_ref, part=r.part,
                          cells=tuple(_cell(r, n) for n in names)) for r in newest),
        older_runs=max(0, len(runs) - MAX_RUNS),
        history_given=nights is not None, nights=tuple(reversed(shown)),
        chart=chart_geometry(shown) if shown else None, version=__version__,
    )


def render_html(report: StatusReport, runs: Sequence[EvidenceRun], nights: Sequence[DriftNight] | None) -> str:
    template = environment(template_folders(report)).get_template(TEMPLATE)
    return template.render(page=page_data(report, runs, nights))
