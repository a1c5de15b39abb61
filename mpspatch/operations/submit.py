"""Send the series to GitHub: the issue, the branches on the fork, one PR per stack part, the labels.

The documents come in as data (title, body, labels), rendered by the caller: this module only decides which
branches, which PRs and which commands, and runs them. Branches are pushed from the shadow repository, never
from the user's clone; commits carry the clone's user.name and user.email (the CLA check reads the author)
and the base's commit time, so the same series gives the same SHAs and a re-run pushes nothing new.

With `method = "fork"`, part K's branch holds parts 1..K (GitHub cannot base a PR on a branch of a fork), so
PR K shows every earlier part too; its body says which commit is new in it and links the PRs before it.
With `method = "ghstack"`, the parts become one linear stack of commits whose messages are the part
descriptions, and `ghstack submit` opens the PRs (it needs write access to the repository). What follows a PR
is shared by both methods (`_follow_up`): the labels (`gh pr edit --add-label`, else a `@pytorchbot label`
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

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from mpspatch.foundation import proc
from mpspatch.foundation.config import SubmitMethod
from mpspatch.foundation.errors import ConfigError, GitError, InputError
from mpspatch.foundation.files import atomic_write_text, sha256_bytes
from mpspatch.foundation.ids import CommitSha, TreeSha
from mpspatch.git import commits as series_git
from mpspatch.git import github as gh
from mpspatch.git import remote
from mpspatch.git import shadow as shadow_repo
from mpspatch.git import verbs as git
from mpspatch.model import history
from mpspatch.model.series import load_series
from mpspatch.model.stack import Stack
from mpspatch.model.submission import (
    LabelOutcome,
    LabelRecord,
    PartSubmission,
    Submission,
    Version,
    read_submission,
    write_submission,
)
from mpspatch.model.workspace import Workspace

GHSTACK_INSTALL = "install it with `pip install ghstack` (it also needs write access to the repository)"


# --------------------------------------------------------------------------------------------- data in


@dataclass(frozen=True)
class Draft:
    """One rendered document as GitHub takes it."""

    title: str
    body: str
    labels: tuple[str, ...]


@dataclass(frozen=True)
class Documents:
    issue: Draft | None  # None when the issue already exists
    parts: tuple[Draft, ...]  # one PR description per part, in stack order


# The caller renders the documents for an issue number (None: not known yet), so the PR can say Fixes #N.
Renderer = Callable[[int | None], Documents]


# -------------------------------------------------------------------------------------------- data out


@dataclass(frozen=True)
class Step:
    """One command submit ran (or, with --dry-run, would run), exactly as typed."""

    command: str
    purpose: str
    outcome: str  # "" with --dry-run


@dataclass(frozen=True)
class PatchChange:
    """One line of a range-diff summary: a patch of the old version against the new one."""

    old: int | None  # 1-based position in the old version; None when added
    new: int | None  # None when dropped
    change: str  # unchanged | changed | added | dropped
    subject: str


@dataclass(frozen=True)
class Comparison:
    since: str  # "v1"
    changes: tuple[PatchChange, ...]
    text: str  # the range-diff itself


@dataclass(frozen=True)
class PartResult:
    index: int
    title: str
    branch: str
    commit: CommitSha
    pushed: bool  # False when the fork already had this commit from the last version
    pr: int | None
    url: str
    action: str  # created | updated | would create | would update | ghstack
    labels: tuple[LabelRecord, ...]
    message: str  # the pushed commit's message


@dataclass(frozen=True)
class LandedPart:
    """A part of the last version that landed upstream, by the merge bot's trailer naming its PR."""

    index: int  # its place in the last version
    title: str
    pr: int
    url: str
    upstream: CommitSha  # the upstream commit whose trailer names the PR


@dataclass(frozen=True)
class StalePart:
    """A branch (and PR) of an earlier part that the stack no longer has: reported, not deleted."""

    index: int  # its place in the version that last had it
    title: str
    branch: str
    pr: int | None
    url: str


