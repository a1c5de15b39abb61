"""Stage kinds and the result every stage produces.

A stage's parser reads what the tools wrote (JUnit XML, TSan reports, lint JSON, build logs) and turns it
into `counts`; the exit code alone never decides a pass.
"""

from __future__ import annotations

from dataclasses import dataclass

PASSED = "passed"
FAILED = "failed"
SKIPPED = "skipped"
ERROR = "error"
STATUSES = (PASSED, FAILED, SKIPPED, ERROR)


@dataclass(frozen=True)
class StageResult:
    name: str
    kind: str  # build | lint | tsan | tests | command
    status: str  # one of STATUSES
    reason: str  # why: the failing counts, what is missing for a skip, the error; "" for a plain pass
    duration_s: float
    counts: tuple[tuple[str, int], ...]  # e.g. (("passed", 24), ("failed", 0)); ordered for stable output
    log: str | None  # log path relative to the run folder, e.g. "logs/tsan.log"
    log_sha256: str | None
    commands: tuple[tuple[str, ...], ...]  # the argv lists as run, placeholders expanded
    env: tuple[tuple[str, str], ...]  # the stage's env, secrets redacted
    started_at: str  # ISO 8601 UTC
    finished_at: str
    cache_key: str  # sha256 over series hashes, base, stage definition and tool versions
    cached_from: str | None = None  # run id whose passing result this one reuses
    details: tuple[str, ...] = ()  # notable lines: TSan SUMMARY lines, last error lines, failing test ids

    def count(self, key: str) -> int:
        return dict(self.counts).get(key, 0)
