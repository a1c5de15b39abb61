"""Versions compared: the per-patch range-diff summary between an earlier submitted version and now."""

from __future__ import annotations

import re
from pathlib import Path

from mpspatch.foundation.errors import GitError
from mpspatch.foundation.ids import CommitSha
from mpspatch.git import remote
from mpspatch.git import verbs as git
from mpspatch.model.submission import (
    Version,
)
from mpspatch.operations.submit.results import Comparison, PatchChange

# ----------------------------------------------------------------------------------------------- compare


_RANGE_DIFF = re.compile(r"^\s*(-|\d+):\s+(?:-+|[0-9a-f]+)\s+([=!<>])\s+(-|\d+):\s+(?:-+|[0-9a-f]+)\s+(.*)$")
_CHANGE = {"=": "unchanged", "!": "changed", "<": "dropped", ">": "added"}


def compare_versions(shadow: Path, old: Version, base: CommitSha, tip: CommitSha,
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


def changes_note(shadow: Path, since: Version, base: CommitSha, tip: CommitSha, old_tip: CommitSha) -> str:
    comparison = compare_versions(shadow, since, base, tip, old_tip)
    lines = [f"Changes since {since.name} (`git range-diff`, per commit):", ""]
    lines += [f"- {line}" for line in summary_lines(comparison)] or ["- no commit changed"]
    if since.base != base:
        lines += ["", f"The base moved from `{since.base[:12]}` to `{base[:12]}`."]
    return "\n".join(lines) + "\n"
