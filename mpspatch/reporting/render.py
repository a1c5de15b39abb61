"""The three submission documents, rendered from data: series stats, the status report and its evidence.

Rendering is a pure function of a StatusReport (which already holds the stats, the checklist rows, the
stage evidence, the computed checks and the hand-written prose): same data in, same bytes out. Nothing
volatile goes in (no clock, no machine path), so `--check` can compare a committed file with a fresh
render byte for byte.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from mpspatch.foundation.errors import InputError
from mpspatch.model.stack import PartContext
from mpspatch.reporting.document_data import document_data, plural
from mpspatch.reporting.report import StatusReport
from mpspatch.reporting.text import relative

if TYPE_CHECKING:
    import jinja2

    from mpspatch.foundation.config import Config

DOCUMENTS = {
    "pr": ("pr_description.md.j2", "pr_description.md"),
    "issue": ("github_issue.md.j2", "github_issue.md"),
    "audit": ("submission_audit.md.j2", "submission_audit.md"),
}


def templates_dir() -> Path:
    """The shipped templates: inside the package when installed from a wheel, else the repository's."""
    here = Path(__file__).resolve().parents[1]
    packaged = here / "_templates"
    return packaged if packaged.is_dir() else here.parent / "templates"


def default_out(config: Config, kind: str, *, part: int | None = None) -> Path:
    if part is not None:  # one file per PR of the split stack: pr_description.part-03.md
        return config.render.out_dir / f"{Path(DOCUMENTS[kind][1]).stem}.part-{part:02d}.md"
    return config.render.out_dir / DOCUMENTS[kind][1]


@cache
def environment(folders: tuple[Path, ...]) -> jinja2.Environment:
    """One Jinja environment over `folders`, searched in order: a project's own templates shadow the shipped
    ones of the same name."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader([str(f) for f in folders]),
        undefined=jinja2.StrictUndefined,  # a misspelled variable is an error, never an empty string
        # The documents are Markdown and must not be escaped; the HTML report (*.html.j2) must be.
        autoescape=jinja2.select_autoescape(enabled_extensions=("html.j2",), default_for_string=False),
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["num"] = lambda value: f"{int(value):,}"
    env.filters["plural"] = plural
    return env


def template_folders(report: StatusReport, templates: Path | None = None) -> tuple[Path, ...]:
    """Where templates are looked up: `templates` (or [render].templates) first, then the shipped ones."""
    own = templates if templates is not None else report.config.render.templates
    shipped = templates_dir()
    return (own, shipped) if own is not None and own.resolve() != shipped.resolve() else (shipped,)


def render_document(kind: str, report: StatusReport, *, templates: Path | None = None,
                    part: PartContext | None = None) -> str:
    """The Markdown text of document `kind` (pr, issue or audit) for this report, or for one split part.

    A template error in a project's own template (a syntax error, an undefined variable) is bad input: a
    TemplateError naming the template file and line.
    """
    import jinja2

    if kind not in DOCUMENTS:
        raise ValueError(f"unknown document {kind!r}")
    folders = template_folders(report, templates)
    data = document_data(report, part)
    try:
        template = environment(folders).get_template(DOCUMENTS[kind][0])
        text = template.render(doc=data)
    except jinja2.TemplateSyntaxError as exc:
        where = _template_place(exc.filename or exc.name or DOCUMENTS[kind][0], exc.lineno, report.config.root)
        raise TemplateError(f"{where}: template syntax error: {exc.message}; fix the template") from None
    except jinja2.TemplateError as exc:
        where = _failing_template(exc, report.config.root) or DOCUMENTS[kind][0]
        raise TemplateError(f"{where}: {exc.message or type(exc).__name__}; fix the template (the variables are "
                            f"listed in docs/commands/render.md)") from None
    # Template whitespace control is fiddly across loops and macros; one rule here keeps the Markdown tidy:
    # at most one blank line in a row, exactly one newline at the end.
    return _BLANK_RUNS.sub("\n\n", text).strip("\n") + "\n"


class TemplateError(InputError):
    """A document template that does not render: bad input naming the template and the line."""


def _template_place(filename: str, line: int | None, root: Path) -> str:
    path = Path(filename)
    shown = relative(path, root) if path.is_absolute() else filename
    return f"{shown}, line {line}" if line else shown


def _failing_template(exc: BaseException, root: Path) -> str | None:
    """`file, line N` of the innermost template frame in the traceback (Jinja maps its frames to template
    lines)."""
    import traceback

    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename.endswith(".j2")]
    if not frames:
        return None
    return _template_place(frames[-1].filename, frames[-1].lineno, root)


_BLANK_RUNS = re.compile(r"\n(?:[ \t]*\n){2,}")


@dataclass(frozen=True)
class Document:
    """One document as GitHub takes it: the title, the body and the labels are separate fields.

    `labels` are the ones the submitter applies (or asks @pytorchbot for); `maintainer_labels` only a
    maintainer can apply (ciflow/mps), so they are asked for and never shown as applied. `cc` is the handles
    the body's cc line names; `reviewers` the handles asked to review the PR.
    """

    kind: str  # pr | issue | audit
    title: str
    body: str
    labels: tuple[str, ...]
    maintainer_labels: tuple[str, ...] = ()
    cc: tuple[str, ...] = ()
    reviewers: tuple[str, ...] = ()


def document(kind: str, report: StatusReport, *, templates: Path | None = None,
             part: PartContext | None = None) -> Document:
    """Document `kind` for this report (or one split part) with its title and labels beside the body."""
    render = report.config.render
    title = part.subject if part is not None else mps_title(render.title)
    return Document(kind=kind, title=title, body=render_document(kind, report, templates=templates, part=part),
                    labels=render.labels, maintainer_labels=render.maintainer_labels, cc=render.cc,
                    reviewers=render.reviewers)


def mps_title(title: str) -> str:
    """PyTorch titles MPS pull requests `[MPS] ...`."""
    return title if title.startswith("[MPS]") else f"[MPS] {title}"


def unified_diff(current: str, fresh: str, label: str) -> str:
    """What a fresh render would change in the file at `label`, as a unified diff ("" when nothing)."""
    lines = difflib.unified_diff(
        current.splitlines(keepends=True), fresh.splitlines(keepends=True),
        fromfile=f"{label} (on disk)", tofile=f"{label} (fresh render)",
    )
    return "".join(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines)
