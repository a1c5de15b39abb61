"""Regressions across runs: what fails now that passed in the newest earlier run on another base.

After a rebase onto a newer upstream, a failing stage raises one question: did the upstream bump (or the
rebased series) break it, or was it already broken? Each stage result records the stable ids of what failed
(`StageResult.findings`: failing test ids from the JUnit XML, TSan report signatures, new lint findings as
"path: CODE: message"). A regression is such an id that the newest earlier run of the same stage on a
different base did not have, where that stage passed. An id that a failing run on another base, newer than
that passing one, had too is pre-existing: it broke before this base, and is reported as such.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from mpspatch.foundation.config import StageKind
from mpspatch.verify.stages import FAILED, PASSED, StageResult


class EarlierRun(Protocol):
    """What the comparison reads of an earlier evidence run (verify/evidence.py's EvidenceRun has it)."""

    @property
    def run_id(self) -> str: ...
    @property
    def base(self) -> str | None: ...
    def stage(self, name: str) -> StageResult | None: ...

# What a finding of each stage kind is, in the JSON's `kind`.
FINDING_KIND = {StageKind.TESTS: "test", StageKind.TSAN: "race", StageKind.LINT: "lint"}


@dataclass(frozen=True)
class Regression:
    stage: str
    kind: str  # test | race | lint
    id: str  # the test id, the TSan signature, or "path: CODE: message"
    since_run: str  # the earlier run in which the stage passed without it


@dataclass(frozen=True)
class Preexisting:
    """A failure now that also failed in an earlier run on another base: not this base's doing."""

    stage: str
    kind: str  # test | race | lint
    id: str
    failed_in: str  # the newest earlier run (on another base) in which it failed too


@dataclass(frozen=True)
class Comparison:
    regressions: tuple[Regression, ...] = ()
    preexisting: tuple[Preexisting, ...] = ()


def reference(stage: StageResult, base: str | None, earlier: Sequence[EarlierRun]) -> tuple[str, StageResult] | None:
    """The newest earlier run (and its result) in which `stage` passed on another base than `base`."""
    for run in sorted(earlier, key=lambda r: r.run_id, reverse=True):
        if run.base == base:
            continue
        before = run.stage(stage.name)
        if before is not None and before.status == PASSED:
            return before.cached_from or run.run_id, before
    return None


def failed_since_reference(stage: StageResult, base: str | None, earlier: Sequence[EarlierRun]) -> dict[str, str]:
    """Each finding of the failing runs of `stage` on other bases newer than its reference: id -> newest run."""
    seen: dict[str, str] = {}
    for run in sorted(earlier, key=lambda r: r.run_id, reverse=True):
        if run.base == base:
            continue
        before = run.stage(stage.name)
        if before is None:
            continue
        if before.status == PASSED:
            break
        if before.status == FAILED:
            for item in before.findings:
                seen.setdefault(item, before.cached_from or run.run_id)
    return seen


def compare(stages: Sequence[StageResult], base: str | None, earlier: Sequence[EarlierRun]) -> Comparison:
    """Sort every failing finding of `stages`: a regression when the reference run of its stage did not have it,
    pre-existing when a failing run on another base, newer than that reference, had it already."""
    found: list[Regression] = []
    known_failing: list[Preexisting] = []
    for stage in stages:
        kind = FINDING_KIND.get(StageKind(stage.kind))
        if kind is None or stage.status != FAILED or not stage.findings:
            continue
        failed_before = failed_since_reference(stage, base, earlier)
        ref = reference(stage, base, earlier)
        for item in stage.findings:
            if item in failed_before:
                known_failing.append(Preexisting(stage.name, kind, item, failed_before[item]))
            elif ref is not None and item not in ref[1].findings:
                found.append(Regression(stage.name, kind, item, ref[0]))
    return Comparison(tuple(found), tuple(known_failing))


def find(stages: Sequence[StageResult], base: str | None, earlier: Sequence[EarlierRun]) -> tuple[Regression, ...]:
    """Every failing finding of `stages` that the reference run of its stage did not have."""
    return compare(stages, base, earlier).regressions
