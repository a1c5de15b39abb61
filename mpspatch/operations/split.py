"""Cut the series into an ordered stack of reviewable parts, prove the stack, and write it out.

PyTorch fails a PR with more than 2,000 added plus deleted lines, so a large downstream patch goes upstream
as a stack of smaller PRs. This module plans that stack, builds it with real git, proves it, and writes it.

The algorithm
-------------
1. Apply the whole series at its base in a private index and write the tree (the *series tree*). Diff base
   against it once (`--full-index --minimal -M`) and parse that cumulative diff into FileChange/Hunk objects.
2. Cut the series into *segments* that keep the author's patch boundaries. When the cumulative diff fits the
   limit, the whole series is one segment and one part. A series of one patch is one segment. A series of
   several patches is cut at its patches: consecutive small patches are packed together up to the limit
   (model/stack_plan.pack_patches) and each run is the diff between the trees after its first and last patch,
   so a part never mixes two patches' hunks unless it carries both whole.
3. Plan the parts of each segment (model/stack_plan.py): a run that fits is one part; a larger one is cut into
   units (hunks, or whole changes) and buckets (pinned groups with the tests that travel with them,
   categories, the rest), small buckets packed together under the line limit.
4. Build the tree after each part: part k's tree is its segment's start plus every unit of the segment's
   parts up to k. Files whose units are all in get their blob from the segment's end tree; files split across
   parts get the start file plus the hunks so far (the hunk headers' target starts recomputed for that
   intermediate state), applied by git.
   Each part is committed on the previous one with a pinned identity and date, and `git format-patch`
   writes the parts, so every `index` line names the real intermediate blobs (3-way application works).
5. Measure what was written. A part's size is git's diff of its two trees, which is also what GitHub counts,
   and that diff need not be the planned hunks: git's diff of a whole file sets aside lines that occur very
   often (`}`, blank lines) when they sit among changed lines, and whether it does depends on the rest of the
   file, so re-diffing an intermediate state can take or give back such a line on each side. When a part of
   several units comes out over the limit, the stack is planned again with a smaller packing budget.
6. Prove it: in a fresh private index at base, `git apply --cached` each written part file on its
   predecessor, compare every tree with the planned one and the last with the series tree, and check that each
   part changes the file line counts by exactly its hunks' net (the one figure no diff alignment can move).
   Anything else is refused and nothing is written.

Objects go to the shadow repository (git/shadow.py), which borrows the upstream clone's objects through
alternates; indexes are private files in a temporary folder. The user's clone is written only for
`--branches`, and then only objects and the new branch refs (no checkout, index, HEAD or worktree change).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from mpspatch.foundation import proc
from mpspatch.foundation.config import Config
from mpspatch.foundation.errors import GitError, InputError, MpspatchError
from mpspatch.foundation.ids import CommitSha, TreeSha, commit_sha
from mpspatch.foundation.progress import QUIET, Steps
from mpspatch.git import commits
from mpspatch.git import shadow as shadow_repo
from mpspatch.git import verbs as git
from mpspatch.model.diff import FileChange
from mpspatch.model.series import (
    Patch,
    load_series,
    parse_patch,
    parse_patch_bytes,
    series_paths,
)
from mpspatch.model.stack import STACK, STACK_NAME, Part, Stack, default_stack_dir
from mpspatch.model.stack_plan import (
    PlannedPart,
    Unit,
    pack_patches,
    part_message,
    patch_subject,
    plan_parts,
    planned_net,
    slugify,
    subset_patch,
)
from mpspatch.model.workspace import Workspace

# Patches in the stack are written by this pinned identity so a second split is byte-identical; branches made
# with --branches use the clone's own identity instead, because the CLA check looks at the commit author.
SPLIT_NAME = "mpspatch"
SPLIT_EMAIL = "mpspatch@localhost"
_OUR_FILE = re.compile(r"\d{4}-[a-z0-9-]+\.patch")
# Re-plans allowed when git's diff of a part comes out longer than its hunks (see step 4 above).
_MAX_PLANS = 8


class SplitProofError(MpspatchError):
    """The stack does not add up to the series. A bug in the split, never the user's fault: exit 3."""


# ------------------------------------------------------------------------------------------------ results


@dataclass(frozen=True)
class Branch:
    name: str  # without refs/heads/
    commit: CommitSha
    part: int


@dataclass(frozen=True)
class SplitResult:
    stack: Stack
    out_dir: Path
    branches: tuple[Branch, ...]




