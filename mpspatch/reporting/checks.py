"""The computed checks as a registry: one object per check with its name, its title and the function that runs it.

A check reads the series, the lock, the config and (when it needs history) the upstream clone, and says
passed, failed or not checked. A check that could not run (no checkout, offline) is "not checked", never
"passed". The checklist (`audit/requirements.toml`) names checks from this registry.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from mpspatch.foundation.config import Config
from mpspatch.foundation.errors import GitError
from mpspatch.foundation.ids import CommitSha
from mpspatch.model.landed import LandedChange
from mpspatch.model.series import LockCheck, Patch, SeriesStats
from mpspatch.model.stack import DEFAULT_DIR, STACK, STACK_NAME, Part
from mpspatch.model.store import StateFileError
from mpspatch.model.workspace import Workspace, try_resolve_ref
from mpspatch.reporting.prose import ProseFragment, named_paths, paths_not_in_series
from mpspatch.reporting.text import count, one_line, relative

# Where `mpspatch split` leaves its stack, relative to the config folder.
STACK_FILE = f"{DEFAULT_DIR}/{STACK_NAME}"


class CheckState(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    NOT_CHECKED = "not checked"


@dataclass(frozen=True)
class CheckResult:
    name: str
    title: str
    state: CheckState
    detail: str  # what was found, in words and numbers from the data
    fix: str = ""


@dataclass(frozen=True)
class CheckContext:
    config: Config
    patches: tuple[Patch, ...]
    stats: SeriesStats
    lock: LockCheck
    prose: tuple[ProseFragment, ...]
    workspace: Workspace
    landed: tuple[LandedChange, ...] = ()  # what rebases dropped because upstream had it


def run_checks(ctx: CheckContext) -> tuple[CheckResult, ...]:
    """Every registered check, in registry order (the order gaps are listed in)."""
    checkout = _checkout(ctx)
    results = []
    for check in CHECKS.values():
        state, detail, fix = check.run(ctx, checkout)
        results.append(CheckResult(name=check.name, title=check.title, state=state, detail=detail, fix=fix))
    return tuple(results)


_Outcome = tuple[CheckState, str, str]  # state, detail, fix


def _passed(detail: str) -> _Outcome:
    return CheckState.PASSED, detail, ""


def _failed(detail: str, fix: str) -> _Outcome:
    return CheckState.FAILED, detail, fix


@dataclass(frozen=True)
class Checkout:
    repo: Path | None
    base: CommitSha | None
    why_not: str  # set when repo or base is None


def _checkout(ctx: CheckContext) -> Checkout:
    """The upstream clone and the base commit, for the checks that need history. Never fetches."""
    from mpspatch.git import verbs as git

    shown = relative(ctx.config.upstream.checkout, ctx.config.root)
    if not ctx.config.upstream.checkout.exists():
        return Checkout(None, None, f"no checkout at {shown}")
    try:
        repo = ctx.workspace.checkout
    except GitError:
        return Checkout(None, None, f"{shown} is not a git repository")
    if ctx.lock.lock is not None:
        if not git.has_commit(repo, ctx.lock.lock.base):
            return Checkout(repo, None, f"the locked base {ctx.lock.lock.base[:12]} is not in {shown}; fetch it")
        return Checkout(repo, ctx.lock.lock.base, "")
    base = try_resolve_ref(repo, ctx.config.upstream.base)
    if base is None:
        return Checkout(repo, None, f"the base {ctx.config.upstream.base!r} is not in {shown}; fetch it")
    return Checkout(repo, base, "")


def _check_lock(ctx: CheckContext, _: Checkout) -> _Outcome:
    if ctx.lock.matches:
        assert ctx.lock.lock is not None
        return _passed(f"{count(len(ctx.lock.lock.patches), 'patch')} locked at base {ctx.lock.lock.base[:12]}")
    return _failed("; ".join(ctx.lock.problems), "`mpspatch lock`")


def _check_allowed(ctx: CheckContext, _: Checkout) -> _Outcome:
    allowed = ctx.config.series.allowed_paths
    if not allowed:
        return _passed("no [series].allowed_paths configured, so every path is accepted")
    outside = ctx.stats.outside_allowed
    if not outside:
        return _passed(f"all {ctx.stats.files:,} files are under the {len(allowed):,} allowed prefixes")
    listed = ", ".join(f"`{p}`" for p in outside[:5]) + (" …" if len(outside) > 5 else "")
    return _failed(f"{count(len(outside), 'file')} outside allowed_paths: {listed}",
                   "remove those files from the patch or extend [series].allowed_paths")


def _check_index(ctx: CheckContext, _: Checkout) -> _Outcome:
    lacking = [f.path for p in ctx.patches for f in p.files if not f.has_index_line]
    if not lacking:
        return _passed(f"all {ctx.stats.files:,} files carry an index line")
    return _failed(f"{count(len(lacking), 'file')} without an index line, first `{lacking[0]}`",
                   "regenerate the patch with `git diff --full-index`")


def _check_applies(ctx: CheckContext, checkout: Checkout) -> _Outcome:
    from mpspatch.git.commits import MISSING_AT_BASE_FIX, apply_in_order, missing_at_base_detail

    if checkout.repo is None or checkout.base is None:
        return CheckState.NOT_CHECKED, f"not checked: {checkout.why_not}", "clone the upstream to [upstream].checkout"
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


def _check_base_current(ctx: CheckContext, checkout: Checkout) -> _Outcome:
    from mpspatch.git import verbs as git

    if checkout.repo is None or checkout.base is None:
        return CheckState.NOT_CHECKED, f"not checked: {checkout.why_not}", "clone the upstream to [upstream].checkout"
    target = ctx.config.upstream.target
    found = try_resolve_ref(checkout.repo, target)
    if found is None:
        return (CheckState.NOT_CHECKED, f"not checked: the target {target!r} is not in the checkout",
                f"`git fetch origin {target}` in the checkout")
    if git.is_ancestor(checkout.repo, found, checkout.base):
        return _passed(f"the base {checkout.base[:12]} contains {target}")
    return _failed(f"the base {checkout.base[:12]} is older than {target}", f"`mpspatch rebase --onto {target}`")


def _check_pr_size(ctx: CheckContext, _: Checkout) -> _Outcome:
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


def _check_issue(ctx: CheckContext, _: Checkout) -> _Outcome:
    issue = ctx.config.render.issue
    if issue is not None:
        return _passed(f"the PR says Fixes #{issue}")
    return _failed("human action: no issue number; the PR names no issue until [render].issue is set",
                   "find or open the pytorch/pytorch issue (`mpspatch render-issue` drafts it), "
                   "then set [render].issue")


PROSE_CHECK = "prose"
PROSE_PATHS_FIX = ("name only files the series changes, or say in the same sentence that the change was removed, "
                   "absorbed or is already upstream")


def _check_prose(ctx: CheckContext, _: Checkout) -> _Outcome:
    """The fragments exist, and every repository path they name is one the series touches.

    Whether the rendered PR description has the sections the checklist row asks for is added by the status
    report (status.py), which knows the row and can render the document.
    """
    from mpspatch.model.series import series_paths

    missing = [p.path for p in ctx.prose if p.required and not p.present]
    if missing:
        return _failed(f"missing: {', '.join(f'`{m}`' for m in missing)}",
                       "write those Markdown files (or list the section in [render].optional_sections); "
                       "mpspatch never invents this text")
    wrong = paths_not_in_series(ctx.prose, series_paths(ctx.patches))
    # A file a rebase dropped because upstream landed it: the prose still describes it as this series' change.
    landed = {c.path: c for c in ctx.landed if c.whole_file}
    stale = [w for w in wrong if w.path in landed]
    if stale:
        shown = "; ".join(f"`{w.path}` ({w.fragment}) {_landed_in(landed[w.path].pull_requests)}"
                          for w in stale[:3]) + (" …" if len(stale) > 3 else "")
        return _failed(f"the prose still describes {count(len(stale), 'file')} that upstream has landed and the "
                       f"series no longer changes: {shown}",
                       "rewrite those sentences: say the change landed upstream (and in which PR), or drop them")
    if wrong:
        shown = ", ".join(f"`{w.path}` ({w.fragment})" for w in wrong[:3]) + (" …" if len(wrong) > 3 else "")
        return _failed(f"{count(len(wrong), 'path')} the prose names {'is' if len(wrong) == 1 else 'are'} not in "
                       f"the series: {shown}", PROSE_PATHS_FIX)
    named = {path for p in ctx.prose for path, _ in named_paths(p.text or "")}
    written = sum(1 for p in ctx.prose if p.present)
    return _passed(f"all {written:,} prose fragments are written"
                   + (f"; every repository path they name ({len(named):,}) is in the series" if named else ""))


def _landed_in(pull_requests: Sequence[int]) -> str:
    if not pull_requests:
        return "is already upstream"
    return "landed upstream in " + " and ".join(f"#{n}" for n in pull_requests)


def _check_tests_included(ctx: CheckContext, _: Checkout) -> _Outcome:
    tests = [p for c in ctx.stats.categories for p in c.files if p.startswith("test/")]
    tests += [p for p in ctx.stats.uncategorized if p.startswith("test/")]
    if tests:
        return _passed(f"{count(len(tests), 'file')} under test/ changed, e.g. `{sorted(tests)[0]}`")
    return _failed("no file under test/ changes", "add tests to PyTorch's suite, e.g. `test/test_mps.py`")


def _check_whitespace(ctx: CheckContext, _: Checkout) -> _Outcome:
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


def _check_labels(ctx: CheckContext, _: Checkout) -> _Outcome:
    labels = ctx.config.render.labels
    chosen = [label for label in labels if label.startswith("release notes:") or label == "topic: not user facing"]
    if chosen:
        return _passed(f"label `{chosen[0]}`")
    return _failed("no `release notes: …` label in [render].labels",
                   'add `labels = ["release notes: mps"]` under [render]')


def _check_cc(ctx: CheckContext, _: Checkout) -> _Outcome:
    cc = ctx.config.render.cc
    if cc:
        return _passed(f"the PR and the issue cc {' '.join(cc)}")
    return _failed("no [render].cc: the PR and the issue carry no cc line for the MPS maintainers",
                   'copy the handles from the cc line on a current `module: mps` issue into [render].cc, e.g. '
                   '`cc = ["@maintainer-handle"]`')


def _check_categories(ctx: CheckContext, _: Checkout) -> _Outcome:
    if not ctx.stats.uncategorized:
        return _passed(f"all {ctx.stats.files:,} files fall into the {len(ctx.stats.categories):,} categories")
    lost = ctx.stats.uncategorized
    return _failed(f"{count(len(lost), 'file')} in no category, first `{lost[0]}`",
                   "add a glob for them under [categories]")


REGRESSIONS_CHECK = "no-regressions"


def _check_regressions(ctx: CheckContext, _: Checkout) -> _Outcome:
    """No failure that the newest earlier passing run of its stage, on another base, did not have.

    A failure that a failing run on an earlier base had too is pre-existing: named, not counted against this
    base. Reads only the evidence made for the current series and base.
    """
    from mpspatch.verify.evidence import all_runs, standing_comparison

    if ctx.lock.lock is None:
        return CheckState.NOT_CHECKED, "not checked: the series has no lock, so no evidence is tied to a base", \
            "`mpspatch lock`"
    series = [p.sha256 for p in ctx.patches]
    runs = all_runs(ctx.config.evidence_dir)
    if not any(r.part is None and r.made_for(series, ctx.lock.lock.base) for r in runs):
        return (CheckState.NOT_CHECKED, "not checked: no evidence for the current series and base",
                "`mpspatch verify`")
    compared = standing_comparison(runs, series, ctx.lock.lock.base)
    pre = ""
    if compared.preexisting:
        first = compared.preexisting[0]
        pre = (f"; {count(len(compared.preexisting), 'failure')} pre-existing (failed on an earlier base too, "
               f"e.g. {first.stage} {first.kind} `{first.id}` in run {first.failed_in})")
    if not compared.regressions:
        if not any(r.part is None and r.base != ctx.lock.lock.base for r in runs):
            return _passed("no earlier run on another base to compare with yet; the next rebase's run is compared "
                           "with this one")
        return _passed(f"no failure is new since the last passing run on an earlier base{pre}")
    first_r = compared.regressions[0]
    return _failed(f"{count(len(compared.regressions), 'regression')}: failing now, passing in the newest earlier "
                   f"passing run on another base, first {first_r.stage} {first_r.kind} `{first_r.id}` "
                   f"(passed in run {first_r.since_run}){pre}",
                   "fix what the upstream bump or the rebased series broke, then `mpspatch verify`")


# ---------------------------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class Check:
    name: str  # what `satisfied_by = { check = "..." }` names in the checklist
    title: str
    run: Callable[[CheckContext, Checkout], _Outcome]


# Registry order is the order of the results and of their gaps.
CHECKS: Mapping[str, Check] = {
    check.name: check
    for check in (
        Check("lock", "The series lock matches the patch files", _check_lock),
        Check("allowed-paths", "Every patched file is under [series].allowed_paths", _check_allowed),
        Check("index-lines", "Every patched file keeps its `index` line, so 3-way merges work", _check_index),
        Check("series-applies", "The patches apply in order at the base", _check_applies),
        Check("base-current", "The base contains the configured target", _check_base_current),
        Check("pr-size", "Each pull request stays within the line limit", _check_pr_size),
        Check("issue-linked", "The PR names the issue it fixes", _check_issue),
        Check(PROSE_CHECK, "The hand-written parts of the documents exist", _check_prose),
        Check("tests-included", "The series changes PyTorch's own tests", _check_tests_included),
        Check("whitespace", "Added lines have no tabs and no trailing whitespace", _check_whitespace),
        Check("release-notes-label", "A `release notes:` label is set", _check_labels),
        Check("cc-line", "The PR and the issue cc the MPS maintainers", _check_cc),
        Check("categories", "Every patched file belongs to a category", _check_categories),
        Check(REGRESSIONS_CHECK, "Nothing that passed on the previous base fails now", _check_regressions),
    )
}
