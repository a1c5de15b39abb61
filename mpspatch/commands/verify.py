"""`verify`: run the configured stages on the patched tree and write the evidence."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from mpspatch.foundation.config import Config
from mpspatch.foundation.errors import ExitCode
from mpspatch.foundation.project_lock import project_lock
from mpspatch.model.workspace import Workspace
from mpspatch.verify.evidence import VerifyOutcome
from mpspatch.verify.evidence import verify as run_verify
from mpspatch.verify.runner import Progress


def verify(config: Config, stages: Sequence[str] = (), *, keep_going: bool = False, force: bool = False,
           progress: Progress | None = None, python: str | None = None, part: int | None = None,
           note: Callable[[str], None] | None = None) -> VerifyOutcome:
    """Under the project lock, so no other command moves the series or the tree meanwhile."""
    ws = Workspace(config)  # lazy: nothing is read before the lock is held
    with project_lock(config.state_dir, "verify"):
        return run_verify(ws, stage_names=tuple(stages), keep_going=keep_going, force=force, progress=progress,
                          python=python, part=part, note=note)


def exit_code(outcome: VerifyOutcome) -> ExitCode:
    if outcome.interrupted:
        return ExitCode.INTERRUPTED
    if outcome.unrunnable:  # a program that cannot be started is the config's or the machine's to fix
        return ExitCode.USAGE
    return ExitCode.OK if outcome.ok else ExitCode.PROBLEM
