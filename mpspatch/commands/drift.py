"""`drift`: the forecast, and its Markdown copy for a CI job summary."""

from __future__ import annotations

from pathlib import Path

from mpspatch.foundation.config import Config
from mpspatch.foundation.files import atomic_write_text
from mpspatch.foundation.progress import QUIET, Steps
from mpspatch.model.workspace import Workspace
from mpspatch.operations.drift import DriftReport, compute_drift, render_markdown


def drift(config: Config, onto: str | None, *, markdown: Path | None = None, steps: Steps = QUIET) -> DriftReport:
    report = compute_drift(Workspace(config), onto, steps)
    if markdown is not None:
        atomic_write_text(markdown, render_markdown(report))
    return report
