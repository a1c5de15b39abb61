"""Cut the series into an ordered stack of reviewable parts, prove the stack, and write it out.

PyTorch fails a PR with more than 2,000 added plus deleted lines, so a large downstream patch goes upstream
as a stack of smaller PRs. This module plans that stack, builds it with real git, proves it, and writes it.

The algorithm
-------------
1. Apply the whole series at its base in a private index and write the tree (the *series tree*). Diff base
   against it once (`--full-index --minimal -M`) and parse that cumulative diff into FileChange/Hunk objects.
   Working from one cumulative diff makes a series of several patches that touch one file split like one patch.
2. Cut each file into *units*, the pieces that are never divided: one unit per hunk, or one unit for a change
   without hunks (binary, pure rename, mode change). A file whose hunks cannot be re-applied one by one
   (a C-quoted path, or bytes that are not UTF-8) becomes a single unit.
3. Put every file in one *bucket*: the first pinned `[[split.groups]]` whose globs match, in config order;
   otherwise the first matching `[categories]` entry, in config order; otherwise "Other changes". Buckets
   keep that order (pinned groups, then the categories as configured: core, operations, bindings, tests).
4. Pack each bucket greedily, files in path order (next fit): a file whose units total at most N lines joins
   the current part if it fits, else it starts a new part, so its hunks stay together. A file over N is laid
   out hunk by hunk in file order with the same rule; a single unit over N closes the current part and
   becomes a part of its own, flagged `oversized_hunk`. Parts never mix buckets.
5. Build the tree after each part: part k's tree is the base plus every unit of parts 1..k. Files whose units
   are all in get their final blob from the series tree; files split across parts get the base file plus the
   hunks so far (the hunk headers' target starts recomputed for that intermediate state), applied by git.
   Each part is committed on the previous one with a pinned identity and date, and `git format-patch`
   writes the parts, so every `index` line names the real intermediate blobs (3-way application works).
6. Prove it: in a fresh private index at base, `git apply --cached` each written part file on its
   predecessor, compare every tree with the planned one and the last with the series tree, and check that
   the parts' insertions and deletions add up to the whole. Anything else is refused and nothing is written.

Objects go to the shadow repository (git.ensure_shadow), which borrows the upstream clone's objects through
alternates; indexes are private files in a temporary folder. The user's clone is written only for
`--branches`, and then only objects and the new branch refs (no checkout, index, HEAD or worktree change).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from mpspatch.foundation import proc
from mpspatch.foundation.config import Category, Config, SplitGroup, matches_any
from mpspatch.foundation.errors import GitError, InputError, MpspatchError, StateError
from mpspatch.foundation.ids import CommitSha, ContentSha256, TreePath, TreeSha, commit_sha, tree_sha
from mpspatch.git import verbs as git
from mpspatch.model.diff import FileChange
from mpspatch.model.series import (
    Patch,
    load_series,
    parse_patch,
    parse_patch_bytes,
    parse_series,
    series_paths,
)
from mpspatch.model.workspace import resolve_base

STACK_VERSION = 1
STACK_FILE = "stack.json"
OTHER_BUCKET = "Other changes"
# Patches in the stack are written by this pinned identity so a second split is byte-identical; branches made
# with --branches use the clone's own identity instead, because the CLA check looks at the commit author.
SPLIT_NAME = "mpspatch"
SPLIT_EMAIL = "mpspatch@localhost"
_OUR_FILE = re.compile(r"\d{4}-[a-z0-9-]+\.patch")
_HUNK_HEAD = re.compile(r"^@@ -\d+(?:,\d+)? \+\d+(?:,\d+)? @@(.*)$", re.DOTALL)


class SplitProofError(MpspatchError):
    """The stack does not add up to the series. A bug in the split, never the user's fault: exit 3."""


# ------------------------------------------------------------------------------------------------ results


@dataclass(frozen=True)
class Unit:
    """An indivisible piece of the cumulative diff: one hunk, or a whole file change."""

    file: int  # index into the cumulative diff's files
    hunks: tuple[int, ...]  # the hunk indices it carries; empty for a change without hunks
    lines: int  # insertions plus deletions


@dataclass(frozen=True)
class PlannedPart:
    title: str
    slug: str
    bucket: str
    units: tuple[Unit, ...]
    lines: int
    oversized_hunk: bool


