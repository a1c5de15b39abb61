"""Pushing branches to the user's fork, from the shadow repository (never from the user's clone)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mpspatch.foundation.errors import GitError
from mpspatch.foundation.ids import CommitSha
from mpspatch.git.verbs import git


@dataclass(frozen=True)
class RefUpdate:
    branch: str  # without refs/heads/
    commit: CommitSha
    expected: CommitSha | None  # what the fork's branch held when last pushed; None for a new branch


def push_argv(fork: str, updates: Sequence[RefUpdate]) -> list[str]:
    """`git push` of every update at once (all or none), with --force-with-lease for the branches that move."""
    argv = ["git", "push", "--atomic", "--porcelain"]
    argv += [f"--force-with-lease=refs/heads/{u.branch}:{u.expected}" for u in updates if u.expected]
    argv.append(fork)
    argv += [f"{u.commit}:refs/heads/{u.branch}" for u in updates]
    return argv


def push(repo: Path, fork: str, updates: Sequence[RefUpdate]) -> None:
    """Run push_argv in `repo`; a refusal (a lease that no longer holds, no access) is a GitError naming it."""
    result = git(repo, *push_argv(fork, updates)[1:], check=False, timeout=3600)
    if not result.ok:
        lines = [ln.strip() for ln in (result.stderr + result.stdout).splitlines() if ln.strip()]
        said = next((ln for ln in lines if ln.startswith(("!", "fatal:", "error:"))), lines[-1] if lines else "")
        raise GitError(f"{fork}: git push was refused: {said}; if the branch moved on the fork since the last "
                       "submit, look at it first, then push again")


def user_identity(repo: Path) -> tuple[str, str] | None:
    """The user.name and user.email git uses in `repo` (the user's clone), or None when either is unset."""
    name = git(repo, "config", "user.name", check=False).stdout.strip()
    email = git(repo, "config", "user.email", check=False).stdout.strip()
    return (name, email) if name and email else None


def commit_message(repo: Path, commit: str) -> str:
    return git(repo, "log", "-1", "--format=%B", commit).stdout.strip("\n") + "\n"


def range_diff(repo: Path, old: tuple[str, str], new: tuple[str, str]) -> str:
    """`git range-diff old_base..old_tip new_base..new_tip`, without colour."""
    return git(repo, "range-diff", "--no-color", f"{old[0]}..{old[1]}", f"{new[0]}..{new[1]}").stdout


# The trailer ghstack writes into each commit it submitted (and reads back to update that PR in place).
_PULL_REQUEST_TRAILER = re.compile(r"^(?:Pull-Request|Pull Request resolved|Pull-Request-resolved): "
                                   r"(https?://\S+/pull/(\d+))\s*$", re.MULTILINE)


@dataclass(frozen=True)
class StackCommit:
    commit: CommitSha
    message: str
    pr: int | None  # from the Pull-Request trailer ghstack adds
    url: str


def ghstack_origin(shadow: Path, url: str, base_branch: str, base: CommitSha) -> None:
    """Make the shadow look like the checkout ghstack expects: an `origin` remote whose push URL names the
    repository (ghstack reads owner and name from it and pushes its gh/USER/N branches there), and
    `origin/BASE` at the series base, which bounds the stack ghstack submits (it does not fetch the base).

    The shadow's worktrees share this config; an `origin` the shadow already has (a partial clone's promisor
    remote) keeps its fetch URL and gets only the push URL."""
    if not git(shadow, "config", "--get", "remote.origin.url", check=False).stdout.strip():
        git(shadow, "config", "remote.origin.url", url)
    git(shadow, "config", "remote.origin.pushurl", url)
    git(shadow, "update-ref", f"refs/remotes/origin/{base_branch}", base)


def stack_commits(repo: Path, base: str, tip: str) -> tuple[StackCommit, ...]:
    """The commits base..tip, oldest first, with the PR each one's trailer names."""
    out = git(repo, "log", "--reverse", "--format=%H%x00%B%x1e", f"{base}..{tip}").stdout
    found = []
    for record in out.split("\x1e"):
        if not record.strip():
            continue
        sha, message = record.strip("\n").split("\0", 1)
        matches = list(_PULL_REQUEST_TRAILER.finditer(message))
        match = matches[-1] if matches else None  # the last trailer wins
        found.append(StackCommit(commit=CommitSha(sha), message=message.strip("\n") + "\n",
                                 pr=int(match.group(2)) if match else None, url=match.group(1) if match else ""))
    return tuple(found)
