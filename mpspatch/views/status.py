"""`status` and `lock`: the series, its base and lock, the evidence and readiness; the JSON models."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mpspatch.model.series import relative_path
from mpspatch.views.console import escape, note, out, show_comparison
from mpspatch.views.stats import StatsJson, stats_json

if TYPE_CHECKING:
    from mpspatch.commands.series import LockWritten
    from mpspatch.model.submission import Submission
    from mpspatch.reporting.report import Gap, StageState, StatusReport


@dataclass(frozen=True)
class SeriesPatchJson:
    path: str  # relative to the config folder
    sha256: str
    files: int
    insertions: int
    deletions: int


@dataclass(frozen=True)
class LockStateJson:
    path: str
    matches: bool
    problems: tuple[str, ...]


@dataclass(frozen=True)
class EvidenceJson:
    run_id: str
    created_at: str


@dataclass(frozen=True)
class LintFindingsJson:
    new: int  # on lines the series adds or changes: the submitter's
    preexisting: int  # already in the base version of the file


@dataclass(frozen=True)
class StageStateJson:
    name: str
    state: str
    why: str
    run_id: str | None
    log: str | None
    counts: Mapping[str, int]  # what the stage's parser counted; {} before any run
    lint: LintFindingsJson | None  # lint stages with the baseline on; null otherwise
    notes: tuple[str, ...]  # e.g. the clang-format in use is not the version the checkout pins


@dataclass(frozen=True)
class RegressionJson:
    stage: str
    kind: str  # test | race | lint
    id: str
    since_run: str  # the newest earlier passing run of the stage, on another base


@dataclass(frozen=True)
class PreexistingJson:
    stage: str
    kind: str
    id: str
    failed_in: str  # an earlier run, on another base, in which it failed too


@dataclass(frozen=True)
class CheckJson:
    name: str
    title: str
    state: str
    detail: str
    fix: str


@dataclass(frozen=True)
class HumanActionJson:
    id: str
    title: str
    action: str
    blocking: bool


@dataclass(frozen=True)
class GapJson:
    id: str
    title: str
    reason: str
    blocking: bool
    fix: str

    @classmethod
    def of(cls, gap: Gap) -> GapJson:
        return cls(id=gap.id, title=gap.title, reason=gap.reason, blocking=gap.blocking, fix=gap.fix)


@dataclass(frozen=True)
class StoppedRebaseJson:
    onto_ref: str
    onto: str
    base: str
    phase: str  # prepared | rebasing | writing
    worktree: str  # where the conflicts are resolved
    conflicted: tuple[str, ...]  # paths of the current stop


@dataclass(frozen=True)
class SubmittedPartJson:
    index: int
    branch: str
    commit: str
    pr: int | None
    url: str


@dataclass(frozen=True)
class SubmissionJson:
    """The last `mpspatch submit`: which version, the issue, and each part's PR and pushed SHA."""

    repo: str
    issue: int | None
    issue_url: str
    version: str | None  # "v2"; null before any PR was opened
    versions: int
    draft: bool
    base: str | None
    series_sha256: str | None
    # Whether the series now differs from the one the last version was made from; `submit --compare vN`
    # shows the per-patch range-diff. Null when no series hash is known.
    series_changed: bool | None
    parts: tuple[SubmittedPartJson, ...]
    landed: tuple[SubmittedPartJson, ...]  # parts whose PR landed upstream (merge-bot trailer), over all versions
    stale: tuple[SubmittedPartJson, ...]  # branches and PRs of parts the stack no longer has (not deleted)


def submission_json(submission: Submission, series_sha256: str | None = None) -> SubmissionJson:
    latest = submission.latest
    return SubmissionJson(
        repo=submission.repo, issue=submission.issue, issue_url=submission.issue_url,
        version=latest.name if latest else None, versions=len(submission.versions),
        draft=latest.draft if latest else False, base=latest.base if latest else None,
        series_sha256=latest.series_sha256 if latest else None,
        series_changed=latest.series_sha256 != series_sha256 if latest and series_sha256 else None,
        parts=tuple(SubmittedPartJson(index=p.index, branch=p.branch, commit=p.commit, pr=p.pr, url=p.url)
                    for p in (latest.parts if latest else ())),
        landed=tuple(SubmittedPartJson(index=p.index, branch=p.branch, commit=p.commit, pr=p.pr, url=p.url)
                     for p in submission.landed),
        stale=tuple(SubmittedPartJson(index=p.index, branch=p.branch, commit=p.commit, pr=p.pr, url=p.url)
                    for p in (latest.stale if latest else ())),
    )


