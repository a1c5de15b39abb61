"""Carry the series onto a new upstream commit with git's own merge machinery, and write it back as patches.

The work happens in the shadow repository (git/shadow.py) and a sparse worktree of it; the user's clone is
only read. Every step that can be interrupted is preceded by a write of `.mpspatch/rebase.json`, so Ctrl-C or
a kill always leaves something `--continue` or `--abort` can pick up. Patch files and the lock are backed up
before anything changes them, and they are only changed at the very end.

This module runs a rebase (start, --continue, the final write); rollback.py drops one (--abort), upstream.py
says what upstream did to the series' paths, results.py holds what both report.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from mpspatch.foundation.config import Config
from mpspatch.foundation.errors import InputError, MpspatchError, StateError
from mpspatch.foundation.files import atomic_write_bytes, sha256_bytes, sha256_file
from mpspatch.foundation.ids import CommitSha
from mpspatch.foundation.progress import QUIET, Steps
from mpspatch.foundation.redact import redact_url
from mpspatch.git import commits, rebasing
from mpspatch.git import shadow as shadow_repo
from mpspatch.git import verbs as git
from mpspatch.model.landed import LandedChange, record_landed
from mpspatch.model.series import (
    Patch,
    load_series,
    make_lock,
    parse_patch_bytes,
    relative_path,
    require_utf8,
    series_paths,
    write_lock,
)
from mpspatch.model.series_cache import cached_build
from mpspatch.model.state import (
    RebasePhase,
    RebaseState,
    SavedFile,
    backup_dir,
    keep_previous,
    previous_dir,
    range_diff_path,
    state_path,
    worktree_path,
    write_state,
)
from mpspatch.model.workspace import Workspace
from mpspatch.operations.rebase.results import (
    AbortResult,
    AbsorbedChange,
    ConflictedPath,
    PatchChange,
    RebaseResult,
    RebaseStatus,
)
from mpspatch.operations.rebase.rollback import BRANCH, SERIES_REF, abort, cleanup, require_state
from mpspatch.operations.rebase.upstream import (
    conflict_report,
    index_history,
    remove_conflict_notes,
    settle_in_place,
    stop_upstream,
    upstream_check,
    write_conflict_notes,
)

if TYPE_CHECKING:
    from concurrent.futures import Future

    Pending = Future[bool]  # the commit-graph update, running beside git rebase

__all__ = ["INTERRUPT_ENV", "AbortResult", "AbsorbedChange", "ConflictedPath", "PatchChange", "RebaseResult",
           "RebaseStatus", "abort", "first_marker", "resume", "start"]

# Test hook: a comma-separated list of points at which to raise KeyboardInterrupt, standing in for a Ctrl-C
# or a kill at the worst moment. Points: after-state, before-rebase, before-write, mid-write, after-write.
INTERRUPT_ENV = "MPSPATCH_TEST_INTERRUPT"
# The same points, where the process sends itself SIGKILL instead.
KILL_ENV = "MPSPATCH_TEST_KILL"

_MARKER = re.compile(r"^(<<<<<<<|>>>>>>>|\|\|\|\|\|\|\|)( |$)")


# ------------------------------------------------------------------------------------------------ results

# -------------------------------------------------------------------------------------------------- state


def _interrupt_point(point: str) -> None:
    if point in os.environ.get(INTERRUPT_ENV, "").split(","):
        raise KeyboardInterrupt(f"test interrupt at {point}")
    if point in os.environ.get(KILL_ENV, "").split(","):
        import signal

        os.kill(os.getpid(), signal.SIGKILL)  # a real kill: no handler, no finally, no cleanup


def _saved(config: Config, path: Path) -> SavedFile:
    return SavedFile(path=relative_path(path, config.root), sha256=sha256_file(path) if path.exists() else None)


# ------------------------------------------------------------------------------------------------- start


def start(ws: Workspace, onto_ref: str | None = None, steps: Steps = QUIET) -> RebaseResult:
    config = ws.config
    existing = ws.rebase
    if existing is not None:
        raise StateError(f"{state_path(config)}: a rebase onto {existing.onto_ref} is in progress; run "
                         "`mpspatch rebase --continue` or `mpspatch rebase --abort`")
    notes: list[str] = []
    steps.step("resolving the target")
    if shadow_repo.ensure_checkout(config.upstream.url, config.upstream.checkout):
        notes.append(f"cloned {redact_url(config.upstream.url)} into {config.upstream.checkout} (blobless, sparse)")
    shadow = ws.shadow  # also checks that the checkout is a git repository
    span = ws.resolve_onto(onto_ref)
    base, base_ref, onto, onto_ref = span.base, span.base_ref, span.onto, span.onto_ref
    patches = load_series(config)
    for patch in patches:
        require_utf8(patch.path)
    names = [p.path.name for p in patches]
    if len(set(names)) != len(names):
        raise InputError(f"{config.path}: two patches in [series].patches share a file name; give each its own name")
    fetched = shadow_repo.prefetch_blobs(shadow, base, onto, series_paths(patches))
    if fetched:
        notes.append(f"fetched {fetched} blob(s) the partial clone lacked, into the shadow repository")
    steps.step(f"building the series ({len(patches)} patches)")
    # Free when a drift just built the same series; a rebase records nothing itself (it moves the base).
    build = cached_build(shadow, base, [p.path for p in patches], remember=False)
    notes.extend(build.notes)
    tip = build.commits[-1]
    # The old series stays reachable from a shadow ref until the end: range-diff and --abort need it.
    shadow_repo.update_refs(shadow, pin={SERIES_REF: tip})
    worktree = worktree_path(config)
    state = RebaseState(
        phase=RebasePhase.PREPARED, base=base, base_ref=base_ref, onto=onto, onto_ref=onto_ref, series_tip=tip,
        series=build.commits,
        patches=tuple(_saved(config, p.path) for p in patches), lock=_saved(config, config.series.lock),
        worktree=relative_path(worktree, config.root), paths=series_paths(patches), conflicted=(), notes=tuple(notes),
        started_at=datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z"),
    )
    _backup(config, [p.path for p in patches])
    write_state(config, state)
    # A stop reports the upstream commits of its conflicted paths, one `git log` per path; the commit-graph
    # that keeps those from growing with history needs only objects, not the worktree, so it is brought up
    # to date on the second core while the worktree is made and git rebase runs (git processes, so no GIL
    # contention). The already-upstream check needs the rebased tree and waits for the finish, so a rebase
    # that stops never pays for it.
    from concurrent.futures import ThreadPoolExecutor  # imported here: --continue/--abort never need it

    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(index_history, shadow, state)
        try:
            _interrupt_point("after-state")
            steps.step(f"rebasing onto {onto_ref} ({onto[:12]})")
            return _run_from_scratch(config, shadow, state, pending, fresh=True)
        except MpspatchError:
            # A failure (not an interruption) before any patch file or the lock changed leaves nothing behind;
            # one after keeps the state and the backup, so `--abort` can put them back.
            if _untouched(config, state):
                cleanup(config, shadow, worktree)
            raise


def _untouched(config: Config, state: RebaseState) -> bool:
    """Whether every patch file and the lock still hold the bytes recorded at the start of the rebase."""
    for saved in (*state.patches, state.lock):
        path = config.root / saved.path
        if (sha256_file(path) if path.is_file() else None) != saved.sha256:
            return False
    return True


def _backup(config: Config, patch_paths: Sequence[Path]) -> None:
    folder = backup_dir(config)
    if folder.exists():
        shutil.rmtree(folder)
    for index, path in enumerate(patch_paths):
        atomic_write_bytes(folder / f"{index:03d}-{path.name}", path.read_bytes())
    if config.series.lock.exists():
        atomic_write_bytes(folder / "series.lock", config.series.lock.read_bytes())


def _run_from_scratch(config: Config, shadow: Path, state: RebaseState,
                      pending: Pending | None = None, *, fresh: bool = False) -> RebaseResult:
    worktree = config.root / state.worktree
    if not fresh or worktree.exists():
        # An interrupted or hand-cleaned run may have left the folder, its registration, or both.
        shadow_repo.remove_worktree(shadow, worktree)
    shadow_repo.add_sparse_worktree(shadow, worktree, BRANCH, state.series_tip, state.paths)
    _interrupt_point("before-rebase")
    state = replace(state, phase=RebasePhase.REBASING)
    write_state(config, state)
    step = rebasing.run_rebase(worktree, state.base, state.onto, BRANCH)
    return _after_step(config, shadow, state, step, pending)


def _after_step(config: Config, shadow: Path, state: RebaseState, step: rebasing.RebaseStep,
                pending: Pending | None = None) -> RebaseResult:
    worktree = config.root / state.worktree
    reused: list[str] = []
    tried: set[tuple[str, str | None]] = set()
    # Every pass must move the rebase on (a new HEAD or a new pick); git failing the same way twice is
    # reported, never retried again. The count bounds it too: one pass per patch, plus one.
    for _ in range(len(state.series) + 2):
        reused.extend(re.findall(r"(?:Resolved|Staged) '([^']+)' using previous resolution", step.output))
        if step.unmerged:
            # Regions whose patch side upstream already has are taken as upstream's, as drift forecasts them.
            staged, said = settle_in_place(shadow, worktree, state, step.stopped_at, step.unmerged)
            if said:
                state = replace(state, notes=(*state.notes, *said))
            if staged:
                step = replace(step, unmerged=tuple(p for p in step.unmerged if p not in staged))
        if step.done or step.unmerged:
            break
        where = (git.head_of(worktree), step.stopped_at)
        if where in tried:
            raise _stuck(worktree, step)
        tried.add(where)
        if step.empty:
            # The pick's resolution leaves no change. That is right only when upstream already has the change;
            # after a reset worktree or a killed git it would silently drop the patch.
            _require_upstream(shadow, worktree, state, step.stopped_at)
            step = rebasing.skip_rebase(worktree)
        else:
            # rerere replayed a recorded resolution for every conflicted path: nothing is left for a person to do.
            step = rebasing.continue_rebase(worktree)
    else:
        raise _stuck(worktree, step)
    if step.done:
        return _finish(config, shadow, replace(state, phase=RebasePhase.WRITING), tuple(reused), pending)
    state = replace(state, conflicted=step.unmerged)
    write_state(config, state)
    # Only this stop's report: its conflicted paths, the upstream commits that touched them, and per region
    # the commits that wrote its lines.
    if pending is not None:
        pending.result()
    else:
        index_history(shadow, state)  # one quick call when the graph already covers onto
    upstream = stop_upstream(shadow, state, step.unmerged)
    conflicts = conflict_report(worktree, step.unmerged, upstream, state, shadow)
    names = [Path(p.path).name for p in state.patches]
    stopped = names[state.series.index(step.stopped_at)] if step.stopped_at in state.series else None
    write_conflict_notes(worktree, conflicts, stopped, state)
    return RebaseResult(
        status=RebaseStatus.CONFLICT, base=state.base, base_ref=state.base_ref, onto=state.onto,
        onto_ref=state.onto_ref, conflicts=conflicts, absorbed=(), worktree=worktree, patches=(),
        stopped_at=stopped,
        reused_resolutions=tuple(reused), changes=(), range_diff="",
        range_diff_summary=(), range_diff_file=None, previous_dir=None,
        notes=state.notes,
    )


def _stuck(worktree: Path, step: rebasing.RebaseStep) -> StateError:
    said = [line.strip() for line in step.output.splitlines() if line.strip()]
    verdict = next((line for line in said if line.startswith(("fatal:", "error:"))), said[-1] if said else "no output")
    return StateError(f"{worktree}: `git rebase --continue` made no progress ({verdict}); nothing was written. "
                      "Fix what git reports (a full disk, a missing file under the worktree's rebase-merge "
                      "folder), then run `mpspatch rebase --continue` again, or `mpspatch rebase --abort`")


def _upstream_has(shadow: Path, at: CommitSha, pick: CommitSha) -> bool:
    """Whether cherry-picking series commit `pick` onto `at` changes nothing: `at` already has its change."""
    from mpspatch.git import objects

    parent = git.commit_of(shadow, f"{pick}^")
    if parent is None:
        return False
    ours = objects.commit_tree(shadow, f"{at}^{{tree}}", [parent], "mpspatch: result so far")
    merged = objects.merge_tree(shadow, ours, pick)
    return merged.clean and merged.tree == git.tree_sha_of(shadow, at)


def _patch_name(state: RebaseState, pick: CommitSha | None) -> str:
    if pick in state.series:
        return Path(state.patches[state.series.index(pick)].path).name
    return f"commit {pick[:12]}" if pick else "the patch being replayed"


def _require_upstream(shadow: Path, worktree: Path, state: RebaseState, pick: CommitSha | None) -> None:
    """Refuse (exit 2, the rebase kept for --abort) to drop a pick whose change upstream does not have."""
    head = git.head_of(worktree)
    if pick is not None and _upstream_has(shadow, head, pick):
        return
    raise StateError(
        f"{worktree}: the resolution of {_patch_name(state, pick)} drops all of its changes, and upstream does "
        "not have them (was the rebase worktree reset, or a git step killed?); nothing was written. Run "
        "`mpspatch rebase --abort` and start the rebase again, or put the patch's changes back in the worktree "
        "and run `mpspatch rebase --continue`")


def _check_result(shadow: Path, worktree: Path, state: RebaseState, new_tip: CommitSha,
                  by_name: dict[str, CommitSha]) -> None:
    """Before anything is written: the rebased tree differs from onto only in the series' paths, and a patch
    that comes out empty is one whose every change upstream already has."""
    foreign = sorted(set(git.diff_tree_paths(shadow, state.onto, new_tip)) - set(state.paths))
    if foreign:
        shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        raise StateError(f"{worktree}: the rebased tree changes {shown}, which no patch of the series touches; "
                         "nothing was written. Run `mpspatch rebase --abort` and start again")
    at: CommitSha = state.onto
    lost: list[str] = []
    for saved, pick in zip(state.patches, state.series, strict=True):
        name = Path(saved.path).name
        rebased = by_name.get(name)
        if rebased is not None and git.diff_tree_paths(shadow, f"{rebased}^", rebased):
            at = rebased
            continue
        if not _upstream_has(shadow, at, pick):
            lost.append(name)
    if lost:
        raise StateError(
            f"{worktree}: the rebased series lost every change of {', '.join(lost)}, and upstream does not have "
            "them (was the rebase worktree reset, or a git step killed?); nothing was written. Run "
            "`mpspatch rebase --abort` and start again")


# -------------------------------------------------------------------------------------- continue / abort


def first_marker(path: Path) -> int | None:
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except (FileNotFoundError, IsADirectoryError):
        return None
    for number, line in enumerate(lines, start=1):
        if _MARKER.match(line):
            return number
    return None


def markers_remain(worktree: Path, marked: Sequence[tuple[str, int]]) -> str:
    """The refusal of --continue: every file that still has conflict markers, with the line of its first."""
    files = "1 file still has" if len(marked) == 1 else f"{len(marked)} files still have"
    listed = ", ".join(f"{rel} (line {line})" for rel, line in marked)
    them = "it" if len(marked) == 1 else "them"
    return (f"{files} conflict markers: {listed}; resolve {them} in {worktree}, then run "
            "`mpspatch rebase --continue` (or drop the rebase with `mpspatch rebase --abort`)")


def resume(ws: Workspace) -> RebaseResult:
    config = ws.config
    state = require_state(ws, "continue")
    shadow = ws.shadow
    worktree = config.root / state.worktree
    if state.phase == RebasePhase.WRITING:
        return _finish(config, shadow, state, ())
    if state.phase == RebasePhase.PREPARED or not (worktree / ".git").exists():
        return _run_from_scratch(config, shadow, state)
    if rebasing.clear_stale_index_lock(worktree):
        state = replace(state, notes=(*state.notes, "removed an index.lock left by an interrupted git"))
    if rebasing.rebase_in_progress(worktree):
        marked = [(rel, line) for rel in sorted({*state.conflicted, *git.unmerged_paths(worktree)})
                  if (line := first_marker(worktree / rel)) is not None]
        if marked:
            raise StateError(markers_remain(worktree, marked))
        remove_conflict_notes(worktree, state.conflicted)
        return _after_step(config, shadow, state, rebasing.continue_rebase(worktree))
    head = git.head_of(worktree)
    if head == state.series_tip:  # interrupted before git rebase moved anything
        return _after_step(config, shadow, state, rebasing.run_rebase(worktree, state.base, state.onto, BRANCH))
    if git.is_ancestor(shadow, state.onto, head):
        return _finish(config, shadow, replace(state, phase=RebasePhase.WRITING), ())
    raise StateError(f"{worktree}: HEAD {head[:12]} is neither the series nor on top of {state.onto_ref}; "
                     "run `mpspatch rebase --abort` and start again")


# ------------------------------------------------------------------------------------------------ finish


def _patch_record(path: Path, data: bytes) -> Patch:
    if not data.strip():
        return Patch(path=path, sha256=sha256_bytes(data), line_count=0, mail_header=False, files=())
    return parse_patch_bytes(path, data)


def _finish(config: Config, shadow: Path, state: RebaseState, reused: tuple[str, ...],
            pending: Pending | None = None) -> RebaseResult:
    worktree = config.root / state.worktree
    new_tip = git.head_of(worktree)
    paths = [config.root / p.path for p in state.patches]
    backups = [backup_dir(config) / f"{i:03d}-{p.name}" for i, p in enumerate(paths)]
    by_name = commits.series_names(shadow, state.onto, new_tip)
    # Nothing is written before the result is known to hold the series: a rebase that lost a patch (a reset
    # worktree, a killed git) is refused here, with everything still in place for --abort.
    _check_result(shadow, worktree, state, new_tip, by_name)
    new_texts = [git.patch_text(shadow, f"{by_name[p.name]}^", by_name[p.name]) if p.name in by_name else ""
                 for p in paths]
    for saved, path, text in zip(state.patches, paths, new_texts, strict=True):
        current = sha256_file(path) if path.exists() else None
        # After an interrupted write a file may already hold its new text; anything else is a user's edit.
        if current not in (saved.sha256, sha256_bytes(text.encode("utf-8"))):
            raise StateError(f"{path}: changed while the rebase was stopped; undo that edit or run "
                             "`mpspatch rebase --abort`")
    old_records = [_patch_record(p, b.read_bytes()) for p, b in zip(paths, backups, strict=True)]
    new_records = [_patch_record(p, t.encode("utf-8")) for p, t in zip(paths, new_texts, strict=True)]
    # Everything that can fail without touching the user's files runs first: the upstream check, the range-diff.
    if pending is not None:
        pending.result()
    view = upstream_check(shadow, state, new_tip)
    absorbed, absorbed_notes = view.absorbed, view.notes
    notes = [*state.notes, *absorbed_notes]
    notes.extend(f"{r.path.name}: every change is already upstream; the file is now empty, remove it from "
                 "[series].patches" for r in new_records if not r.files)
    changed = rebasing.range_diff(shadow, state.base, state.series_tip, state.onto, new_tip)
    lock = make_lock(config, state.onto, state.onto_ref, new_records, "mpspatch rebase")
    # Record what each file is about to become, so --abort after an interrupted write knows it from an edit.
    state = replace(state, rewritten=tuple(SavedFile(path=s.path, sha256=sha256_bytes(t.encode("utf-8")))
                                           for s, t in zip(state.patches, new_texts, strict=True)))
    write_state(config, state)
    _interrupt_point("before-write")
    for path, backup in zip(paths, backups, strict=True):
        keep_previous(config, path.name, backup.read_bytes())
    if state.lock.sha256 is not None:
        keep_previous(config, config.series.lock.name, (backup_dir(config) / "series.lock").read_bytes())
    # The whole range-diff can run to thousands of lines: it is kept in a file, and the terminal gets a summary.
    changed_file = range_diff_path(config)
    if changed:
        atomic_write_bytes(changed_file, changed.encode("utf-8"))
    else:
        changed_file.unlink(missing_ok=True)  # an earlier rebase's would describe another series
    # The patch files and the lock are written last, and the state is removed only after they all are.
    for number, (path, text) in enumerate(zip(paths, new_texts, strict=True)):
        atomic_write_bytes(path, text.encode("utf-8"))
        if number == 0:
            _interrupt_point("mid-write")
    write_lock(config.series.lock, lock)
    # What upstream already had is gone from the patch files now; the record beside the lock keeps which PR
    # landed which file, for the PR description, the audit and the prose check.
    record_landed(config, (LandedChange(path=a.path, whole_file=a.whole_file, hunks=a.hunks, of_hunks=a.of_hunks,
                                        pull_requests=a.pull_requests, onto=state.onto, onto_ref=state.onto_ref)
                           for a in absorbed))
    _interrupt_point("after-write")
    result = RebaseResult(
        status=RebaseStatus.REBASED, base=state.base, base_ref=state.base_ref, onto=state.onto,
        onto_ref=state.onto_ref, conflicts=(), absorbed=absorbed,
        worktree=None, patches=tuple(paths), stopped_at=None, reused_resolutions=reused,
        changes=tuple(
            PatchChange(path=o.path, old_sha256=o.sha256, new_sha256=n.sha256, old_files=len(o.files),
                        new_files=len(n.files), old_lines=o.insertions + o.deletions,
                        new_lines=n.insertions + n.deletions)
            for o, n in zip(old_records, new_records, strict=True)),
        range_diff=changed, range_diff_summary=rebasing.range_diff_summary(changed),
        range_diff_file=changed_file if changed else None,
        previous_dir=previous_dir(config), notes=tuple(notes),
    )
    cleanup(config, shadow, worktree)
    return result


# --------------------------------------------------------------------------------------- already upstream