@dataclass(frozen=True)
class SubmitResult:
    dry_run: bool
    draft: bool
    method: SubmitMethod
    repo: str
    fork: str
    issue: int | None
    issue_url: str
    issue_created: bool
    version: str  # "v2"; with --dry-run, the version this run would record
    new_version: bool
    parts: tuple[PartResult, ...]
    steps: tuple[Step, ...]
    comparison: Comparison | None
    notes: tuple[str, ...]
    landed: tuple[LandedPart, ...] = ()
    stale: tuple[StalePart, ...] = ()


# ------------------------------------------------------------------------------------------- the parts


@dataclass(frozen=True)
class _Part:
    index: int
    title: str
    tree: TreeSha
    message: str  # the commit message with the fork method (the split part's, or the series title)


def _parts(ws: Workspace, stack: Stack | None, title: str, issue: int | None) -> tuple[_Part, ...]:
    """The trees to commit: each part of the stack `split` wrote, else the whole series as one part."""
    shadow = ws.shadow
    if stack is not None:
        found = []
        for p in stack.parts:
            subject = f"[MPS] {p.title} ({p.index}/{len(stack.parts)})"
            message = remote.commit_message(shadow, p.commit) if git.has_commit(shadow, p.commit) else subject + "\n"
            found.append(_Part(index=p.index, title=p.title, tree=p.tree, message=message))
        return tuple(found)
    built = series_git.series_commits(shadow, ws.base, [p.path for p in load_series(ws.config)])
    fixes = f"\n\nFixes #{issue}" if issue is not None else ""
    return (_Part(index=1, title=title, tree=git.tree_sha_of(shadow, built[-1]), message=f"{title}{fixes}\n"),)


def _commits(ws: Workspace, base: CommitSha, messages: Sequence[str],
             trees: Sequence[TreeSha]) -> tuple[CommitSha, ...]:
    identity = remote.user_identity(ws.checkout)
    if identity is None:
        raise GitError(f"{ws.checkout}: git has no user.name/user.email there; set them (the pushed commits carry "
                       "them, and the CLA check reads the author)")
    stamp = f"@{git.commit_time(ws.shadow, base)} +0000"
    env = {**git.isolated_config_env(), **git.identity_env(identity[0], identity[1], stamp), "TZ": "UTC"}
    made: list[CommitSha] = []
    parent: str = base
    for tree, message in zip(trees, messages, strict=True):
        parent = git.commit_tree_as(ws.shadow, tree, parent, message, env)
        made.append(CommitSha(parent))
    return tuple(made)


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


@dataclass(frozen=True)
class _Plan:
    """Which recorded part each new part continues (its branch and PR), and what is left over."""

    matched: tuple[PartSubmission | None, ...]
    branches: tuple[str, ...]
    stale: tuple[PartSubmission, ...]


def _match(prefix: str, parts: Sequence[_Part], record: Submission | None, previous: Version | None,
           landed: Sequence[LandedPart]) -> _Plan:
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
    return _Plan(matched=tuple(matched), branches=tuple(branches), stale=tuple(stale))


# ------------------------------------------------------------------------------------------- the runner


