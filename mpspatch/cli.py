"""The command line: parse options, call core code, hand results to console.py. Nothing else lives here.

main() is the single error boundary: MpspatchError -> its exit code and one line; Ctrl-C -> 130;
anything unexpected -> 3 with a short crash note (the traceback only with --debug).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

from mpspatch.foundation.errors import ExitCode, MpspatchError
from mpspatch.views import console

if TYPE_CHECKING:
    from mpspatch.foundation.config import Config

app = typer.Typer(
    name="mpspatch",
    help="Carry a large downstream patch against PyTorch, prove it works, and get it upstream.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout and nothing else.")]


@dataclass
class _Globals:
    config_path: Path | None = None
    debug: bool = False


_globals = _Globals()


@app.callback()
def _root(
    config: Annotated[
        Path | None, typer.Option("--config", help="Path to mpspatch.toml (default: found upward from the cwd).")
    ] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks for internal errors.")] = False,
) -> None:
    _globals.config_path = config
    _globals.debug = debug


def load() -> Config:
    from mpspatch.foundation.config import find_config, load_config

    return load_config(_globals.config_path or find_config(Path.cwd()))


def finish(code: int) -> NoReturn:
    raise typer.Exit(code)


# ------------------------------------------------------------------------------------- stats / status


@app.command()
def stats(
    patches: Annotated[list[Path] | None, typer.Argument(help="Patch files (default: the configured series).")] = None,
    as_json: JsonOpt = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="List every file.")] = False,
) -> None:
    """Files, insertions and deletions of the series, by category."""
    from mpspatch.foundation.errors import ConfigError
    from mpspatch.model.series import compute_stats, parse_series

    try:
        config = load()
        categories, allowed = config.categories, config.series.allowed_paths
        paths = tuple(patches) if patches else config.series.patches
    except ConfigError:
        if not patches:
            raise
        categories, allowed, paths = (), (), tuple(patches)  # explicit patches need no config
    result = compute_stats(parse_series(paths), categories, allowed)
    if as_json:
        console.emit_json(console.stats_json(result))
    else:
        console.show_stats(result, verbose=verbose)


@app.command()
def status(as_json: JsonOpt = False) -> None:
    """The series, its base and lock, the last evidence, and what stands between it and submission."""
    from mpspatch.reporting.status import compute_status

    report = compute_status(load())
    if as_json:
        console.emit_json(console.status_json(report))
    else:
        console.show_status(report)


@app.command()
def lock(
    base: Annotated[str | None, typer.Option("--base", help="Ref the series applies to (default: [upstream].base).")]
    = None,
    as_json: JsonOpt = False,
) -> None:
    """Record the base commit and the sha256 of each patch in series.lock."""
    from mpspatch.git import verbs as git
    from mpspatch.model.series import make_lock, parse_series, write_lock

    config = load()
    ref = base or config.upstream.base
    sha = git.resolve_commit(git.require_repo(config.upstream.checkout), ref)
    written = make_lock(config, sha, ref, parse_series(config.series.patches), "mpspatch lock")
    write_lock(config.series.lock, written)
    if as_json:
        console.emit_json({"lock": str(config.series.lock), "base": sha, "base_ref": ref,
                           "patches": [p.path for p in written.patches]})
    else:
        console.note(f"wrote {config.series.lock}: base {ref} = {sha}, {len(written.patches)} patch(es)")


# ------------------------------------------------------------------------- rebase / import / regenerate
# (issue 3: add the rebase, import and regenerate commands below this line)


@app.command()
def rebase(
    onto: Annotated[str | None, typer.Option("--onto", help="Upstream ref to move the series onto "
                                             "(default: [upstream].target).")] = None,
    resume: Annotated[bool, typer.Option("--continue", help="Go on after resolving conflicts in the worktree.")]
    = False,
    abort: Annotated[bool, typer.Option("--abort", help="Drop the rebase in progress and every trace of it.")]
    = False,
    as_json: JsonOpt = False,
) -> None:
    """Move the patch series onto a newer upstream commit; exit 1 when it stops on conflicts."""
    from mpspatch.foundation.errors import InputError
    from mpspatch.operations import rebase as core

    if resume and abort:
        raise InputError("rebase: --continue and --abort exclude each other; pick one")
    if (resume or abort) and onto is not None:
        raise InputError("rebase: --onto only starts a rebase; drop it from --continue/--abort")
    config = load()
    if abort:
        aborted = core.abort(config)
        if as_json:
            console.emit_json(console.rebase_abort_json(aborted))
        else:
            console.show_rebase_abort(aborted, config.root)
        return
    if not as_json:
        console.note("rebasing in the shadow repository; your clone is only read")
    result = core.resume(config) if resume else core.start(config, onto)
    if as_json:
        console.emit_json(console.rebase_json(result))
    else:
        console.show_rebase(result, config.root)
    finish(0 if result.status == "rebased" else 1)



@app.command("import")
def import_(
    source: Annotated[str | None, typer.Argument(
        help="A patch file, a URL (http, https, file) or a fork checkout folder. Default: the canonical patch "
             "in the dropbox/dML repository.")] = None,
    to: Annotated[Path | None, typer.Option("--to", help="Which series patch to replace (needed when the series "
                                                         "has several).")] = None,
    base: Annotated[str | None, typer.Option("--base", help="Ref the patch applies to (default: the lock's "
                                                            "base, else [upstream].base).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Bring a patch into the series, refusing paths outside allowed_paths, and write it in canonical form."""
    from mpspatch.operations.regenerate import import_patch

    config = load()
    result = import_patch(config, source, to, base)
    if as_json:
        console.emit_json(console.import_json(result))
    else:
        console.show_import(result, config.root)


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
    from mpspatch.operations.regenerate import regenerate as run_regenerate

    config = load()
    result = run_regenerate(config, source, check=check, to=to, base_ref=base)
    if as_json:
        console.emit_json(console.regenerate_json(result))
    else:
        console.show_regenerate(result, config.root)
    finish(1 if check and not result.in_sync else 0)

