"""The ghstack method: the parts as one linear stack of commits whose messages are the part descriptions,
submitted by the real `ghstack` in a worktree of the shadow (it needs write access to the repository)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from mpspatch.foundation import proc
from mpspatch.foundation.config import SubmitMethod
from mpspatch.foundation.errors import GitError
from mpspatch.foundation.ids import CommitSha
from mpspatch.git import github as gh
from mpspatch.git import remote
from mpspatch.git import shadow as shadow_repo
from mpspatch.git import verbs as git
from mpspatch.model.submission import (
    LabelRecord,
    Version,
)
from mpspatch.model.workspace import Workspace
from mpspatch.operations.submit.results import Documents, Draft, PartResult, Step
from mpspatch.operations.submit.steps import Part, Plan, Runner, follow_up, make_commits

GHSTACK_INSTALL = "install it with `pip install ghstack` (it also needs write access to the repository)"


# ------------------------------------------------------------------------------------------------ ghstack


def ghstack_message(doc: Draft, pr_url: str = "") -> str:
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


def submit_ghstack(ws: Workspace, run: Runner, parts: Sequence[Part], made: Sequence[CommitSha],
             compared: Sequence[CommitSha], docs: Documents, plan: Plan, notes: list[str], *, draft: bool,
             body_dir: Path, since: Version | None) -> tuple[PartResult, ...]:
    """Run `ghstack submit` in a worktree of the shadow (never the user's clone) at the top of the stack, then
    label each PR and tell its reviewers what changed, as the fork method does (`follow_up`).

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
            labels = follow_up(ws, run, body_dir, s.pr, p.index, d, m,
                                since=since if m is not None and m.pr is not None and m.pr == s.pr else None, tip=tip)
        results.append(PartResult(index=p.index, title=d.title, branch=f"ghstack ({p.index}/{len(parts)})",
                                  commit=s.commit, pushed=not run.dry_run, pr=s.pr, url=s.url,
                                  action="would submit with ghstack" if run.dry_run else "ghstack", labels=labels,
                                  message=s.message))
    if unnamed:
        notes.append(f"ghstack's commits name no PR for part(s) {', '.join(map(str, unnamed))} (no Pull-Request "
                     "trailer), so their labels were not applied; run `mpspatch submit` again once the PRs exist")
    return tuple(results)


def comparable(ws: Workspace, method: SubmitMethod, version: Version) -> Version:
    """`version` as range-diff should read it: as recorded, or with ghstack its parts' trees remade on its base
    under their titles alone (see `compared` in submit_series). Left as recorded when its commits are gone, so
    the comparison says which commit is missing."""
    if method != SubmitMethod.GHSTACK or not all(git.has_commit(ws.shadow, p.commit) for p in version.parts):
        return version
    remade = make_commits(ws, version.base, [f"{p.title}\n" for p in version.parts],
                      [git.tree_sha_of(ws.shadow, p.commit) for p in version.parts])
    return replace(version, parts=tuple(replace(p, commit=c) for p, c in zip(version.parts, remade, strict=True)))
