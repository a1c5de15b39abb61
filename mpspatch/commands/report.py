"""`report --html`: the readiness, the stage history and the drift chart as one self-contained HTML page."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mpspatch.foundation.config import Config
from mpspatch.foundation.errors import InputError
from mpspatch.foundation.files import atomic_write_text
from mpspatch.model.workspace import Workspace
from mpspatch.reporting.document_data import status_line
from mpspatch.reporting.html_report import render_html
from mpspatch.reporting.status import compute_status
from mpspatch.reporting.trend import HISTORY_FILE, DriftNight, read_history
from mpspatch.verify.evidence import all_runs


@dataclass(frozen=True)
class HtmlReport:
    out: Path
    verdict: str
    ready: bool
    gaps: int  # blocking gaps
    runs: int  # evidence runs in the stage history
    nights: int  # drift forecasts in the chart


def load_nights(history: Path) -> list[DriftNight]:
    file = history / HISTORY_FILE
    if not file.is_file():
        raise InputError(f"--history {history}: no {HISTORY_FILE} there; record one with `mpspatch drift --history "
                         f"{history}`, or leave out --history")
    return read_history(file)


def report(config: Config, out: Path, *, history: Path | None = None) -> HtmlReport:
    nights = load_nights(history) if history is not None else None
    status = compute_status(Workspace(config))
    runs = all_runs(config.evidence_dir)
    atomic_write_text(out, render_html(status, runs, nights))
    return HtmlReport(out=out, verdict=status_line(status), ready=status.ready, gaps=len(status.blocking_gaps),
                      runs=len(runs), nights=len(nights or ()))