@dataclass(frozen=True)
class StatusJson:
    config: str
    series: tuple[SeriesPatchJson, ...]
    series_sha256: str
    base_ref: str
    base: str  # the locked SHA once there is a lock; before that, the configured ref, so CI can still key caches
    base_locked: bool
    target: str
    lock: LockStateJson
    stats: StatsJson
    evidence: EvidenceJson | None
    stages: tuple[StageStateJson, ...]
    checks: tuple[CheckJson, ...]
    human_actions: tuple[HumanActionJson, ...]
    ready: bool
    gaps: tuple[GapJson, ...]
    rebase: StoppedRebaseJson | None  # null unless a rebase is stopped
    submission: SubmissionJson | None = None  # null until `mpspatch submit` ran
    regressions: tuple[RegressionJson, ...] = ()  # from the evidence that counts for the series and base
    preexisting: tuple[PreexistingJson, ...] = ()  # failures that failed on an earlier base too


def status_json(report: StatusReport, submission: Submission | None = None) -> StatusJson:
    config = report.config
    latest = report.latest
    return StatusJson(
        config=str(config.path),
        series=tuple(SeriesPatchJson(path=relative_path(p.path, config.root), sha256=p.sha256, files=len(p.files),
                                     insertions=p.insertions, deletions=p.deletions) for p in report.patches),
        series_sha256=report.series_sha256,
        base_ref=report.base_ref,
        base=report.base if report.base is not None else config.upstream.base,
        base_locked=report.lock.lock is not None,
        target=config.upstream.target,
        lock=LockStateJson(path=str(config.series.lock), matches=report.lock.matches,
                           problems=tuple(report.lock.problems)),
        stats=stats_json(report.stats),
        evidence=EvidenceJson(run_id=latest.run_id, created_at=latest.created_at) if latest else None,
        stages=tuple(StageStateJson(name=s.name, state=s.state, why=s.why, run_id=s.run_id, log=s.log,
                                    counts=dict(s.result.counts) if s.result else {}, lint=_lint(s),
                                    notes=s.result.pin_notes if s.result else ())
                     for s in report.stages),
        checks=tuple(CheckJson(name=c.name, title=c.title, state=c.state, detail=c.detail, fix=c.fix)
                     for c in report.checks),
        human_actions=tuple(HumanActionJson(id=r.requirement.id, title=r.requirement.title,
                                            action=r.requirement.target, blocking=r.requirement.blocking)
                            for r in report.human_rows),
        ready=report.ready,
        gaps=tuple(GapJson.of(g) for g in report.gaps),
        rebase=None if report.rebase is None else StoppedRebaseJson(
            onto_ref=report.rebase.onto_ref, onto=report.rebase.onto, base=report.rebase.base,
            phase=report.rebase.phase, worktree=str(config.root / report.rebase.worktree),
            conflicted=report.rebase.conflicted),
        submission=submission_json(submission, report.series_sha256) if submission is not None else None,
        regressions=tuple(RegressionJson(stage=r.stage, kind=r.kind, id=r.id, since_run=r.since_run)
                          for r in report.comparison.regressions),
        preexisting=tuple(PreexistingJson(stage=p.stage, kind=p.kind, id=p.id, failed_in=p.failed_in)
                          for p in report.comparison.preexisting),
    )


def _lint(stage: StageState) -> LintFindingsJson | None:
    counts = dict(stage.result.counts) if stage.result else {}
    if "new" not in counts or "preexisting" not in counts:
        return None
    return LintFindingsJson(new=counts["new"], preexisting=counts["preexisting"])


