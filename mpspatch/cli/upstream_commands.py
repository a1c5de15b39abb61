"""Commands that take the series upstream: split, submit; and the offline demo."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mpspatch.cli.app import JsonOpt, app, console, finish, load
from mpspatch.foundation.errors import ExitCode

# ------------------------------------------------------------------------------------------------ split


@app.command()
def split(
    max_lines: Annotated[
        int | None,
        typer.Option("--max-lines", min=1, help="Changed lines allowed per part (default: [split].max_lines)."),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Folder for the numbered patches and stack.json (default: patches/stack)."),
    ] = None,
    branches: Annotated[
        str | None,
        typer.Option("--branches", metavar="PREFIX", help="Also create branches PREFIX/01-... in the upstream clone."),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="With --branches, move branches that already exist.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Cut the series into a proven stack of reviewable parts, one patch per PR."""
    from mpspatch.commands.split import split as run_split
    from mpspatch.views.progress import step_progress
    from mpspatch.views.split import show_split, split_json

    config = load()
    with step_progress("split", as_json=as_json) as steps:
        result = run_split(config, max_lines=max_lines, out=out, branches=branches, force=force, steps=steps)
    if as_json:
        console.emit_json(split_json(result))
    else:
        show_split(result)


# ----------------------------------------------------------------------------------------------- submit


@app.command()
def submit(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print every git push and gh command it would run; change nothing.")
    ] = False,
    draft: Annotated[
        bool, typer.Option("--draft", help="Open draft PRs, also when status is NOT READY (says so).")
    ] = False,
    compare: Annotated[
        str | None,
        typer.Option("--compare", metavar="vN", help="Show a per-patch range-diff summary since submitted version N."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Open the issue, push the branches to your fork and open or update one PR per part, with labels."""
    from mpspatch.commands.submit import submit as run_submit
    from mpspatch.views.submit import show_submit, submit_json

    result = run_submit(load(), dry_run=dry_run, draft=draft, compare=compare)
    if as_json:
        console.emit_json(submit_json(result))
    else:
        show_submit(result)


# ------------------------------------------------------------------------------------------------- demo


@app.command()
def demo(
    directory: Annotated[
        Path | None,
        typer.Option("--dir", help="Write the sample into this new or empty folder (default: a fresh temporary one)."),
    ] = None,
    fault: Annotated[
        str | None,
        typer.Option("--break", metavar="race", help="Inject a fault: `race` drops a lock in the stream pool, so "
                                                      "TSan fails, the audit says NOT READY and the demo exits 1."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Run the whole job on a small offline sample: drift, rebase, verify (build, lint, TSan, tests), render.

    Exit 0 when the audit says READY FOR SUBMISSION, 1 when it does not (as with --break race), 2 when a
    tool is missing or --dir is not empty.
    """
    from mpspatch.commands.demo import run_demo
    from mpspatch.foundation.errors import InputError
    from mpspatch.views.demo import demo_json, demo_progress, show_demo

    if fault is not None and fault != "race":
        raise InputError(f"demo: --break {fault!r} is not a fault the demo knows; use --break race")
    with demo_progress() as progress:
        result = run_demo(directory, break_race=fault == "race", progress=progress)
    if as_json:
        console.emit_json(demo_json(result))
    else:
        show_demo(result)
    if result.interrupted:
        finish(ExitCode.INTERRUPTED)
    finish(ExitCode.OK if result.ready else ExitCode.PROBLEM)