class _Runner:
    """Runs gh and git push, or with dry_run only writes down what it would run."""

    def __init__(self, cwd: Path, dry_run: bool) -> None:
        self.cwd, self.dry_run = cwd, dry_run
        self.steps: list[Step] = []

    def gh(self, argv: Sequence[str], purpose: str, *, check: bool = True,
           query: bool = False) -> proc.Completed | None:
        """Run gh; None with --dry-run (queries still run: they change nothing and make the plan exact)."""
        if self.dry_run and not query:
            self.steps.append(Step(proc.describe(argv), purpose, ""))
            return None
        result = gh.run(argv, self.cwd, check=check)
        outcome = "ok" if result.ok else f"refused (exit {result.returncode})"
        self.steps.append(Step(proc.describe(argv), purpose, outcome))
        return result

    def push(self, repo: Path, fork: str, updates: Sequence[remote.RefUpdate]) -> None:
        argv = remote.push_argv(fork, updates)
        if not self.dry_run:
            remote.push(repo, fork, updates)
        self.steps.append(Step(proc.describe(argv), "push the branches from the shadow repository",
                               "" if self.dry_run else "ok"))


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
    run = _Runner(config.root, dry_run)
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
        messages = [_ghstack_message(d, m.url if m is not None else "")
                    for d, m in zip(docs.parts, plan.matched, strict=True)]
    else:
        messages = [p.message for p in parts]
    made_commits = _commits(ws, base, messages, [p.tree for p in parts])
    # What range-diff compares: the commits themselves, or with ghstack (whose messages carry the whole PR body
    # and its own trailers) the same trees under their titles alone, so a part is "changed" only by its diff.
    if method == SubmitMethod.GHSTACK:
        compared = _commits(ws, base, [f"{d.title}\n" for d in docs.parts], [p.tree for p in parts])
    else:
        compared = made_commits
    patches = load_series(config)
    series_sha = str(sha256_bytes("".join(f"{p.sha256}\n" for p in patches).encode()))
    comparison = None
    if compare is not None:
        if record is None:
            raise InputError(f"--compare {compare}: nothing was submitted yet, so there is no version to compare")
        comparison = _compare(ws.shadow, _comparable(ws, method, record.version(compare)), base, compared[-1])
    same = previous is not None and previous.base == base and len(previous.parts) == len(parts) and all(
        old.commit == new for old, new in zip(previous.parts, made_commits, strict=True))
    if method == SubmitMethod.GHSTACK and previous is not None and not same:
        # ghstack rewrites the commits it submits (trailers), so an unchanged stack is one with the same trees.
        same = previous.base == base and len(previous.parts) == len(parts) and all(
            git.has_commit(ws.shadow, old.commit) and git.tree_sha_of(ws.shadow, old.commit) == new.tree
            for old, new in zip(previous.parts, parts, strict=True))
    number = (previous.number if same else previous.number + 1) if previous is not None else 1
    since = None if same or previous is None else _comparable(ws, method, previous)

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
        results = _ghstack(ws, run, parts, made_commits, compared, docs, plan, notes, draft=draft,
                           body_dir=body_dir, since=since)
    else:
        results = _fork(ws, run, parts, made_commits, docs, plan, issue, draft=draft, fork=fork, owner=owner,
                        body_dir=body_dir, since=since, notes=notes)
    _label_notes(results, notes)
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


# ---------------------------------------------------------------------------------------------- fork


def _fork(ws: Workspace, run: _Runner, parts: Sequence[_Part], made: Sequence[CommitSha], docs: Documents,
          plan: _Plan, issue: int | None, *, draft: bool, fork: str, owner: str, body_dir: Path,
          since: Version | None, notes: list[str]) -> tuple[PartResult, ...]:
    settings = ws.config.submit
    old = {p.index: m for p, m in zip(parts, plan.matched, strict=True) if m is not None}
    branches = list(plan.branches)
    updates = [remote.RefUpdate(branch=b, commit=c, expected=old[p.index].commit if p.index in old else None)
               for p, b, c in zip(parts, branches, made, strict=True)]
    moving = [u for u in updates if u.expected != u.commit]
    if moving:
        run.push(ws.shadow, fork, moving)
    results: list[PartResult] = []
    for part, branch, commit, draft_doc in zip(parts, branches, made, docs.parts, strict=True):
        number, url = _existing_pr(run, settings.repo, branch, owner, old.get(part.index))
        body = _stack_body(draft_doc.body, part, parts, made, results, issue)
        body_file = body_dir / f"pr.part-{part.index:02d}.md"
        if not run.dry_run:
            atomic_write_text(body_file, body)
        if number is None:
            made_pr = run.gh(gh.pr_create_argv(settings.repo, settings.base, f"{owner}:{branch}", draft_doc.title,
                                               body_file, draft=draft), f"open the PR of part {part.index}")
            if made_pr is not None:
                number, url = gh.number_from_url(made_pr.stdout, "pull request")
            action = "would create" if run.dry_run else "created"
        else:
            run.gh(gh.pr_edit_argv(settings.repo, number, draft_doc.title, body_file),
                   f"update the title and body of PR #{number}")
            action = "would update" if run.dry_run else "updated"
        labels = _follow_up(ws, run, body_dir, number, part.index, draft_doc, old.get(part.index),
                            since=since if action in ("updated", "would update") else None, tip=commit)
        results.append(PartResult(index=part.index, title=draft_doc.title, branch=branch, commit=commit,
                                  pushed=any(u.branch == branch for u in updates if u.expected != u.commit),
                                  pr=number, url=url, action=action, labels=labels,
                                  message=part.message))
    return tuple(results)


