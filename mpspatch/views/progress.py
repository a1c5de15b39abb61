"""A spinner on stderr naming the step a long operation (rebase, drift, split) has reached.

Drawn only when stderr is a terminal and the output is not JSON: a pipe, a CI log and `--json` get nothing,
so what they capture stays the same from run to run.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from mpspatch.foundation.progress import QUIET, Steps
from mpspatch.views.console import err, err_is_terminal


class _Spinner(Steps):
    def __init__(self, status: Any, command: str) -> None:
        self.status = status
        self.command = command

    def step(self, text: str) -> None:
        from rich.markup import escape

        self.status.update(f"{self.command}: {escape(text)}")


@contextmanager
def step_progress(command: str, *, as_json: bool = False) -> Iterator[Steps]:
    """Steps for `command` that redraw one status line; QUIET unless stderr is a terminal and not --json."""
    if as_json or not err_is_terminal():
        yield QUIET
        return
    console = err()
    with console.status(f"{command}: starting", spinner="dots") as status:
        yield _Spinner(status, command)
