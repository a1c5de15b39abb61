"""`rebase` (start, --continue, --abort), `import` and `regenerate`."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

from mpspatch.foundation.config import Config
from mpspatch.foundation.errors import InputError
from mpspatch.foundation.progress import QUIET, Steps
from mpspatch.foundation.project_lock import project_lock
from mpspatch.model.state import state_path, stopped_summary
from mpspatch.model.store import StateFileError
from mpspatch.model.workspace import Workspace

if TYPE_CHECKING:
    from mpspatch.operations import rebase as core
    from mpspatch.operations.regenerate import ImportResult, RegenerateResult

# The operations are imported where they run: every read-only command calls stopped_rebase_note, and it must
# not pay for the rebase machinery or for regenerate's download code (urllib.request, http, ssl).


class RebaseAction(StrEnum):
    START = "start"
    CONTINUE = "continue"
    ABORT = "abort"


def rebase_action(*, resume: bool, abort: bool, onto: str | None, force: bool = False) -> RebaseAction:
    """Which of the three the flags ask for; contradictory flags are bad input."""
    if force and not abort:
        raise InputError("rebase: --force only goes with --abort (`mpspatch rebase --abort --force`)")
    if resume and abort:
        raise InputError("rebase: --continue and --abort exclude each other; pick one")
    if (resume or abort) and onto is not None:
        raise InputError("rebase: --onto only starts a rebase; drop it from --continue/--abort")
    return RebaseAction.ABORT if abort else RebaseAction.CONTINUE if resume else RebaseAction.START


def rebase(config: Config, onto: str | None = None, *, resume: bool = False,
           steps: Steps = QUIET) -> core.RebaseResult:
    """Start a rebase onto `onto` (default: [upstream].target), or with `resume` go on with the one in progress."""
    from mpspatch.operations import rebase as core

    with project_lock(config.state_dir, "rebase --continue" if resume else "rebase"):
        ws = Workspace(config)
        return core.resume(ws) if resume else core.start(ws, onto, steps)


def abort_rebase(config: Config, *, force: bool = False) -> core.AbortResult:
    from mpspatch.operations import rebase as core

    with project_lock(config.state_dir, "rebase --abort"):
        return core.abort(Workspace(config), force=force)


def stopped_rebase_note(config: Config) -> str | None:
    """What a read-only command (status, stats, drift, render-*, regenerate --check) says on stderr while a
    rebase is stopped, or when its state file cannot be read; None when there is no rebase."""
    try:
        stopped = Workspace(config).rebase
    except StateFileError as exc:
        return exc.message
    if stopped is None:
        return None
    return (f"{stopped_summary(stopped)} ({state_path(config)}); this reads the series as it was before the "
            "rebase. Finish it with `mpspatch rebase --continue` or drop it with `mpspatch rebase --abort`")


def import_(config: Config, source: str | None, to: Path | None, base: str | None) -> ImportResult:
    from mpspatch.operations.regenerate import import_patch

    with project_lock(config.state_dir, "import"):
        return import_patch(Workspace(config), source, to, base)


def regenerate(config: Config, source: Path | None, *, check: bool, to: Path | None,
               base: str | None) -> RegenerateResult:
    from mpspatch.operations.regenerate import regenerate as regenerate_series

    if check:  # writes nothing: no lock, so it works beside a running command and on a read-only project
        return regenerate_series(Workspace(config), source, check=check, to=to, base_ref=base)
    with project_lock(config.state_dir, "regenerate"):
        return regenerate_series(Workspace(config), source, check=check, to=to, base_ref=base)
