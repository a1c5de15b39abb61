"""`mpspatch demo`: the whole job on a small offline sample, with the real tools, in one call.

The demo writes the sample (an upstream git history and a downstream stream-pool patch, see
`mpspatch.sample`), then calls the same use cases the commands call, in the order a contributor would type
them:

    lock -> drift --onto v1.2 -> rebase --onto v1.2 -> verify --keep-going -> status -> render-pr,
    render-issue, render-audit

Nothing here is simulated: the build, the lint, the ThreadSanitizer run and the tests are the sample's
configured stages, run by the runner, and readiness is whatever `status` computes from the evidence.
The tools those stages need are checked first (see toolchain.py), so a missing one is one clear message,
not a failed stage.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from enum import StrEnum
from functools import partial
from pathlib import Path
from typing import TypeVar

from mpspatch.commands.drift import drift as forecast
from mpspatch.commands.rebase import rebase
from mpspatch.commands.render import render
from mpspatch.commands.series import lock
from mpspatch.commands.status import status
from mpspatch.commands.toolchain import Toolchain, check_tools
from mpspatch.commands.verify import verify
from mpspatch.foundation.config import load_config
from mpspatch.foundation.errors import CommandFailedError, InputError
from mpspatch.operations.drift import DriftReport
from mpspatch.operations.rebase import RebaseResult
from mpspatch.reporting.document_data import status_line
from mpspatch.reporting.report import Gap, StatusReport
from mpspatch.sample.builder import Sample, SampleError, write_sample
from mpspatch.verify.evidence import VerifyOutcome
from mpspatch.verify.runner import Progress
from mpspatch.verify.stages import PASSED

STEPS = ("tools", "sample", "lock", "drift", "rebase", "verify", "status", "render-pr", "render-issue",
         "render-audit")
DOCUMENT_STEPS = {"render-pr": "pr", "render-issue": "issue", "render-audit": "audit"}


# ------------------------------------------------------------------------------------------------- results


class StepStatus(StrEnum):
    OK = "ok"
    FAILED = "failed"
    SKIPPED = "skipped"


OK, STEP_FAILED, SKIPPED = StepStatus.OK, StepStatus.FAILED, StepStatus.SKIPPED


@dataclass(frozen=True)
class Step:
    name: str  # one of STEPS
    status: StepStatus
    duration_s: float
    detail: str  # one line: what the step found or made


@dataclass(frozen=True)
class Documents:
    pr: Path
    issue: Path
    audit: Path


@dataclass(frozen=True)
class DemoResult:
    sample: Sample
    toolchain: Toolchain
    steps: tuple[Step, ...]
    lock: Path
    drift: DriftReport
    rebase: RebaseResult
    verify: VerifyOutcome | None
    report: StatusReport | None  # computed after verify; None when the pipeline stopped before it
    documents: Documents | None
    duration_s: float  # the whole demo, tool check included

    @property
    def interrupted(self) -> bool:
        return self.verify is not None and self.verify.interrupted

    @property
    def ready(self) -> bool:
        return self.report is not None and self.report.ready

    @property
    def gaps(self) -> tuple[Gap, ...]:
        return self.report.gaps if self.report is not None else ()

    @property
    def status_line(self) -> str:
        return status_line(self.report) if self.report is not None else "NOT READY — the pipeline stopped early"


# ------------------------------------------------------------------------------------------------ progress


class DemoProgress:
    """Callbacks for a live display; console.py overrides them. The default shows nothing."""

    def step_started(self, name: str, index: int, total: int) -> None:
        """Step `name` (one of STEPS) starts."""

    def step_finished(self, step: Step, index: int, total: int) -> None:
        """`step` is done, failed or skipped."""

    def verifying(self) -> AbstractContextManager[Progress]:
        """The stage progress that the verify step hands to the runner, open while it runs."""
        return _quiet()


@contextmanager
def _quiet() -> Iterator[Progress]:
    yield Progress()


# -------------------------------------------------------------------------------------------------- folder


def prepare_dir(dest: Path | None) -> Path:
    """The folder to write the sample into: `dest` if new or empty (bad input otherwise), else a fresh temp one."""
    if dest is None:
        return Path(tempfile.mkdtemp(prefix="mpspatch-demo-"))
    if dest.exists() and not dest.is_dir():
        raise InputError(f"{dest}: --dir names a file; pass a new or empty folder")
    if dest.is_dir() and any(dest.iterdir()):
        raise InputError(f"{dest}: --dir is not empty; pass a new or empty folder, or leave --dir out for a "
                         "fresh temporary one")
    return dest


# ---------------------------------------------------------------------------------------------- the demo

T = TypeVar("T")


def run_demo(
    dest: Path | None = None,
    *,
    break_race: bool = False,
    progress: DemoProgress | None = None,
    python: str = sys.executable,
) -> DemoResult:
    """Write the sample and run the pipeline on it. Bad input and missing tools raise before anything is written.

    Steps after a stop (a conflicting rebase, an interrupted verify) are recorded as skipped, so the result
    always lists every step.
    """
    progress = progress or DemoProgress()
    started = time.monotonic()
    # Checked before the tool probe (it compiles and runs a program) and before anything is created.
    if dest is not None:
        prepare_dir(dest)
    with _installed_tools_first():
        return _pipeline(dest, break_race, progress, python, started)


@contextmanager
def _installed_tools_first() -> Iterator[None]:
    """Put the interpreter's folder first on PATH while the demo runs, as activating its venv would.

    clang-format and lintrunner come from pip with mpspatch. An older clang-format elsewhere on PATH (a
    distribution's) formats Google style a little differently and would fail the sample's lint stage for
    reasons that have nothing to do with the patch; the sample's lintrunner adapter runs `python3`, which
    then is this interpreter too.
    """
    folder = str(Path(sys.executable).parent)
    before = os.environ.get("PATH")
    parts = [p for p in (before or "").split(os.pathsep) if p and p != folder]
    os.environ["PATH"] = os.pathsep.join([folder, *parts])
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("PATH", None)
        else:
            os.environ["PATH"] = before


def _pipeline(
    dest: Path | None, break_race: bool, progress: DemoProgress, python: str, started: float
) -> DemoResult:
    steps: list[Step] = []
    total = len(STEPS)

    def step(name: str, work: Callable[[], T], detail: Callable[[T], tuple[StepStatus, str]]) -> T:
        index = STEPS.index(name)
        progress.step_started(name, index, total)
        began = time.monotonic()
        value = work()
        state, text = detail(value)
        done = Step(name=name, status=state, duration_s=round(time.monotonic() - began, 3), detail=text)
        steps.append(done)
        progress.step_finished(done, index, total)
        return value

    def skip(names: Sequence[str], why: str) -> None:
        for name in names:
            skipped = Step(name=name, status=SKIPPED, duration_s=0.0, detail=why)
            steps.append(skipped)
            progress.step_finished(skipped, STEPS.index(name), total)

    toolchain = step("tools", check_tools, _tools_detail)
    root = prepare_dir(dest)
    sample = step("sample", lambda: _write(root, break_race, toolchain.cxx), _sample_detail)
    config = load_config(sample.config)
    locked = step("lock", lambda: lock(config, written_by="mpspatch demo"),
                  lambda w: (OK, f"{w.base_ref} locked in {w.lock.name}"))
    target = config.upstream.target
    drift = step("drift", lambda: forecast(config, target), _drift_detail)
    rebased = step("rebase", lambda: rebase(config, target), _rebase_detail)
    outcome: VerifyOutcome | None = None
    report: StatusReport | None = None
    documents: Documents | None = None
    if rebased.status != "rebased":
        skip(STEPS[STEPS.index("verify"):], "not run: the rebase stopped on conflicts")
    else:
        with progress.verifying() as stage_progress:
            outcome = step("verify", lambda: verify(config, keep_going=True, progress=stage_progress, python=python),
                           _verify_detail)
        if outcome.interrupted:
            skip(STEPS[STEPS.index("status"):], "not run: verify was interrupted")
        else:
            report = step("status", lambda: status(config), _status_detail)
            written: dict[str, Path] = {}
            for name, kind in DOCUMENT_STEPS.items():
                written[kind] = step(name, partial(render, config, kind, report=report),
                                     lambda done: (OK, done.target.name)).target
            documents = Documents(pr=written["pr"], issue=written["issue"], audit=written["audit"])
    return DemoResult(
        sample=sample, toolchain=toolchain, steps=tuple(steps), lock=locked.lock, drift=drift, rebase=rebased,
        verify=outcome, report=report, documents=documents, duration_s=round(time.monotonic() - started, 3),
    )


def _write(root: Path, break_race: bool, cxx: str) -> Sample:
    try:
        return write_sample(root, break_race=break_race, cxx=cxx)
    except SampleError as exc:
        raise CommandFailedError(f"writing the demo sample into {root} failed: {exc}") from exc


# ------------------------------------------------------------------------------------------- step details


def _tools_detail(toolchain: Toolchain) -> tuple[StepStatus, str]:
    return OK, ", ".join(f"{t.name.split(' ')[0]} {_short_version(t.version)}".strip() for t in toolchain.tools)


def _short_version(text: str) -> str:
    match = re.search(r"\d+\.\d+(?:\.\d+)?", text)
    return match.group(0) if match else ""


def _sample_detail(sample: Sample) -> tuple[StepStatus, str]:
    race = " with the injected race" if sample.break_race else ""
    return OK, f"upstream v1.0, v1.1, v1.2 and the stream-pool patch{race}; tsan stage compiles with {sample.cxx}"


def _drift_detail(report: DriftReport) -> tuple[StepStatus, str]:
    absorbed = f", {len(report.absorbed)} already upstream" if report.absorbed else ""
    if report.conflicts:
        return STEP_FAILED, f"{len(report.conflicts)} conflict(s) predicted onto {report.onto_ref}{absorbed}"
    return OK, f"no conflicts predicted onto {report.onto_ref}{absorbed}"


def _rebase_detail(result: RebaseResult) -> tuple[StepStatus, str]:
    if result.status != "rebased":
        return STEP_FAILED, f"stopped on {len(result.conflicts)} conflict(s) onto {result.onto_ref}"
    absorbed = "".join(f"; {a.path} already upstream" for a in result.absorbed)
    return OK, f"rebased onto {result.onto_ref} {result.onto[:12]}{absorbed}"


def _verify_detail(outcome: VerifyOutcome) -> tuple[StepStatus, str]:
    parts = []
    for s in outcome.run.stages:
        counted = dict(s.counts)
        extra = f" ({counted['races']} race(s))" if s.kind == "tsan" and counted.get("races") else ""
        parts.append(f"{s.name} {s.status}{extra}")
    failed = any(s.status not in (PASSED,) for s in outcome.run.stages) or outcome.interrupted
    return (STEP_FAILED if failed else OK), ", ".join(parts)


def _status_detail(report: StatusReport) -> tuple[StepStatus, str]:
    blocking = report.blocking_gaps
    if not blocking:
        return OK, status_line(report)
    named = ", ".join(g.id for g in blocking)
    return STEP_FAILED, f"{status_line(report)}: {named}"

