"""What stands between the series and submission, computed once for `status`, the audit and CI.

`compute_status` reads the series, the lock, the evidence, the checklist (`audit/requirements.toml`) and
the hand-written prose, runs the computed checks (checks.py), and returns one StatusReport. `status --json`
and every rendered document take their readiness and gaps from it, so they cannot disagree.

A stage counts only when the newest evidence holding it says `passed` and was made for exactly the
current series hashes and the locked base. Anything else is a gap that says why: failed, error,
skipped (with the reason), missing, or stale. A stage that failed or errored blocks readiness even when no
blocking checklist row names it. Human actions are listed, never counted as done.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from mpspatch.foundation.config import Config
from mpspatch.foundation.ids import CommitSha
from mpspatch.model.landed import read_landed
from mpspatch.model.series import check_lock, compute_stats, parse_series
from mpspatch.model.state import RebaseState, state_path, stopped_summary
from mpspatch.model.store import StateFileError
from mpspatch.model.workspace import Workspace
from mpspatch.reporting.checks import (
    PROSE_CHECK,
    REGRESSIONS_CHECK,
    CheckContext,
    CheckResult,
    CheckState,
    run_checks,
)
from mpspatch.reporting.prose import missing_sections, read_prose, sections_asked
from mpspatch.reporting.report import Gap, Row, StageState, Standing, StatusReport
from mpspatch.reporting.requirements import CHECK, STAGE, Requirement, Requirements, load_requirements
from mpspatch.reporting.text import format_counts, one_line, relative
from mpspatch.verify.evidence import LATEST, EvidenceRun, all_runs, run_dir, standing_comparison
from mpspatch.verify.stages import StageStatus


def compute_status(ws: Workspace) -> StatusReport:
    config = ws.config
    patches = parse_series(config.series.patches)
    stats = compute_stats(patches, config.categories, config.series.allowed_paths)
    lock = check_lock(config, patches)
    requirements = load_requirements(config.render.requirements)
    prose = read_prose(config)
    every = all_runs(config.evidence_dir)
    latest = _latest(config.evidence_dir, every)
    runs = tuple(r for r in every if r.part is None)  # `verify --part K` evidence is a part's, not the series'

    base = lock.lock.base if lock.lock else None
    stage_names = _stage_names(config, requirements)
    stages = tuple(
        stage_state(config, name, runs, [p.sha256 for p in patches], base, lock_exists=lock.lock is not None)
        for name in stage_names
    )
    landed = read_landed(config)
    checks = run_checks(CheckContext(config, patches, stats, lock, prose, ws, landed))
    rows = tuple(_row(r, stages, checks) for r in requirements.items) if requirements else ()
    stopped, rebase_gap = _stopped_rebase(ws)
    lead = (rebase_gap,) if rebase_gap is not None else ()
    gaps = (*lead, *_gaps(config, requirements, rows, stages, checks))
    report = StatusReport(config=config, patches=patches, stats=stats, lock=lock, requirements=requirements,
                          rows=rows, stages=stages, checks=checks, prose=prose, latest=latest, gaps=gaps,
                          rebase=stopped, landed=landed,
                          comparison=standing_comparison(runs, [p.sha256 for p in patches], base))
    sections = _prose_sections(report)
    if sections is None:
        return report
    checks = tuple(sections if c.name == sections.name else c for c in checks)
    rows = tuple(_row(r, stages, checks) for r in requirements.items) if requirements else ()
    gaps = (*lead, *_gaps(config, requirements, rows, stages, checks))
    return replace(report, checks=checks, rows=rows, gaps=gaps)


def with_part_evidence(report: StatusReport, part: int, tree: str | None) -> StatusReport:
    """The report with each stage taken from `verify --part K` evidence made on that part's own tree, where
    there is some for the current series and base; other stages keep the whole series' evidence."""
    config = report.config
    runs = tuple(r for r in all_runs(config.evidence_dir) if tree is not None and r.part == part and r.tree == tree)
    if not runs:
        return report
    series = [p.sha256 for p in report.patches]
    own = {s.name: stage_state(config, s.name, runs, series, report.base, lock_exists=report.lock.lock is not None)
           for s in report.stages if any(r.stage(s.name) is not None for r in runs)}
    return replace(report, stages=tuple(own.get(s.name, s) for s in report.stages))