@dataclass(frozen=True)
class _Scratch:
    repo: Path  # the shadow repository: borrows the clone's objects, keeps every object split writes
    folder: Path  # a temporary folder for the private index and intermediate files
    index: Path
    env: Mapping[str, str]  # the pinned identity and date of the stack's commits


@contextlib.contextmanager
def _scratch(ws: Workspace, base: CommitSha, paths: Sequence[str]) -> Iterator[_Scratch]:
    """The shadow repository plus a private index in a temporary folder under the state folder."""
    config, checkout, shadow = ws.config, ws.checkout, ws.shadow
    shadow_repo.prefetch_blobs(shadow, base, base, paths)  # one fetch instead of one per blob in a partial clone
    root = config.state_dir / "tmp"
    root.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="split-", dir=root))
    try:
        stamp = f"@{git.commit_time(checkout, base)} +0000"
        env = {**git.isolated_config_env(), **git.identity_env(SPLIT_NAME, SPLIT_EMAIL, stamp), "TZ": "UTC"}
        yield _Scratch(repo=shadow, folder=folder, index=folder / "index", env=env)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@dataclass(frozen=True)
class _Segment:
    """A stretch of the series planned on its own: the diff from `start` to `end` and the parts cut from it."""

    start: str  # a commit or tree
    end: TreeSha
    changes: tuple[FileChange, ...]
    plan: tuple[PlannedPart, ...]


def _series_trees(sc: _Scratch, base: CommitSha, patches: Sequence[Patch]) -> tuple[TreeSha, ...]:
    """The tree after each patch of the series, applied in order at base."""
    git.read_tree(sc.repo, sc.index, base)
    trees: list[TreeSha] = []
    for number, patch in enumerate(patches):
        result = git.apply_cached(sc.repo, sc.index, patch.path)
        if not result.ok:
            earlier = [p for before in patches[:number] for f in before.files for p in (f.path, f.old_path) if p]
            if missing := commits.missing_at_base(sc.repo, base, result.stderr, earlier):
                raise InputError(commits.missing_at_base_message(patch.path, base, missing))
            why = result.stderr.strip().splitlines()[-1] if result.stderr.strip() else "git apply failed"
            after = " after the patches before it" if patch is not patches[0] else ""
            # Bad input, as in rebase, drift and verify (exit 2): the series itself is broken at its base.
            raise InputError(f"{patch.path}: does not apply at base {base[:12]}{after} ({why}); "
                               "run `mpspatch rebase` or fix the patch, then split again")
        trees.append(git.write_tree(sc.repo, sc.index))
    return tuple(trees)


def _diff(sc: _Scratch, start: str, end: str, name: str) -> tuple[FileChange, ...]:
    diff = git.diff_trees_to_file(sc.repo, start, end, sc.folder / f"{name}.diff")
    return parse_patch_bytes(Path(name), diff).files


def _whole(title: str, changes: Sequence[FileChange]) -> PlannedPart:
    units = tuple(Unit(i, tuple(range(len(c.hunks))), c.changed_lines) for i, c in enumerate(changes))
    return PlannedPart(title=title, slug=slugify(title), bucket=title, units=units,
                       lines=sum(u.lines for u in units), oversized_hunk=False)


def _segments(sc: _Scratch, config: Config, base: CommitSha, patches: Sequence[Patch],
              after: Sequence[TreeSha], cumulative: Sequence[FileChange], limit: int,
              budget: int) -> tuple[_Segment, ...]:
    """The series cut at its patch boundaries (step 2), each segment planned (step 3)."""
    groups, categories = config.split.groups, config.categories
    series_tree = after[-1]
    if sum(c.changed_lines for c in cumulative) <= budget:
        return (_Segment(base, series_tree, tuple(cumulative), (_whole(config.render.title, cumulative),)),)
    if len(patches) == 1:
        plan = plan_parts(cumulative, groups, categories, limit, budget=budget)
        return (_Segment(base, series_tree, tuple(cumulative), plan),)
    subjects = [patch_subject(p.path.read_text(encoding="utf-8", errors="replace"), p.path.stem) for p in patches]
    starts: list[str] = [base, *after[:-1]]
    sizes = [sum(c.changed_lines for c in _diff(sc, starts[i], after[i], f"patch-{i + 1}"))
             for i in range(len(patches))]
    segments: list[_Segment] = []
    for run in pack_patches(sizes, budget):
        start, end = starts[run[0]], after[run[-1]]
        if end == git.tree_sha_of(sc.repo, start):
            continue  # the run changes nothing (a patch and its revert): no empty part
        changes = _diff(sc, start, end, f"run-{run[0] + 1}")
        title = "; ".join(subjects[i] for i in run)
        if len(run) > 1 or sum(c.changed_lines for c in changes) <= budget:
            segments.append(_Segment(start, end, changes, (_whole(title, changes),)))
            continue
        plan = plan_parts(changes, groups, categories, limit, budget=budget)
        if len(plan) > 1:
            plan = tuple(PlannedPart(title=f"{title}: {p.title}", slug=slugify(f"{title} {p.slug}"),
                                     bucket=p.bucket, units=p.units, lines=p.lines,
                                     oversized_hunk=p.oversized_hunk) for p in plan)
        segments.append(_Segment(start, end, changes, plan))
    return tuple(segments)