def lint_line(stage: StageState) -> str:
    """"; lint findings: 1 new, 5 pre-existing" for a lint stage with the baseline on, else ""."""
    found = _lint(stage)
    return f"; lint findings: {found.new:,} new, {found.preexisting:,} pre-existing" if found else ""


def show_status(report: StatusReport, submission: Submission | None = None) -> None:
    console = out()
    root = report.config.root
    stopped = report.rebase
    if stopped is not None:
        # First, before anything else: every figure below is about the series as it was before this rebase.
        console.print(f"[bold red]REBASE STOPPED[/] onto {escape(stopped.onto_ref)} ({stopped.onto[:12]}) from "
                      f"{escape(stopped.base_ref)} ({stopped.base[:12]}); the series below is the one before it")
        if stopped.conflicted:
            worktree = relative_path(root / stopped.worktree, root)
            console.print(f"  {len(stopped.conflicted)} file(s) conflicted in {worktree}: "
                          f"{', '.join(stopped.conflicted)}", markup=False)
        console.print("  finish it with `mpspatch rebase --continue` or drop it with `mpspatch rebase --abort`",
                      markup=False)
    console.print(f"[bold]Series[/] ({len(report.patches)} patch(es), {report.stats.files} files, "
                  f"+{report.stats.insertions} -{report.stats.deletions})")
    for patch in report.patches:
        console.print(f"  {relative_path(patch.path, root)}  sha256 {patch.sha256[:12]}", markup=False)
    base = report.base if report.base is not None else "(not locked)"
    console.print(f"[bold]Base[/] {report.base_ref} {base}   [bold]Target[/] {report.config.upstream.target}",
                  markup=True)
    lock_state = "[green]matches[/]" if report.lock.matches else "[red]does not match[/]"
    console.print(f"[bold]Lock[/] {lock_state}")
    for problem in report.lock.problems:
        console.print(f"  - {problem}", markup=False)
    latest = report.latest
    evidence = f"run {latest.run_id} ({latest.created_at})" if latest else "none yet (run `mpspatch verify`)"
    console.print(f"[bold]Evidence[/] {evidence}", highlight=False)
    for stage in report.stages:
        console.print(f"  {stage.name}: {stage.why or 'passed'}{lint_line(stage)}", markup=False)
        for line in stage.result.pin_notes if stage.result else ():
            console.print(f"    note: {line}", markup=False)
    show_comparison(console, report.comparison.regressions, report.comparison.preexisting)
    blocking = len(report.blocking_gaps)
    verdict = "[green]READY[/]" if report.ready else f"[red]NOT READY[/] — {blocking} blocking gap(s)"
    console.print(f"[bold]Readiness[/] {verdict}")
    for gap in report.gaps:
        marker = "blocking" if gap.blocking else "advisory"
        fix = f"; fix: {gap.fix}" if gap.fix else ""
        console.print(f"  - [{gap.id}] {gap.title}: {gap.reason} ({marker}){fix}", markup=False)
    for row in report.human_rows:
        console.print(f"  - HUMAN ACTION [{row.requirement.id}] {row.requirement.target}", markup=False)
    if submission is not None:
        from mpspatch.views.submit import submission_line

        console.print("[bold]Submitted[/] " + escape(submission_line(submission)), soft_wrap=True)
        sent = submission.latest
        if sent is not None and sent.series_sha256 != report.series_sha256:
            console.print(f"  the series changed since {sent.name}; `mpspatch submit --dry-run --compare "
                          f"{sent.name}` shows the range-diff per patch", markup=False, soft_wrap=True)


# ------------------------------------------------------------------------------------------------- lock


@dataclass(frozen=True)
class LockJson:
    lock: str
    base: str
    base_ref: str
    patches: tuple[str, ...]


def lock_json(written: LockWritten) -> LockJson:
    return LockJson(lock=str(written.lock), base=written.base, base_ref=written.base_ref,
                    patches=tuple(written.patches))


def show_lock(written: LockWritten) -> None:
    note(f"wrote {written.lock}: base {written.base_ref} = {written.base}, {len(written.patches)} patch(es)")
