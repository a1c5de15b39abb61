"""`report --html`: where the page went and what it says, or its JSON model."""

from __future__ import annotations

from dataclasses import dataclass

from mpspatch.commands.report import HtmlReport
from mpspatch.views.console import note


@dataclass(frozen=True)
class ReportJson:
    html: str  # the page written, as given
    status: str  # READY FOR SUBMISSION, or NOT READY — N gaps
    ready: bool
    gaps: int
    runs: int
    nights: int


def report_json(written: HtmlReport) -> ReportJson:
    return ReportJson(html=str(written.out), status=written.verdict, ready=written.ready, gaps=written.gaps,
                      runs=written.runs, nights=written.nights)


def show_report(written: HtmlReport) -> None:
    nights = f", drift over {written.nights} night(s)" if written.nights else ""
    note(f"wrote {written.out} ({written.verdict}; {written.runs} verify run(s){nights})")