def _part_trees(
    sc: _Scratch, base: str, series_tree: TreeSha, changes: Sequence[FileChange],
    plan: Sequence[PlannedPart],
) -> tuple[TreeSha, ...]:
    final_paths = sorted({p for c in changes for p in (c.path, c.old_path) if p})
    final = git.tree_entries(sc.repo, series_tree, final_paths)
    included: dict[int, set[int]] = {}
    trees: list[TreeSha] = []
    for k, part in enumerate(plan, start=1):
        for unit in part.units:
            included.setdefault(unit.file, set()).update(unit.hunks)
        git.read_tree(sc.repo, sc.index, base)
        entries: list[tuple[str, str, str]] = []
        partial: list[str] = []
        for index in sorted(included):
            change = changes[index]
            if len(included[index]) == len(change.hunks):
                for path in sorted({p for p in (change.old_path, change.path) if p}):
                    mode, blob = final.get(path, ("0", ""))
                    entries.append((mode, blob, path))
            else:
                partial.append(subset_patch(change, sorted(included[index])))
        git.set_index_entries(sc.repo, sc.index, entries)
        if partial:
            patch_file = sc.folder / f"partial-{k}.patch"
            patch_file.write_bytes("".join(partial).encode("utf-8"))
            result = git.apply_cached(sc.repo, sc.index, patch_file)
            if not result.ok:
                raise SplitProofError(f"the hunks of part {k} do not re-apply on their own "
                                      f"({proc.tail(result.stderr, 2).strip()}); nothing was written")
        trees.append(git.write_tree(sc.repo, sc.index))
    return tuple(trees)


# -------------------------------------------------------------------------------------------- the proof


def _prove(sc: _Scratch, base: CommitSha, files: Sequence[Path], trees: Sequence[TreeSha],
           series_tree: TreeSha) -> None:
    git.read_tree(sc.repo, sc.index, base)
    tree = git.tree_sha_of(sc.repo, base)
    for k, (path, expected) in enumerate(zip(files, trees, strict=True), start=1):
        result = git.apply_cached(sc.repo, sc.index, path)
        if not result.ok:
            raise SplitProofError(f"refusing to write the stack: part {k} ({path.name}) does not apply on part "
                                  f"{k - 1} ({proc.tail(result.stderr, 2).strip()}); nothing was written")
        tree = git.write_tree(sc.repo, sc.index)
        if tree != expected:
            raise SplitProofError(f"refusing to write the stack: part {k} ({path.name}) gives tree {tree[:12]}, "
                                  f"planned {expected[:12]}; nothing was written")
    if tree != series_tree:
        raise SplitProofError(f"refusing to write the stack: the parts add up to tree {tree[:12]}, but the series "
                              f"gives {series_tree[:12]}; nothing was written")


def _check_nets(plan: Sequence[PlannedPart], parsed: Sequence[Patch],
                changes_of: Sequence[Sequence[FileChange]]) -> None:
    """Each part grows or shrinks the files by exactly its hunks' net line count.

    A part's +/- counts depend on how git aligns its diff; the difference between them does not, so this
    catches an intermediate state that holds lines the plan does not (or lacks some it does).
    """
    for k, (part, patch, changes) in enumerate(zip(plan, parsed, changes_of, strict=True), start=1):
        net, planned = patch.insertions - patch.deletions, planned_net(part, changes)
        if net != planned:
            raise SplitProofError(f"refusing to write the stack: part {k} changes the line count by {net:+d}, "
                                  f"its hunks by {planned:+d}; nothing was written")