def _prose_sections(report: StatusReport) -> CheckResult | None:
    """The prose check again, failed when the rendered PR description lacks a section the checklist rows that
    name the check ask for ("summary, motivation, alternatives and known limitations"); None when nothing
    changes. The check itself cannot do this: it knows neither the rows nor the rendered document."""
    from mpspatch.reporting.render import DOCUMENTS, render_document

    prose = next((c for c in report.checks if c.name == PROSE_CHECK), None)
    titles = " ".join(r.requirement.title for r in report.rows if r.check is prose)
    # What the checklist row names, then every configured section that is written: a template that drops one
    # leaves the reviewer without it.
    # A section whose file is missing is reported as missing already, not again as a missing heading.
    written = tuple(p.name for p in report.prose if p.present)
    unwritten = {p.name for p in report.prose if not p.present}
    asked = tuple(n for n in dict.fromkeys((*sections_asked(titles), *written)) if n not in unwritten)
    if prose is None or not asked:
        return None
    missing = missing_sections(render_document("pr", report), asked)
    if not missing:
        return None
    template = f"templates/{DOCUMENTS['pr'][0]}"
    found = (f"the rendered PR description has no {', '.join(f'`## {h}`' for h in missing)} "
             f"{'section' if len(missing) == 1 else 'sections'}, which the checklist or [render].sections asks for")
    fix = (f"list the section in [render].sections and write its file, or place it in {template} "
           f"(add {' and '.join(f'`## {h}`' for h in missing)})")
    if prose.state == CheckState.FAILED:
        found, fix = f"{prose.detail}; {found}", f"{prose.fix}; {fix}"
    return CheckResult(prose.name, prose.title, CheckState.FAILED, found, fix)


def _stopped_rebase(ws: Workspace) -> tuple[RebaseState | None, Gap | None]:
    """A stopped rebase (or a rebase state that cannot be read) and the blocking gap it is: the patch files
    still hold the old series, which is about to move, so nothing about it is ready to submit."""
    title = "No rebase is stopped half-way"
    try:
        stopped = ws.rebase
    except StateFileError as exc:
        return None, Gap("rebase", title, f"unreadable: {exc.problem}", True, "`mpspatch rebase --abort --force`")
    if stopped is None:
        return None, None
    worktree = relative(ws.config.root / stopped.worktree, ws.config.root)
    where = f"; resolve the conflicts in {worktree}" if stopped.conflicted else ""
    reason = f"stopped: {stopped_summary(stopped)} ({relative(state_path(ws.config), ws.config.root)}){where}"
    return stopped, Gap("rebase", title, reason, True,
                        "`mpspatch rebase --continue` after resolving, or `mpspatch rebase --abort`")


def _latest(evidence_dir: Path, runs: Sequence[EvidenceRun]) -> EvidenceRun | None:
    """The run `audit/runs/latest` names (what verify wrote last), else the newest by id."""
    pointer = evidence_dir / LATEST
    wanted = pointer.read_text(encoding="utf-8").strip() if pointer.is_file() else ""
    return next((r for r in runs if r.run_id == wanted), runs[-1] if runs else None)


def _stage_names(config: Config, requirements: Requirements | None) -> tuple[str, ...]:
    """Configured stages in config order, then any stage the checklist names that the config lacks."""
    named = requirements.stage_names() if requirements else ()
    return tuple(dict.fromkeys([*(s.name for s in config.stages), *named]))


# ---------------------------------------------------------------------------------------------- stages


def stage_state(
    config: Config,
    name: str,
    runs: Sequence[EvidenceRun],
    series_sha256: Sequence[str],
    base: CommitSha | None,
    *,
    lock_exists: bool,
) -> StageState:
    """Where stage `name` stands, from the newest run that recorded it (runs are oldest first).

    The newest run holding the stage decides, so `verify --stage lint` after a full run does not hide the
    other stages' evidence; but an older pass never outvotes a newer failure.
    """
    definition = next((s for s in config.stages if s.name == name), None)
    run = next((r for r in reversed(runs) if r.stage(name) is not None), None)
    if run is None:
        if definition is None:
            why = _not_configured(config, name)
            return StageState(name, None, None, Standing.MISSING, why, None, None, None, None)
        why = "missing: never run; no evidence records this stage"
        return StageState(name, definition.kind, definition, Standing.MISSING, why, None, None, None, None)
    result = run.stage(name)
    assert result is not None
    log = relative(run_dir(config.evidence_dir, run.run_id) / result.log, config.root) if result.log else None

    def state(value: Standing, why: str) -> StageState:
        kind = definition.kind if definition else result.kind
        return StageState(name, kind, definition, value, why, result, run.run_id, run.created_at, log,
                          machine=run.machine, tree=run.tree)

    stale = _staleness(run, series_sha256, base, lock_exists=lock_exists)
    if stale:
        return state(Standing.STALE, f"stale: {stale}")
    if result.status == StageStatus.PASSED:
        return state(Standing.PASSED, "")
    counts = f" ({format_counts(result.counts)})" if result.counts else ""
    reason = one_line(result.reason) or "no reason recorded"
    return state(Standing(result.status), f"{result.status}: {reason}{counts}")


