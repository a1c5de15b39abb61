"""The git rebase driver: `git rebase --onto` in a worktree of the shadow, stop on conflicts, go on.

The committer is pinned and user config is off, so rebasing the same commits onto the same base gives the
same SHAs; the author of each series commit is kept.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mpspatch.foundation import proc
from mpspatch.foundation.errors import GitError
from mpspatch.foundation.ids import CommitSha, commit_sha
from mpspatch.git.verbs import (
    SERIES_EPOCH,
    SERIES_IDENTITY,
    git,
    git_path,
    identity_env,
    pinned_env,
    unmerged_paths,
)


def rebase_env() -> dict[str, str]:
    """User config off, a fixed committer: rebasing the same commits onto the same base gives the same SHAs."""
    env = pinned_env()
    env.update(identity_env(SERIES_IDENTITY[0], SERIES_IDENTITY[1], f"@{SERIES_EPOCH} +0000"))
    # The author of each series commit is kept by the rebase; only the committer is ours.
    for key in ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_AUTHOR_DATE"):
        env.pop(key)
    env["GIT_EDITOR"] = "true"
    return env


@dataclass(frozen=True)
class RebaseStep:
    done: bool  # True: the rebase finished; False: it stopped on conflicts
    stopped_at: CommitSha | None  # the series commit being replayed when it stopped
    unmerged: tuple[str, ...]
    output: str
    empty: bool = False  # stopped on a pick whose resolution leaves no change (nothing to commit)


def _rebase_step(worktree: Path, result: proc.Completed) -> RebaseStep:
    output = result.stdout + result.stderr
    if result.ok and not rebase_in_progress(worktree):
        return RebaseStep(done=True, stopped_at=None, unmerged=(), output=output)
    # One call for the common case, a stop: the rebase state folders and the commit being replayed.
    probe = git(worktree, "rev-parse", "--path-format=absolute", "--git-path", "rebase-merge", "--git-path",
                "rebase-apply", "REBASE_HEAD", check=False)
    lines = probe.stdout.split()
    if probe.ok and len(lines) == 3:
        in_progress, stopped = any(Path(p).is_dir() for p in lines[:2]), commit_sha(lines[2])
    else:
        in_progress, stopped = rebase_in_progress(worktree), None
    if not in_progress:
        raise GitError(f"{worktree}: git rebase failed:\n{proc.tail(result.stderr or result.stdout)}")
    return RebaseStep(done=False, stopped_at=stopped, unmerged=unmerged_paths(worktree), output=output)


def run_rebase(worktree: Path, base: CommitSha, onto: CommitSha, branch: str) -> RebaseStep:
    """`git rebase --onto onto base branch` in the worktree, with git's own merge machinery (ort)."""
    result = git(worktree, "-c", "rebase.autoStash=false", "-c", "rebase.updateRefs=false", "rebase",
                 "--no-autosquash", "--no-verify", "--empty=drop", "--onto", onto, base, branch,
                 env=rebase_env(), check=False)
    return _rebase_step(worktree, result)


def continue_rebase(worktree: Path) -> RebaseStep:
    """`git add --all` and `git rebase --continue`. A pick that the resolution left with no change is NOT
    skipped here: the caller decides whether that change is really upstream (see skip_rebase)."""
    git(worktree, "add", "--all", env=pinned_env())
    pick = _rebase_head(worktree)
    if pick is not None and git(worktree, "diff", "--cached", "--quiet", "HEAD", "--", env=pinned_env(),
                                check=False).returncode == 0:
        # git would drop the pick without a word (--empty=drop): leave that decision to the caller.
        return RebaseStep(done=False, stopped_at=pick, unmerged=(), output="nothing to commit", empty=True)
    result = git(worktree, "rebase", "--continue", env=rebase_env(), check=False)
    if not result.ok and rebase_in_progress(worktree) and not unmerged_paths(worktree) \
            and _nothing_to_commit(result.stdout + result.stderr):
        return RebaseStep(done=False, stopped_at=_rebase_head(worktree), unmerged=(),
                          output=result.stdout + result.stderr, empty=True)
    return _rebase_step(worktree, result)