def _oversized(part: PlannedPart, patch: Patch, limit: int) -> bool:
    """A unit is never cut, so one that git's diff puts over the limit is an oversized hunk as well."""
    return part.oversized_hunk or (len(part.units) == 1 and patch.insertions + patch.deletions > limit)


def _overflow(plan: Sequence[PlannedPart], parsed: Sequence[Patch], limit: int) -> int:
    """How far the longest part of several units went over the limit once git diffed it (0: none did)."""
    return max((p.insertions + p.deletions - limit for part, p in zip(plan, parsed, strict=True)
                if len(part.units) > 1), default=0)


# ------------------------------------------------------------------------------------------- the command


def default_out_dir(config: Config) -> Path:
    return default_stack_dir(config.root)


def split_series(
    ws: Workspace,
    *,
    max_lines: int | None = None,
    out_dir: Path | None = None,
    branch_prefix: str | None = None,
    force: bool = False,
    steps: Steps = QUIET,
) -> SplitResult:
    config = ws.config
    ws.refuse_during_rebase("split")
    limit = config.split.max_lines if max_lines is None else max_lines
    out = (out_dir or default_out_dir(config)).absolute()
    _check_out_dir(out)
    patches = load_series(config)
    checkout, base, base_ref = ws.checkout, ws.base, ws.base_ref
    steps.step(f"building the series ({len(patches)} patches)")
    with _scratch(ws, base, series_paths(patches)) as sc:
        after = _series_trees(sc, base, patches)
        series_tree = after[-1]
        base_tree = git.tree_sha_of(sc.repo, base)
        if series_tree == base_tree:
            raise InputError(f"{patches[0].path}: the series changes nothing at base {base[:12]}; "
                             "there is nothing to split")
        diff = git.diff_trees_to_file(sc.repo, base_tree, series_tree, sc.folder / "cumulative.diff")
        changes = parse_patch_bytes(Path("cumulative diff"), diff).files
        whole = (sum(c.insertions for c in changes), sum(c.deletions for c in changes))
        budget = limit
        for attempt in range(1, _MAX_PLANS + 1):
            steps.step(f"planning the parts (attempt {attempt})")
            segments = _segments(sc, config, base, patches, after, changes, limit, budget)
            plan = tuple(part for seg in segments for part in seg.plan)
            changes_of = [seg.changes for seg in segments for _ in seg.plan]
            trees = tuple(t for seg in segments
                          for t in _part_trees(sc, seg.start, seg.end, seg.changes, seg.plan))
            messages = [part_message(plan, k, changes_of[k - 1], config.render.title, base_ref)
                        for k in range(1, len(plan) + 1)]
            commits: list[CommitSha] = []
            parent: str = base
            for tree, message in zip(trees, messages, strict=True):
                parent = git.commit_tree_as(sc.repo, tree, parent, message, sc.env)
                commits.append(commit_sha(parent))
            written = git.format_patches(sc.repo, base, commits[-1], sc.folder / f"format-patch-{attempt}", sc.env)
            if len(written) != len(plan):
                raise SplitProofError(f"git format-patch wrote {len(written)} files for {len(plan)} parts")
            parsed = [parse_patch(f) for f in written]
            over = _overflow(plan, parsed, limit)
            if over <= 0 or budget <= 1:
                break
            budget = max(1, budget - over)
        names = _branch_names(checkout, branch_prefix, plan, force) if branch_prefix else ()

        out.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
        try:
            files = []
            for k, (source, part) in enumerate(zip(written, plan, strict=True), start=1):
                target = staging / f"{k:04d}-{part.slug}.patch"
                target.write_bytes(source.read_bytes())
                files.append(target)
            steps.step(f"proving the stack ({len(files)} parts)")
            _prove(sc, base, files, trees, series_tree)
            _check_nets(plan, parsed, changes_of)
            parts = tuple(
                Part(index=k, title=part.title, slug=part.slug, path=f.name,
                     lines=p.insertions + p.deletions, insertions=p.insertions, deletions=p.deletions,
                     files=tuple(c.path for c in p.files), oversized_hunk=_oversized(part, p, limit),
                     depends_on=(k - 1,) if k > 1 else (), commit=c, tree=t)
                for k, (part, f, p, c, t) in enumerate(zip(plan, files, parsed, commits, trees, strict=True),
                                                       start=1)
            )
            stack = Stack(parts=parts, max_lines=limit, base=base, base_ref=base_ref,
                          series_sha256=tuple(p.sha256 for p in patches), tree=series_tree,
                          insertions=whole[0], deletions=whole[1])
            STACK.write(staging / STACK_NAME, stack)
            if branch_prefix:
                steps.step(f"committing {len(files)} branches")
            branch_commits = (
                _branch_commits(checkout, sc.folder, base, files, trees, messages) if branch_prefix else ()
            )
            _swap_into_place(staging, out)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    branches = tuple(Branch(name=n, commit=c, part=k) for k, (n, c) in enumerate(zip(names, branch_commits,
                                                                                       strict=True), start=1))
    if branches:
        git.set_refs(checkout, [(f"refs/heads/{b.name}", b.commit) for b in branches], overwrite=force)
    return SplitResult(stack=stack, out_dir=out, branches=branches)


