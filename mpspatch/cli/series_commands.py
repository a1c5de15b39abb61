"""Commands on the series itself: init, stats, status, lock, rebase, import, regenerate, drift."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mpspatch.cli.app import JsonOpt, app, console, finish, load, note_stopped_rebase
from mpspatch.foundation.errors import ExitCode

# ------------------------------------------------------------------------------------------------ init


@app.command()
def init(
    directory: Annotated[Path, typer.Argument(help="Folder for the new project (default: the current one).")]
    = Path("."),
    from_patch: Annotated[Path | None, typer.Option("--from-patch", metavar="PATCH", help="Derive the base, "
                                                    "the allowed paths and the title from this patch, and copy "
                                                    "it into patches/.")] = None,
    upstream: Annotated[Path | None, typer.Option("--upstream", metavar="CHECKOUT", help="Your PyTorch clone "
                                                  "(default: ../pytorch).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Write a starter project: mpspatch.toml, the checklist, prose skeletons, the harness and a .gitignore."""
    from mpspatch.commands.init import init as run_init
    from mpspatch.views.init import init_json, show_init

    result = run_init(directory, from_patch=from_patch, upstream=upstream)
    if as_json:
        console.emit_json(init_json(result))
    else:
        show_init(result)


# ------------------------------------------------------------------------------------- stats / status


@app.command()
def stats(
    patches: Annotated[list[Path] | None, typer.Argument(help="Patch files (default: the configured series).")] = None,
    as_json: JsonOpt = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="List every file.")] = False,
) -> None:
    """Files, insertions and deletions of the series, by category."""
    from contextlib import suppress

    from mpspatch.commands.series import stats as series_stats
    from mpspatch.foundation.errors import ConfigError
    from mpspatch.views.stats import show_stats, stats_json

    result = series_stats(tuple(patches or ()), load)
    with suppress(ConfigError):  # explicit patch files need no config, and then there is no rebase to speak of
        note_stopped_rebase(load())
    if as_json:
        console.emit_json(stats_json(result))
    else:
        show_stats(result, verbose=verbose)


@app.command()
def status(
    as_json: JsonOpt = False,
    check: Annotated[
        bool, typer.Option("--check", help="Exit 1 when the series is NOT READY (0 when ready); prints the same.")
    ] = False,
) -> None:
    """The series, its base and lock, the last evidence, and what stands between it and submission."""
    from mpspatch.commands.status import status as compute
    from mpspatch.model.submission import read_submission
    from mpspatch.views.status import show_status, status_json

    report = compute(load())
    submission = read_submission(report.config)
    if as_json:
        if report.rebase is not None:  # the text view shows it first; JSON keeps stdout to the object
            note_stopped_rebase(report.config)
        console.emit_json(status_json(report, submission))
    else:
        show_status(report, submission)
    if check and not report.ready:
        finish(ExitCode.PROBLEM)


@app.command()
def lock(
    base: Annotated[str | None, typer.Option(
        "--base", help="Ref the series applies to (default: the base the lock records, else [upstream].base).")]
    = None,
    as_json: JsonOpt = False,
) -> None:
    """Record the base commit and the sha256 of each patch in series.lock."""
    from mpspatch.commands.series import lock as write_lock
    from mpspatch.views.status import lock_json, show_lock

    written = write_lock(load(), base)
    if as_json:
        console.emit_json(lock_json(written))
    else:
        show_lock(written)


# ------------------------------------------------------------------------- rebase / import / regenerate