@dataclass(frozen=True)
class Part:
    index: int  # 1-based place in the stack
    title: str
    slug: str
    path: str  # file name inside the stack folder
    lines: int
    insertions: int
    deletions: int
    files: tuple[TreePath, ...]
    oversized_hunk: bool
    depends_on: tuple[int, ...]  # the parts this one applies on (the stack is linear: the previous one)
    commit: CommitSha  # the commit named on the patch's `From` line
    tree: TreeSha  # the tree after this part


@dataclass(frozen=True)
class Stack:
    parts: tuple[Part, ...]
    max_lines: int
    base: CommitSha
    base_ref: str
    series_sha256: tuple[ContentSha256, ...]
    tree: TreeSha  # the tree of the whole series at base, which the last part reaches
    insertions: int
    deletions: int

    @property
    def within_limit(self) -> bool:
        """Every part is within max_lines; an oversized hunk cannot be cut, so it still counts as a gap."""
        return all(p.lines <= self.max_lines for p in self.parts)


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
class PartRef:
    index: int
    title: str


@dataclass(frozen=True)
class PartContext:
    """What one part's PR description needs: its place in the stack, what it builds on, its size and files."""

    index: int
    total: int
    title: str
    subject: str  # "[MPS] <title> (k/n)"
    lines: int
    insertions: int
    deletions: int
    files: tuple[TreePath, ...]
    oversized_hunk: bool
    max_lines: int
    depends_on: tuple[PartRef, ...]
    followed_by: tuple[PartRef, ...]
    base: CommitSha
    base_ref: str


# ------------------------------------------------------------------------------------------------ planning


