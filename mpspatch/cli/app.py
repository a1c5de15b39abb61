"""The typer app every command registers on, the global options, and what the commands share."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

if TYPE_CHECKING:
    from mpspatch.foundation.config import Config
    from mpspatch.views import console as console  # re-exported: every command module prints through it
else:

    class _Console:
        """views.console, imported on first use: `--help` and `--version` never need it (nor json)."""

        def __getattr__(self, name: str) -> Any:
            from mpspatch.views import console as module

            return getattr(module, name)

    console = _Console()

app = typer.Typer(
    name="mpspatch",
    help="Carry a large downstream patch against PyTorch, prove it works, and get it upstream.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout and nothing else.")]


@dataclass
class _Globals:
    config_path: Path | None = None
    debug: bool = False


_globals = _Globals()


def _show_version(value: bool) -> None:
    if value:
        import mpspatch

        sys.stdout.write(f"mpspatch {mpspatch.__version__}\n")
        raise typer.Exit()


@app.callback()
def _root(
    config: Annotated[
        Path | None, typer.Option("--config", help="Path to mpspatch.toml (default: found upward from the cwd).")
    ] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks for internal errors.")] = False,
    version: Annotated[bool, typer.Option("--version", is_eager=True, callback=lambda v: _show_version(v),
                                          help="Print mpspatch's version and exit.")] = False,
) -> None:
    _globals.config_path = config
    _globals.debug = debug


def load() -> Config:
    from mpspatch.foundation.config import find_config, load_config

    return load_config(_globals.config_path or find_config(Path.cwd()))


def finish(code: int) -> NoReturn:
    raise typer.Exit(code)


def note_stopped_rebase(config: Config) -> None:
    """For a read-only command: say on stderr that a rebase is stopped, so its figures are the old series'."""
    from mpspatch.commands.rebase import stopped_rebase_note

    text = stopped_rebase_note(config)
    if text is not None:
        console.note(text)
