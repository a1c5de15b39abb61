"""Regressions across runs: what fails now that passed in the newest earlier run on another base.

After a rebase onto a newer upstream, a failing stage raises one question: did the upstream bump (or the
rebased series) break it, or was it already broken? Each stage result records the stable ids of what failed
(`StageResult.findings`: failing test ids from the JUnit XML, TSan report signatures, new lint findings as
"path: CODE: message"). A regression is such an id that the newest earlier run of the same stage on a
different base did not have, where that stage passed.
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


def reference(stage: StageResult, base: str | None, earlier: Sequence[EarlierRun]) -> tuple[str, StageResult] | None:
    """The newest earlier run (and its result) in which `stage` passed on another base than `base`."""
    for run in sorted(earlier, key=lambda r: r.run_id, reverse=True):
        if run.base == base:
            continue
        before = run.stage(stage.name)
        if before is not None and before.status == PASSED:
            return before.cached_from or run.run_id, before
    return None


def find(stages: Sequence[StageResult], base: str | None, earlier: Sequence[EarlierRun]) -> tuple[Regression, ...]:
    """Every failing finding of `stages` that the reference run of its stage did not have."""
    found: list[Regression] = []
    for stage in stages:
        kind = FINDING_KIND.get(StageKind(stage.kind))
        if kind is None or stage.status != FAILED or not stage.findings:
            continue
        ref = reference(stage, base, earlier)
        if ref is None:
            continue
        since, before = ref
        known = set(before.findings)
        found += [Regression(stage.name, kind, item, since) for item in stage.findings if item not in known]
    return tuple(found)
