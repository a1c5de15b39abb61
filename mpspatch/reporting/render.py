"""The three submission documents, rendered from data: series stats, the status report and its evidence.

Rendering is a pure function of a StatusReport (which already holds the stats, the checklist rows, the
stage evidence, the computed checks and the hand-written prose): same data in, same bytes out. Nothing
volatile goes in (no clock, no machine path), so `--check` can compare a committed file with a fresh
render byte for byte.
"""

from __future__ import annotations

import difflib
import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from mpspatch.foundation.config import StageKind
from mpspatch.model.series import CategoryStats, series_paths
from mpspatch.model.stack import PartContext
from mpspatch.reporting.requirements import CHECK, STAGE
from mpspatch.reporting.status import Row, StageState, Standing, StatusReport
from mpspatch.reporting.text import count, format_counts, relative

if TYPE_CHECKING:
    import jinja2

    from mpspatch.foundation.config import Config

DOCUMENTS = {
    "pr": ("pr_description.md.j2", "pr_description.md"),
    "issue": ("github_issue.md.j2", "github_issue.md"),
    "audit": ("submission_audit.md.j2", "submission_audit.md"),
}
ISSUE_PLACEHOLDER = "ISSUE_NUMBER"
TEST_COUNT_KEYS = ("passed", "failed", "skipped", "errors")
VERIFICATION_AREA = "Verification"  # the checklist area the audit shows as its verification summary


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
def environment(folder: Path) -> jinja2.Environment:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(folder)),
        undefined=jinja2.StrictUndefined,  # a misspelled variable is an error, never an empty string
        autoescape=False,  # Markdown, not HTML
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["num"] = lambda value: f"{int(value):,}"
    env.filters["plural"] = _plural
    return env


def _plural(n: int, noun: str) -> str:
    return count(n, noun)


def render_document(kind: str, report: StatusReport, *, templates: Path | None = None,
                    part: PartContext | None = None) -> str:
    """The Markdown text of document `kind` (pr, issue or audit) for this report, or for one split part."""
    if kind not in DOCUMENTS:
        raise ValueError(f"unknown document {kind!r}")
    template = environment(templates or templates_dir()).get_template(DOCUMENTS[kind][0])
    text = template.render(doc=document_data(report, part))
    # Template whitespace control is fiddly across loops and macros; one rule here keeps the Markdown tidy:
    # at most one blank line in a row, exactly one newline at the end.
    return _BLANK_RUNS.sub("\n\n", text).strip("\n") + "\n"


_BLANK_RUNS = re.compile(r"\n(?:[ \t]*\n){2,}")


@dataclass(frozen=True)
class Document:
    """One document as GitHub takes it: the title, the body and the labels are separate fields."""

    kind: str  # pr | issue | audit
    title: str
    body: str
    labels: tuple[str, ...]


def document(kind: str, report: StatusReport, *, templates: Path | None = None,
             part: PartContext | None = None) -> Document:
    """Document `kind` for this report (or one split part) with its title and labels beside the body."""
    title = part.subject if part is not None else report.config.render.title
    return Document(kind=kind, title=title, body=render_document(kind, report, templates=templates, part=part),
                    labels=report.config.render.labels)


def unified_diff(current: str, fresh: str, label: str) -> str:
    """What a fresh render would change in the file at `label`, as a unified diff ("" when nothing)."""
    lines = difflib.unified_diff(
        current.splitlines(keepends=True), fresh.splitlines(keepends=True),
        fromfile=f"{label} (on disk)", tofile=f"{label} (fresh render)",
    )
    return "".join(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines)


# ----------------------------------------------------------------------------------------- view model


@dataclass(frozen=True)
class TestFigures:
    passed: int
    failed: int
    skipped: int
    errors: int

    @property
    def total(self) -> int:
        return self.passed + self.failed + self.skipped + self.errors


@dataclass(frozen=True)
class StageView:
    name: str
    kind: str  # the stage kind, or "unknown"
    state: Standing
    why: str
    counts: str  # "races 0, warnings 0", or "" when nothing was counted
    run_id: str | None
    created_at: str | None
    log: str | None
    cached_from: str | None
    commands: tuple[str, ...]  # as run, from the evidence, with machine paths cut
    details: tuple[str, ...]  # notable lines from the evidence, with machine paths cut
    planned: tuple[str, ...]  # as configured, placeholders kept
    requires: str  # "" when the stage runs anywhere
    tests: TestFigures | None  # kind = tests with a result
    races: int | None  # kind = tsan with a result


@dataclass(frozen=True)
class RowView:
    row: Row
    evidence: str  # the Markdown for the Evidence column


@dataclass(frozen=True)
class AreaView:
    name: str
    rows: tuple[RowView, ...]


@dataclass(frozen=True)
class CategoryView:
    name: str
    files: tuple[str, ...]
    insertions: int
    deletions: int


@dataclass(frozen=True)
class DocumentData:
    report: StatusReport
    title: str  # with the [MPS] prefix
    issue: str  # the number, or the placeholder
    issue_known: bool
    status_line: str
    series: tuple[tuple[str, str], ...]  # (path relative to the config folder, sha256)
    requirements_path: str
    areas: tuple[AreaView, ...]  # the checklist areas, in order, without the verification area
    verification: AreaView | None  # the checklist's "Verification" area, shown in its own summary
    stages: tuple[StageView, ...]
    categories: tuple[CategoryView, ...]  # every configured category, then uncategorized files if any
    max_lines: int
    labels: tuple[str, ...]
    part: PartContext | None = None  # set when rendering one PR of the split stack

    @property
    def all_areas(self) -> tuple[AreaView, ...]:
        return self.areas + ((self.verification,) if self.verification else ())

    @property
    def series_title(self) -> str:
        """The whole series' title; `title` is the part's own when rendering a part."""
        return f"[MPS] {self.report.config.render.title}"


