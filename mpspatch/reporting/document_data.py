"""What the document templates see: the status report turned into plain view data (figures, stage results
worded for the public documents, categories, landed changes), so templates only place text."""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mpspatch.foundation.config import StageKind
from mpspatch.model.landed import LandedChange, by_pull_request
from mpspatch.model.series import CategoryStats, series_paths
from mpspatch.model.stack import PartContext
from mpspatch.reporting.prose import ProseFragment
from mpspatch.reporting.report import Row, StageState, Standing, StatusReport
from mpspatch.reporting.requirements import CHECK, STAGE
from mpspatch.reporting.text import count, format_counts, one_line, relative

if TYPE_CHECKING:

    pass

TEST_COUNT_KEYS = ("passed", "failed", "skipped", "errors")
VERIFICATION_AREA = "Verification"  # the checklist area the audit shows as its verification summary


def plural(n: int, noun: str) -> str:
    return count(n, noun)


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
    describe: str  # what the stage checks, in words: [[stages]].describe, else one said from its kind
    reproduce: tuple[str, ...]  # [[stages]].reproduce: what a reviewer types; never the argv with placeholders
    measured_on: str  # "macOS 15.1, arm64, Apple M2" as the evidence records the machine; "" when it does not
    public_result: str  # the result as a reviewer reads it: no run id, no tool command, no local path


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
    issue: str | None  # the number; None when [render].issue is not set (the body then names no issue)
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
    sections: tuple[ProseFragment, ...] = ()  # the [render].sections that are written, in order
    unwritten: tuple[ProseFragment, ...] = ()  # the ones that are not (the audit lists the required ones)
    maintainer_labels: tuple[str, ...] = ()
    cc: tuple[str, ...] = ()
    reviewers: tuple[str, ...] = ()
    provenance: str = ""  # for an HTML comment: series sha256, base, mpspatch version
    landed: tuple[str, ...] = ()  # one sentence per upstream PR: which files (or hunks) it landed of the series
    landed_onto: tuple[str, ...] = ()  # the refs of the rebases that found them (for the audit)

    def section(self, name: str) -> ProseFragment | None:
        """A written section by name, or None: templates place the ones they know where they belong."""
        return next((s for s in self.sections if s.name == name), None)

    def sections_except(self, *names: str) -> tuple[ProseFragment, ...]:
        return tuple(s for s in self.sections if s.name not in names)

    @property
    def all_areas(self) -> tuple[AreaView, ...]:
        return self.areas + ((self.verification,) if self.verification else ())

    @property
    def series_title(self) -> str:
        """The whole series' title; `title` is the part's own when rendering a part."""
        return f"[MPS] {self.report.config.render.title}"


def document_data(report: StatusReport, part: PartContext | None = None) -> DocumentData:
    config = report.config
    stages = tuple(_stage_view(s, report, part) for s in report.stages)
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
        issue=str(config.render.issue) if config.render.issue is not None else None,  # no placeholder in public text
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
        sections=tuple(p for p in report.prose if p.present),
        unwritten=tuple(p for p in report.prose if not p.present),
        maintainer_labels=config.render.maintainer_labels,
        cc=config.render.cc,
        reviewers=config.render.reviewers,
        provenance=provenance(report),
        landed=landed_sentences(report.landed),
        landed_onto=tuple(dict.fromkeys(f"{c.onto_ref} ({c.onto[:12]})" for c in report.landed)),
    )


def landed_sentences(changes: Sequence[LandedChange]) -> tuple[str, ...]:
    """"`a/MPSGuardImpl.h` and `a/MPSHooks.h` landed upstream in #190375", one sentence per pull request."""
    sentences = []
    for group in by_pull_request(changes):
        what = [f"`{c.path}`" if c.whole_file else f"{c.hunks:,} of the {c.of_hunks:,} hunks of `{c.path}`"
                for c in group.changes]
        listed = what[0] if len(what) == 1 else ", ".join(what[:-1]) + " and " + what[-1]
        if group.pull_request is None:
            verb = "was" if len(what) == 1 else "were"
            sentences.append(f"{listed} {verb} already upstream (no landing pull request is named)")
        else:
            sentences.append(f"{listed} landed upstream in #{group.pull_request}")
    return tuple(sentences)


def provenance(report: StatusReport) -> str:
    """What the public documents were made from, for an HTML comment GitHub does not show."""
    from mpspatch import __version__

    base = f"{report.base_ref} {report.base}" if report.base else f"{report.base_ref} (not locked)"
    return f"series sha256 {report.series_sha256}; base {base}; mpspatch {__version__}"