def _not_configured(config: Config, name: str) -> str:
    import difflib

    hint = difflib.get_close_matches(name, [s.name for s in config.stages], n=1)
    suffix = f" (did you mean {hint[0]!r}?)" if hint else ""
    return f"missing: no [[stages]] named {name!r} in {config.path.name}{suffix}"


def _staleness(run: EvidenceRun, series_sha256: Sequence[str], base: CommitSha | None, *, lock_exists: bool) -> str:
    """Why `run` does not count for the current series and base, or "" when it does."""
    if not lock_exists:
        return "the series has no lock, so no evidence can be tied to its base; run `mpspatch lock`"
    recorded = [p.sha256 for p in run.series]
    if recorded != list(series_sha256):
        then = ", ".join(s[:12] for s in recorded) or "nothing"
        now = ", ".join(s[:12] for s in series_sha256)
        return f"run {run.run_id} was made for other series content (sha256 {then}; now {now})"
    if not run.made_for(series_sha256, base):
        return f"run {run.run_id} was made at base {(run.base or 'unknown')[:12]}; the lock says {(base or '')[:12]}"
    return ""


# ------------------------------------------------------------------------------------------ rows, gaps


def _row(req: Requirement, stages: Sequence[StageState], checks: Sequence[CheckResult]) -> Row:
    if req.kind == STAGE:
        stage = next(s for s in stages if s.name == req.target)
        return Row(req, stage.state, stage.why or f"stage `{stage.name}` passed", stage, None)
    if req.kind == CHECK:
        check = next(c for c in checks if c.name == req.target)
        return Row(req, Standing(check.state), check.detail, None, check)
    return Row(req, Standing.HUMAN_ACTION, req.target, None, None)


def _gaps(
    config: Config,
    requirements: Requirements | None,
    rows: Sequence[Row],
    stages: Sequence[StageState],
    checks: Sequence[CheckResult],
) -> tuple[Gap, ...]:
    gaps: list[Gap] = []
    if requirements is None:
        where = relative(config.render.requirements, config.root)
        gaps.append(Gap("requirements", "The contribution checklist exists",
                        f"missing: {where} not found, so nothing can be checked against it", True,
                        "`mpspatch init` writes a starter checklist (it writes only missing files: run it in an "
                        "empty folder and copy audit/requirements.toml over), or set [render].requirements"))
    for stage in stages:
        if stage.passed:
            continue
        titles = [r.requirement.title for r in rows if r.stage is stage]
        # A stage that ran for the current series and failed or errored blocks, whatever the checklist says
        # about it: a known failure is never "ready". Missing, skipped (with its reason) and stale stages block
        # only when a blocking row asks for them.
        ran_and_broke = stage.state in (Standing.FAILED, Standing.ERROR)
        blocking = ran_and_broke or any(r.requirement.blocking for r in rows if r.stage is stage)
        title = titles[0] if titles else f"Stage `{stage.name}` passes (not named by the checklist)"
        fix = f"`mpspatch verify --stage {stage.name}`" if stage.definition else f"add a [[stages]] named {stage.name}"
        gaps.append(Gap(f"stage:{stage.name}", title, stage.why, blocking, fix))
    for stage in stages:
        # A tool that is not the version the checkout pins: the result may differ from upstream CI's. Never a
        # silent pass, never a block.
        for pin in stage.result.tool_pins if stage.result and stage.state != Standing.STALE else ():
            if not pin.matches:
                gaps.append(Gap(f"note:{stage.name}:{pin.tool}", f"`{stage.name}` ran the {pin.tool} the checkout pins",
                                pin.note(), False,
                                f"`pip install {pin.tool}=={pin.pinned}`" if pin.pinned else ""))
    for check in checks:
        if check.state == CheckState.PASSED:
            continue
        referenced = [r for r in rows if r.check is check]
        if not referenced and check.state == CheckState.NOT_CHECKED:
            continue  # nothing asks for it, and nothing is known to be wrong
        # A regression blocks whatever the checklist says, like a failed stage: it is a known break.
        blocking = check.state == CheckState.FAILED and (
            check.name == REGRESSIONS_CHECK or any(r.requirement.blocking for r in referenced))
        gaps.append(Gap(f"check:{check.name}", check.title, check.detail, blocking, check.fix))
    return tuple(gaps)
