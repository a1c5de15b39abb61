"""`status`: readiness and gaps, computed by the same function the audit and CI use."""

from __future__ import annotations

from mpspatch.foundation.config import Config
from mpspatch.reporting.status import StatusReport, compute_status


def status(config: Config) -> StatusReport:
    return compute_status(config)