def _check_out_dir(out: Path) -> None:
    """Refuse to replace a folder that holds anything split did not write: replacing it would delete it."""
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: --out names a file, not a folder; pass a folder such as patches/stack")
    if out.is_dir():
        foreign = sorted(p.name for p in out.iterdir() if p.name != STACK_NAME and not _OUR_FILE.fullmatch(p.name))
        if foreign:
            raise InputError(f"{out}: holds files split did not write ({', '.join(foreign[:3])}); "
                             "pass an empty or new folder with --out")


def _swap_into_place(staging: Path, out: Path) -> None:
    """Replace `out` with `staging` by renames: readers see the old stack or the new one, never a mix."""
    staging.chmod(0o755)
    if not out.exists():
        os.replace(staging, out)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{out.name}-old-", dir=out.parent))
    os.replace(out, old / out.name)
    try:
        os.replace(staging, out)
    except BaseException:
        os.replace(old / out.name, out)
        raise
    finally:
        shutil.rmtree(old, ignore_errors=True)


# ----------------------------------------------------------------------------------------------- branches


def _branch_names(checkout: Path, prefix: str, plan: Sequence[PlannedPart], force: bool) -> tuple[str, ...]:
    prefix = prefix.strip("/")
    width = max(2, len(str(len(plan))))
    names = tuple(f"{prefix}/{k:0{width}d}-{part.slug}" for k, part in enumerate(plan, start=1))
    bad = [n for n in names if not git.valid_branch_name(checkout, n)]
    if not prefix or bad:
        raise InputError(f"--branches {prefix!r}: not a valid branch prefix; use letters, digits, '-' and '/', "
                         "e.g. --branches mps-stack")
    if git.ref_exists(checkout, f"refs/heads/{prefix}"):
        raise GitError(f"{checkout}: a branch named {prefix!r} exists, so {prefix}/... cannot be created; "
                       "choose another --branches prefix")
    existing = [n for n in names if git.ref_exists(checkout, f"refs/heads/{n}")]
    if existing and not force:
        raise GitError(f"{checkout}: branch {existing[0]} exists ({len(existing)} of the stack's branches do); "
                       "pass --force to move them or choose another --branches prefix")
    busy = git.checked_out_branches(checkout) & {f"refs/heads/{n}" for n in names}
    if busy:
        raise GitError(f"{checkout}: branch {sorted(busy)[0].removeprefix('refs/heads/')} is checked out; "
                       "switch away from it before moving it with --force")
    return names


def _branch_commits(checkout: Path, folder: Path, base: CommitSha, files: Sequence[Path],
                    trees: Sequence[TreeSha], messages: Sequence[str]) -> tuple[CommitSha, ...]:
    """Rebuild the proven parts in the user's clone with a private index; only objects are written here."""
    if not git.has_identity(checkout):
        raise GitError(f"{checkout}: git has no user.name/user.email there; set them (the branch commits are "
                       "yours to push, and the CLA check reads their author)")
    index = folder / "clone-index"
    git.read_tree(checkout, index, base)
    parent: str = base
    commits: list[CommitSha] = []
    for k, (path, tree, message) in enumerate(zip(files, trees, messages, strict=True), start=1):
        result = git.apply_cached(checkout, index, path)
        made = git.write_tree(checkout, index) if result.ok else None
        if made != tree:
            raise SplitProofError(f"part {k} rebuilt in {checkout} differs from the proven stack; "
                                  "no branch was created")
        parent = git.commit_tree_as(checkout, tree, parent, message, {"GIT_INDEX_FILE": str(index)})
        commits.append(commit_sha(parent))
    return tuple(commits)