def slugify(text: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return slug[:48].rstrip("-") or "part"


def _splittable(change: FileChange) -> bool:
    # The hunks are re-applied from the parsed text: a C-quoted path would need git's quoting rules and
    # U+FFFD means the parser replaced bytes that were not UTF-8, so such a file moves as one piece.
    first = change.header.split("\n", 1)[0]
    return '"' not in first and not any("\ufffd" in h.text for h in change.hunks)


def units_of(index: int, change: FileChange) -> tuple[Unit, ...]:
    if not change.hunks or not _splittable(change):
        return (Unit(index, tuple(range(len(change.hunks))), change.changed_lines),)
    return tuple(Unit(index, (i,), h.insertions + h.deletions) for i, h in enumerate(change.hunks))


def bucket_of(path: str, groups: Sequence[SplitGroup], categories: Sequence[Category]) -> tuple[int, str]:
    """(order, title): pinned groups first, then categories, both in config order, then the rest."""
    for order, group in enumerate(groups):
        if matches_any(path, group.globs):
            return order, group.title
    for order, category in enumerate(categories):
        if matches_any(path, category.globs):
            return len(groups) + order, category.name
    return len(groups) + len(categories), OTHER_BUCKET


def _pack(units_by_file: Sequence[tuple[Unit, ...]], max_lines: int) -> list[tuple[tuple[Unit, ...], bool]]:
    parts: list[tuple[tuple[Unit, ...], bool]] = []
    current: list[Unit] = []
    size = 0

    def close() -> None:
        nonlocal current, size
        if current:
            parts.append((tuple(current), False))
        current, size = [], 0

    for units in units_by_file:
        total = sum(u.lines for u in units)
        if total <= max_lines:  # the whole file fits in a part: keep its hunks together
            if size + total > max_lines:
                close()
            current.extend(units)
            size += total
            continue
        for unit in units:  # too big for one part: hunks in file order, never inside a hunk
            if unit.lines > max_lines:
                close()
                parts.append(((unit,), True))
                continue
            if size + unit.lines > max_lines:
                close()
            current.append(unit)
            size += unit.lines
    close()
    return parts


def plan_parts(
    changes: Sequence[FileChange],
    groups: Sequence[SplitGroup],
    categories: Sequence[Category],
    max_lines: int,
) -> tuple[PlannedPart, ...]:
    """The ordered parts for the cumulative diff `changes`. Pure: no git, no files."""
    if max_lines <= 0:
        raise InputError(f"--max-lines {max_lines}: must be a positive number of lines; e.g. --max-lines 2000")
    buckets: dict[tuple[int, str], list[int]] = {}
    for index, change in enumerate(changes):
        buckets.setdefault(bucket_of(change.path, groups, categories), []).append(index)
    planned: list[PlannedPart] = []
    for order, title in sorted(buckets):
        files = sorted(buckets[(order, title)], key=lambda i: changes[i].path)
        packed = _pack([units_of(i, changes[i]) for i in files], max_lines)
        for number, (units, oversized) in enumerate(packed, start=1):
            part_title = title if len(packed) == 1 else f"{title}, part {number} of {len(packed)}"
            slug = slugify(title) if len(packed) == 1 else f"{slugify(title)}-{number}"
            planned.append(PlannedPart(title=part_title, slug=slug, bucket=title, units=units,
                                       lines=sum(u.lines for u in units), oversized_hunk=oversized))
    return tuple(planned)


# --------------------------------------------------------------------------------- intermediate states


def subset_patch(change: FileChange, hunks: Sequence[int]) -> str:
    """A patch that applies only `hunks` of `change` to the base file.

    The kept hunks still find their place by their source lines (all relative to the base); their target
    starts are recomputed as if the left-out hunks did not exist. The index line is dropped because the
    result is an intermediate blob, not the one it names.
    """
    header = [line for line in change.header.splitlines() if not line.startswith("index ")]
    old = change.old_path or change.path
    text = "\n".join(header) + f"\n--- a/{old}\n+++ b/{change.path}\n"
    offset = 0
    for i in sorted(hunks):
        hunk = change.hunks[i]
        start = hunk.source_start - (1 if hunk.source_length else 0) + offset + (1 if hunk.target_length else 0)
        first, _, body = hunk.text.partition("\n")
        match = _HUNK_HEAD.match(first)
        if not match:
            raise SplitProofError(f"{change.path}: hunk {i + 1} has no @@ header; cannot re-apply it")
        text += (f"@@ -{_span(hunk.source_start, hunk.source_length)} +{_span(start, hunk.target_length)} @@"
                 f"{match.group(1)}\n{body}")
        offset += hunk.target_length - hunk.source_length
    return text


def _span(start: int, length: int) -> str:
    return str(start) if length == 1 else f"{start},{length}"


@dataclass(frozen=True)
class _Scratch:
    repo: Path  # the shadow repository: borrows the clone's objects, keeps every object split writes
    folder: Path  # a temporary folder for the private index and intermediate files
    index: Path
    env: Mapping[str, str]  # the pinned identity and date of the stack's commits


@contextlib.contextmanager
def _scratch(config: Config, checkout: Path, base: CommitSha, paths: Sequence[str]) -> Iterator[_Scratch]:
    """The shadow repository plus a private index in a temporary folder under the state folder."""
    shadow = git.ensure_shadow(config)
    git.prefetch_blobs(shadow, base, base, paths)  # one fetch instead of one per blob in a partial clone
    root = config.state_dir / "tmp"
    root.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="split-", dir=root))
    try:
        stamp = f"@{git.commit_time(checkout, base)} +0000"
        env = {**git.isolated_config_env(), **git.identity_env(SPLIT_NAME, SPLIT_EMAIL, stamp), "TZ": "UTC"}
        yield _Scratch(repo=shadow, folder=folder, index=folder / "index", env=env)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _series_tree(sc: _Scratch, base: CommitSha, patches: Sequence[Patch]) -> TreeSha:
    git.read_tree(sc.repo, sc.index, base)
    for patch in patches:
        result = git.apply_cached(sc.repo, sc.index, patch.path)
        if not result.ok:
            why = result.stderr.strip().splitlines()[-1] if result.stderr.strip() else "git apply failed"
            after = " after the patches before it" if patch is not patches[0] else ""
            # Bad input, as in rebase, drift and verify (exit 2): the series itself is broken at its base.
            raise InputError(f"{patch.path}: does not apply at base {base[:12]}{after} ({why}); "
                               "run `mpspatch rebase` or fix the patch, then split again")
    return git.write_tree(sc.repo, sc.index)


