"""Where a fork meets the upstream history, read without writing to either repository.

"Upstream history" is what the upstream clone knows: its tags, remote-tracking and local branches (only tags
and remote-tracking branches when the fork is that clone itself, whose branches are the user's own work),
plus an optional base. The clone sees the fork's commits through GIT_ALTERNATE_OBJECT_DIRECTORIES, so the
walk needs no fetch and leaves no object behind.
"""

from __future__ import annotations

from pathlib import Path

from mpspatch.foundation.ids import CommitSha, commit_sha
from mpspatch.git.verbs import git, pinned_env

# Reading must not even refresh an index.
_READ_ONLY = {"GIT_OPTIONAL_LOCKS": "0"}


def _store(repo: Path) -> Path:
    """The repository's common git folder (shared by its linked worktrees)."""
    out = git(repo, "rev-parse", "--path-format=absolute", "--git-common-dir", env=_READ_ONLY).stdout.strip()
    return Path(out).resolve()


def _reading_env(checkout: Path, fork: Path) -> tuple[bool, dict[str, str]]:
    """(whether the fork is the clone itself, the env under which the clone also sees the fork's commits)."""
    env = {**pinned_env(), **_READ_ONLY}
    fork_store = _store(fork)
    if fork_store == _store(checkout):
        return True, env
    return False, {**env, "GIT_ALTERNATE_OBJECT_DIRECTORIES": str(fork_store / "objects")}


def upstream_points(checkout: Path, fork: Path, base: CommitSha | None) -> tuple[CommitSha, ...]:
    """The newest upstream commits the fork's HEAD contains: one when it sits on one upstream line, several
    when it merged unrelated ones, none when it has no commits or shares no history with the upstream."""
    head = git(fork, "rev-parse", "--verify", "--quiet", "HEAD^{commit}", env=_READ_ONLY, check=False)
    if not head.ok:
        return ()
    same, env = _reading_env(checkout, fork)
    upstream = ["--tags", "--remotes", *([] if same else ["--branches"]), *([base] if base else [])]
    walk = git(checkout, "rev-list", "--boundary", head.stdout.strip(), "--not", *upstream, env=env).stdout.split()
    if not walk:  # HEAD itself is upstream
        return (commit_sha(head.stdout.strip()),)
    boundary = sorted({line[1:] for line in walk if line.startswith("-")})
    if len(boundary) > 1:
        boundary = sorted(git(checkout, "merge-base", "--independent", *boundary, env=env).stdout.split())
    return tuple(commit_sha(b) for b in boundary)


def is_upstream_ancestor(checkout: Path, fork: Path, ancestor: CommitSha, descendant: CommitSha) -> bool:
    """Whether `ancestor` (possibly known only to the fork) is an ancestor of `descendant` in the clone."""
    env = _reading_env(checkout, fork)[1]
    return git(checkout, "merge-base", "--is-ancestor", ancestor, descendant, env=env, check=False).ok


def upstream_names(checkout: Path, fork: Path, point: CommitSha) -> tuple[str | None, str | None]:
    """(a tag, a branch) of the upstream clone at `point`; remote-tracking branches before local ones, and no
    local branch when the fork is the clone itself."""
    names = git(checkout, "for-each-ref", f"--points-at={point}", "--format=%(refname)", "refs/tags",
                "refs/remotes", "refs/heads", env=_READ_ONLY).stdout.split()
    local = [] if _store(fork) == _store(checkout) else [n for n in names if n.startswith("refs/heads/")]
    tags = sorted(n[len("refs/tags/"):] for n in names if n.startswith("refs/tags/"))
    remotes = sorted(n[len("refs/remotes/"):] for n in names
                     if n.startswith("refs/remotes/") and not n.endswith("/HEAD"))
    branches = remotes + sorted(n[len("refs/heads/"):] for n in local)
    return (tags[0] if tags else None), (branches[0] if branches else None)
