"""`split`: the series as a proven stack of reviewable parts."""

from __future__ import annotations

from pathlib import Path

from mpspatch.foundation.config import Config
from mpspatch.foundation.progress import QUIET, Steps
from mpspatch.foundation.project_lock import project_lock
from mpspatch.model.workspace import Workspace
from mpspatch.operations.split import SplitResult, split_series


def split(config: Config, *, max_lines: int | None, out: Path | None, branches: str | None,
          force: bool, steps: Steps = QUIET) -> SplitResult:
    with project_lock(config.state_dir, "split"):
        return split_series(Workspace(config), max_lines=max_lines, out_dir=out, branch_prefix=branches,
                            force=force, steps=steps)
