"""`status`: readiness and gaps, computed by the same function the audit and CI use."""

from __future__ import annotations

from mpspatch.foundation.config import Config
from mpspatch.model.workspace import Workspace
from mpspatch.reporting.report import StatusReport
from mpspatch.reporting.status import compute_status


def status(config: Config) -> StatusReport:
    return compute_status(Workspace(config))