def status_line(report: StatusReport) -> str:
    if report.ready:
        return "READY FOR SUBMISSION"
    return f"NOT READY — {plural(len(report.blocking_gaps), 'gap')}"


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


def _stage_view(stage: StageState, report: StatusReport, part: PartContext | None = None) -> StageView:
    result = stage.result
    known = series_paths(report.patches, renamed_from=False)
    # Figures only where the evidence counted something: a skipped run has no counts, and "0 of 0 passed"
    # would read like a result.
    counted = dict(result.counts) if result else {}
    tests = (TestFigures(*(counted.get(k, 0) for k in TEST_COUNT_KEYS))
             if counted and stage.kind == StageKind.TESTS else None)
    races = counted.get("races", 0) if counted and stage.kind == StageKind.TSAN else None
    definition = stage.definition
    measured_on = machine_kind(stage.machine)
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
        describe=(definition.describe if definition and definition.describe else _KIND_WORDS.get(
            str(stage.kind), f"Runs the `{stage.name}` stage")),
        reproduce=definition.reproduce if definition else (),
        measured_on=measured_on,
        public_result=_public_result(stage, tests, races, measured_on, report, part, known),
    )


_KIND_WORDS = {
    "build": "Builds PyTorch from source with the change applied",
    "lint": "Lints the changed files with PyTorch's own linters",
    "tsan": "Runs a multi-threaded harness under ThreadSanitizer",
    "tests": "Runs the tests",
    "command": "Runs a check",
}
_OS_NAMES = {"darwin": "macOS", "linux": "Linux", "windows": "Windows"}


def machine_kind(machine: Sequence[tuple[str, str]]) -> str:
    """"macOS 15.1, arm64, Apple M2" from what the evidence records; "" when it records nothing."""
    fields = dict(machine)
    if not fields:
        return ""
    os_name = _OS_NAMES.get(fields.get("os", ""), fields.get("os", ""))
    version = fields.get("os_version", "")
    first = version if os_name == "Linux" and version else " ".join(p for p in (os_name, version) if p)
    return ", ".join(p for p in (first, fields.get("arch", ""), fields.get("model", "")) if p)


def _public_result(stage: StageState, tests: TestFigures | None, races: int | None, measured_on: str,
                   report: StatusReport, part: PartContext | None, known: Sequence[str]) -> str:
    """The result in a reviewer's words. No run id, no tool command: those are the submitter's, in the audit.

    For one part of a stack, a pass counts only when the evidence was made on that part's own tree; a pass of
    the whole series is said as such, never as this part's pass.
    """
    where = f" on {measured_on}" if measured_on else " (machine not recorded)"
    if stage.state == Standing.PASSED:
        if part is not None and stage.tree != str(part.tree):
            # Whole-series evidence: said as such, with its figures, and never as this part's pass.
            if tests is not None:
                seen = f": {tests.total:,} tests ran, {tests.failed:,} failed"
            elif races is not None:
                seen = f": {count(races, 'data race')} reported"
            else:
                seen = ""
            measured = f" (measured on {measured_on})" if measured_on else where
            return (f"verified as part of the whole series (series sha256 `{report.series_sha256[:12]}`), not on "
                    f"this part alone{seen}{measured}")
        if tests is not None:
            figures = f"{tests.passed:,} of {tests.total:,} tests passed"
            if tests.skipped:
                figures += f" ({tests.skipped:,} skipped)"
        elif races is not None:
            figures = f"passed, {count(races, 'data race')} reported"
        elif stage.result is not None and stage.result.counts:
            figures = f"passed ({format_counts(stage.result.counts)})"
        else:
            figures = "passed"
        # Here a part's pass was made on its own tree (`verify --part K`): said so, as PyTorch CI builds it alone.
        return figures + where + (" (verified on this part alone)" if part is not None else "")
    if stage.state == Standing.FAILED:
        reason = one_line(stage.result.reason) if stage.result is not None else ""
        reason = tidy(reason, known)
        return f"failed{': ' + reason if reason else ''}{where}"
    if stage.state == Standing.ERROR:
        return f"could not be completed{where}"
    if stage.state == Standing.SKIPPED:
        return f"not run yet: it needs {stage_needs(stage)}" if _requires(stage) else "not run yet"
    return "not yet run on this version of the series"


def stage_needs(stage: StageState) -> str:
    return _requires(stage).replace("darwin", "macOS")


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
