"""Send the series to GitHub: the issue, the branches on the fork, one PR per stack part, the labels.

The documents come in as data (title, body, labels), rendered by the caller: this module only decides which
branches, which PRs and which commands, and runs them. Branches are pushed from the shadow repository, never
from the user's clone; commits carry the clone's user.name and user.email (the CLA check reads the author)
and the base's commit time, so the same series gives the same SHAs and a re-run pushes nothing new.

With `method = "fork"`, part K's branch holds parts 1..K (GitHub cannot base a PR on a branch of a fork), so
PR K shows every earlier part too; its body says which commit is new in it and links the PRs before it.
With `method = "ghstack"`, the parts become one linear stack of commits whose messages are the part
descriptions, and `ghstack submit` opens the PRs (it needs write access to the repository). What follows a PR
is shared by both methods (`follow_up`): the labels (`gh pr edit --add-label`, else a `@pytorchbot label`
comment) and, on an update that makes a new version, the "Changes since vN" comment.

After a rebase, a part of the last version whose PR number the merge bot's `Pull Request resolved:` trailer names
on an upstream commit between the old base and the new one (model/history.py reads the trailers) is reported
as landed and dropped, with either method: the remaining parts keep their branches and PRs in order (with
ghstack, their PRs' Pull-Request trailers), so no PR is reopened. The branches and PRs of earlier parts the
stack no longer has are reported as stale, never deleted.

Each run that pushes different commits records a new numbered version (v1, v2, ...) in the submission record;
a run that changes nothing but the text edits the PRs in place. A PR is never opened twice: the recorded number
is used, else `gh pr list --head BRANCH` finds an open one from the fork's owner.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from mpspatch.foundation import proc
from mpspatch.foundation.config import SubmitMethod
from mpspatch.foundation.errors import ConfigError, InputError
from mpspatch.foundation.files import atomic_write_text, sha256_bytes
from mpspatch.foundation.ids import CommitSha
from mpspatch.git import commits as series_git
from mpspatch.git import github as gh
from mpspatch.git import remote
from mpspatch.git import verbs as git
from mpspatch.model import history
from mpspatch.model.series import load_series
from mpspatch.model.stack import Stack
from mpspatch.model.submission import (
    PartSubmission,
    Submission,
    Version,
    read_submission,
    write_submission,
)
from mpspatch.model.workspace import Workspace
from mpspatch.operations.submit.compare import compare_versions, summary_lines
from mpspatch.operations.submit.fork import submit_fork
from mpspatch.operations.submit.ghstack import GHSTACK_INSTALL, comparable, ghstack_message, submit_ghstack
from mpspatch.operations.submit.results import Documents, Draft, LandedPart, Renderer, StalePart, SubmitResult
from mpspatch.operations.submit.steps import Part, Plan, Runner, label_notes, make_commits

__all__ = ["GHSTACK_INSTALL", "Documents", "Draft", "SubmitResult", "branch_name", "submit_series", "summary_lines"]

# ------------------------------------------------------------------------------------------- the parts


def _parts(ws: Workspace, stack: Stack | None, title: str, issue: int | None) -> tuple[Part, ...]:
    """The trees to commit: each part of the stack `split` wrote, else the whole series as one part."""
    shadow = ws.shadow
    if stack is not None:
        found = []
        for p in stack.parts:
            subject = f"[MPS] {p.title} ({p.index}/{len(stack.parts)})"
            message = remote.commit_message(shadow, p.commit) if git.has_commit(shadow, p.commit) else subject + "\n"
            found.append(Part(index=p.index, title=p.title, tree=p.tree, message=message))
        return tuple(found)
    built = series_git.series_commits(shadow, ws.base, [p.path for p in load_series(ws.config)])
    fixes = f"\n\nFixes #{issue}" if issue is not None else ""
    return (Part(index=1, title=title, tree=git.tree_sha_of(shadow, built[-1]), message=f"{title}{fixes}\n"),)


def branch_name(prefix: str, index: int) -> str:
    """Part K's branch: by place, not by title, so a retitled part keeps its branch and its PR."""
    return f"{prefix}/part-{index:02d}"


def landed_parts(shadow: Path, previous: Version, base: CommitSha) -> tuple[LandedPart, ...]:
    """The parts of `previous` that landed between its base and `base`: an upstream commit touching the part's
    files carries the merge bot's trailer with that part's own PR number."""
    if previous.base == base or not git.has_commit(shadow, previous.base) or not git.is_ancestor(
            shadow, previous.base, base):
        return ()
    found: list[LandedPart] = []
    parent: str = previous.base
    for part in previous.parts:
        if not git.has_commit(shadow, part.commit):
            return tuple(found)
        paths = git.diff_tree_paths(shadow, parent, part.commit)
        parent = part.commit
        if part.pr is None or not paths:
            continue
        by_pr = [c for c in history.upstream_commits(shadow, previous.base, base, paths)
                 if c.pull_request == part.pr]
        if by_pr:
            found.append(LandedPart(index=part.index, title=part.title, pr=part.pr, url=part.url,
                                    upstream=by_pr[0].sha))
    return tuple(found)


