"""What stands between the series and submission, computed once for `status`, the audit and CI.

`compute_status` reads the series, the lock, the evidence, the checklist (`audit/requirements.toml`) and
the hand-written prose, runs the computed checks, and returns one StatusReport. `status --json` and every
rendered document take their readiness and gaps from it, so they cannot disagree.

A stage counts only when the newest evidence holding it says `passed` and was made for exactly the
current series hashes and the locked base. Anything else is a gap that says why: failed, error,
skipped (with the reason), missing, or stale. Human actions are listed, never counted as done.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from mpspatch.foundation.config import Config, Stage
from mpspatch.foundation.errors import GitError
from mpspatch.foundation.files import sha256_bytes
from mpspatch.foundation.ids import CommitSha
from mpspatch.model.series import LockCheck, Patch, SeriesStats, check_lock, compute_stats, parse_series
from mpspatch.model.stack import DEFAULT_DIR, STACK, STACK_NAME, Part
from mpspatch.model.store import StateFileError
from mpspatch.model.workspace import Workspace, try_resolve_ref
from mpspatch.reporting.requirements import CHECK, CHECKS, HUMAN, STAGE, Requirement, Requirements, load_requirements
from mpspatch.verify.evidence import LATEST, EvidenceRun, all_runs, run_dir
from mpspatch.verify.stages import PASSED, StageResult

# The parts of the documents only a person can write: docs/prose/<name>.md under [render].prose.
PROSE = ("summary", "motivation", "alternatives", "limitations")
# Where `mpspatch split` leaves its stack, relative to the config folder.
STACK_FILE = f"{DEFAULT_DIR}/{STACK_NAME}"

# Check and stage states. A check that could not run (no checkout, offline) is "not checked", never "passed".
CHECK_PASSED, CHECK_FAILED, NOT_CHECKED = "passed", "failed", "not checked"
MISSING, STALE = "missing", "stale"


@dataclass(frozen=True)
class Gap:
    id: str  # a stable key: "stage:tsan", "check:pr-size", "requirements"
    title: str
    reason: str  # failed: … | error: … | skipped: … | missing: … | stale: … | not checked: …
    blocking: bool
    fix: str = ""  # the command or edit that closes it


@dataclass(frozen=True)
class CheckResult:
    name: str
    title: str
    state: str  # passed | failed | not checked
    detail: str  # what was found, in words and numbers from the data
    fix: str = ""


@dataclass(frozen=True)
class StageState:
    """One stage as the evidence shows it for the current series."""

    name: str
    kind: str
    definition: Stage | None  # None when mpspatch.toml has no such stage
    state: str  # passed | failed | error | skipped | missing | stale
    why: str  # "" when passed
    result: StageResult | None  # the newest recorded result, also when stale, so the reader sees what it was
    run_id: str | None
    run_created_at: str | None
    log: str | None  # relative to the config folder, POSIX separators

    @property
    def passed(self) -> bool:
        return self.state == PASSED


@dataclass(frozen=True)
class Row:
    """One checklist requirement and where it stands."""

    requirement: Requirement
    status: str  # PASS | FAIL | ERROR | SKIPPED | MISSING | STALE | NOT CHECKED | HUMAN ACTION
    detail: str
    stage: StageState | None
    check: CheckResult | None

    @property
    def passed(self) -> bool:
        return self.status == "PASS"


@dataclass(frozen=True)
class ProseFragment:
    name: str
    path: str  # relative to the config folder
    text: str | None  # None when the file is missing or blank

    @property
    def present(self) -> bool:
        return self.text is not None


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


def compute_status(ws: Workspace) -> StatusReport:
    config = ws.config
    patches = parse_series(config.series.patches)
    stats = compute_stats(patches, config.categories, config.series.allowed_paths)
    lock = check_lock(config, patches)
    requirements = load_requirements(config.render.requirements)
    prose = read_prose(config)
    runs = all_runs(config.evidence_dir)
    latest = _latest(config.evidence_dir, runs)
    base = lock.lock.base if lock.lock else None
    stage_names = _stage_names(config, requirements)
    stages = tuple(
        stage_state(config, name, runs, [p.sha256 for p in patches], base, lock_exists=lock.lock is not None)
        for name in stage_names
    )
    checks = run_checks(_CheckContext(config, patches, stats, lock, prose, ws))
    rows = tuple(_row(r, stages, checks) for r in requirements.items) if requirements else ()
    gaps = _gaps(config, requirements, rows, stages, checks)
    return StatusReport(config=config, patches=patches, stats=stats, lock=lock, requirements=requirements,
                        rows=rows, stages=stages, checks=checks, prose=prose, latest=latest, gaps=gaps)


def _latest(evidence_dir: Path, runs: Sequence[EvidenceRun]) -> EvidenceRun | None:
    """The run `audit/runs/latest` names (what verify wrote last), else the newest by id."""
    pointer = evidence_dir / LATEST
    wanted = pointer.read_text(encoding="utf-8").strip() if pointer.is_file() else ""
    return next((r for r in runs if r.run_id == wanted), runs[-1] if runs else None)


def _stage_names(config: Config, requirements: Requirements | None) -> tuple[str, ...]:
    """Configured stages in config order, then any stage the checklist names that the config lacks."""
    named = requirements.stage_names() if requirements else ()
    return tuple(dict.fromkeys([*(s.name for s in config.stages), *named]))


def relative(path: Path, root: Path) -> str:
    """A path as the documents show it: relative to the config folder, so no machine path is written."""
    return Path(os.path.relpath(path, root)).as_posix()


# ----------------------------------------------------------------------------------------------- prose


def read_prose(config: Config) -> tuple[ProseFragment, ...]:
    folder = config.render.prose_dir
    fragments = []
    for name in PROSE:
        if folder is None:
            fragments.append(ProseFragment(name, f"(no [render].prose folder)/{name}.md", None))
            continue
        path = folder / f"{name}.md"
        try:
            text = path.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            text = ""
        fragments.append(ProseFragment(name, relative(path, config.root), text or None))
    return tuple(fragments)


# ---------------------------------------------------------------------------------------------- stages


def one_line(text: str) -> str:
    """Tool output folded onto one line: gap reasons sit in Markdown lists and tables."""
    return "; ".join(line.strip() for line in text.splitlines() if line.strip())


def count(n: int, noun: str) -> str:
    """'1 file', '2 files', '1 patch', '3 patches', with thousands separators."""
    if n == 1:
        return f"1 {noun}"
    return f"{n:,} {noun}es" if noun.endswith(("ch", "sh", "s", "x")) else f"{n:,} {noun}s"


def format_counts(counts: Sequence[tuple[str, int]]) -> str:
    return ", ".join(f"{key} {value:,}" for key, value in counts)


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
            return StageState(name, "", None, MISSING, _not_configured(config, name), None, None, None, None)
        why = "missing: never run; no evidence records this stage"
        return StageState(name, definition.kind, definition, MISSING, why, None, None, None, None)
    result = run.stage(name)
    assert result is not None
    log = relative(run_dir(config.evidence_dir, run.run_id) / result.log, config.root) if result.log else None

    def state(value: str, why: str) -> StageState:
        kind = definition.kind if definition else result.kind
        return StageState(name, kind, definition, value, why, result, run.run_id, run.created_at, log)

    stale = _staleness(run, series_sha256, base, lock_exists=lock_exists)
    if stale:
        return state(STALE, f"stale: {stale}")
    if result.status == PASSED:
        return state(PASSED, "")
    counts = f" ({format_counts(result.counts)})" if result.counts else ""
    reason = one_line(result.reason) or "no reason recorded"
    return state(result.status, f"{result.status}: {reason}{counts}")


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


# ---------------------------------------------------------------------------------------------- checks


@dataclass(frozen=True)
class _CheckContext:
    config: Config
    patches: tuple[Patch, ...]
    stats: SeriesStats
    lock: LockCheck
    prose: tuple[ProseFragment, ...]
    workspace: Workspace


def run_checks(ctx: _CheckContext) -> tuple[CheckResult, ...]:
    checkout = _checkout(ctx)
    results = []
    for name, title in CHECKS.items():
        state, detail, fix = _CHECK_FUNCTIONS[name](ctx, checkout)
        results.append(CheckResult(name=name, title=title, state=state, detail=detail, fix=fix))
    return tuple(results)


_Outcome = tuple[str, str, str]  # state, detail, fix


def _passed(detail: str) -> _Outcome:
    return CHECK_PASSED, detail, ""


def _failed(detail: str, fix: str) -> _Outcome:
    return CHECK_FAILED, detail, fix


@dataclass(frozen=True)
class _Checkout:
    repo: Path | None
    base: CommitSha | None
    why_not: str  # set when repo or base is None


def _checkout(ctx: _CheckContext) -> _Checkout:
    """The upstream clone and the base commit, for the checks that need history. Never fetches."""
    from mpspatch.git import verbs as git

    shown = relative(ctx.config.upstream.checkout, ctx.config.root)
    if not ctx.config.upstream.checkout.exists():
        return _Checkout(None, None, f"no checkout at {shown}")
    try:
        repo = ctx.workspace.checkout
    except GitError:
        return _Checkout(None, None, f"{shown} is not a git repository")
    if ctx.lock.lock is not None:
        if not git.has_commit(repo, ctx.lock.lock.base):
            return _Checkout(repo, None, f"the locked base {ctx.lock.lock.base[:12]} is not in {shown}; fetch it")
        return _Checkout(repo, ctx.lock.lock.base, "")
    base = try_resolve_ref(repo, ctx.config.upstream.base)
    if base is None:
        return _Checkout(repo, None, f"the base {ctx.config.upstream.base!r} is not in {shown}; fetch it")
    return _Checkout(repo, base, "")


def _check_lock(ctx: _CheckContext, _: _Checkout) -> _Outcome:
    if ctx.lock.matches:
        assert ctx.lock.lock is not None
        return _passed(f"{count(len(ctx.lock.lock.patches), 'patch')} locked at base {ctx.lock.lock.base[:12]}")
    return _failed("; ".join(ctx.lock.problems), "`mpspatch lock`")


def _check_allowed(ctx: _CheckContext, _: _Checkout) -> _Outcome:
    allowed = ctx.config.series.allowed_paths
    if not allowed:
        return _passed("no [series].allowed_paths configured, so every path is accepted")
    outside = ctx.stats.outside_allowed
    if not outside:
        return _passed(f"all {ctx.stats.files:,} files are under the {len(allowed):,} allowed prefixes")
    listed = ", ".join(f"`{p}`" for p in outside[:5]) + (" …" if len(outside) > 5 else "")
    return _failed(f"{count(len(outside), 'file')} outside allowed_paths: {listed}",
                   "remove those files from the patch or extend [series].allowed_paths")


def _check_index(ctx: _CheckContext, _: _Checkout) -> _Outcome:
    lacking = [f.path for p in ctx.patches for f in p.files if not f.has_index_line]
    if not lacking:
        return _passed(f"all {ctx.stats.files:,} files carry an index line")
    return _failed(f"{count(len(lacking), 'file')} without an index line, first `{lacking[0]}`",
                   "regenerate the patch with `git diff --full-index`")


def _check_applies(ctx: _CheckContext, checkout: _Checkout) -> _Outcome:
    from mpspatch.git.commits import MISSING_AT_BASE_FIX, apply_in_order, missing_at_base_detail

    if checkout.repo is None or checkout.base is None:
        return NOT_CHECKED, f"not checked: {checkout.why_not}", "clone the upstream to [upstream].checkout"
    failed, why, missing = apply_in_order(checkout.repo, checkout.base, [p.path for p in ctx.patches])
    if failed is None:
        return _passed(f"{count(len(ctx.patches), 'patch')} apply in order at {checkout.base[:12]}")
    if missing:
        # A rebase cannot help: there is nothing at the base to merge into.
        return _failed(f"`{relative(failed, ctx.config.root)}`: {missing_at_base_detail(checkout.base, missing)}",
                       MISSING_AT_BASE_FIX)
    return _failed(f"`{relative(failed, ctx.config.root)}` does not apply after the patches before it: "
                   f"{one_line(why)}",
                   "`mpspatch rebase`, or fix the order in [series].patches")


def _check_base_current(ctx: _CheckContext, checkout: _Checkout) -> _Outcome:
    from mpspatch.git import verbs as git

    if checkout.repo is None or checkout.base is None:
        return NOT_CHECKED, f"not checked: {checkout.why_not}", "clone the upstream to [upstream].checkout"
    target = ctx.config.upstream.target
    found = try_resolve_ref(checkout.repo, target)
    if found is None:
        return (NOT_CHECKED, f"not checked: the target {target!r} is not in the checkout",
                f"`git fetch origin {target}` in the checkout")
    if git.is_ancestor(checkout.repo, found, checkout.base):
        return _passed(f"the base {checkout.base[:12]} contains {target}")
    return _failed(f"the base {checkout.base[:12]} is older than {target}", f"`mpspatch rebase --onto {target}`")


def _check_pr_size(ctx: _CheckContext, _: _Checkout) -> _Outcome:
    limit = ctx.config.split.max_lines
    changed = ctx.stats.changed_lines
    if changed <= limit:
        return _passed(f"{changed:,} changed lines, within the {limit:,}-line limit")
    over = f"{changed:,} changed lines (insertions + deletions) exceed the {limit:,}-line limit"
    fix = f"`mpspatch split --max-lines {limit}`"
    parts, problem = _stack_parts(ctx.config.root / STACK_FILE, ctx.patches)
    if parts is None:
        return _failed(f"{over}; {problem}" if problem else over, fix)
    too_big = [p for p in parts if p.lines > limit]
    if not too_big:
        largest = max(p.lines for p in parts)
        return _passed(f"{over} as one PR, but the stack in {Path(STACK_FILE).parent.as_posix()} has "
                       f"{len(parts):,} parts, each within it (largest {largest:,})")
    worst = too_big[0]
    hunk = " (a single hunk larger than the limit)" if worst.oversized_hunk else ""
    return _failed(f"{over}; stack part {worst.index:,} of {len(parts):,} has {worst.lines:,} lines{hunk}",
                   f"{fix}, and split the large hunk by hand" if worst.oversized_hunk else fix)


def _stack_parts(path: Path, patches: Sequence[Patch]) -> tuple[tuple[Part, ...] | None, str]:
    """The parts of the split stack, or (None, why) when it is absent, not valid or made for other content.

    A broken stack is a gap here, not an error: status reports what stands in the way and goes on.
    """
    try:
        stack = STACK.read(path)
    except StateFileError as exc:
        return None, f"{STACK_FILE}: {exc.problem}; run `mpspatch split` again"
    if stack is None:
        return None, ""
    if not stack.parts:
        return None, f"{STACK_FILE} has no parts"
    if list(stack.series_sha256) != [p.sha256 for p in patches]:
        return None, f"{STACK_FILE} was made for other series content; run `mpspatch split` again"
    return stack.parts, ""


def _check_issue(ctx: _CheckContext, _: _Checkout) -> _Outcome:
    issue = ctx.config.render.issue
    if issue is not None:
        return _passed(f"the PR says Fixes #{issue}")
    return _failed("human action: no issue number; the PR shows the placeholder `Fixes #ISSUE_NUMBER`",
                   "find or open the pytorch/pytorch issue (`mpspatch render-issue` drafts it), "
                   "then set [render].issue")


def _check_prose(ctx: _CheckContext, _: _Checkout) -> _Outcome:
    missing = [p.path for p in ctx.prose if not p.present]
    if not missing:
        return _passed(f"all {len(ctx.prose):,} prose fragments are written")
    return _failed(f"missing: {', '.join(f'`{m}`' for m in missing)}",
                   "write those Markdown files; mpspatch never invents this text")


def _check_tests_included(ctx: _CheckContext, _: _Checkout) -> _Outcome:
    tests = [p for c in ctx.stats.categories for p in c.files if p.startswith("test/")]
    tests += [p for p in ctx.stats.uncategorized if p.startswith("test/")]
    if tests:
        return _passed(f"{count(len(tests), 'file')} under test/ changed, e.g. `{sorted(tests)[0]}`")
    return _failed("no file under test/ changes", "add tests to PyTorch's suite, e.g. `test/test_mps.py`")


def _check_whitespace(ctx: _CheckContext, _: _Checkout) -> _Outcome:
    found: list[str] = []
    for patch in ctx.patches:
        for change in patch.files:
            if change.path.rsplit("/", 1)[-1] in ("Makefile", "makefile") or change.path.endswith(".mk"):
                continue  # make requires tabs
            for hunk in change.hunks:
                found.extend(f"{change.path}:{line}" for line in _bad_whitespace(hunk.text, hunk.target_start))
    if not found:
        return _passed("no added line has a tab or trailing whitespace")
    return _failed(f"{count(len(found), 'added line')} with a tab or trailing whitespace, first at `{found[0]}`",
                   "run clang-format on the file and strip trailing blanks")


def _bad_whitespace(hunk_text: str, target_start: int) -> list[int]:
    """New-file line numbers of added lines with a tab or trailing whitespace."""
    bad, line = [], target_start
    for raw in hunk_text.split("\n")[1:]:
        text = raw.rstrip("\r")
        if text.startswith("+"):
            body = text[1:]
            if "\t" in body or body != body.rstrip():
                bad.append(line)
            line += 1
        elif text.startswith(" ") or text == "":
            line += 1
    return bad


def _check_labels(ctx: _CheckContext, _: _Checkout) -> _Outcome:
    labels = ctx.config.render.labels
    chosen = [label for label in labels if label.startswith("release notes:") or label == "topic: not user facing"]
    if chosen:
        return _passed(f"label `{chosen[0]}`")
    return _failed("no `release notes: …` label in [render].labels",
                   'add `labels = ["release notes: mps"]` under [render]')


def _check_categories(ctx: _CheckContext, _: _Checkout) -> _Outcome:
    if not ctx.stats.uncategorized:
        return _passed(f"all {ctx.stats.files:,} files fall into the {len(ctx.stats.categories):,} categories")
    lost = ctx.stats.uncategorized
    return _failed(f"{count(len(lost), 'file')} in no category, first `{lost[0]}`",
                   "add a glob for them under [categories]")


_CHECK_FUNCTIONS: dict[str, Callable[[_CheckContext, _Checkout], _Outcome]] = {
    "lock": _check_lock,
    "allowed-paths": _check_allowed,
    "index-lines": _check_index,
    "series-applies": _check_applies,
    "base-current": _check_base_current,
    "pr-size": _check_pr_size,
    "issue-linked": _check_issue,
    "prose": _check_prose,
    "tests-included": _check_tests_included,
    "whitespace": _check_whitespace,
    "release-notes-label": _check_labels,
    "categories": _check_categories,
}


# ------------------------------------------------------------------------------------------ rows, gaps

_STATUS_WORDS = {PASSED: "PASS", "failed": "FAIL", "error": "ERROR", "skipped": "SKIPPED", MISSING: "MISSING",
                 STALE: "STALE", CHECK_FAILED: "FAIL", NOT_CHECKED: "NOT CHECKED"}


def _row(req: Requirement, stages: Sequence[StageState], checks: Sequence[CheckResult]) -> Row:
    if req.kind == STAGE:
        stage = next(s for s in stages if s.name == req.target)
        return Row(req, _STATUS_WORDS[stage.state], stage.why or f"stage `{stage.name}` passed", stage, None)
    if req.kind == CHECK:
        check = next(c for c in checks if c.name == req.target)
        return Row(req, _STATUS_WORDS[check.state], check.detail, None, check)
    return Row(req, "HUMAN ACTION", req.target, None, None)


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
                        "copy audit/requirements.toml from mpspatch and adjust it"))
    for stage in stages:
        if stage.passed:
            continue
        titles = [r.requirement.title for r in rows if r.stage is stage]
        blocking = any(r.requirement.blocking for r in rows if r.stage is stage)
        title = titles[0] if titles else f"Stage `{stage.name}` passes (not named by the checklist)"
        fix = f"`mpspatch verify --stage {stage.name}`" if stage.definition else f"add a [[stages]] named {stage.name}"
        gaps.append(Gap(f"stage:{stage.name}", title, stage.why, blocking, fix))
    for check in checks:
        if check.state == CHECK_PASSED:
            continue
        referenced = [r for r in rows if r.check is check]
        if not referenced and check.state == NOT_CHECKED:
            continue  # nothing asks for it, and nothing is known to be wrong
        blocking = check.state == CHECK_FAILED and any(r.requirement.blocking for r in referenced)
        gaps.append(Gap(f"check:{check.name}", check.title, check.detail, blocking, check.fix))
    return tuple(gaps)