def document_data(report: StatusReport, part: PartContext | None = None) -> DocumentData:
    config = report.config
    stages = tuple(_stage_view(s, report) for s in report.stages)
    areas: tuple[AreaView, ...] = ()
    if report.requirements is not None:
        areas = tuple(
            AreaView(area, tuple(RowView(row, _evidence(row)) for row in report.rows if row.requirement.area == area))
            for area in report.requirements.areas
        )
    verification = next((a for a in areas if a.name == VERIFICATION_AREA), None)
    return DocumentData(
        report=report,
        title=part.subject if part else f"[MPS] {config.render.title}",
        issue=str(config.render.issue) if config.render.issue is not None else ISSUE_PLACEHOLDER,
        issue_known=config.render.issue is not None,
        status_line=status_line(report),
        series=tuple((relative(p.path, config.root), p.sha256) for p in report.patches),
        requirements_path=relative(config.render.requirements, config.root),
        areas=tuple(a for a in areas if a is not verification),
        verification=verification,
        stages=stages,
        categories=_categories(report),
        max_lines=part.max_lines if part else config.split.max_lines,
        labels=config.render.labels,
        part=part,
    )


def status_line(report: StatusReport) -> str:
    if report.ready:
        return "READY FOR SUBMISSION"
    return f"NOT READY — {_plural(len(report.blocking_gaps), 'gap')}"


def _categories(report: StatusReport) -> tuple[CategoryView, ...]:
    stats = report.stats
    views = [CategoryView(c.name, tuple(c.files), c.insertions, c.deletions) for c in stats.categories]
    if stats.uncategorized:
        # SeriesStats keeps per-category sums only, so the rest of the totals belongs to the uncategorized files.
        views.append(CategoryView(
            "Uncategorized", tuple(stats.uncategorized),
            stats.insertions - _sum(stats.categories, "insertions"),
            stats.deletions - _sum(stats.categories, "deletions"),
        ))
    return tuple(views)


def _sum(categories: Sequence[CategoryStats], field: str) -> int:
    return sum(int(getattr(c, field)) for c in categories)


def _stage_view(stage: StageState, report: StatusReport) -> StageView:
    result = stage.result
    known = series_paths(report.patches, renamed_from=False)
    # Figures only where the evidence counted something: a skipped run has no counts, and "0 of 0 passed"
    # would read like a result.
    counted = dict(result.counts) if result else {}
    tests = (TestFigures(*(counted.get(k, 0) for k in TEST_COUNT_KEYS))
             if counted and stage.kind == StageKind.TESTS else None)
    races = counted.get("races", 0) if counted and stage.kind == StageKind.TSAN else None
    definition = stage.definition
    return StageView(
        name=stage.name,
        kind=stage.kind or "unknown",
        state=stage.state,
        why=stage.why,
        counts=format_counts(result.counts) if result else "",
        run_id=stage.run_id,
        created_at=stage.run_created_at,
        log=stage.log,
        cached_from=result.cached_from if result else None,
        commands=tuple(tidy(show_argv(c), known) for c in result.commands) if result else (),
        details=tuple(tidy(d, known) for d in result.details) if result else (),
        planned=tuple(show_argv(c) for c in definition.run) if definition else (),
        requires=_requires(stage),
        tests=tests,
        races=races,
    )


def _requires(stage: StageState) -> str:
    if stage.definition is None:
        return ""
    req = stage.definition.requires
    parts = [p for p in (req.os, req.arch) if p] + (["a working MPS device"] if req.mps else [])
    return ", ".join(parts)


_PLAIN_ARG = re.compile(r"[\w@%+=:,./{}*-]+")


def show_argv(argv: Sequence[str]) -> str:
    """argv as a reader would type it: shell quoting only where needed, `{placeholders}` left bare."""
    return " ".join(a if _PLAIN_ARG.fullmatch(a) else shlex.quote(a) for a in argv)


_ABSOLUTE = re.compile(r"(?<![\w.~-])/[^\s:'\"(),]+")


def tidy(text: str, known_paths: Sequence[str]) -> str:
    """Cut machine-specific prefixes: an absolute path ending in a patched path becomes that path, any other
    absolute path becomes its last component. Documents go to GitHub; the runner's home folder must not."""

    def shorten(match: re.Match[str]) -> str:
        path = match.group(0)
        for known in known_paths:
            if path.endswith("/" + known):
                return known
        return path.rstrip("/").rsplit("/", 1)[-1] or path

    return _ABSOLUTE.sub(shorten, text)


def _evidence(row: Row) -> str:
    """The Evidence column: where the status comes from, with the numbers that back it."""
    req = row.requirement
    if req.kind == STAGE and row.stage is not None:
        stage = row.stage
        parts = [f"stage `{stage.name}`: {stage.why or 'passed'}"]
        if stage.passed and stage.result is not None and stage.result.counts:
            parts[0] += f" ({format_counts(stage.result.counts)})"
        if stage.run_id:
            parts.append(f"run `{stage.run_id}`")
        if stage.log:
            parts.append(f"log `{stage.log}`")
        text = "; ".join(parts)
    elif req.kind == CHECK and row.check is not None:
        text = f"check `{row.check.name}`: {row.check.detail}"
    else:
        text = req.target
    if req.note:
        text += f" ({req.note})"
    return text.replace("|", "\\|")  # keep Markdown table cells intact