def _match(prefix: str, parts: Sequence[Part], record: Submission | None, previous: Version | None,
           landed: Sequence[LandedPart]) -> Plan:
    """The parts of the last version that did not land continue, in order, as the new parts 1, 2, ...; a new
    part beyond them gets the first part-NN branch no version used; old parts beyond the new stack are stale."""
    gone = {p.index for p in landed}
    survivors = [p for p in (previous.parts if previous is not None else ()) if p.index not in gone]
    used = {p.branch for v in (record.versions if record is not None else ()) for p in (*v.parts, *v.stale)}
    matched: list[PartSubmission | None] = []
    branches: list[str] = []
    n = 0
    for k, _ in enumerate(parts):
        if k < len(survivors):
            matched.append(survivors[k])
            branches.append(survivors[k].branch)
            continue
        n = max(n, k + 1)
        while branch_name(prefix, n) in used or branch_name(prefix, n) in branches:
            n += 1
        matched.append(None)
        branches.append(branch_name(prefix, n))
    stale = list(survivors[len(parts):])
    if previous is not None:  # still stale from before, unless a new part took the branch back
        stale = [p for p in previous.stale if p.branch not in branches] + stale
    return Plan(matched=tuple(matched), branches=tuple(branches), stale=tuple(stale))


# ------------------------------------------------------------------------------------------ the use case