def _existing_pr(run: _Runner, repo: str, branch: str, owner: str,
                 recorded: PartSubmission | None) -> tuple[int | None, str]:
    """The PR this branch already has: the recorded one, else an open one `gh pr list` finds from the owner."""
    if recorded is not None and recorded.pr is not None:
        return recorded.pr, recorded.url
    listed = run.gh(gh.pr_list_argv(repo, branch), f"look for an open PR from {owner}:{branch}", query=True)
    if listed is None:
        return None, ""
    for pr in gh.parse_pr_list(listed.stdout):
        if pr.head == branch and pr.owner == owner and pr.state.upper() == "OPEN":
            return pr.number, pr.url
    return None, ""


def _stack_body(body: str, part: _Part, parts: Sequence[_Part], made: Sequence[CommitSha],
                before: Sequence[PartResult], issue: int | None) -> str:
    """The PR body, plus (in a stack) which commit is new in this PR and the PRs it depends on."""
    if len(parts) == 1:
        return body
    refs = [f"#{r.pr}" if r.pr is not None else f"#<PR of part {r.index}>" for r in before]
    lines = ["", "---", "",
             f"**Stack**: part {part.index} of {len(parts)}. GitHub cannot base a PR on a fork's branch, so this "
             f"PR holds parts 1 to {part.index}; the commit new in it is `{made[part.index - 1][:12]}` "
             f"({part.title}).", ""]
    if refs:
        lines.append(f"Depends on {', '.join(refs)}. Review and merge those first.")
    return body.rstrip("\n") + "\n" + "\n".join(lines).rstrip("\n") + "\n"


# ----------------------------------------------------------------------------- after a PR, with either method


def _follow_up(ws: Workspace, run: _Runner, body_dir: Path, number: int | None, index: int, doc: Draft,
               recorded: PartSubmission | None, *, since: Version | None, tip: CommitSha) -> tuple[LabelRecord, ...]:
    """What follows opening or updating part `index`'s PR, whichever method did it: on an update that makes a
    new version (`since`), the "Changes since vN" comment with the range-diff of this PR's commits (the old
    version up to `recorded`, the part this one continues, against the new one up to `tip`); then the labels
    not applied or requested on this PR before."""
    repo = ws.config.submit.repo
    if since is not None and number is not None:
        note_file = body_dir / f"changes.part-{index:02d}.md"
        # This PR's commits then and now: the old version up to the part this one continues.
        old_tip = next((p.commit for p in since.parts if recorded is not None and p.index == recorded.index),
                       since.tip)
        if not run.dry_run:
            atomic_write_text(note_file, _changes_note(ws.shadow, since, ws.base, tip, old_tip))
        run.gh(gh.comment_argv(repo, number, note_file),
               f"tell the reviewers of PR #{number} what changed since {since.name}")
    done = recorded.labels if recorded is not None and recorded.pr == number else ()
    return _labels(run, repo, number, doc.labels, done, index)


def _label_notes(results: Sequence[PartResult], notes: list[str]) -> None:
    requested = sorted({label.name for r in results for label in r.labels if label.outcome == LabelOutcome.REQUESTED})
    if requested:
        notes.append("no permission to label here: asked @pytorchbot for " + ", ".join(f'"{n}"' for n in requested)
                     + "; the bot applies them, check the PRs")


def _labels(run: _Runner, repo: str, number: int | None, wanted: Sequence[str], done: Sequence[LabelRecord],
            index: int) -> tuple[LabelRecord, ...]:
    """Apply each label not applied or requested before; where gh refuses, ask @pytorchbot instead."""
    outcomes = list(done)
    known = {label.name for label in done}
    ref: int | str = number if number is not None else f"<PR of part {index}>"
    for label in wanted:
        if label in known:
            continue
        tried = run.gh(gh.add_label_argv(repo, ref, label), f"label PR {ref} {label!r}", check=False)
        if tried is None:  # dry run: say both, since only GitHub knows whether the label will be refused
            run.steps.append(Step(proc.describe(gh.bot_label_argv(repo, ref, label)),
                                  "only if the label is refused (no triage permission)", ""))
            continue
        if tried.ok:
            outcomes.append(LabelRecord(label, LabelOutcome.APPLIED))
            continue
        run.gh(gh.bot_label_argv(repo, ref, label), f"ask @pytorchbot to label PR #{ref} {label!r}")
        outcomes.append(LabelRecord(label, LabelOutcome.REQUESTED))
    return tuple(outcomes)


