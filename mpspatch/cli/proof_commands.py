"""Commands that prove and describe the series: verify, render-pr, render-issue, render-audit, report."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from mpspatch.cli.app import JsonOpt, app, console, finish, load, note_stopped_rebase
from mpspatch.foundation.errors import ExitCode

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