@app.command()
def rebase(
    onto: Annotated[str | None, typer.Option("--onto", help="Upstream ref to move the series onto "
                                             "(default: [upstream].target).")] = None,
    resume: Annotated[bool, typer.Option("--continue", help="Go on after resolving conflicts in the worktree.")]
    = False,
    abort: Annotated[bool, typer.Option("--abort", help="Drop the rebase in progress and every trace of it.")]
    = False,
    force: Annotated[bool, typer.Option("--force", help="With --abort: abort even though a patch file was edited "
                                        "while stopped (the edit is kept in .mpspatch/previous/), or the "
                                        "state file is unreadable.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Move the patch series onto a newer upstream commit; exit 1 when it stops on conflicts."""
    from mpspatch.commands.rebase import RebaseAction, abort_rebase, rebase_action
    from mpspatch.commands.rebase import rebase as run_rebase
    from mpspatch.views import rebase as view
    from mpspatch.views.progress import step_progress

    action = rebase_action(resume=resume, abort=abort, onto=onto, force=force)
    config = load()
    if action == RebaseAction.ABORT:
        aborted = abort_rebase(config, force=force)
        if as_json:
            console.emit_json(view.rebase_abort_json(aborted))
        else:
            view.show_rebase_abort(aborted, config.root)
        return
    if not as_json:
        view.show_rebase_started()
    with step_progress("rebase", as_json=as_json) as steps:
        result = run_rebase(config, onto, resume=action == RebaseAction.CONTINUE, steps=steps)
    if as_json:
        console.emit_json(view.rebase_json(result))
    else:
        view.show_rebase(result, config.root)
    finish(ExitCode.OK if result.status == "rebased" else ExitCode.PROBLEM)


@app.command("import")
def import_(
    source: Annotated[str | None, typer.Argument(
        help="A patch file, a URL (http, https, file) or a fork checkout folder. Default: the canonical patch "
             "in the dropbox/dML repository.")] = None,
    to: Annotated[Path | None, typer.Option("--to", help="Which series patch to replace (needed when the series "
                                                         "has several).")] = None,
    base: Annotated[str | None, typer.Option("--base", help="Ref the patch applies to (default: the lock's "
                                                            "base, else [upstream].base); for a fork, "
                                                            "`fork-point` takes its merge-base with upstream.")]
    = None,
    as_json: JsonOpt = False,
) -> None:
    """Bring a patch into the series, refusing paths outside allowed_paths, and write it in canonical form."""
    from mpspatch.commands.rebase import import_ as run_import
    from mpspatch.views.rebase import import_json, show_import

    config = load()
    result = run_import(config, source, to, base)
    if as_json:
        console.emit_json(import_json(result))
    else:
        show_import(result, config.root)


@app.command()
def regenerate(
    source: Annotated[Path | None, typer.Option("--from", help="A fork checkout to take `git diff BASE` of "
                                                               "(default: the series applied at its base).")]
    = None,
    check: Annotated[bool, typer.Option("--check", help="Only compare; exit 1 when a patch is out of sync.")]
    = False,
    to: Annotated[Path | None, typer.Option("--to", help="With --from: the series patch to write.")] = None,
    base: Annotated[str | None, typer.Option("--base", help="Base ref (default: the lock's base, else "
                                                            "[upstream].base).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Rewrite the patch files from their source in canonical form; --check only compares."""
    from mpspatch.commands.rebase import regenerate as run_regenerate
    from mpspatch.views.rebase import regenerate_json, show_regenerate

    config = load()
    if check:  # --check only reads; writing waits for the rebase (the use case refuses)
        note_stopped_rebase(config)
    result = run_regenerate(config, source, check=check, to=to, base=base)
    if as_json:
        console.emit_json(regenerate_json(result))
    else:
        show_regenerate(result, config.root)
    finish(ExitCode.PROBLEM if check and not result.in_sync else ExitCode.OK)


# ------------------------------------------------------------------------------------------------ drift


@app.command()
def drift(
    onto: Annotated[str | None, typer.Option("--onto", help="Upstream ref to forecast against "
                                             "(default: [upstream].target).")] = None,
    as_json: JsonOpt = False,
    markdown: Annotated[Path | None, typer.Option("--markdown", help="Also write the report as Markdown "
                                                  "(e.g. $GITHUB_STEP_SUMMARY).")] = None,
    history: Annotated[Path | None, typer.Option(
        "--history", metavar="DIR", help="Record tonight's forecast in DIR/drift-history.jsonl; with --markdown, "
        "add a chart of the history.")] = None,
) -> None:
    """Forecast the next rebase without changing anything; exit 1 when it predicts conflicts."""
    from mpspatch.commands.drift import drift as forecast
    from mpspatch.views.drift import drift_json, show_drift
    from mpspatch.views.progress import step_progress

    config = load()
    note_stopped_rebase(config)
    with step_progress("drift", as_json=as_json) as steps:
        report = forecast(config, onto, markdown=markdown, history=history, steps=steps)
    if as_json:
        console.emit_json(drift_json(report))
    else:
        show_drift(report)
    finish(ExitCode.PROBLEM if report.conflicts else ExitCode.OK)