def _part_trees(
    sc: _Scratch, base: CommitSha, series_tree: TreeSha, changes: Sequence[FileChange],
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


def _message(plan: Sequence[PlannedPart], k: int, changes: Sequence[FileChange], config: Config,
             base_ref: str) -> str:
    part, total = plan[k - 1], len(plan)
    lines = [f"[MPS] {part.title} ({k}/{total})", ""]
    lines.append(f"Part {k} of {total} of: {config.render.title}.")
    if k == 1:
        lines.append(f"It applies on {base_ref}.")
    else:
        lines.append(f"It applies on part {k - 1} ({plan[k - 2].title}).")
    lines += ["", "Files:"]
    hunks: dict[int, list[int]] = {}
    for unit in part.units:
        hunks.setdefault(unit.file, []).extend(unit.hunks)
    for index in sorted(hunks, key=lambda i: changes[i].path):
        change = changes[index]
        own = sorted(hunks[index])
        note = ""
        if change.hunks and len(own) < len(change.hunks):
            span = f"{own[0] + 1}" if len(own) == 1 else f"{own[0] + 1}-{own[-1] + 1}"
            note = f" (hunks {span} of {len(change.hunks)})"
        lines.append(f"  {change.path}{note}")
    return "\n".join(lines) + "\n"


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


def _check_sizes(plan: Sequence[PlannedPart], parsed: Sequence[Patch], whole: tuple[int, int]) -> None:
    insertions = sum(p.insertions for p in parsed)
    deletions = sum(p.deletions for p in parsed)
    if (insertions, deletions) != whole:
        raise SplitProofError(f"refusing to write the stack: the parts change +{insertions} -{deletions} lines, "
                              f"the series +{whole[0]} -{whole[1]}; nothing was written")
    for k, (part, patch) in enumerate(zip(plan, parsed, strict=True), start=1):
        if patch.insertions + patch.deletions != part.lines:
            raise SplitProofError(f"refusing to write the stack: part {k} has "
                                  f"{patch.insertions + patch.deletions} changed lines, planned {part.lines}; "
                                  "nothing was written")


# ------------------------------------------------------------------------------------------- the command


def default_out_dir(config: Config) -> Path:
    return config.root / "patches" / "stack"


def split_series(
    config: Config,
    *,
    max_lines: int | None = None,
    out_dir: Path | None = None,
    branch_prefix: str | None = None,
    force: bool = False,
) -> SplitResult:
    limit = config.split.max_lines if max_lines is None else max_lines
    out = (out_dir or default_out_dir(config)).absolute()
    _check_out_dir(out)
    patches = load_series(config)
    checkout = git.require_repo(config.upstream.checkout)
    base, base_ref = resolve_base(config, checkout)
    with _scratch(config, checkout, base, series_paths(patches)) as sc:
        series_tree = _series_tree(sc, base, patches)
        base_tree = git.tree_sha_of(sc.repo, base)
        if series_tree == base_tree:
            raise InputError(f"{patches[0].path}: the series changes nothing at base {base[:12]}; "
                             "there is nothing to split")
        diff = git.diff_trees_to_file(sc.repo, base_tree, series_tree, sc.folder / "cumulative.diff")
        changes = parse_patch_bytes(Path("cumulative diff"), diff).files
        whole = (sum(c.insertions for c in changes), sum(c.deletions for c in changes))
        plan = plan_parts(changes, config.split.groups, config.categories, limit)
        names = _branch_names(checkout, branch_prefix, plan, force) if branch_prefix else ()

        trees = _part_trees(sc, base, series_tree, changes, plan)
        commits: list[CommitSha] = []
        parent: str = base
        messages = [_message(plan, k, changes, config, base_ref) for k in range(1, len(plan) + 1)]
        for tree, message in zip(trees, messages, strict=True):
            parent = git.commit_tree_as(sc.repo, tree, parent, message, sc.env)
            commits.append(commit_sha(parent))
        written = git.format_patches(sc.repo, base, commits[-1], sc.folder / "format-patch", sc.env)
        if len(written) != len(plan):
            raise SplitProofError(f"git format-patch wrote {len(written)} files for {len(plan)} parts")

        out.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
        try:
            files = []
            for k, (source, part) in enumerate(zip(written, plan, strict=True), start=1):
                target = staging / f"{k:04d}-{part.slug}.patch"
                target.write_bytes(source.read_bytes())
                files.append(target)
            _prove(sc, base, files, trees, series_tree)
            parsed = [parse_patch(f) for f in files]
            _check_sizes(plan, parsed, whole)
            parts = tuple(
                Part(index=k, title=part.title, slug=part.slug, path=f.name,
                     lines=p.insertions + p.deletions, insertions=p.insertions, deletions=p.deletions,
                     files=tuple(c.path for c in p.files), oversized_hunk=part.oversized_hunk,
                     depends_on=(k - 1,) if k > 1 else (), commit=c, tree=t)
                for k, (part, f, p, c, t) in enumerate(zip(plan, files, parsed, commits, trees, strict=True),
                                                       start=1)
            )
            stack = Stack(parts=parts, max_lines=limit, base=base, base_ref=base_ref,
                          series_sha256=tuple(p.sha256 for p in patches), tree=series_tree,
                          insertions=whole[0], deletions=whole[1])
            (staging / STACK_FILE).write_text(stack_to_json(stack), encoding="utf-8")
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
        foreign = sorted(p.name for p in out.iterdir() if p.name != STACK_FILE and not _OUR_FILE.fullmatch(p.name))
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


# ----------------------------------------------------------------------------------------- stack.json


def stack_to_json(stack: Stack) -> str:
    body = {
        "version": STACK_VERSION,
        "base": stack.base,
        "base_ref": stack.base_ref,
        "series_sha256": list(stack.series_sha256),
        "tree": stack.tree,
        "max_lines": stack.max_lines,
        "insertions": stack.insertions,
        "deletions": stack.deletions,
        "parts": [
            {"index": p.index, "title": p.title, "slug": p.slug, "path": p.path, "lines": p.lines,
             "insertions": p.insertions, "deletions": p.deletions, "files": list(p.files),
             "oversized_hunk": p.oversized_hunk, "depends_on": list(p.depends_on), "commit": p.commit,
             "tree": p.tree}
            for p in stack.parts
        ],
    }
    return json.dumps(body, indent=2, sort_keys=True) + "\n"


def read_stack(path: Path) -> Stack:
    fix = "run `mpspatch split` to write it again"
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
        if body.get("version") != STACK_VERSION:
            raise StateError(f"{path}: stack version {body.get('version')!r} is not {STACK_VERSION}; {fix}")
        parts = tuple(
            Part(index=int(p["index"]), title=str(p["title"]), slug=str(p["slug"]), path=str(p["path"]),
                 lines=int(p["lines"]), insertions=int(p["insertions"]), deletions=int(p["deletions"]),
                 files=tuple(TreePath(str(f)) for f in p["files"]), oversized_hunk=bool(p["oversized_hunk"]),
                 depends_on=tuple(int(d) for d in p["depends_on"]), commit=commit_sha(str(p["commit"])),
                 tree=tree_sha(str(p["tree"])))
            for p in body["parts"]
        )
        return Stack(parts=parts, max_lines=int(body["max_lines"]), base=commit_sha(str(body["base"])),
                     base_ref=str(body["base_ref"]),
                     series_sha256=tuple(ContentSha256(str(s)) for s in body["series_sha256"]),
                     tree=tree_sha(str(body["tree"])), insertions=int(body["insertions"]),
                     deletions=int(body["deletions"]))
    except FileNotFoundError:
        raise StateError(f"{path}: no stack here yet; {fix}") from None
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise StateError(f"{path}: the stack is not valid ({exc.__class__.__name__}: {exc}); {fix}") from None


def load_current_stack(config: Config, out_dir: Path | None = None) -> Stack:
    """The written stack, refused when the series changed since it was split."""
    path = (out_dir or default_out_dir(config)) / STACK_FILE
    stack = read_stack(path)
    current = tuple(p.sha256 for p in parse_series(config.series.patches))
    if stack.series_sha256 != current:
        raise StateError(f"{path}: the series changed since this stack was split; run `mpspatch split` again")
    return stack


def part_context(stack: Stack, index: int) -> PartContext:
    """The data `render-pr --part K` needs for part `index` (1-based)."""
    total = len(stack.parts)
    if not 1 <= index <= total:
        raise InputError(f"--part {index}: the stack has parts 1 to {total}; pick one of those")
    part = stack.parts[index - 1]
    refs = {p.index: PartRef(p.index, p.title) for p in stack.parts}
    return PartContext(
        index=index, total=total, title=part.title, subject=f"[MPS] {part.title} ({index}/{total})",
        lines=part.lines, insertions=part.insertions, deletions=part.deletions, files=part.files,
        oversized_hunk=part.oversized_hunk, max_lines=stack.max_lines,
        depends_on=tuple(refs[d] for d in part.depends_on),
        followed_by=tuple(refs[p.index] for p in stack.parts if index in p.depends_on),
        base=stack.base, base_ref=stack.base_ref,
    )