# ------------------------------------------------------------------------------------------------ drift
# (issue 4: add the drift command below this line)


@app.command()
def drift(
    onto: Annotated[str | None, typer.Option("--onto", help="Upstream ref to forecast against "
                                             "(default: [upstream].target).")] = None,
    as_json: JsonOpt = False,
    markdown: Annotated[Path | None, typer.Option("--markdown", help="Also write the report as Markdown "
                                                  "(e.g. $GITHUB_STEP_SUMMARY).")] = None,
) -> None:
    """Forecast the next rebase without changing anything; exit 1 when it predicts conflicts."""
    from mpspatch.foundation.files import atomic_write_text
    from mpspatch.operations.drift import compute_drift, render_markdown

    report = compute_drift(load(), onto)
    if markdown is not None:
        atomic_write_text(markdown, render_markdown(report))
    if as_json:
        console.emit_json(console.drift_json(report))
    else:
        console.show_drift(report)
    finish(1 if report.conflicts else 0)


# ----------------------------------------------------------------------------------------------- verify
# (issue 5: add the verify command below this line)


@app.command()
def verify(
    stage: Annotated[
        list[str] | None, typer.Option("--stage", help="Run only this stage; repeat for several (default: all).")
    ] = None,
    keep_going: Annotated[
        bool, typer.Option("--keep-going", help="Run every stage even after one failed or errored.")
    ] = False,
    force: Annotated[bool, typer.Option("--force", help="Rerun stages whose passing result is cached.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Run the configured stages on the patched tree and write the evidence. Exit 1 if a stage failed."""
    from mpspatch.verify.evidence import verify as run_verify

    config = load()
    with console.verify_progress() as progress:
        outcome = run_verify(config, stage_names=tuple(stage or ()), keep_going=keep_going, force=force,
                             progress=progress)
    if as_json:
        console.emit_json(console.verify_json(outcome))
    else:
        console.show_verify(outcome)
    if outcome.interrupted:
        finish(ExitCode.INTERRUPTED)
    finish(ExitCode.OK if outcome.ok else ExitCode.PROBLEM)


# ----------------------------------------------------------------------------------------------- render
# (issue 6: add the render-pr, render-issue and render-audit commands below this line)

OutOpt = Annotated[
    Path | None, typer.Option("--out", help="Where to write the document (default: under [render].out_dir).")
]
CheckOpt = Annotated[
    bool, typer.Option("--check", help="Write nothing; exit 1 with a unified diff if the file at --out is stale.")
]


def _render(kind: str, out: Path | None, check: bool, part: int | None = None) -> None:
    from mpspatch.foundation.files import atomic_write_text
    from mpspatch.model.series import relative_path
    from mpspatch.reporting.render import default_out, render_document, status_line, unified_diff
    from mpspatch.reporting.status import compute_status

    config = load()
    context = None
    if part is not None:  # one PR of the split stack (issue 9)
        from mpspatch.operations.split import load_current_stack, part_context

        context = part_context(load_current_stack(config), part)
    target = out if out is not None else default_out(config, kind, part=part)
    label = relative_path(target.absolute(), Path.cwd())
    report = compute_status(config)
    fresh = render_document(kind, report, part=context)
    if check:
        try:
            current = target.read_text(encoding="utf-8")
        except FileNotFoundError:
            current = ""
        except UnicodeDecodeError:
            current = target.read_bytes().decode("utf-8", errors="replace")
        if current == fresh:
            console.note(f"{label} is up to date")
            return
        console.show_diff(unified_diff(current, fresh, label))
        what = "does not exist" if not target.exists() else "is stale"
        console.note(f"{label} {what}; run `mpspatch render-{kind}` to rewrite it")
        finish(1)
    atomic_write_text(target, fresh)
    console.note(f"wrote {label} ({status_line(report)})")


@app.command("render-pr")
def render_pr(
    out: OutOpt = None,
    check: CheckOpt = False,
    part: Annotated[
        int | None,
        typer.Option("--part", min=1, metavar="K", help="Render the PR of part K of the stack `mpspatch split` wrote."),
    ] = None,
) -> None:
    """Render the pull-request description ([MPS] title, Fixes #N, test plan, figures from the evidence)."""
    _render("pr", out, check, part)


@app.command("render-issue")
def render_issue(out: OutOpt = None, check: CheckOpt = False) -> None:
    """Render the GitHub feature-request issue, with the implementation status computed from the evidence."""
    _render("issue", out, check)


@app.command("render-audit")
def render_audit(out: OutOpt = None, check: CheckOpt = False) -> None:
    """Render the submission audit: requirements, gaps, verification, statistics, checklist and files."""
    _render("audit", out, check)



# ------------------------------------------------------------------------------------------------ split
# (issue 9: add the split command below this line)


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
    from mpspatch.operations.split import split_series

    result = split_series(load(), max_lines=max_lines, out_dir=out, branch_prefix=branches, force=force)
    if as_json:
        console.emit_json(console.split_json(result))
    else:
        console.show_split(result)


# ------------------------------------------------------------------------------------------------- demo
# (issue 7: add the demo command below this line)


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

    if fault is not None and fault != "race":
        raise InputError(f"demo: --break {fault!r} is not a fault the demo knows; use --break race")
    with console.demo_progress() as progress:
        result = run_demo(directory, break_race=fault == "race", progress=progress)
    if as_json:
        console.emit_json(console.demo_json(result))
    else:
        console.show_demo(result)
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

                traceback.print_exc()
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
