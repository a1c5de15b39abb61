"""The series as commits: one deterministic commit per patch file, chained on the base, in the shadow.

Commits carry SERIES_IDENTITY and a fixed date per position, so the same patch bytes on the same base always
give the same SHAs; rebase, drift, verify and regenerate all build the series here and so agree on it.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from mpspatch.foundation import proc
from mpspatch.foundation.errors import GitError
from mpspatch.foundation.files import sha256_bytes
from mpspatch.foundation.ids import CommitSha, TreeSha, commit_sha
from mpspatch.git import trees as tree_edits
from mpspatch.git.verbs import (
    SERIES_EPOCH,
    SERIES_IDENTITY,
    apply_cached,
    git,
    identity_env,
    read_tree,
    tree_sha_of,
    unmerged_paths,
    write_tree,
)


class SeriesInconsistentError(GitError):
    """A patch does not apply at its own base or on top of the patch before it.

    This is a defect of the series itself (for example two patches that both add the same test class), not
    upstream drift, so it is reported before any rebase starts and names the patch and the files.
    """

    def __init__(self, message: str, patch: Path, files: tuple[str, ...]) -> None:
        super().__init__(message)
        self.patch = patch
        self.files = files


class MissingAtBaseError(SeriesInconsistentError):
    """Files a patch changes do not exist at the base: the checkout or the base is not the patch's own.

    Neither a rebase nor a 3-way merge can help (there is nothing to merge into), so the message says what git
    found and points at [upstream] checkout and base instead.
    """


@dataclass(frozen=True)
class SeriesBuild:
    """The commits made from the patch files, one per patch, each on top of the previous one."""

    base: CommitSha
    commits: tuple[CommitSha, ...]
    notes: tuple[str, ...]  # what a user should know: fallbacks taken, 3-way merges needed at the own base


_APPLY_FAILED = re.compile(r"^error: (?:patch failed: (.+?):\d+|(.+?): (?:does not exist in index|already exists in "
                           r"index|patch does not apply|does not match index))$", re.M)


def _failed_files(stderr: str) -> tuple[str, ...]:
    found: dict[str, None] = {}
    for match in _APPLY_FAILED.finditer(stderr):
        found.setdefault(match.group(1) or match.group(2), None)
    return tuple(found)


_NOT_IN_INDEX = re.compile(r"^error: (.+?): does not exist in index$", re.M)

MISSING_AT_BASE_FIX = ("check that [upstream] checkout is the right clone and that [upstream] base (or series.lock, "
                       "which takes precedence) names the commit the patch applies to")


def missing_at_base(repo: Path, base: str, apply_stderr: str, touched_before: Sequence[str] = (),
                    env: dict[str, str] | None = None) -> tuple[str, ...]:
    """The files `git apply` reported missing (`does not exist in index`) that `base` lacks as well and that
    no earlier patch of the series touched (`touched_before`): files the patch expects at the base itself."""
    earlier = set(touched_before)
    named = [p for p in dict.fromkeys(_NOT_IN_INDEX.findall(apply_stderr)) if p not in earlier]
    if not named:
        return ()
    out = git(repo, "cat-file", "--batch-check", env=env, input_text="".join(f"{base}:{p}\n" for p in named)).stdout
    return tuple(p for p, line in zip(named, out.splitlines(), strict=False) if line.endswith(" missing"))


def missing_at_base_detail(base: str, files: Sequence[str]) -> str:
    shown = ", ".join(files[:3]) + (f" and {len(files) - 3} more" if len(files) > 3 else "")
    many = "file the patch changes does" if len(files) == 1 else "files the patch changes do"
    return f"{len(files)} {many} not exist at the base {base[:12]}: {shown}"


def missing_at_base_message(patch: Path, base: str, files: Sequence[str]) -> str:
    return f"{patch}: {missing_at_base_detail(base, files)}; the patch was made on another tree: {MISSING_AT_BASE_FIX}"


def build_series(shadow: Path, base: CommitSha, patches: Sequence[Path]) -> SeriesBuild:
    """Turn the patch files into a chain of commits on `base` inside the shadow repository.

    The patches are applied in turn to one temporary index (no working tree at all): first strictly, then with
    `--3way` using the blobs the `index` lines name. A patch that still does not apply raises
    SeriesInconsistentError naming the patch and its files: that is a broken series, not upstream drift.

    The index holds only the paths the series touches, so each step's git work follows the patch, not the
    size of the tree; each patch's tree is the base tree with those paths edited (git/trees.py), and
    every tree and commit is written at the end, in one git call each.
    """
    notes: list[str] = []
    paths = _series_paths(shadow, patches)
    if paths is None:  # a patch git cannot even read: the full-index build reports it as it always has
        return _build_full_index(shadow, base, patches)
    editor = tree_edits.TreeEditor.read(shadow, base, paths)
    seed = {p: e for p in paths if (e := editor.entries(p)) is not None and e[0] != "40000"}
    trees: list[TreeSha] = []
    with tempfile.TemporaryDirectory(prefix="mpspatch-index-") as tmp:
        index, saved = Path(tmp) / "index", Path(tmp) / "index.before"
        env = {"GIT_INDEX_FILE": str(index)}
        git(shadow, "update-index", "-z", "--add", "--index-info", env=env,
            input_text="".join(f"{m} {_KINDS.get(m, 'blob')} {sha}\t{p}\0" for p, (m, sha) in seed.items()))
        entries = dict(seed)
        for number, patch in enumerate(patches):
            _copy_index(index, saved)  # a failed `git apply` leaves the index alone, but be sure
            strict = apply_cached(shadow, index, patch)
            if not strict.ok:
                _copy_index(saved, index)
                merged = apply_cached(shadow, index, patch, three_way=True)
                where = "its base" if number == 0 else f"the previous patch ({patches[number - 1].name})"
                if not merged.ok:
                    earlier = sorted(p for p in {*seed, *entries} if seed.get(p) != entries.get(p))
                    _refuse(shadow, base, patch, where, strict.stderr, merged.stderr, earlier, env)
                notes.append(f"{patch.name}: needed a 3-way merge to apply on top of {where}")
            after = _index_entries(shadow, env)
            if not strict.ok and after == entries:
                # A 3-way merge of a change that is already there is clean and empty: the series repeats
                # itself (the same test class added by two patches, for instance).
                where = "its base" if number == 0 else f"the previous patch ({patches[number - 1].name})"
                raise SeriesInconsistentError(
                    f"{patch}: series inconsistent: changes nothing on top of {where}, which already holds it; "
                    "drop the patch from [series].patches or regenerate it against the right base", patch, ())
            trees.append(editor.edit({p: after.get(p) for p in {*entries, *after} if after.get(p) != entries.get(p)}))
            entries = after
    editor.write()
    commits = _write_commits(shadow, base, trees, patches)
    return SeriesBuild(base=base, commits=commits, notes=tuple(notes))


_KINDS = {"40000": "tree", "160000": "commit"}


def _copy_index(source: Path, target: Path) -> None:
    """Copy an index file; an index git never wrote (nothing to seed: every path is new) copies as absent."""
    if source.exists():
        shutil.copyfile(source, target)
    else:
        target.unlink(missing_ok=True)


def _series_paths(shadow: Path, patches: Sequence[Path]) -> list[str] | None:
    """Every path the patches name (both sides of a rename), from one `git apply --numstat`; None when git
    cannot parse a patch."""
    if not patches:
        return []
    done = git(shadow, "apply", "--numstat", "-z", *(str(p) for p in patches), check=False)
    if not done.ok:
        return None
    found: dict[str, None] = {}
    tokens = done.stdout.split("\0")
    pos = 0
    while pos < len(tokens):
        token = tokens[pos]
        pos += 1
        if not token:
            continue
        fields = token.split("\t", 2)
        if len(fields) < 3:
            return None
        if fields[2]:
            found.setdefault(fields[2], None)
        else:  # a rename or copy: "added\tdeleted\t\0old\0new\0"
            found.setdefault(tokens[pos], None)
            found.setdefault(tokens[pos + 1], None)
            pos += 2
    return sorted(found)


def _index_entries(shadow: Path, env: dict[str, str]) -> dict[str, tuple[str, str]]:
    out = git(shadow, "ls-files", "-z", "--stage", env=env).stdout
    found: dict[str, tuple[str, str]] = {}
    for record in out.split("\0"):
        if "\t" in record:
            info, path = record.split("\t", 1)
            mode, sha, _stage = info.split(" ")
            found[path] = (mode, sha)
    return found


def _refuse(shadow: Path, base: CommitSha, patch: Path, where: str, strict_stderr: str, merged_stderr: str,
            earlier: Sequence[str], env: dict[str, str]) -> NoReturn:
    """The error for a patch that applies neither strictly nor with a 3-way merge."""
    # What the earlier patches changed is theirs to lack; the rest the patch expects at the base.
    if missing := missing_at_base(shadow, base, strict_stderr, earlier):
        raise MissingAtBaseError(missing_at_base_message(patch, base, missing), patch, missing)
    conflicted = unmerged_paths(shadow, env) or _failed_files(merged_stderr)
    lacks = "lacks the necessary blob" in merged_stderr
    reason = ("the index lines name blobs this clone does not have, so no 3-way merge was possible"
              if lacks else "a 3-way merge leaves conflicts")
    files = ", ".join(conflicted) or "(see `git apply` output)"
    raise SeriesInconsistentError(
        f"{patch}: series inconsistent: does not apply on top of {where} in {files}; {reason}; "
        "fix the patch (or the order in [series].patches) so the series applies in order",
        patch, tuple(conflicted))


def _write_commits(shadow: Path, base: CommitSha, trees: Sequence[TreeSha], patches: Sequence[Path]
                   ) -> tuple[CommitSha, ...]:
    """The series commits, exactly as `git commit-tree` makes them (see _commit_tree), in one git call."""
    if not trees:
        return ()
    bodies: list[bytes] = []
    parent = base
    shas: list[CommitSha] = []
    name, email = SERIES_IDENTITY
    for number, (tree, patch) in enumerate(zip(trees, patches, strict=True)):
        who = f"{name} <{email}> {SERIES_EPOCH + number} +0000"
        body = (f"tree {tree}\nparent {parent}\nauthor {who}\ncommitter {who}\n\n"
                + series_commit_message(patch.name, patch.read_bytes())).encode("utf-8")
        bodies.append(body)
        parent = commit_sha(hashlib.sha1(b"commit %d\0" % len(body) + body, usedforsecurity=False).hexdigest())
        shas.append(parent)
    with tempfile.TemporaryDirectory(prefix="mpspatch-commits-") as tmp:
        files = []
        for number, body in enumerate(bodies):
            files.append(Path(tmp) / str(number))
            files[-1].write_bytes(body)
        out = git(shadow, "hash-object", "-t", "commit", "-w", "--stdin-paths",
                  input_text="".join(f"{f}\n" for f in files)).stdout.split()
    if out != shas:
        raise GitError(f"{shadow}: git stored the series commits as {out[-1:]}, not {shas[-1:]}")
    return tuple(shas)


def _build_full_index(shadow: Path, base: CommitSha, patches: Sequence[Path]) -> SeriesBuild:
    """build_series with an index of the whole base tree (used only when git cannot list the patches' paths)."""
    notes: list[str] = []
    commits: list[CommitSha] = []
    parent = base
    with tempfile.TemporaryDirectory(prefix="mpspatch-index-") as tmp:
        index = Path(tmp) / "index"
        # One full read of the base: after each patch the index holds exactly that patch's tree, which is the
        # next patch's parent, and a failed `git apply` leaves the index as it was. Per patch, git then only
        # touches the patched entries (and write-tree rehashes only their folders).
        read_tree(shadow, index, parent)
        for number, patch in enumerate(patches):
            data = patch.read_bytes()
            strict = apply_cached(shadow, index, patch)
            if not strict.ok:
                read_tree(shadow, index, parent)
                merged = apply_cached(shadow, index, patch, three_way=True)
                where = "its base" if number == 0 else f"the previous patch ({patches[number - 1].name})"
                if not merged.ok:
                    earlier: Sequence[str] = ()
                    if number:
                        earlier = git(shadow, "diff-tree", "-r", "-z", "--name-only", "--no-renames", base,
                                      parent).stdout.split("\0")
                    _refuse(shadow, base, patch, where, strict.stderr, merged.stderr, earlier,
                            {"GIT_INDEX_FILE": str(index)})
                notes.append(f"{patch.name}: needed a 3-way merge to apply on top of {where}")
            tree = write_tree(shadow, index)
            if not strict.ok and tree == tree_sha_of(shadow, parent):
                # A 3-way merge of a change that is already there is clean and empty: the series repeats
                # itself (the same test class added by two patches, for instance).
                where = "its base" if number == 0 else f"the previous patch ({patches[number - 1].name})"
                raise SeriesInconsistentError(
                    f"{patch}: series inconsistent: changes nothing on top of {where}, which already holds it; "
                    "drop the patch from [series].patches or regenerate it against the right base", patch, ())
            commits.append(_commit_tree(shadow, tree, parent, patch, data, number))
            parent = commits[-1]
    return SeriesBuild(base=base, commits=tuple(commits), notes=tuple(notes))


def series_commits(shadow: Path, base: CommitSha, patches: Sequence[Path]) -> tuple[CommitSha, ...]:
    """One deterministic commit per patch file, chained on `base` (see build_series)."""
    return build_series(shadow, base, patches).commits


def series_commit_message(patch_name: str, data: bytes) -> str:
    return f"mpspatch: {patch_name}\n\nmpspatch-patch: {patch_name}\nmpspatch-sha256: {sha256_bytes(data)}\n"


def series_names(shadow: Path, base: str, tip: str) -> dict[str, CommitSha]:
    """Patch file name -> commit, for the series commits in base..tip (one `git log`)."""
    out = git(shadow, "log", "--format=%H%x00%B%x1e", f"{base}..{tip}").stdout
    found: dict[str, CommitSha] = {}
    for record in out.split("\x1e"):
        sha, _, body = record.strip("\n").partition("\0")
        match = re.search(r"^mpspatch-patch: (.+)$", body, re.M)
        if sha and match:
            found.setdefault(match.group(1).strip(), commit_sha(sha))
    return found


def _commit_tree(shadow: Path, tree: TreeSha, parent: str, patch: Path, data: bytes, number: int) -> CommitSha:
    stamp = f"@{SERIES_EPOCH + number} +0000"
    env = identity_env(SERIES_IDENTITY[0], SERIES_IDENTITY[1], stamp)
    out = git(shadow, "commit-tree", tree, "-p", parent, env=env,
              input_text=series_commit_message(patch.name, data)).stdout
    return commit_sha(out.strip())


def apply_in_order(repo: Path, base: str, patches: Sequence[Path]) -> tuple[Path | None, str, tuple[str, ...]]:
    """Apply each patch, in order, to a throwaway index at `base`: (first patch that fails, why, the files it
    changes that do not exist at `base` at all) or (None, "", ()).

    The index and any blobs `git apply` creates live in a temporary folder (the clone's object store is only
    borrowed as an alternate), so the user's clone gains nothing and loses nothing. No worktree is needed,
    which keeps the check cheap enough to run on every `status`.
    """
    objects = git(repo, "rev-parse", "--path-format=absolute", "--git-path", "objects").stdout.strip()
    with tempfile.TemporaryDirectory(prefix="mpspatch-apply-") as tmp:
        scratch = Path(tmp)
        (scratch / "objects").mkdir()
        env = {
            "GIT_INDEX_FILE": str(scratch / "index"),
            "GIT_OBJECT_DIRECTORY": str(scratch / "objects"),
            "GIT_ALTERNATE_OBJECT_DIRECTORIES": objects,
            "GIT_NO_LAZY_FETCH": "1",  # a partial clone must not go to the network for a status check
        }
        git(repo, "read-tree", base, env=env)
        for patch in patches:
            result = git(repo, "apply", "--cached", str(patch), env=env, check=False)
            if not result.ok:
                earlier = git(repo, "diff-index", "--cached", "-z", "--name-only", "--no-renames", base,
                              env=env).stdout.split("\0")
                missing = missing_at_base(repo, base, result.stderr, earlier, env=env)
                return patch, proc.tail(result.stderr or result.stdout, 3), missing
    return None, "", ()