# ------------------------------------------------------------------------------------------------ ghstack


def _ghstack_message(doc: Draft, pr_url: str = "") -> str:
    """A ghstack commit message: the title line, then the PR description (ghstack makes it the PR body); with
    the `Pull-Request:` trailer of the PR ghstack opened for this part before, so it updates that one."""
    trailer = f"\n\nPull-Request: {pr_url}" if pr_url else ""
    return f"{doc.title}\n\n{doc.body.rstrip()}{trailer}\n"


def ghstack_argv(base: str, *, draft: bool, update: bool) -> list[str]:
    """`ghstack submit` as mpspatch runs it: onto the configured base branch, drafts with --draft, and with
    `update` (PRs exist) --update-fields, so each PR's title and body become the re-rendered part description,
    as the fork method edits them (without it ghstack keeps what GitHub has)."""
    return ["ghstack", "submit", "--base", base, *(["--draft"] if draft else []),
            *(["--update-fields"] if update else [])]


def _ghstack(ws: Workspace, run: _Runner, parts: Sequence[_Part], made: Sequence[CommitSha],
             compared: Sequence[CommitSha], docs: Documents, plan: _Plan, notes: list[str], *, draft: bool,
             body_dir: Path, since: Version | None) -> tuple[PartResult, ...]:
    """Run `ghstack submit` in a worktree of the shadow (never the user's clone) at the top of the stack, then
    label each PR and tell its reviewers what changed, as the fork method does (`_follow_up`).

    ghstack reads the repository from `origin`'s push URL ([upstream].url), pushes gh/USER/N/{base,head,orig}
    there, opens one PR per commit through the GitHub API (its own login: ~/.ghstackrc, or `gh auth token`),
    and rewrites the commits with its trailers; the rewritten commits and the PR each trailer names are what
    mpspatch records. `compared` are the parts' trees under their titles alone, what the update comment's
    range-diff reads."""
    config, settings = ws.config, ws.config.submit
    where = config.state_dir / "ghstack"
    argv = ghstack_argv(settings.base, draft=draft, update=any(m is not None and m.url for m in plan.matched))
    if run.dry_run:
        run.steps.append(Step(proc.describe(argv), f"submit the stack of {len(parts)} commit(s) ending at "
                                                   f"{made[-1][:12]}, in a worktree of the shadow whose origin is "
                                                   f"{config.upstream.url}", ""))
        # The PRs ghstack will update are the ones the trailers name; a new part's PR is not known yet.
        submitted = tuple(remote.StackCommit(commit=c, message=remote.commit_message(ws.shadow, c),
                                             pr=m.pr if m is not None else None, url=m.url if m is not None else "")
                          for c, m in zip(made, plan.matched, strict=True))
    else:
        remote.ghstack_origin(ws.shadow, config.upstream.url, settings.base, ws.base)
        shadow_repo.add_detached_worktree(ws.shadow, where, made[-1])
        git.checkout_detached(where, made[-1])
        identity = remote.user_identity(ws.checkout) or ("", "")
        env = {k: v for k, v in git.identity_env(identity[0], identity[1], "").items() if v}
        result = proc.run(argv, cwd=where, env=env, check=False, timeout=1800)
        outcome = "ok" if result.ok else f"failed (exit {result.returncode})"
        run.steps.append(Step(proc.describe(argv), "submit the stack with ghstack", outcome))
        if not result.ok:
            raise gh.GhError(f"`{proc.describe(argv)}` failed (exit {result.returncode}): "
                             f"{proc.tail(result.stderr or result.stdout, 3)}; ghstack needs write access to "
                             f"{settings.repo}; without it use method = \"fork\"")
        submitted = remote.stack_commits(where, ws.base, "HEAD")
        if len(submitted) != len(parts):
            raise GitError(f"{where}: ghstack left {len(submitted)} commit(s) on the base for {len(parts)} part(s)")
    notes.append("ghstack opens and updates the PRs; mpspatch records the commits it submitted and the PR each "
                 "one's Pull-Request trailer names, then labels those PRs with gh")
    results: list[PartResult] = []
    unnamed: list[int] = []
    for p, s, d, m, tip in zip(parts, submitted, docs.parts, plan.matched, compared, strict=True):
        if s.pr is None and not run.dry_run:
            unnamed.append(p.index)  # no PR to label or comment on: nothing is claimed
            labels: tuple[LabelRecord, ...] = ()
        else:
            labels = _follow_up(ws, run, body_dir, s.pr, p.index, d, m,
                                since=since if m is not None and m.pr is not None and m.pr == s.pr else None, tip=tip)
        results.append(PartResult(index=p.index, title=d.title, branch=f"ghstack ({p.index}/{len(parts)})",
                                  commit=s.commit, pushed=not run.dry_run, pr=s.pr, url=s.url,
                                  action="would submit with ghstack" if run.dry_run else "ghstack", labels=labels,
                                  message=s.message))
    if unnamed:
        notes.append(f"ghstack's commits name no PR for part(s) {', '.join(map(str, unnamed))} (no Pull-Request "
                     "trailer), so their labels were not applied; run `mpspatch submit` again once the PRs exist")
    return tuple(results)


