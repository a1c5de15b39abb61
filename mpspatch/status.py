"""What stands between the series and submission, as data for `status`, the audit and CI.

Later stages (evidence, computed checks) add their gaps here, so `status --json` and the rendered audit
can never disagree: they are computed by this one function.
"""

from __future__ import annotations

from dataclasses import dataclass

from mpspatch.config import Config
from mpspatch.files import sha256_bytes
from mpspatch.series import LockCheck, Patch, SeriesStats, check_lock, compute_stats, parse_series


@dataclass(frozen=True)
class Gap:
    id: str  # a stable key, e.g. "lock", "stage:tsan", "check:pr-size"
    title: str
    reason: str  # failed | skipped: ... | missing | stale | ... in words a user can act on
    blocking: bool


@dataclass(frozen=True)
class StatusReport:
    config: Config
    patches: tuple[Patch, ...]
    stats: SeriesStats
    lock: LockCheck
    gaps: tuple[Gap, ...]

    @property
    def series_sha256(self) -> str:
        """One hash for the whole series: sha256 over the patches' own sha256s, in series order."""
        return str(sha256_bytes("".join(f"{p.sha256}\n" for p in self.patches).encode()))

    @property
    def ready(self) -> bool:
        return not any(g.blocking for g in self.gaps)


def compute_status(config: Config) -> StatusReport:
    patches = parse_series(config.series.patches)
    stats = compute_stats(patches, config.categories, config.series.allowed_paths)
    lock = check_lock(config, patches)
    gaps: list[Gap] = []
    if not lock.matches:
        gaps.append(Gap("lock", "Series lock matches the patch files", "; ".join(lock.problems), True))
    if stats.outside_allowed:
        gaps.append(
            Gap("check:allowed-paths", "Every file is under allowed_paths",
                f"{len(stats.outside_allowed)} file(s) outside allowed_paths: {', '.join(stats.outside_allowed[:3])}",
                True)
        )
    if not any(p.has_index_lines for p in patches):
        gaps.append(Gap("check:index-lines", "Patches keep their index lines for 3-way merges",
                        "no patch has `index` lines; regenerate with `git diff --full-index`", True))
    gaps.append(
        Gap("evidence", "Verification evidence for the current series",
            "missing: no verify evidence is read yet, so nothing has been shown to pass", True)
    )
    return StatusReport(config=config, patches=patches, stats=stats, lock=lock, gaps=tuple(gaps))
