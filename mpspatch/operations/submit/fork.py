"""The fork method: part K's branch on the user's fork holds parts 1..K; one PR per part against the
upstream base, its body naming the commit new in it and the PRs before it."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from mpspatch.foundation.files import atomic_write_text
from mpspatch.foundation.ids import CommitSha
from mpspatch.git import github as gh
from mpspatch.git import remote
from mpspatch.model.submission import (
    PartSubmission,
    Version,
)
from mpspatch.model.workspace import Workspace
from mpspatch.operations.submit.results import Documents, PartResult
from mpspatch.operations.submit.steps import Part, Plan, Runner, follow_up

# ---------------------------------------------------------------------------------------------- fork


def submit_fork(ws: Workspace, run: Runner, parts: Sequence[Part], made: Sequence[CommitSha], docs: Documents,
          plan: Plan, issue: int | None, *, draft: bool, fork: str, owner: str, body_dir: Path,
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
        labels = follow_up(ws, run, body_dir, number, part.index, draft_doc, old.get(part.index),
                            since=since if action in ("updated", "would update") else None, tip=commit)
        results.append(PartResult(index=part.index, title=draft_doc.title, branch=branch, commit=commit,
                                  pushed=any(u.branch == branch for u in updates if u.expected != u.commit),
                                  pr=number, url=url, action=action, labels=labels,
                                  message=part.message))
    return tuple(results)


def _existing_pr(run: Runner, repo: str, branch: str, owner: str,
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


def _stack_body(body: str, part: Part, parts: Sequence[Part], made: Sequence[CommitSha],
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
