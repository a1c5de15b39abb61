"""`drift`: the forecast, its Markdown copy for a CI job summary, and the nightly history with its chart."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from mpspatch.foundation.config import Config
from mpspatch.foundation.errors import InputError
from mpspatch.foundation.files import atomic_write_text
from mpspatch.foundation.progress import QUIET, Steps
from mpspatch.model.workspace import Workspace
from mpspatch.operations.drift import DriftReport, compute_drift, render_markdown
from mpspatch.reporting.trend import HISTORY_FILE, DriftNight, history_markdown, record_night


def night_of(report: DriftReport, date: str) -> DriftNight:
    """The forecast as one history record; the same numbers `.ci/gha.py drift-history` takes from `--json`."""
    return DriftNight(
        date=date, onto=report.onto, onto_ref=report.onto_ref, conflicts=len(report.conflicts),
        regions=sum(c.regions for c in report.conflicts), absorbed=sum(a.hunks for a in report.absorbed),
        upstream_commits=len(report.upstream), patch_hunks=sum(f.hunks for f in report.files),
    )


def drift(config: Config, onto: str | None, *, markdown: Path | None = None, history: Path | None = None,
          steps: Steps = QUIET) -> DriftReport:
    """The forecast; with `history`, also recorded as tonight's line of `history`/drift-history.jsonl, and the
    Markdown copy then ends with the chart of every night recorded there."""
    if history is not None and history.exists() and not history.is_dir():
        raise InputError(f"--history {history}: not a folder; give the folder that holds (or will hold) "
                         f"{HISTORY_FILE}")
    report = compute_drift(Workspace(config), onto, steps)
    nights: list[DriftNight] = []
    file = history / HISTORY_FILE if history is not None else None
    if file is not None:
        nights = record_night(file, night_of(report, datetime.now(UTC).strftime("%Y-%m-%d")))
    if markdown is not None:
        text = render_markdown(report)
        if file is not None:
            text = text.rstrip("\n") + "\n\n" + history_markdown(nights)
        atomic_write_text(markdown, text)
    return report
