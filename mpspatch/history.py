"""Upstream history between two commits: which commits touched the patched paths, and which PR landed each.

PyTorch's merge bot ends every landed commit with `Pull Request resolved: https://github.com/pytorch/pytorch/
pull/N`; that trailer is how a commit is traced back to its review. Commits pushed directly have none.

(A minimal version written on the rebase branch; the drift issue owns this module and may extend it.)
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mpspatch.git import git
from mpspatch.ids import CommitSha, commit_sha

_PR_TRAILER = re.compile(r"^Pull Request resolved: https?://github\.com/[^/\s]+/[^/\s]+/pull/(\d+)\s*$", re.M)
_RECORD, _FIELD = "\x1e", "\x1f"


@dataclass(frozen=True)
class UpstreamCommit:
    sha: CommitSha
    subject: str
    pull_request: int | None  # from the `Pull Request resolved` trailer; None for a direct push
    paths: tuple[str, ...]  # the paths it touched, limited to the ones asked about


def pull_request_of(message: str) -> int | None:
    """The PR number of the last `Pull Request resolved` trailer (a reland quotes the earlier one first)."""
    found = _PR_TRAILER.findall(message)
    return int(found[-1]) if found else None


def upstream_commits(repo: Path, base: str, onto: str, paths: Sequence[str]) -> tuple[UpstreamCommit, ...]:
    """Commits in base..onto that touch any of `paths`, newest first, with their PR numbers.

    Renames are not followed: a patch is keyed by the paths it names, and a rename upstream shows up as a
    delete of that path, which is what a rebase will trip over.
    """
    if not paths:
        return ()
    out = git(repo, "log", "-z", "--no-renames", "--name-only", f"--format={_RECORD}%H{_FIELD}%s{_FIELD}%B{_FIELD}",
              f"{base}..{onto}", "--", *sorted(set(paths))).stdout
    wanted = set(paths)
    commits = []
    for record in out.split(_RECORD):
        if not record.strip("\0\n"):
            continue
        sha, subject, body, names = record.split(_FIELD, 3)
        touched = tuple(sorted({n.strip("\n") for n in names.split("\0") if n.strip("\n")} & wanted))
        commits.append(UpstreamCommit(sha=commit_sha(sha), subject=subject, pull_request=pull_request_of(body),
                                      paths=touched))
    return tuple(commits)