def skip_rebase(worktree: Path) -> RebaseStep:
    """`git rebase --skip`: drop the pick being replayed (the caller has checked its change is upstream)."""
    return _rebase_step(worktree, git(worktree, "rebase", "--skip", env=rebase_env(), check=False))


def _nothing_to_commit(output: str) -> bool:
    return "nothing to commit" in output or "No changes" in output


def _rebase_head(worktree: Path) -> CommitSha | None:
    found = git(worktree, "rev-parse", "--verify", "--quiet", "REBASE_HEAD", check=False)
    return commit_sha(found.stdout.strip()) if found.ok and found.stdout.strip() else None


def rebase_in_progress(worktree: Path) -> bool:
    out = git(worktree, "rev-parse", "--path-format=absolute", "--git-path", "rebase-merge", "--git-path",
              "rebase-apply").stdout.split("\n")
    return any(Path(p).is_dir() for p in out if p)


def clear_stale_index_lock(worktree: Path) -> bool:
    """Remove an index.lock left by a git process that was killed with mpspatch; True when one was removed."""
    lock = git_path(worktree, "index.lock")
    if lock.exists():
        lock.unlink()
        return True
    return False


def range_diff(repo: Path, base: str, old_tip: str, onto: str, new_tip: str) -> str:
    result = git(repo, "range-diff", "--no-color", f"{base}..{old_tip}", f"{onto}..{new_tip}", env=pinned_env(),
                 check=False)
    return result.stdout if result.ok else ""


@dataclass(frozen=True)
class RangeDiffEntry:
    """One patch's line of a range-diff: how the new series' commit compares with the old one."""

    name: str  # the series commit's subject without the "mpspatch: " prefix: the patch file name
    verdict: str  # unchanged | changed | replaced (too different to pair) | dropped | added
    added: int  # lines of the diff-of-diffs marked + (for a changed patch)
    removed: int  # lines marked -


# git range-diff's pair lines: "1:  98ae17a ! 1:  7d7397f subject"; `-:  -------` on the side a commit is
# missing from. Everything else in its output is the diff-of-diffs, indented by four columns.
_PAIR = re.compile(r"^\s*(?:\d+|-+):\s+(?:[0-9a-f]+|-+) ([=!<>])\s+(?:\d+|-+):\s+(?:[0-9a-f]+|-+) (.*)$")
_VERDICT = {"=": "unchanged", "!": "changed", "<": "dropped", ">": "added"}


def range_diff_summary(text: str) -> tuple[RangeDiffEntry, ...]:
    """One entry per patch of a `git range-diff`, with the size of its diff-of-diffs (what `--no-patch` shows,
    plus counts), read from the full output so git runs once."""
    entries: list[RangeDiffEntry] = []
    added = removed = 0
    for line in text.splitlines():
        match = _PAIR.match(line)
        if match:
            if entries:
                entries[-1] = RangeDiffEntry(entries[-1].name, entries[-1].verdict, added, removed)
            added = removed = 0
            entries.append(RangeDiffEntry(match.group(2).removeprefix("mpspatch: "), _VERDICT[match.group(1)], 0, 0))
        elif line.startswith("    +"):
            added += 1
        elif line.startswith("    -"):
            removed += 1
    if entries:
        entries[-1] = RangeDiffEntry(entries[-1].name, entries[-1].verdict, added, removed)
    # A patch rewritten beyond range-diff's creation factor comes out as a dropped commit and an added one of
    # the same name: it is one patch, replaced.
    dropped = {e.name for e in entries if e.verdict == "dropped"} & {e.name for e in entries if e.verdict == "added"}
    merged: list[RangeDiffEntry] = []
    for e in entries:
        if e.name in dropped:
            if e.verdict == "added":
                merged.append(RangeDiffEntry(e.name, "replaced", 0, 0))
            continue
        merged.append(e)
    return tuple(merged)



def stage_paths(worktree: Path, paths: Sequence[str]) -> None:
    """`git add` these paths of the worktree: a conflict mpspatch resolved by itself is marked resolved."""
    if paths:
        git(worktree, "--literal-pathspecs", "add", "--", *paths, env=pinned_env())