def _comparable(ws: Workspace, method: SubmitMethod, version: Version) -> Version:
    """`version` as range-diff should read it: as recorded, or with ghstack its parts' trees remade on its base
    under their titles alone (see `compared` in submit_series). Left as recorded when its commits are gone, so
    the comparison says which commit is missing."""
    if method != SubmitMethod.GHSTACK or not all(git.has_commit(ws.shadow, p.commit) for p in version.parts):
        return version
    remade = _commits(ws, version.base, [f"{p.title}\n" for p in version.parts],
                      [git.tree_sha_of(ws.shadow, p.commit) for p in version.parts])
    return replace(version, parts=tuple(replace(p, commit=c) for p, c in zip(version.parts, remade, strict=True)))


# ----------------------------------------------------------------------------------------------- compare


_RANGE_DIFF = re.compile(r"^\s*(-|\d+):\s+(?:-+|[0-9a-f]+)\s+([=!<>])\s+(-|\d+):\s+(?:-+|[0-9a-f]+)\s+(.*)$")
_CHANGE = {"=": "unchanged", "!": "changed", "<": "dropped", ">": "added"}


def _compare(shadow: Path, old: Version, base: CommitSha, tip: CommitSha,
             old_tip: CommitSha | None = None) -> Comparison:
    """The range-diff of `old` (up to `old_tip`, default its last part) against base..tip."""
    old_tip = old_tip or old.tip
    for sha in (old.base, old_tip):
        if not git.has_commit(shadow, sha):
            raise GitError(f"{shadow}: version {old.name}'s commit {sha[:12]} is no longer in the shadow repository; "
                           f"fetch it from the fork into the shadow to compare")
    text = remote.range_diff(shadow, (old.base, old_tip), (base, tip))
    changes = []
    for line in text.splitlines():
        match = _RANGE_DIFF.match(line)
        if match:
            a, mark, b, subject = match.groups()
            changes.append(PatchChange(old=None if a == "-" else int(a), new=None if b == "-" else int(b),
                                       change=_CHANGE[mark], subject=subject.strip()))
    return Comparison(since=old.name, changes=tuple(changes), text=text)


def summary_lines(comparison: Comparison) -> tuple[str, ...]:
    """One line per patch: `1 -> 1 changed: [MPS] ...`."""
    return tuple(
        f"{'-' if c.old is None else c.old} -> {'-' if c.new is None else c.new} {c.change}: {c.subject}"
        for c in comparison.changes)


def _changes_note(shadow: Path, since: Version, base: CommitSha, tip: CommitSha, old_tip: CommitSha) -> str:
    comparison = _compare(shadow, since, base, tip, old_tip)
    lines = [f"Changes since {since.name} (`git range-diff`, per commit):", ""]
    lines += [f"- {line}" for line in summary_lines(comparison)] or ["- no commit changed"]
    if since.base != base:
        lines += ["", f"The base moved from `{since.base[:12]}` to `{base[:12]}`."]
    return "\n".join(lines) + "\n"
