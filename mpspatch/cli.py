"""The command line: typer declarations that call one use case in commands/ and hand its result to views/.

main() is the single error boundary: MpspatchError -> its exit code and one line; Ctrl-C -> 130;
anything unexpected -> 3 with a short crash note (the traceback only with --debug).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

from mpspatch.foundation.errors import ExitCode, GitCommandError, MpspatchError

if TYPE_CHECKING:
    from mpspatch.foundation.config import Config
    from mpspatch.views import console
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


# ----------------------------------------------------------------------------------------------- verify


@app.command()
def verify(
    stage: Annotated[
        list[str] | None, typer.Option("--stage", help="Run only this stage; repeat for several (default: all).")
    ] = None,
    keep_going: Annotated[
        bool, typer.Option("--keep-going", help="Run every stage even after one failed or errored.")
    ] = False,
    force: Annotated[bool, typer.Option("--force", help="Rerun stages whose passing result is cached.")] = False,
    part: Annotated[
        int | None,
        typer.Option("--part", min=1, metavar="K",
                     help="Verify stack parts 1..K (from `mpspatch split`) on their own tree."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Run the configured stages on the patched tree and write the evidence. Exit 1 if a stage failed, 2 if a
    stage's program could not be started."""
    from mpspatch.commands.verify import exit_code
    from mpspatch.commands.verify import verify as run_verify
    from mpspatch.views.verify import annotate_for_github, show_verify, verify_json, verify_progress

    config = load()
    with verify_progress() as progress:
        outcome = run_verify(config, tuple(stage or ()), keep_going=keep_going, force=force, progress=progress,
                             part=part, note=console.note)
    if os.environ.get("GITHUB_ACTIONS") == "true":
        annotate_for_github(outcome)
    if as_json:
        console.emit_json(verify_json(outcome))
    else:
        show_verify(outcome)
    if outcome.unrunnable and not outcome.interrupted:
        more = len(outcome.unrunnable) - 1
        console.error_line(outcome.unrunnable[0] + (f" (and {more} more stage{'s' * (more > 1)} like it)" if more
                                                    else ""))
    finish(exit_code(outcome))


# ----------------------------------------------------------------------------------------------- render

OutOpt = Annotated[
    Path | None, typer.Option("--out", help="Where to write the document (default: under [render].out_dir).")
]
CheckOpt = Annotated[
    bool, typer.Option("--check", help="Write nothing; exit 1 with a unified diff if the file at --out is stale.")
]


def _render(kind: str, out: Path | None, check: bool, part: int | None = None, as_json: bool = False) -> None:
    from mpspatch.commands.render import render
    from mpspatch.views.render import render_json, show_render

    config = load()
    note_stopped_rebase(config)
    rendered = render(config, kind, out=out, check=check, part=part)
    if as_json:
        console.emit_json(render_json(rendered))
    else:
        show_render(rendered)
    if rendered.problem:
        finish(ExitCode.PROBLEM)


@app.command("render-pr")
def render_pr(
    out: OutOpt = None,
    check: CheckOpt = False,
    part: Annotated[
        int | None,
        typer.Option("--part", min=1, metavar="K", help="Render the PR of part K of the stack `mpspatch split` wrote."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Render the pull-request body (Fixes #N, prose sections, changes, test plan); --json gives title and labels."""
    _render("pr", out, check, part, as_json)


@app.command("render-issue")
def render_issue(out: OutOpt = None, check: CheckOpt = False, as_json: JsonOpt = False) -> None:
    """Render the GitHub feature-request issue body; --json gives its title and labels."""
    _render("issue", out, check, as_json=as_json)


@app.command("render-audit")
def render_audit(out: OutOpt = None, check: CheckOpt = False, as_json: JsonOpt = False) -> None:
    """Render the submission audit: requirements, gaps, verification, statistics, checklist and files."""
    _render("audit", out, check, as_json=as_json)


@app.command()
def report(
    html: Annotated[Path, typer.Option("--html", metavar="OUT", help="Write the page here (one self-contained "
                                       "HTML file: inline CSS and SVG, nothing fetched).")],
    history: Annotated[Path | None, typer.Option(
        "--history", metavar="DIR", help="Chart the drift forecasts recorded in DIR/drift-history.jsonl "
        "(by `mpspatch drift --history DIR`).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Write one HTML page: the readiness and gaps, the stage history of every verify run, the drift chart."""
    from mpspatch.commands.report import report as write_report
    from mpspatch.views.report import report_json, show_report

    config = load()
    note_stopped_rebase(config)
    written = write_report(config, html, history=history)
    if as_json:
        console.emit_json(report_json(written))
    else:
        show_report(written)


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


# ----------------------------------------------------------------------------------------- entry point


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


if __name__ == "__main__":
    main()
