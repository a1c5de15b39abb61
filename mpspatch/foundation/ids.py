"""Typed identifiers. NewType costs nothing at run time and keeps SHAs of different kinds apart."""

from __future__ import annotations

import re
from typing import NewType

# A full 40-hex commit object name, always resolved (never a ref name or abbreviation).
CommitSha = NewType("CommitSha", str)
# A full 40-hex tree object name.
TreeSha = NewType("TreeSha", str)
# A 64-hex sha256 of a file's bytes, as recorded in series.lock and in evidence.
ContentSha256 = NewType("ContentSha256", str)
# A run id: UTC timestamp plus a short content hash, sortable and unique per verify run.
RunId = NewType("RunId", str)
# A path inside the upstream tree, POSIX separators, no leading "./" or "a/".
TreePath = NewType("TreePath", str)

_HEX40 = re.compile(r"[0-9a-f]{40}")


def commit_sha(value: str) -> CommitSha:
    if not _HEX40.fullmatch(value):
        raise ValueError(f"not a full commit SHA: {value!r}")
    return CommitSha(value)


def tree_sha(value: str) -> TreeSha:
    if not _HEX40.fullmatch(value):
        raise ValueError(f"not a full tree SHA: {value!r}")
    return TreeSha(value)


_HEX64 = re.compile(r"[0-9a-f]{64}")
# UTC time to the second, then 8 hex of a hash: 20251216T120000Z-3f9a1c2e
_RUN_ID = re.compile(r"\d{8}T\d{6}Z-[0-9a-f]{8}")


def content_sha256(value: str) -> ContentSha256:
    if not _HEX64.fullmatch(value):
        raise ValueError(f"not a sha256 (64 hex): {value!r}")
    return ContentSha256(value)


def run_id(value: str) -> RunId:
    if not _RUN_ID.fullmatch(value):
        raise ValueError(f"not a run id (YYYYMMDDTHHMMSSZ-8hex): {value!r}")
    return RunId(value)
