"""The shared core of the views: the two rich consoles, the one JSON writer, error and note lines.

Each command's view module builds a typed JSON model (a frozen dataclass whose fields are the contract's keys,
in order) and hands it to `emit_json`; terminal output is rendered from the command's result, never from
that model. rich is imported only when something is printed, so `--json` runs stay quick to start.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from collections.abc import Mapping, Sequence
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, TypeAlias

if TYPE_CHECKING:
    from _typeshed import DataclassInstance
    from rich.console import Console
    from rich.table import Table

    from mpspatch.verify.regressions import Preexisting, Regression

# What a JSON model may hold, once plain: the shapes json.dumps writes.
Plain: TypeAlias = "bool | int | float | str | list[Plain] | dict[str, Plain] | None"

_out: Console | None = None
_err: Console | None = None

# The width for a stream that is not a terminal (a pipe, a file, a CI log) when COLUMNS does not set one. rich
# would assume 80 columns there, fold paths inside table cells and break notes mid-sentence; a log has no
# right margin, so its lines are as long as their content.
LOG_WIDTH = 100_000


def _console(*, stderr: bool) -> Console:
    from rich.console import Console

    console = Console(stderr=stderr, highlight=False)
    if not console.is_terminal:
        columns = os.environ.get("COLUMNS", "").strip()
        console.width = int(columns) if columns.isdigit() and int(columns) > 0 else LOG_WIDTH
        # Lines are written whole and never wrapped: a long note or path stays one line for logs and `grep`.
        console.soft_wrap = True
    return console


def out() -> Console:
    global _out
    if _out is None:
        _out = _console(stderr=False)
    return _out


# What makes rich take a stream that is no terminal for one (rich.console.Console reads these).
_FORCING = ("FORCE_COLOR", "TTY_COMPATIBLE")


def err_is_terminal() -> bool:
    """Whether stderr is a terminal as rich sees it, without importing rich when the answer is plainly no
    (a pipe or a file, nothing in the environment forcing a terminal): a `--json` run or a CI log stays
    free of rich's start-up."""
    if _err is None and not sys.stderr.isatty() and not any(v in os.environ for v in _FORCING):
        return False
    return err().is_terminal


def err() -> Console:
    global _err
    if _err is None:
        _err = _console(stderr=True)
    return _err


def print_table(table: Table, console: Console | None = None) -> None:
    """Print a table; off a terminal, at least as wide as its content, so no cell (above all a path) is cut.

    A terminal keeps rich's fitting to its width. Columns that hold paths are declared `no_wrap=True`, so there
    rich narrows the other columns first instead of folding a path across lines.
    """
    console = console or out()
    if console.is_terminal:
        console.print(table)
        return
    natural = console.measure(table, options=console.options.update_width(LOG_WIDTH)).maximum
    if natural <= console.width:
        console.print(table)
        return
    width = console.width
    console.width = natural  # wider than COLUMNS asks for this one table: a log line may be long, a path whole
    try:
        console.print(table)
    finally:
        console.width = width


def plain(value: object) -> Plain:
    """A JSON model (dataclasses, mappings, tuples, paths, enums) as the values json.dumps writes."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, Enum):  # a closed vocabulary is written as its value, like the plain string it replaces
        return plain(value.value)
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise TypeError(f"{type(value).__name__} has no JSON form")


def emit_json(model: DataclassInstance) -> None:
    """Exactly one JSON object on stdout, nothing else: the --json contract."""
    sys.stdout.write(json.dumps(plain(model), indent=2, sort_keys=False) + "\n")
    sys.stdout.flush()


def error_line(message: str) -> None:
    # Plain write, not rich: the message may contain [brackets] rich would take for markup.
    sys.stderr.write(f"mpspatch: error: {message}\n")


def note(message: str) -> None:
    # soft_wrap: a note is one line however long, so logs and `grep` see it whole, on a terminal too.
    err().print(message, markup=False, soft_wrap=True)


# ------------------------------------------------------------------------------- shared text helpers


def escape(text: str) -> str:
    """`text` shown literally inside rich markup."""
    from rich.markup import escape as rich_escape

    return rich_escape(text)


def pr_label(number: int | None) -> str:
    return f"#{number}" if number is not None else "(no PR trailer)"


def duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs:02d}s" if minutes < 60 else f"{minutes // 60}h{minutes % 60:02d}m"


def counts_text(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in counts.items())


# Stage statuses compare by value, so these keys match plain strings and string enums alike.
STATUS_STYLE = {"passed": "green", "failed": "red", "error": "bold red", "skipped": "yellow"}


def show_comparison(console: Console, regressions: Sequence[Regression], preexisting: Sequence[Preexisting]) -> None:
    """The regressions (failing now, passing in the newest earlier passing run on another base) and the
    pre-existing failures (failing on an earlier base too), 20 of each at most: verify and status show both."""
    if regressions:
        console.print(f"[bold red]Regressions[/] ({len(regressions)}: failing now, passing in the newest earlier "
                      "passing run on another base)")
        for r in regressions[:20]:
            console.print(f"  - {r.stage} {r.kind}: {r.id} (passed in run {r.since_run})", markup=False)
    if preexisting:
        console.print(f"[bold]Pre-existing failures[/] ({len(preexisting)}: failed on an earlier base too, not "
                      "regressions)")
        for p in preexisting[:20]:
            console.print(f"  - {p.stage} {p.kind}: {p.id} (failed in run {p.failed_in} too)", markup=False)