def submit_series(ws: Workspace, stack: Stack | None, render: Renderer, *, dry_run: bool, draft: bool,
                  compare: str | None = None) -> SubmitResult:
    config, settings = ws.config, ws.config.submit
    method = settings.method
    fork, owner = settings.fork or "", settings.owner or ""
    if method == SubmitMethod.FORK:
        if not fork:
            raise ConfigError(f"{config.path}: [submit].fork is not set; fix: fork = "
                              '"https://github.com/YOU/pytorch.git" (your fork of the repository)')
        if not owner:
            raise ConfigError(f"{config.path}: [submit].owner is not set and {fork!r} is not a GitHub URL; fix: "
                              'owner = "YOU" (the GitHub account that owns the fork)')
    elif not dry_run and proc.which("ghstack") is None:
        raise InputError(f"ghstack: not found on PATH ([submit].method = \"ghstack\"); {GHSTACK_INSTALL}")
    record = read_submission(config)
    previous = record.latest if record is not None else None
    run = Runner(config.root, dry_run)
    notes: list[str] = []
    body_dir = config.state_dir / "submit"

    # 1. The issue.
    issue = config.render.issue if config.render.issue is not None else (record.issue if record else None)
    issue_url = record.issue_url if record and record.issue == issue else ""
    issue_created = False
    if issue is None:
        first = render(None)
        if first.issue is None:
            raise ValueError("the renderer gave no issue document although no issue exists")
        body_file = body_dir / "issue.md"
        if not dry_run:
            atomic_write_text(body_file, first.issue.body)
        made = run.gh(gh.issue_create_argv(settings.repo, first.issue.title, body_file), "open the issue")
        if made is not None:
            issue, issue_url = gh.number_from_url(made.stdout, "issue")
            issue_created = True
            # Recorded at once: a failure further on must not open a second issue on the next run.
            record = _with_issue(record, settings.repo, fork, owner, issue, issue_url)
            write_submission(config, record)
            notes.append(f"opened issue #{issue}; set [render].issue = {issue} in {config.path.name} so "
                         "`render-pr` and `status` use it too")
    docs = render(issue)

    # 2. The commits, in the shadow repository.
    base, base_ref = ws.base, ws.base_ref
    parts = _parts(ws, stack, config.render.title, issue)
    if len(docs.parts) != len(parts):
        raise ValueError(f"{len(docs.parts)} documents for {len(parts)} parts")
    # Which part of the last version each part continues: its branch and PR, after the ones that landed.
    landed = landed_parts(ws.shadow, previous, base) if previous is not None else ()
    plan = _match(settings.branch_prefix, parts, record, previous, landed)
    if method == SubmitMethod.GHSTACK:
        # A part ghstack opened before carries that PR's trailer, so ghstack updates it instead of opening one.
        messages = [ghstack_message(d, m.url if m is not None else "")
                    for d, m in zip(docs.parts, plan.matched, strict=True)]
    else:
        messages = [p.message for p in parts]
    made_commits = make_commits(ws, base, messages, [p.tree for p in parts])
    # What range-diff compares: the commits themselves, or with ghstack (whose messages carry the whole PR body
    # and its own trailers) the same trees under their titles alone, so a part is "changed" only by its diff.
    if method == SubmitMethod.GHSTACK:
        compared = make_commits(ws, base, [f"{d.title}\n" for d in docs.parts], [p.tree for p in parts])
    else:
        compared = made_commits
    patches = load_series(config)
    series_sha = str(sha256_bytes("".join(f"{p.sha256}\n" for p in patches).encode()))
    comparison = None
    if compare is not None:
        if record is None:
            raise InputError(f"--compare {compare}: nothing was submitted yet, so there is no version to compare")
        comparison = compare_versions(ws.shadow, comparable(ws, method, record.version(compare)), base, compared[-1])
    same = previous is not None and previous.base == base and len(previous.parts) == len(parts) and all(
        old.commit == new for old, new in zip(previous.parts, made_commits, strict=True))
    if method == SubmitMethod.GHSTACK and previous is not None and not same:
        # ghstack rewrites the commits it submits (trailers), so an unchanged stack is one with the same trees.
        same = previous.base == base and len(previous.parts) == len(parts) and all(
            git.has_commit(ws.shadow, old.commit) and git.tree_sha_of(ws.shadow, old.commit) == new.tree
            for old, new in zip(previous.parts, parts, strict=True))
    number = (previous.number if same else previous.number + 1) if previous is not None else 1
    since = None if same or previous is None else comparable(ws, method, previous)

    for gone in landed:
        notes.append(f"part {gone.index} ({gone.title}) landed upstream as {gone.upstream[:12]} by PR #{gone.pr}; "
                     "it is dropped from the stack")
    for old in plan.stale:
        pr = f" and PR #{old.pr}" if old.pr is not None else ""
        ghstack_pr = method == SubmitMethod.GHSTACK and old.pr is not None
        what = f"PR #{old.pr}" if ghstack_pr else f"branch {old.branch}{pr}"
        notes.append(f"{what} of an earlier part {old.index} ({old.title}) is no longer in the stack; close the PR "
                     "and delete the branch by hand if it is not needed")
    if method == SubmitMethod.GHSTACK:
        results = submit_ghstack(ws, run, parts, made_commits, compared, docs, plan, notes, draft=draft,
                           body_dir=body_dir, since=since)
    else:
        results = submit_fork(ws, run, parts, made_commits, docs, plan, issue, draft=draft, fork=fork, owner=owner,
                        body_dir=body_dir, since=since, notes=notes)
    label_notes(results, notes)
    if draft:
        notes.append("the PRs are drafts: mark them ready for review on GitHub once the gaps are closed")

    version = Version(number=number, base=base, base_ref=base_ref, series_sha256=series_sha, method=method,
                      draft=draft, parts=tuple(
                          PartSubmission(index=r.index, title=r.title, branch=r.branch, commit=r.commit, pr=r.pr,
                                         url=r.url, body=d.body, labels=r.labels)
                          for r, d in zip(results, docs.parts, strict=True)),
                      # A run that only edits text replaces the last version, so what landed before it is kept.
                      landed=(*(previous.landed if same and previous else ()),
                              *(p for p in (previous.parts if previous else ()) if p.index in
                                {gone.index for gone in landed})),
                      stale=plan.stale)
    if not dry_run:
        kept = record.versions if record is not None else ()
        if same:
            kept = kept[:-1]
        write_submission(config, Submission(repo=settings.repo, fork=fork, owner=owner, issue=issue,
                                            issue_url=issue_url, versions=(*kept, version)))
    return SubmitResult(dry_run=dry_run, draft=draft, method=method, repo=settings.repo, fork=fork, issue=issue,
                        issue_url=issue_url, issue_created=issue_created, version=version.name,
                        new_version=not same, parts=results, steps=tuple(run.steps), comparison=comparison,
                        notes=tuple(notes), landed=landed,
                        stale=tuple(StalePart(index=p.index, title=p.title, branch=p.branch, pr=p.pr, url=p.url)
                                    for p in plan.stale))


def _with_issue(record: Submission | None, repo: str, fork: str, owner: str, issue: int, url: str) -> Submission:
    if record is None:
        return Submission(repo=repo, fork=fork, owner=owner, issue=issue, issue_url=url, versions=())
    return replace(record, issue=issue, issue_url=url)
