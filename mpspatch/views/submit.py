"""`submit`: every command run (or, with --dry-run, to be run), the PRs, and the JSON model of the contract."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from mpspatch.views.console import out

if TYPE_CHECKING:
    from mpspatch.model.submission import Submission
    from mpspatch.operations.submit import SubmitResult


@dataclass(frozen=True)
class StepJson:
    command: str  # exactly as it runs, shell-quoted
    purpose: str
    outcome: str  # "" with --dry-run


@dataclass(frozen=True)
class LabelJson:
    name: str
    outcome: str  # applied | requested (a `@pytorchbot label` comment was posted)


@dataclass(frozen=True)
class SubmitPartJson:
    index: int
    title: str
    branch: str
    commit: str
    pushed: bool
    pr: int | None
    url: str
    action: str  # created | updated | would create | would update | ghstack
    labels: tuple[LabelJson, ...]
    message: str


@dataclass(frozen=True)
class PatchChangeJson:
    old: int | None
    new: int | None
    change: str  # unchanged | changed | added | dropped
    subject: str


@dataclass(frozen=True)
class ComparisonJson:
    since: str
    changes: tuple[PatchChangeJson, ...]


@dataclass(frozen=True)
class LandedPartJson:
    index: int  # its place in the last version
    title: str
    pr: int
    url: str
    upstream: str  # the upstream commit whose merge-bot trailer names the PR


@dataclass(frozen=True)
class StalePartJson:
    index: int  # its place in the version that last had it
    title: str
    branch: str  # still on the fork: reported, not deleted
    pr: int | None
    url: str


@dataclass(frozen=True)
class SubmitJson:
    dry_run: bool
    draft: bool
    method: str
    repo: str
    fork: str
    issue: int | None
    issue_url: str
    issue_created: bool
    version: str
    new_version: bool
    parts: tuple[SubmitPartJson, ...]
    steps: tuple[StepJson, ...]
    comparison: ComparisonJson | None
    notes: tuple[str, ...]
    landed: tuple[LandedPartJson, ...]  # parts of the last version that landed upstream, dropped from the stack
    stale: tuple[StalePartJson, ...]  # branches and PRs of parts the stack no longer has


def submit_json(result: SubmitResult) -> SubmitJson:
    comparison = result.comparison
    return SubmitJson(
        dry_run=result.dry_run, draft=result.draft, method=result.method.value, repo=result.repo, fork=result.fork,
        issue=result.issue, issue_url=result.issue_url, issue_created=result.issue_created, version=result.version,
        new_version=result.new_version,
        parts=tuple(SubmitPartJson(index=p.index, title=p.title, branch=p.branch, commit=p.commit, pushed=p.pushed,
                                   pr=p.pr, url=p.url, action=p.action,
                                   labels=tuple(LabelJson(lb.name, lb.outcome.value) for lb in p.labels),
                                   message=p.message) for p in result.parts),
        steps=tuple(StepJson(s.command, s.purpose, s.outcome) for s in result.steps),
        comparison=None if comparison is None else ComparisonJson(
            since=comparison.since,
            changes=tuple(PatchChangeJson(c.old, c.new, c.change, c.subject) for c in comparison.changes)),
        notes=result.notes,
        landed=tuple(LandedPartJson(p.index, p.title, p.pr, p.url, p.upstream) for p in result.landed),
        stale=tuple(StalePartJson(p.index, p.title, p.branch, p.pr, p.url) for p in result.stale),
    )


def show_submit(result: SubmitResult) -> None:
    from mpspatch.operations.submit import summary_lines

    console = out()
    head = "Would run" if result.dry_run else "Ran"
    console.print(f"{head} ({len(result.steps)} command(s)):", markup=False)
    for step in result.steps:
        outcome = f"  [{step.outcome}]" if step.outcome else ""
        console.print(f"  $ {step.command}{outcome}", markup=False, soft_wrap=True)
        console.print(f"      {step.purpose}", markup=False, soft_wrap=True)
    if result.issue is not None:
        made = " (opened now)" if result.issue_created else ""
        console.print(f"Issue #{result.issue}{made} {result.issue_url}".rstrip(), markup=False)
    kind = "draft PRs" if result.draft else "PRs"
    verb = "would be" if result.dry_run else "is"
    console.print(f"Submission {result.version} {verb} {result.method.value} {kind} to {result.repo}:", markup=False)
    for p in result.parts:
        pr = f"#{p.pr}" if p.pr is not None else "(no number yet)" if p.action.startswith("would") else ""
        labels = ", ".join(f"{lb.name} ({lb.outcome.value})" for lb in p.labels)
        console.print(f"  {p.index}. {p.title}: {p.action} {pr} {p.url}".rstrip(), markup=False, soft_wrap=True)
        console.print(f"     branch {p.branch} at {p.commit[:12]}" + ("" if p.pushed else " (already on the fork)")
                      + (f"; labels: {labels}" if labels else ""), markup=False, soft_wrap=True)
    if result.dry_run and result.method.value == "ghstack":
        # What ghstack would read: each commit's message becomes its PR's title and body.
        for p in result.parts:
            console.print(f"Commit message of part {p.index}:", markup=False)
            for line in p.message.rstrip("\n").splitlines():
                console.print(f"    {line}".rstrip(), markup=False, soft_wrap=True)
    if result.comparison is not None:
        console.print(f"Changes since {result.comparison.since}:", markup=False)
        for line in summary_lines(result.comparison) or ("no commit changed",):
            console.print(f"  {line}", markup=False, soft_wrap=True)
    for line in result.notes:
        console.print(f"Note: {line}", markup=False, soft_wrap=True)


def submission_line(submission: Submission) -> str:
    """What `status` says about the last submission: version, issue and PRs."""
    latest = submission.latest
    issue = f"issue #{submission.issue}" if submission.issue is not None else "no issue"
    if latest is None:
        return f"{issue}; no PR yet"
    prs = ", ".join(f"#{p.pr}" for p in latest.parts if p.pr is not None) or "via ghstack"
    draft = " (draft)" if latest.draft else ""
    line = (f"{latest.name}{draft} to {submission.repo}: {issue}; PRs {prs}; pushed {latest.tip[:12]} on base "
            f"{latest.base_ref}; series sha256 {latest.series_sha256[:12]}")
    if submission.landed:
        line += "; landed upstream: " + ", ".join(f"#{p.pr}" for p in submission.landed)
    if latest.stale:
        line += "; stale, not in the stack: " + ", ".join(
            p.branch + (f" (#{p.pr})" if p.pr is not None else "") for p in latest.stale)
    return line
