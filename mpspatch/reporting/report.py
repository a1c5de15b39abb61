"""The status report as data: what `compute_status` returns and the documents are rendered from.

Its own module so that rendering (which reads a report) and status (which renders the PR once, to check the
sections the checklist asks for) do not import each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from mpspatch.foundation.config import Config, Stage, StageKind
from mpspatch.foundation.files import sha256_bytes
from mpspatch.foundation.ids import CommitSha
from mpspatch.model.landed import LandedChange
from mpspatch.model.series import LockCheck, Patch, SeriesStats
from mpspatch.model.state import RebaseState
from mpspatch.reporting.checks import CheckResult
from mpspatch.reporting.prose import ProseFragment
from mpspatch.reporting.requirements import HUMAN, Requirement, Requirements
from mpspatch.verify.evidence import EvidenceRun
from mpspatch.verify.regressions import Comparison
from mpspatch.verify.stages import StageResult


class Standing(StrEnum):
    """Where a stage, a check or a checklist row stands: one vocabulary, so `passed` is spelled once.

    A stage's states are its evidence's statuses plus missing and stale; a check's are passed, failed and
    not checked; a row takes its stage's or check's, or human action. The audit shows `word`.
    """

    PASSED = "passed"
    FAILED = "failed"
    ERROR = "error"
    SKIPPED = "skipped"
    MISSING = "missing"
    STALE = "stale"
    NOT_CHECKED = "not checked"
    HUMAN_ACTION = "human action"

    @property
    def word(self) -> str:
        """The audit's spelling: PASS, FAIL, ERROR, SKIPPED, MISSING, STALE, NOT CHECKED, HUMAN ACTION."""
        return {Standing.PASSED: "PASS", Standing.FAILED: "FAIL"}.get(self, self.value.upper())


@dataclass(frozen=True)
class Gap:
    id: str  # a stable key: "stage:tsan", "check:pr-size", "requirements"
    title: str
    reason: str  # failed: … | error: … | skipped: … | missing: … | stale: … | not checked: …
    blocking: bool
    fix: str = ""  # the command or edit that closes it


@dataclass(frozen=True)
class StageState:
    """One stage as the evidence shows it for the current series."""

    name: str
    kind: StageKind | None  # None when neither mpspatch.toml nor any evidence names the stage
    definition: Stage | None  # None when mpspatch.toml has no such stage
    state: Standing  # passed | failed | error | skipped | missing | stale
    why: str  # "" when passed
    result: StageResult | None  # the newest recorded result, also when stale, so the reader sees what it was
    run_id: str | None
    run_created_at: str | None
    log: str | None  # relative to the config folder, POSIX separators
    machine: tuple[tuple[str, str], ...] = ()  # the run's machine as its evidence records it (os, arch, model)
    tree: str | None = None  # the patched tree the run verified

    @property
    def passed(self) -> bool:
        return self.state == Standing.PASSED


@dataclass(frozen=True)
class Row:
    """One checklist requirement and where it stands."""

    requirement: Requirement
    state: Standing  # the stage's or the check's, or human action
    detail: str
    stage: StageState | None
    check: CheckResult | None

    @property
    def status(self) -> str:
        """What the audit's Status column says: PASS, FAIL, NOT CHECKED, HUMAN ACTION..."""
        return self.state.word

    @property
    def passed(self) -> bool:
        return self.state == Standing.PASSED


@dataclass(frozen=True)
class StatusReport:
    config: Config
    patches: tuple[Patch, ...]
    stats: SeriesStats
    lock: LockCheck
    requirements: Requirements | None
    rows: tuple[Row, ...]
    stages: tuple[StageState, ...]
    checks: tuple[CheckResult, ...]
    prose: tuple[ProseFragment, ...]
    latest: EvidenceRun | None
    gaps: tuple[Gap, ...]
    rebase: RebaseState | None = None  # a stopped rebase: the series is half-way between two bases
    landed: tuple[LandedChange, ...] = ()  # what earlier rebases dropped because upstream had it (landed.json)
    # Regressions and pre-existing failures recorded by the evidence that counts for the series and base.
    comparison: Comparison = field(default_factory=Comparison)

    @property
    def series_sha256(self) -> str:
        """One hash for the whole series: sha256 over the patches' own sha256s, in series order."""
        return str(sha256_bytes("".join(f"{p.sha256}\n" for p in self.patches).encode()))

    @property
    def ready(self) -> bool:
        return not self.blocking_gaps

    @property
    def blocking_gaps(self) -> tuple[Gap, ...]:
        return tuple(g for g in self.gaps if g.blocking)

    @property
    def advisory_gaps(self) -> tuple[Gap, ...]:
        return tuple(g for g in self.gaps if not g.blocking)

    @property
    def human_rows(self) -> tuple[Row, ...]:
        return tuple(r for r in self.rows if r.requirement.kind == HUMAN)

    @property
    def base(self) -> CommitSha | None:
        return self.lock.lock.base if self.lock.lock else None

    @property
    def base_ref(self) -> str:
        return self.lock.lock.base_ref if self.lock.lock else self.config.upstream.base

    def stage(self, name: str) -> StageState | None:
        return next((s for s in self.stages if s.name == name), None)

    def check(self, name: str) -> CheckResult:
        return next(c for c in self.checks if c.name == name)

    def fragment(self, name: str) -> ProseFragment:
        return next(p for p in self.prose if p.name == name)
