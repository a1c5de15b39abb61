"""Evidence: what a verify run did and found, stored so documents can cite it and never outlive it.

`audit/runs/<run-id>/evidence.json` plus `logs/`; `audit/runs/latest` holds the newest run id. A run is
never overwritten, and a stage result counts only for the series hashes and base it was made on.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from mpspatch.foundation.config import Config, Stage
from mpspatch.foundation.errors import ConfigError, InputError, StateError
from mpspatch.foundation.files import atomic_write_text
from mpspatch.foundation.ids import CommitSha, ContentSha256, RunId, TreeSha
from mpspatch.model.series import load_series, relative_path
from mpspatch.model.stack import default_stack_dir, load_current_stack, part_context
from mpspatch.model.store import StateFile
from mpspatch.model.workspace import Workspace
from mpspatch.verify import patched_tree, stage_group
from mpspatch.verify.machine import describe_machine
from mpspatch.verify.patched_tree import PatchedTree
from mpspatch.verify.placeholders import validate
from mpspatch.verify.regressions import Comparison, Preexisting, Regression, compare
from mpspatch.verify.runner import CachedResult, Progress, RunRequest, run_stages
from mpspatch.verify.stages import ERROR, FAILED, PASSED, StageResult

EVIDENCE_VERSION = 1
LATEST = "latest"


@dataclass(frozen=True)
class SeriesPatchRef:
    path: str  # relative to the config folder
    sha256: ContentSha256


@dataclass(frozen=True)
class EvidenceRun:
    run_id: RunId
    created_at: str  # ISO 8601 UTC
    series: tuple[SeriesPatchRef, ...]
    base: CommitSha | None
    base_ref: str
    onto: CommitSha | None  # set when the tree was a rebase result
    tree: TreeSha | None  # the patched tree the stages ran on
    tools: tuple[tuple[str, str], ...]  # (tool, version), e.g. ("git", "2.39.5")
    stages: tuple[StageResult, ...]
    # Failures that the newest earlier passing run of the same stage on another base did not have.
    regressions: tuple[Regression, ...] = ()
    # Failures that a failing run on another base, newer than that passing one, had too.
    preexisting: tuple[Preexisting, ...] = ()
    part: int | None = None  # `verify --part K`: the stages ran on stack parts 1..K (their tree is `tree`)
    # What the stages ran on, e.g. (("os", "darwin"), ("os_version", "15.1"), ("arch", "arm64"),
    # ("model", "Apple M2")): the documents say where each figure was measured. Absent in older evidence.
    machine: tuple[tuple[str, str], ...] = ()

    def stage(self, name: str) -> StageResult | None:
        return next((s for s in self.stages if s.name == name), None)

    def made_for(self, series_sha256: Sequence[str], base: str | None) -> bool:
        """Whether this evidence was made for exactly this series content and base commit."""
        return [p.sha256 for p in self.series] == list(series_sha256) and self.base == base


# Keys stay in field order (version, run_id, created_at, ...): the file reads top-down like the run it records.
EVIDENCE = StateFile(
    what="the evidence", model=EvidenceRun, version=EVIDENCE_VERSION, fix="rerun `mpspatch verify`",
    sort_keys=False,
)


def run_dir(evidence_dir: Path, run_id: str) -> Path:
    return evidence_dir / run_id


def write_run(evidence_dir: Path, run: EvidenceRun) -> Path:
    """Write evidence.json for a new run and point `latest` at it. An existing run is never overwritten."""
    target = run_dir(evidence_dir, run.run_id) / "evidence.json"
    if target.exists():
        raise StateError(f"{target}: evidence for run {run.run_id} exists already; runs are never overwritten")
    EVIDENCE.write(target, _rounded(run))
    atomic_write_text(evidence_dir / LATEST, run.run_id + "\n")
    return target


def read_run(path: Path) -> EvidenceRun:
    return EVIDENCE.load(path)


def _rounded(run: EvidenceRun) -> EvidenceRun:
    """Durations to the millisecond: finer digits are noise in a file people read and diff."""
    return replace(run, stages=tuple(replace(s, duration_s=round(s.duration_s, 3)) for s in run.stages))


def latest_run(evidence_dir: Path) -> EvidenceRun | None:
    pointer = evidence_dir / LATEST
    if not pointer.exists():
        return None
    run_id = pointer.read_text(encoding="utf-8").strip()
    return read_run(run_dir(evidence_dir, run_id) / "evidence.json")


def all_runs(evidence_dir: Path) -> tuple[EvidenceRun, ...]:
    """Every stored run, oldest first (run ids sort by time)."""
    if not evidence_dir.is_dir():
        return ()
    return tuple(read_run(p) for p in sorted(evidence_dir.glob("*/evidence.json")))


def standing_comparison(runs: Sequence[EvidenceRun], series_sha256: Sequence[str], base: str | None) -> Comparison:
    """The regressions and pre-existing failures that stand for the current series and base: for each stage,
    those its newest whole-series run made for them recorded (runs are oldest first)."""
    newest: dict[str, EvidenceRun] = {}
    for run in runs:
        if run.part is None and run.made_for(series_sha256, base):
            for stage in run.stages:
                newest[stage.name] = run
    regressions = tuple(r for name, run in newest.items() for r in run.regressions if r.stage == name)
    preexisting = tuple(p for name, run in newest.items() for p in run.preexisting if p.stage == name)
    return Comparison(regressions, preexisting)


# ------------------------------------------------------------------------------------------ verify runs
# The verify orchestration: claim a run folder, run the stages, write the evidence once.


@dataclass(frozen=True)
class VerifyOutcome:
    run: EvidenceRun
    evidence: Path  # the evidence.json written
    run_dir: Path
    tree: PatchedTree
    interrupted: bool  # Ctrl-C stopped the run; the evidence records it and the CLI then exits 130
    # A stage whose program could not be started, one line each naming the stage, the program and the fix:
    # bad input, so the CLI exits 2 (the evidence still records the stage as `error`).
    unrunnable: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.interrupted and all(s.status not in (FAILED, ERROR) for s in self.run.stages)


def select_stages(config: Config, names: Sequence[str]) -> tuple[Stage, ...]:
    """The stages to run, in config order; unknown names are bad input naming the ones that exist."""
    if not config.stages:
        raise ConfigError(f"{config.path}: no [[stages]] configured; add one, e.g. a tests stage")
    known = [s.name for s in config.stages]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise InputError(
            f"{config.path}: no stage named {', '.join(repr(n) for n in unknown)}; configured: {', '.join(known)}"
        )
    chosen = tuple(s for s in config.stages if not names or s.name in names)
    validate(config, chosen)
    return chosen


def new_run_id(series: Sequence[str], base: str) -> tuple[RunId, str]:
    """A sortable id: the UTC time to the second plus 8 hex of a hash over the inputs and this instant."""
    now = datetime.now(UTC)
    salt = f"{time.time_ns()}:{os.getpid()}:{secrets.token_hex(4)}"
    digest = hashlib.sha256(json.dumps([list(series), base, salt]).encode()).hexdigest()[:8]
    stamp = now.replace(microsecond=0).isoformat().replace("+00:00", "Z")
    return RunId(f"{now:%Y%m%dT%H%M%SZ}-{digest}"), stamp


def claim_run_dir(evidence_dir: Path, series: Sequence[str], base: str) -> tuple[RunId, str, Path]:
    """Create a fresh run folder; mkdir without exist_ok is the guard that no run is ever written over."""
    evidence_dir.mkdir(parents=True, exist_ok=True)
    for _ in range(20):
        run_id, created_at = new_run_id(series, base)
        folder = run_dir(evidence_dir, run_id)
        try:
            folder.mkdir()
        except FileExistsError:
            continue
        return run_id, created_at, folder
    raise StateError(f"{evidence_dir}: cannot find a free run id; check the folder is writable")


def readable_runs(evidence_dir: Path) -> tuple[EvidenceRun, ...]:
    """Every stored run that can be read, oldest first; unreadable old runs are passed over, not fatal."""
    runs = []
    for path in sorted(evidence_dir.glob("*/evidence.json")) if evidence_dir.is_dir() else ():
        try:
            runs.append(read_run(path))
        except StateError:
            continue
    return tuple(runs)


def find_passing(evidence_dir: Path, key: str) -> CachedResult | None:
    """The newest run with a passing result for `key`; unreadable old runs are passed over, not fatal."""
    if not evidence_dir.is_dir():
        return None
    for path in sorted(evidence_dir.glob("*/evidence.json"), reverse=True):
        try:
            earlier = read_run(path)
        except StateError:
            continue
        for stage in earlier.stages:
            if stage.cache_key == key and stage.status == PASSED:
                return CachedResult(run_id=stage.cached_from or earlier.run_id, result=stage)
    return None


def verify(
    ws: Workspace,
    *,
    stage_names: Sequence[str] = (),
    keep_going: bool = False,
    force: bool = False,
    progress: Progress | None = None,
    python: str | None = None,
    part: int | None = None,
    note: Callable[[str], None] | None = None,
) -> VerifyOutcome:
    """Run the stages. `python` is what `{python}` means: by default `[verify] python`, else this interpreter.

    Called under the project lock: a stage group left running by a verify that was killed is stopped first
    (and `note` told so), never run beside.
    """
    config = ws.config
    stale = stage_group.reap_stale(config.state_dir)
    if stale is not None and note is not None:
        note(stale)
    python = python or (str(config.python) if config.python else sys.executable)
    ws.refuse_during_rebase("verify")  # before anything about the stages: the series itself is mid-move
    stages = select_stages(config, stage_names)
    patches = load_series(config)
    series = tuple(p.sha256 for p in patches)
    with patched_tree.exclusive(config):
        planned = patched_tree.plan(ws, patches) if part is None else _plan_part(ws, part)
        run_id, created_at, folder = claim_run_dir(config.evidence_dir, series, planned.base)
        try:
            outcome = run_stages(
                RunRequest(config=config, stages=stages, tree=planned, series=series, run_dir=folder,
                           keep_going=keep_going, force=force, python=python),
                lookup=lambda key: find_passing(config.evidence_dir, key),
                materialize=lambda tree, full: patched_tree.checkout(
                    config, tree, full=full, extra=sorted({p for s in stages for p in s.sparse})),
                progress=progress,
            )
        except BaseException:
            # No evidence will name this folder; leaving it would look like a run that lost its record.
            shutil.rmtree(folder, ignore_errors=True)
            raise
    compared = compare(outcome.results, planned.base,
                       [r for r in readable_runs(config.evidence_dir) if r.part == part])
    run = EvidenceRun(
        run_id=run_id,
        created_at=created_at,
        series=tuple(SeriesPatchRef(relative_path(p.path, config.root), p.sha256) for p in patches),
        base=planned.base,
        base_ref=planned.base_ref,
        onto=planned.onto,
        tree=planned.tree,
        tools=outcome.tools,
        stages=outcome.results,
        regressions=compared.regressions,
        preexisting=compared.preexisting,
        part=part,
        machine=describe_machine(config.root),
    )
    path = write_run(config.evidence_dir, run)
    return VerifyOutcome(run=run, evidence=path, run_dir=folder, tree=outcome.tree, interrupted=outcome.interrupted,
                         unrunnable=outcome.unrunnable)


def _plan_part(ws: Workspace, k: int) -> PatchedTree:
    """The tree of stack parts 1..k, from the stack `mpspatch split` wrote for the current series."""
    stack = load_current_stack(ws.config)
    part_context(stack, k)  # an index outside the stack is bad input naming the range
    return patched_tree.plan_part(ws, stack, default_stack_dir(ws.config.root), k)
