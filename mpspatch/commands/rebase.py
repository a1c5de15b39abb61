"""`rebase` (start, --continue, --abort), `import` and `regenerate`."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

from mpspatch.foundation.config import Config
from mpspatch.foundation.errors import InputError
from mpspatch.operations import rebase as core
from mpspatch.operations.regenerate import ImportResult, RegenerateResult, import_patch
from mpspatch.operations.regenerate import regenerate as regenerate_series


class RebaseAction(StrEnum):
    START = "start"
    CONTINUE = "continue"
    ABORT = "abort"


def rebase_action(*, resume: bool, abort: bool, onto: str | None) -> RebaseAction:
    """Which of the three the flags ask for; contradictory flags are bad input."""
    if resume and abort:
        raise InputError("rebase: --continue and --abort exclude each other; pick one")
    if (resume or abort) and onto is not None:
        raise InputError("rebase: --onto only starts a rebase; drop it from --continue/--abort")
    return RebaseAction.ABORT if abort else RebaseAction.CONTINUE if resume else RebaseAction.START


def rebase(config: Config, onto: str | None = None, *, resume: bool = False) -> core.RebaseResult:
    """Start a rebase onto `onto` (default: [upstream].target), or with `resume` go on with the one in progress."""
    return core.resume(config) if resume else core.start(config, onto)


def abort_rebase(config: Config) -> core.AbortResult:
    return core.abort(config)


def import_(config: Config, source: str | None, to: Path | None, base: str | None) -> ImportResult:
    return import_patch(config, source, to, base)


def regenerate(config: Config, source: Path | None, *, check: bool, to: Path | None,
               base: str | None) -> RegenerateResult:
    return regenerate_series(config, source, check=check, to=to, base_ref=base)
