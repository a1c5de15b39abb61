"""The command line: typer declarations that call one use case in commands/ and hand its result to views/.

main() is the single error boundary: MpspatchError -> its exit code and one line; Ctrl-C -> 130;
anything unexpected -> 3 with a short crash note (the traceback only with --debug).
"""

from __future__ import annotations

import importlib
import sys
from typing import NoReturn

import typer

from mpspatch.cli.app import app, console
from mpspatch.foundation.errors import ExitCode, GitCommandError, MpspatchError

__all__ = ["app", "main"]

# Each module registers its commands on `app` when imported; this order is the order of `--help`.
for _module in ("series_commands", "proof_commands", "upstream_commands"):
    importlib.import_module(f"mpspatch.cli.{_module}")


def _is_usage_error(exc: Exception) -> bool:
    """Click's usage errors, whether click is a dependency (older typer) or vendored (typer>=0.29)."""
    return "click" in type(exc).__module__ and callable(getattr(exc, "show", None))


def main(argv: list[str] | None = None) -> NoReturn:
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args
    try:
        result = typer.main.get_command(app).main(args=args, prog_name="mpspatch", standalone_mode=False)
        code = result if isinstance(result, int) else 0
    except MpspatchError as exc:
        console.error_line(exc.message)
        code = int(exc.exit_code)
        if code == ExitCode.INTERNAL:  # a proof or a subprocess failed where it never should: our bug
            if debug:
                import traceback

                if exc.detail:
                    sys.stderr.write(exc.detail.rstrip("\n") + "\n")
                traceback.print_exc()
            elif isinstance(exc, GitCommandError):
                sys.stderr.write("git refused a command mpspatch built: a bug in mpspatch, or a damaged repository. "
                                 "Rerun with --debug for git's output and the traceback.\n")
            else:
                sys.stderr.write("This is a bug in mpspatch. Rerun with --debug for the traceback and report it.\n")
    except typer.Exit as exc:
        code = exc.exit_code
    except (typer.Abort, KeyboardInterrupt):
        code = int(ExitCode.INTERRUPTED)
    except Exception as exc:  # the crash boundary: anything unexpected is our bug, not the user's
        if _is_usage_error(exc):
            exc.show()  # type: ignore[attr-defined]
            code = int(ExitCode.USAGE)
        elif debug:
            raise
        else:
            sys.stderr.write(
                f"mpspatch: internal error: {exc.__class__.__name__}: {exc}\n"
                "This is a bug in mpspatch. Rerun with --debug for the traceback and report it.\n"
            )
            code = int(ExitCode.INTERNAL)
    if code == ExitCode.INTERRUPTED:  # newer typer turns Ctrl-C into a plain 130 by itself
        sys.stderr.write("mpspatch: interrupted\n")
    sys.exit(code)
