"""Small typed git operations. Git failures become GitError here and never leak out as raw output.

The git CLI is called through mpspatch.foundation.proc; it is faster to start than GitPython's object model for the
one-shot plumbing commands used here, and its NUL-separated output formats are stable across versions.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mpspatch.foundation import proc
from mpspatch.foundation.errors import CommandFailedError, GitError, ToolMissingError
from mpspatch.foundation.files import atomic_write_text, sha256_bytes
from mpspatch.foundation.ids import CommitSha, TreeSha, commit_sha, tree_sha

if TYPE_CHECKING:
    from mpspatch.foundation.config import Config

# Reproducible, non-interactive git: no pager, no editor, no user config surprises in plumbing output.
_GIT_ENV = {
    "GIT_TERMINAL_PROMPT": "0",
    "GIT_EDITOR": "true",
    "GIT_PAGER": "cat",
    "LC_ALL": "C",
}

# Variables that tie git to one repository (`git rev-parse --local-env-vars`). A git hook exports them for the
# repository it runs in; inherited, they would point every command at that repository instead of the clone or
# shadow named by `repo` (GIT_DIR), or at its index (GIT_INDEX_FILE). Git drops the same list itself when it
# enters a submodule.
_REPO_LOCAL_VARS = frozenset({
    "GIT_ALTERNATE_OBJECT_DIRECTORIES", "GIT_CONFIG", "GIT_CONFIG_PARAMETERS", "GIT_CONFIG_COUNT",
    "GIT_OBJECT_DIRECTORY", "GIT_DIR", "GIT_WORK_TREE", "GIT_IMPLICIT_WORK_TREE", "GIT_GRAFT_FILE",
    "GIT_INDEX_FILE", "GIT_NO_REPLACE_OBJECTS", "GIT_REPLACE_REF_BASE", "GIT_PREFIX", "GIT_INTERNAL_SUPER_PREFIX",
    "GIT_SHALLOW_FILE", "GIT_COMMON_DIR",
})


def _env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The whole environment for a git command: ours minus inherited repo-local variables, plus `extra`."""
    merged = {k: v for k, v in os.environ.items() if k not in _REPO_LOCAL_VARS}
    merged.update(_GIT_ENV)
    if extra:
        merged.update(extra)
    return merged


def git(
    repo: Path,
    *args: str,
    check: bool = True,
    env: Mapping[str, str] | None = None,
    input_text: str | None = None,
    timeout: float = 600,
) -> proc.Completed:
    try:
        return proc.run(["git", *args], cwd=repo, env=_env(env), check=check, input_text=input_text,
                        timeout=timeout, inherit_env=False)
    except ToolMissingError:
        raise ToolMissingError("git: not found on PATH; install git 2.38 or newer") from None
    except CommandFailedError as exc:
        raise GitError(f"{repo}: {exc.message}") from None


def version() -> tuple[int, int, int]:
    out = proc.run(["git", "--version"], cwd=Path.cwd()).stdout
    match = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", out)
    if not match:
        raise GitError(f"cannot read the git version from {out.strip()!r}; install a standard git")
    return int(match.group(1)), int(match.group(2)), int(match.group(3) or 0)


def require_repo(path: Path, role: str = "checkout") -> Path:
    """The top of the git repository at `path`, or a GitError naming the config key to fix."""
    if not path.exists():
        raise GitError(f"{path}: the upstream {role} does not exist; clone it there or fix [upstream].checkout")
    result = git(path, "rev-parse", "--show-toplevel", check=False)
    if not result.ok:
        raise GitError(f"{path}: not a git repository; point [upstream].checkout at a clone of the upstream")
    return Path(result.stdout.strip())


def resolve_commit(repo: Path, ref: str) -> CommitSha:
    """The full SHA of the commit `ref` names, or a GitError that says which fetch brings it."""
    result = git(repo, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}", check=False)
    if not result.ok:
        raise GitError(
            f"{repo}: unknown ref {ref!r}; fetch it first, e.g. `git -C {repo} fetch origin {ref}`"
        )
    return commit_sha(result.stdout.strip())


def identity_env(name: str, email: str, date: str) -> dict[str, str]:
    """Author and committer pinned to one identity and date, so commit SHAs do not depend on the clock."""
    return {
        "GIT_AUTHOR_NAME": name,
        "GIT_AUTHOR_EMAIL": email,
        "GIT_AUTHOR_DATE": date,
        "GIT_COMMITTER_NAME": name,
        "GIT_COMMITTER_EMAIL": email,
        "GIT_COMMITTER_DATE": date,
    }


def paths_args(paths: Sequence[str]) -> list[str]:
    return ["--", *paths]


# ------------------------------------------------------------------------------------- worktrees and apply
# (issue 3, rebase: add worktree, sparse-checkout, apply and rebase operations below this line)

# The shadow repository is mpspatch's private workshop. It borrows the user's object store through
# `objects/info/alternates` (read-only, as `git clone --shared` does), so creating it copies nothing, and every
# object or ref mpspatch makes lives in the shadow. The user's clone is only ever read.
SHADOW_NAME = "shadow.git"
SERIES_REF_PREFIX = "refs/mpspatch/"
# Commits made from patch files carry this identity and a fixed date, so the same patch bytes on the same base
# always give the same commit SHA (ghstack's lesson: stable SHAs make results comparable and cacheable).
SERIES_IDENTITY = ("mpspatch", "mpspatch@localhost")
SERIES_EPOCH = 946_684_800  # 2000-01-01T00:00:00Z; patch i is stamped SERIES_EPOCH + i seconds


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


def pinned_env() -> dict[str, str]:
    """Neutralise user and system git config for output that must be byte-identical everywhere."""
    return {"GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull}


def ensure_checkout(url: str, checkout: Path) -> bool:
    """Clone `url` into `checkout` when it does not exist yet; True when a clone was made.

    This is the one time mpspatch creates the user's clone. A blobless, sparse, unchecked-out clone costs a
    fraction of a full one; the shadow repository fetches the few blobs it needs on demand.
    """
    if checkout.exists():
        return False
    checkout.parent.mkdir(parents=True, exist_ok=True)
    result = git(checkout.parent, "clone", "--quiet", "--filter=blob:none", "--sparse", "--no-checkout",
                 url, str(checkout), check=False, timeout=7200)
    if not result.ok:
        raise GitError(f"{checkout}: could not clone {url} ({proc.tail(result.stderr, 3)}); "
                       "fix [upstream].url or clone it there yourself")
    return True


def _partial_clone_remote(checkout: Path) -> tuple[str, str, str] | None:
    """(remote name, url, filter) when the checkout is a partial clone, else None (one `git config` call).

    git marks the remote with `remote.NAME.promisor`; `extensions.partialclone` is only set by some versions.
    """
    pattern = r"^(extensions\.partialclone|remote\..*\.(promisor|url|partialclonefilter))$"
    out = git(checkout, "config", "--get-regexp", pattern, check=False).stdout
    values: dict[str, str] = {}
    for line in out.splitlines():
        key, _, value = line.partition(" ")
        values[key.lower()] = value.strip()
    name = values.get("extensions.partialclone") or next(
        (k[len("remote."):-len(".promisor")] for k, v in values.items() if k.endswith(".promisor") and v == "true"),
        "")
    url = values.get(f"remote.{name}.url", "")
    if not name or not url:
        return None
    return name, url, values.get(f"remote.{name}.partialclonefilter") or "blob:none"


# Which shadows belong to partial clones (the promisor remote's name), learnt by ensure_shadow in this process.
_PROMISOR: dict[Path, str | None] = {}


def ensure_shadow(config: Config) -> Path:
    """The shadow repository under the state folder, created on first use and re-pointed if the clone moved.

    Costs two git calls when the shadow exists: this runs at the start of every rebase and drift.
    """
    checkout = config.upstream.checkout
    found = git(checkout, "rev-parse", "--path-format=absolute", "--show-toplevel", "--git-common-dir",
                check=False) if checkout.is_dir() else None
    if found is None or not found.ok:
        require_repo(checkout)  # raises the error that names the config key to fix
        raise GitError(f"{checkout}: cannot read the clone; check [upstream].checkout")
    store = Path(found.stdout.splitlines()[1]) / "objects"
    shadow = config.state_dir / SHADOW_NAME
    fresh = not (shadow / "HEAD").is_file()
    if fresh:
        _create_shadow(shadow)
    alternates = shadow / "objects" / "info" / "alternates"
    wanted = f"{store}\n"
    if fresh or not alternates.is_file() or alternates.read_text(encoding="utf-8") != wanted:
        atomic_write_text(alternates, wanted)
        fresh = True
    promisor = _partial_clone_remote(checkout)
    _PROMISOR[shadow] = promisor[0] if promisor else None
    if promisor is not None and fresh:
        # Blobs the user's partial clone never fetched are fetched lazily into the shadow, from the same remote.
        name, url, flt = promisor
        for key, value in (("core.repositoryformatversion", "1"), ("extensions.partialclone", name),
                           (f"remote.{name}.url", url), (f"remote.{name}.promisor", "true"),
                           (f"remote.{name}.partialclonefilter", flt)):
            git(shadow, "config", key, value)
    return shadow


def prefetch_blobs(shadow: Path, base: str, onto: str, paths: Sequence[str]) -> int:
    """Fetch, in one request, the blobs of `paths` that a partial clone lacks at base, onto and in between.

    Without this, every missing blob a merge or diff touches is fetched lazily in a round trip of its own,
    which against GitHub costs seconds per file. Returns how many blobs were fetched (0 for full clones).
    """
    remote = _PROMISOR[shadow] if shadow in _PROMISOR else (
        git(shadow, "config", "--get", "extensions.partialclone", check=False).stdout.strip() or None)
    if not remote or not paths:
        return 0
    missing: set[str] = set()
    for revs in (["--no-walk", base], [onto, f"^{base}"]):
        out = git(shadow, "rev-list", "--objects", "--missing=print", *revs, "--", *paths).stdout
        missing.update(line[1:].strip() for line in out.splitlines() if line.startswith("?"))
    if missing:
        git(shadow, "-c", "fetch.negotiationAlgorithm=noop", "fetch", "--quiet", "--no-tags",
            "--no-write-fetch-head", "--recurse-submodules=no", "--filter=blob:none", "--stdin", remote,
            input_text="\n".join(sorted(missing)) + "\n", timeout=3600)
    return len(missing)


def _create_shadow(shadow: Path) -> None:
    # Built in a sibling folder and renamed into place, so a kill half-way never leaves a broken shadow.
    shadow.parent.mkdir(parents=True, exist_ok=True)
    staging = shadow.with_name(f".{shadow.name}.{os.getpid()}.tmp")
    if staging.exists():
        shutil.rmtree(staging)
    git(shadow.parent, "init", "--quiet", "--bare", str(staging))
    for key, value in (("gc.auto", "0"), ("core.logAllRefUpdates", "false"), ("rerere.enabled", "true"),
                       ("rerere.autoupdate", "true"), ("user.name", SERIES_IDENTITY[0]),
                       ("user.email", SERIES_IDENTITY[1])):
        git(staging, "config", key, value)
    try:
        staging.rename(shadow)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
        if not (shadow / "HEAD").is_file():
            raise


def pin_ref(shadow: Path, ref: str, sha: CommitSha) -> None:
    """Point a shadow ref at a commit, so the shadow's own gc can never drop what mpspatch is working on."""
    git(shadow, "update-ref", ref, sha)


def update_refs(shadow: Path, *, pin: Mapping[str, str] | None = None, delete: Sequence[str] = ()) -> None:
    """Several ref updates in one `git update-ref --stdin` transaction (one process, all or nothing)."""
    lines = [f"update {ref} {sha}" for ref, sha in (pin or {}).items()]
    lines += [f"delete {ref}" for ref in delete]  # deleting a ref that is not there is a no-op
    if lines:
        git(shadow, "update-ref", "--stdin", input_text="\n".join(lines) + "\n")


def ref_exists(shadow: Path, ref: str) -> bool:
    return git(shadow, "rev-parse", "--verify", "--quiet", ref, check=False).ok


def _index_env(index: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {"GIT_INDEX_FILE": str(index)}
    if extra:
        env.update(extra)
    return env


_APPLY_FAILED = re.compile(r"^error: (?:patch failed: (.+?):\d+|(.+?): (?:does not exist in index|already exists in "
                           r"index|patch does not apply|does not match index))$", re.M)


def _failed_files(stderr: str) -> tuple[str, ...]:
    found: dict[str, None] = {}
    for match in _APPLY_FAILED.finditer(stderr):
        found.setdefault(match.group(1) or match.group(2), None)
    return tuple(found)


_NOT_IN_INDEX = re.compile(r"^error: (.+?): does not exist in index$", re.M)


def missing_at_base(repo: Path, base: str, apply_stderr: str, touched_before: Sequence[str] = (),
                    env: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """The files `git apply` reported missing (`does not exist in index`) that `base` lacks as well and that
    no earlier patch of the series touched (`touched_before`): files the patch expects at the base itself."""
    earlier = set(touched_before)
    named = [p for p in dict.fromkeys(_NOT_IN_INDEX.findall(apply_stderr)) if p not in earlier]
    if not named:
        return ()
    out = git(repo, "cat-file", "--batch-check", env=env, input_text="".join(f"{base}:{p}\n" for p in named)).stdout
    return tuple(p for p, line in zip(named, out.splitlines(), strict=False) if line.endswith(" missing"))


MISSING_AT_BASE_FIX = ("check that [upstream] checkout is the right clone and that [upstream] base (or series.lock, "
                       "which takes precedence) names the commit the patch applies to")


def missing_at_base_detail(base: str, files: Sequence[str]) -> str:
    shown = ", ".join(files[:3]) + (f" and {len(files) - 3} more" if len(files) > 3 else "")
    many = "file the patch changes does" if len(files) == 1 else "files the patch changes do"
    return f"{len(files)} {many} not exist at the base {base[:12]}: {shown}"


def missing_at_base_message(patch: Path, base: str, files: Sequence[str]) -> str:
    return f"{patch}: {missing_at_base_detail(base, files)}; the patch was made on another tree: {MISSING_AT_BASE_FIX}"


def unmerged_paths(repo: Path, env: Mapping[str, str] | None = None) -> tuple[str, ...]:
    out = git(repo, "ls-files", "-z", "--unmerged", env=env).stdout
    seen: dict[str, None] = {}
    for record in out.split("\0"):
        if "\t" in record:
            seen.setdefault(record.split("\t", 1)[1], None)
    return tuple(seen)


def apply_cached(repo: Path, index: Path, patch: Path, *, reverse: bool = False, check_only: bool = False,
                 three_way: bool = False) -> proc.Completed:
    """`git apply --cached` against a private index file; never touches any working tree."""
    args = ["apply", "--cached", "--whitespace=nowarn"]
    if reverse:
        args.append("--reverse")
    if check_only:
        args.append("--check")
    if three_way:
        args.append("--3way")
    return git(repo, *args, str(patch), env=_index_env(index, pinned_env()), check=False)


def write_tree(repo: Path, index: Path) -> TreeSha:
    return tree_sha(git(repo, "write-tree", env=_index_env(index)).stdout.strip())


def read_tree(repo: Path, index: Path, treeish: str) -> None:
    git(repo, "read-tree", treeish, env=_index_env(index))


def build_series(shadow: Path, base: CommitSha, patches: Sequence[Path]) -> SeriesBuild:
    """Turn the patch files into a chain of commits on `base` inside the shadow repository.

    Each patch is applied with a temporary index (no working tree at all): first strictly, then with
    `--3way` using the blobs the `index` lines name. A patch that still does not apply raises
    SeriesInconsistentError naming the patch and its files: that is a broken series, not upstream drift.
    """
    notes: list[str] = []
    commits: list[CommitSha] = []
    parent = base
    with tempfile.TemporaryDirectory(prefix="mpspatch-index-") as tmp:
        index = Path(tmp) / "index"
        for number, patch in enumerate(patches):
            data = patch.read_bytes()
            read_tree(shadow, index, parent)
            strict = apply_cached(shadow, index, patch)
            if not strict.ok:
                read_tree(shadow, index, parent)
                merged = apply_cached(shadow, index, patch, three_way=True)
                where = "its base" if number == 0 else f"the previous patch ({patches[number - 1].name})"
                if not merged.ok:
                    # What the earlier patches changed is theirs to lack; the rest the patch expects at the base.
                    earlier: Sequence[str] = ()
                    if number:
                        earlier = git(shadow, "diff-tree", "-r", "-z", "--name-only", "--no-renames", base,
                                      parent).stdout.split("\0")
                    if missing := missing_at_base(shadow, base, strict.stderr, earlier):
                        raise MissingAtBaseError(missing_at_base_message(patch, base, missing), patch, missing)
                    conflicted = unmerged_paths(shadow, _index_env(index)) or _failed_files(merged.stderr)
                    lacks = "lacks the necessary blob" in merged.stderr
                    reason = ("the index lines name blobs this clone does not have, so no 3-way merge was possible"
                              if lacks else "a 3-way merge leaves conflicts")
                    files = ", ".join(conflicted) or "(see `git apply` output)"
                    raise SeriesInconsistentError(
                        f"{patch}: series inconsistent: does not apply on top of {where} in {files}; {reason}; "
                        "fix the patch (or the order in [series].patches) so the series applies in order",
                        patch, tuple(conflicted))
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


def sparse_patterns(paths: Sequence[str]) -> list[str]:
    """Non-cone sparse patterns that match exactly these files (anchored, with glob characters escaped)."""
    patterns = []
    for path in sorted(set(paths)):
        escaped = re.sub(r"([*?\[\]\\!# ])", r"\\\1", path)
        patterns.append("/" + escaped)
    return patterns


def add_sparse_worktree(shadow: Path, where: Path, branch: str, commit: CommitSha, paths: Sequence[str]) -> None:
    """A worktree of the shadow repository at `where`, on `branch`, holding only `paths`.

    A sparse worktree costs what the patched files cost, not what PyTorch's 13k-file tree costs (facts.md:
    0.29 s against 10.4 s). rerere is switched on in it so a resolution made once is replayed next time.
    """
    where.parent.mkdir(parents=True, exist_ok=True)
    # --force: a worktree registered at this path whose folder is gone (an interrupted run) is taken over.
    git(shadow, "worktree", "add", "--quiet", "--force", "--no-checkout", "-B", branch, str(where), commit)
    # rerere.enabled/autoupdate come from the shadow's own config, which every worktree of it reads.
    git(where, "sparse-checkout", "set", "--no-cone", "--stdin", input_text="\n".join(sparse_patterns(paths)) + "\n")
    # --no-checkout left the index empty: fill it from HEAD and write only the files the patterns keep.
    git(where, "read-tree", "-mu", "HEAD")


def remove_worktree(shadow: Path, where: Path) -> None:
    """Remove a shadow worktree and its administrative files, whatever state it was left in."""
    if where.exists():
        git(shadow, "worktree", "remove", "--force", "--force", str(where), check=False)
        if where.exists():
            shutil.rmtree(where, ignore_errors=True)
    git(shadow, "worktree", "prune", check=False)


def head_of(worktree: Path) -> CommitSha:
    return commit_sha(git(worktree, "rev-parse", "HEAD").stdout.strip())



# How stored patches are written. Every option that user or repository config could change is pinned, so the
# same two trees give byte-identical patch files on any machine:
# - --full-index keeps full blob names on `index` lines, which `git apply --3way` needs to merge;
# - --no-renames writes a rename as delete + add: rename detection depends on similarity heuristics and
#   config, and a delete + add applies on any base with plain `git apply`;
# - --binary keeps binary changes applicable; --no-ext-diff/--no-textconv keep drivers out; -U3, myers and the
#   indent heuristic are git's defaults written out so a user's diff.* config cannot change them.
PATCH_DIFF_ARGS = ("diff", "--full-index", "--binary", "--no-color", "--no-ext-diff", "--no-textconv",
                   "--no-renames", "--unified=3", "--diff-algorithm=myers", "--indent-heuristic",
                   "--src-prefix=a/", "--dst-prefix=b/", "--no-relative")


def patch_text(repo: Path, old: str, new: str, paths: Sequence[str] = ()) -> str:
    """The patch that turns tree-ish `old` into `new`, in mpspatch's canonical, deterministic form."""
    args = [*PATCH_DIFF_ARGS, old, new]
    if paths:
        args += ["--", *paths]
    return git(repo, *args, env=pinned_env()).stdout


def rebase_env() -> dict[str, str]:
    """User config off, a fixed committer: rebasing the same commits onto the same base gives the same SHAs."""
    env = pinned_env()
    env.update(identity_env(SERIES_IDENTITY[0], SERIES_IDENTITY[1], f"@{SERIES_EPOCH} +0000"))
    # The author of each series commit is kept by the rebase; only the committer is ours.
    for key in ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_AUTHOR_DATE"):
        env.pop(key)
    env["GIT_EDITOR"] = "true"
    return env


@dataclass(frozen=True)
class RebaseStep:
    done: bool  # True: the rebase finished; False: it stopped on conflicts
    stopped_at: CommitSha | None  # the series commit being replayed when it stopped
    unmerged: tuple[str, ...]
    output: str


def _rebase_step(worktree: Path, result: proc.Completed) -> RebaseStep:
    output = result.stdout + result.stderr
    if result.ok and not rebase_in_progress(worktree):
        return RebaseStep(done=True, stopped_at=None, unmerged=(), output=output)
    # One call for the common case, a stop: the rebase state folders and the commit being replayed.
    probe = git(worktree, "rev-parse", "--path-format=absolute", "--git-path", "rebase-merge", "--git-path",
                "rebase-apply", "REBASE_HEAD", check=False)
    lines = probe.stdout.split()
    if probe.ok and len(lines) == 3:
        in_progress, stopped = any(Path(p).is_dir() for p in lines[:2]), commit_sha(lines[2])
    else:
        in_progress, stopped = rebase_in_progress(worktree), None
    if not in_progress:
        raise GitError(f"{worktree}: git rebase failed:\n{proc.tail(result.stderr or result.stdout)}")
    return RebaseStep(done=False, stopped_at=stopped, unmerged=unmerged_paths(worktree), output=output)


def run_rebase(worktree: Path, base: CommitSha, onto: CommitSha, branch: str) -> RebaseStep:
    """`git rebase --onto onto base branch` in the worktree, with git's own merge machinery (ort)."""
    result = git(worktree, "-c", "rebase.autoStash=false", "-c", "rebase.updateRefs=false", "rebase",
                 "--no-autosquash", "--no-verify", "--empty=drop", "--onto", onto, base, branch,
                 env=rebase_env(), check=False)
    return _rebase_step(worktree, result)


def continue_rebase(worktree: Path) -> RebaseStep:
    git(worktree, "add", "--all", env=pinned_env())
    result = git(worktree, "rebase", "--continue", env=rebase_env(), check=False)
    if not result.ok and "nothing to commit" in result.stdout + result.stderr and rebase_in_progress(worktree):
        # The resolution made the commit empty (everything already upstream): drop it and go on.
        result = git(worktree, "rebase", "--skip", env=rebase_env(), check=False)
    return _rebase_step(worktree, result)


def git_path(worktree: Path, name: str) -> Path:
    """Where git keeps `name` for this worktree (asked of git, never guessed)."""
    return Path(git(worktree, "rev-parse", "--path-format=absolute", "--git-path", name).stdout.strip())


def rebase_in_progress(worktree: Path) -> bool:
    out = git(worktree, "rev-parse", "--path-format=absolute", "--git-path", "rebase-merge", "--git-path",
              "rebase-apply").stdout.split("\n")
    return any(Path(p).is_dir() for p in out if p)


def clear_stale_index_lock(worktree: Path) -> bool:
    """Remove an index.lock left by a git process that was killed with mpspatch; True when one was removed."""
    lock = git_path(worktree, "index.lock")
    if lock.exists():
        lock.unlink()
        return True
    return False


# is_ancestor: one definition, in the audit-checks section below (it reports git failures instead of
# answering False); rebase and render each added one.


def range_diff(repo: Path, base: str, old_tip: str, onto: str, new_tip: str) -> str:
    result = git(repo, "range-diff", "--no-color", f"{base}..{old_tip}", f"{onto}..{new_tip}", env=pinned_env(),
                 check=False)
    return result.stdout if result.ok else ""


def tree_sha_of(repo: Path, treeish: str) -> TreeSha:
    """The tree of a commit, or the tree itself."""
    return tree_sha(git(repo, "rev-parse", "--verify", f"{treeish}^{{tree}}").stdout.strip())



# ----------------------------------------------------------------------------- history and object database
# (issue 4, drift: add log, merge-tree and patch-id operations below this line)

# `git merge-tree --write-tree` (a real merge that writes only objects, no worktree and no index) arrived in
# git 2.38. Older gits only have the trivial mode, whose output cannot predict what a rebase stops on.
MERGE_TREE_MIN_VERSION = (2, 38, 0)
# Commits made only to steer merge-tree's merge-base choice: fixed identity and date, so reruns reuse objects.
_FORECAST_ENV = identity_env("mpspatch forecast", "mpspatch@localhost", "@946684800 +0000")


def require_merge_tree() -> None:
    """Raise ToolMissingError unless this git can run `merge-tree --write-tree`."""
    found = version()
    if found < MERGE_TREE_MIN_VERSION:
        have = ".".join(str(n) for n in found)
        need = ".".join(str(n) for n in MERGE_TREE_MIN_VERSION[:2])
        raise ToolMissingError(
            f"git {have} is too old: the forecast needs `git merge-tree --write-tree` from git {need} or newer; "
            "upgrade git"
        )


@dataclass(frozen=True)
class LogEntry:
    sha: CommitSha
    subject: str
    body: str  # the whole message (%B), where trailers live
    paths: tuple[str, ...]  # paths the commit touches, limited by the pathspec given


# Field and record marks that cannot occur in a commit message or a SHA; paths come NUL-separated after each.
_REC, _FIELD, _END = "\x01", "\x1f", "\x1e"


def log_name_only(repo: Path, exclude: str, include: str, paths: Sequence[str]) -> tuple[LogEntry, ...]:
    """Commits in `exclude..include` that touch `paths`, newest first, with the touched paths: one git call."""
    if not paths:
        return ()
    out = git(
        repo, "--literal-pathspecs", "log", "-z", "--no-merges", "--no-renames", "--no-color",
        f"--format={_REC}%H{_FIELD}%s{_FIELD}%B{_END}", "--name-only", f"{exclude}..{include}",
        *paths_args(paths),
    ).stdout
    entries: list[LogEntry] = []
    header: list[str] | None = None
    touched: list[str] = []
    for token in out.split("\0"):
        if token.startswith(_REC) and token.endswith(_END):
            if header is not None:
                entries.append(_log_entry(header, touched))
            header, touched = token[1:-1].split(_FIELD, 2), []
        elif token and header is not None:
            # git separates the header from the first path with one newline; a path never starts with one.
            touched.append(token[1:] if not touched and token.startswith("\n") else token)
    if header is not None:
        entries.append(_log_entry(header, touched))
    return tuple(entries)


def _log_entry(header: list[str], touched: list[str]) -> LogEntry:
    sha, subject, body = [*header, "", ""][:3]
    return LogEntry(sha=commit_sha(sha), subject=subject, body=body, paths=tuple(touched))


def log_patches(repo: Path, exclude: str, include: str, paths: Sequence[str]) -> str:
    """`git log -p` of `exclude..include` limited to `paths`, in the form `git patch-id` reads.

    Diff options are fixed here so the series and upstream are always diffed the same way; patch-ids are
    only comparable between diffs made with the same options.
    """
    if not paths:
        return ""
    return git(
        repo, "--literal-pathspecs", "-c", "core.quotePath=false", "log", "-p", "--no-merges", "--no-renames",
        "--no-color", "--no-ext-diff", "--format=commit %H", f"{exclude}..{include}", *paths_args(paths),
    ).stdout


def show_patches(repo: Path, commits: Sequence[str], paths: Sequence[str]) -> str:
    """log_patches for a chosen set of commits (no history walk), in the order given."""
    if not commits or not paths:
        return ""
    return git(
        repo, "--literal-pathspecs", "-c", "core.quotePath=false", "log", "-p", "--no-walk=unsorted", "--no-renames",
        "--no-color", "--no-ext-diff", "--format=commit %H", *commits, *paths_args(paths),
    ).stdout


def patch_ids(repo: Path, log_text: str) -> dict[CommitSha, str]:
    """Map each commit in `log_text` (from log_patches) to its `git patch-id --stable`."""
    if not log_text.strip():
        return {}
    out = git(repo, "patch-id", "--stable", input_text=log_text).stdout
    found: dict[CommitSha, str] = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2:
            found[commit_sha(parts[1])] = parts[0]
    return found


def commit_tree(repo: Path, tree: str, parents: Sequence[CommitSha], message: str) -> CommitSha:
    """A commit object for `tree` (any tree-ish, e.g. `SHA^{tree}`), written to `repo` only; no ref, index or
    worktree changes."""
    args = ["commit-tree", tree]
    for parent in parents:
        args += ["-p", parent]
    return commit_sha(git(repo, *args, "-m", message, env=_FORECAST_ENV).stdout.strip())


@dataclass(frozen=True)
class MergeMessage:
    paths: tuple[str, ...]
    kind: str  # git's conflict type, e.g. "CONFLICT (contents)", "CONFLICT (modify/delete)", "Auto-merging"
    text: str


@dataclass(frozen=True)
class MergeTreeResult:
    tree: TreeSha  # the merged tree; conflicted files hold conflict markers, as in a worktree
    conflicted: tuple[str, ...]
    messages: tuple[MergeMessage, ...]

    @property
    def clean(self) -> bool:
        return not self.conflicted


def merge_tree(repo: Path, ours: CommitSha, theirs: CommitSha) -> MergeTreeResult:
    """`git merge-tree --write-tree` of two commits: a full merge done in the object database only.

    git picks the merge base itself (merge-tree learnt --merge-base only in 2.40), so callers that need a
    cherry-pick's base give `ours` that base as its only parent.
    """
    result = git(repo, "merge-tree", "--write-tree", "-z", "--name-only", "--messages", ours, theirs, check=False)
    if result.returncode not in (0, 1):
        raise GitError(f"{repo}: git merge-tree {ours[:12]} {theirs[:12]} failed: {proc.tail(result.stderr, 5)}")
    tokens = result.stdout.split("\0")
    tree = tree_sha(tokens[0])
    index = 1
    conflicted: list[str] = []
    # The conflicted paths come next (none for a clean merge), ended by an empty token, then the messages.
    while index < len(tokens) and tokens[index]:
        conflicted.append(tokens[index])
        index += 1
    index += 1
    messages: list[MergeMessage] = []
    while index < len(tokens) and tokens[index].isdigit():
        count = int(tokens[index])
        paths = tuple(tokens[index + 1 : index + 1 + count])
        kind, text = tokens[index + 1 + count], tokens[index + 2 + count]
        messages.append(MergeMessage(paths=paths, kind=kind, text=text.rstrip("\n")))
        index += count + 3
    return MergeTreeResult(tree=tree, conflicted=tuple(dict.fromkeys(conflicted)), messages=tuple(messages))


def read_blobs(repo: Path, specs: Sequence[str]) -> tuple[bytes | None, ...]:
    """The contents of `TREEISH:PATH` objects, in order, with one `git cat-file --batch`; None where missing."""
    if not specs:
        return ()
    if any("\n" in spec for spec in specs):
        raise GitError(f"{repo}: a path with a newline cannot be read through `git cat-file --batch`")
    stdin = "".join(f"{spec}\n" for spec in specs).encode("utf-8")
    try:
        out = proc.run_bytes(["git", "cat-file", "--batch"], cwd=repo, env=_env(), input_bytes=stdin,
                             inherit_env=False).stdout
    except CommandFailedError as exc:
        raise GitError(f"{repo}: {exc.message}") from None
    blobs: list[bytes | None] = []
    pos = 0
    for _ in specs:
        end = out.index(b"\n", pos)
        header = out[pos:end].split()
        pos = end + 1
        if len(header) == 3 and header[1] in (b"blob", b"tree", b"commit", b"tag"):
            size = int(header[2])
            blobs.append(out[pos : pos + size] if header[1] == b"blob" else None)
            pos += size + 1  # the object is followed by one newline
        else:  # "<spec> missing" or "<spec> ambiguous"
            blobs.append(None)
    return tuple(blobs)


def diff_tree_paths(repo: Path, old: str, new: str, paths: Sequence[str] = ()) -> tuple[str, ...]:
    """Paths whose blob or mode differs between two trees (optionally limited to `paths`)."""
    args = ["--literal-pathspecs", "diff-tree", "-r", "-z", "--no-renames", "--name-only", old, new]
    if paths:
        args += paths_args(paths)
    return tuple(p for p in git(repo, *args).stdout.split("\0") if p)


def diff_trees(repo: Path, old: str, new: str, paths: Sequence[str] = ()) -> str:
    """A plain unified diff between two trees, optionally limited to `paths` (3 lines of context, no renames)."""
    return git(
        repo, "--literal-pathspecs", "-c", "core.quotePath=false", "diff", "--no-renames", "--no-color",
        "--no-ext-diff", "--full-index", old, new, *(paths_args(paths) if paths else []),
    ).stdout


def write_blobs(repo: Path, contents: Sequence[bytes]) -> tuple[str, ...]:
    """Store each content as a blob in `repo` (no filters applied), with one `git hash-object` call."""
    if not contents:
        return ()
    with tempfile.TemporaryDirectory(prefix="mpspatch-blobs-") as tmp:
        files = []
        for number, data in enumerate(contents):
            files.append(Path(tmp) / str(number))
            files[-1].write_bytes(data)
        out = git(repo, "hash-object", "-w", "--no-filters", "--stdin-paths",
                  input_text="".join(f"{f}\n" for f in files)).stdout
    return tuple(out.split())


def rewrite_tree(repo: Path, tree: TreeSha, *, source: CommitSha, from_source: Sequence[str] = (),
                 contents: Mapping[str, bytes] | None = None) -> TreeSha:
    """`tree` with `from_source` paths as `source` has them (gone where it lacks them) and `contents` paths
    replaced by new blobs (keeping their mode in `tree`).

    Built in a throwaway index file, so no index or worktree of any repository is involved.
    """
    contents = contents or {}
    wanted = sorted({*from_source, *contents})
    if not wanted:
        return tree
    # ls-tree records are valid --index-info lines; mode 0 with the null SHA removes a path.
    removal = "0 " + "0" * 40 + "\t"
    lines: dict[str, str] = {p: removal + p for p in from_source}
    if from_source:
        listing = git(repo, "--literal-pathspecs", "ls-tree", "-r", "-z", "--full-tree", source,
                      *paths_args(sorted(from_source))).stdout
        lines.update({r.split("\t", 1)[1]: r for r in listing.split("\0") if "\t" in r})
    if contents:
        listing = git(repo, "--literal-pathspecs", "ls-tree", "-r", "-z", "--full-tree", tree,
                      *paths_args(sorted(contents))).stdout
        modes = {r.split("\t", 1)[1]: r.split(" ", 1)[0] for r in listing.split("\0") if "\t" in r}
        names = sorted(contents)
        for path, blob in zip(names, write_blobs(repo, [contents[p] for p in names]), strict=True):
            lines[path] = f"{modes.get(path, '100644')} blob {blob}\t{path}"
    info = "".join(lines[p] + "\0" for p in wanted)
    with tempfile.TemporaryDirectory(prefix="mpspatch-tree-") as tmp:
        env = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
        git(repo, "read-tree", tree, env=env)
        git(repo, "update-index", "-z", "--index-info", env=env, input_text=info)
        return tree_sha(git(repo, "write-tree", env=env).stdout.strip())


# ----------------------------------------------------------------------------------------- split and trees
# (issue 9, split: add temporary-index apply and branch operations below this line)


# The shadow repository's read_tree/apply_cached/write_tree/tree_of above do the index work; these add what
# a split needs on top: index entries, tree listings, commits with a given identity, format-patch, branches.


def isolated_config_env() -> dict[str, str]:
    """No system or global config, so a user's diff.*, format.* or color settings cannot change our output.

    quotePath=false keeps non-ASCII names readable in patches; git still quotes tabs, newlines and quotes.
    """
    return {**pinned_env(), "GIT_LITERAL_PATHSPECS": "1", "GIT_CONFIG_COUNT": "1",
            "GIT_CONFIG_KEY_0": "core.quotePath", "GIT_CONFIG_VALUE_0": "false"}


def commit_time(repo: Path, commit: str) -> int:
    return int(git(repo, "show", "-s", "--format=%ct", commit).stdout.strip())


def set_index_entries(repo: Path, index: Path, entries: Sequence[tuple[str, str, str]]) -> None:
    """Set (mode, blob, path) entries in a private index; mode "0" removes the path."""
    if not entries:
        return
    lines = "".join(
        f"0 {'0' * 40}\t{path}\0" if mode == "0" else f"{mode} {blob}\t{path}\0" for mode, blob, path in entries
    )
    git(repo, "update-index", "-z", "--index-info", env=_index_env(index), input_text=lines)


def tree_entries(repo: Path, tree: str, paths: Sequence[str]) -> dict[str, tuple[str, str]]:
    """path -> (mode, object) in `tree` for the given paths; absent paths are left out."""
    if not paths:
        return {}
    out = git(repo, "--literal-pathspecs", "ls-tree", "-r", "-z", "--full-tree", tree, "--", *paths).stdout
    found: dict[str, tuple[str, str]] = {}
    for record in out.split("\0"):
        if not record:
            continue
        meta, path = record.split("\t", 1)
        mode, _kind, obj = meta.split(" ")
        found[path] = (mode, obj)
    return found


def diff_trees_to_file(repo: Path, old: str, new: str, output: Path) -> bytes:
    """A full-index, binary-safe, minimal diff between two trees, as `git apply --3way` wants it.

    git writes it to `output` itself and the bytes are returned untouched: decoding captured text would turn
    CRLF into LF and non-UTF-8 bytes into replacement characters, and the patch would no longer apply.
    """
    git(repo, "diff", "--full-index", "--binary", "-M", "--minimal", "--no-color", "--no-ext-diff",
        f"--output={output}", old, new, env=isolated_config_env())
    return output.read_bytes()


def commit_tree_as(repo: Path, tree: str, parent: str, message: str, env: Mapping[str, str]) -> CommitSha:
    """A commit of `tree` on `parent` with the identity and date `env` gives (git's defaults where it gives none)."""
    result = git(repo, "commit-tree", tree, "-p", parent, "-F", "-", env=env, input_text=message, check=False)
    if not result.ok:
        fix = "set user.name and user.email in that clone" if "identity" in result.stderr else "see the message"
        raise GitError(f"{repo}: cannot create a commit ({proc.tail(result.stderr, 3).strip()}); {fix}")
    return commit_sha(result.stdout.strip())


def format_patches(repo: Path, base: str, tip: str, out_dir: Path, env: Mapping[str, str]) -> list[Path]:
    """`git format-patch` of base..tip into out_dir, numbered [PATCH k/n], one file per commit, in order."""
    git(repo, "format-patch", "-q", "-o", str(out_dir), "--numbered", "--full-index", "--binary", "-M",
        "--minimal", "--no-signature", "--stat=80", "--no-color", "--no-thread", "--no-cover-letter",
        f"{base}..{tip}", env={**isolated_config_env(), **env})
    return sorted(out_dir.glob("*.patch"))


def has_identity(repo: Path) -> bool:
    return git(repo, "var", "GIT_AUTHOR_IDENT", check=False).ok and git(repo, "var", "GIT_COMMITTER_IDENT",
                                                                         check=False).ok


def valid_branch_name(repo: Path, name: str) -> bool:
    return git(repo, "check-ref-format", "--branch", name, check=False).ok and not name.startswith("-")


def set_refs(repo: Path, refs: Sequence[tuple[str, str]], *, overwrite: bool) -> None:
    """Create (or with overwrite, move) several refs in one transaction: all of them change or none does."""
    verb = "update" if overwrite else "create"
    commands = "start\n" + "".join(f"{verb} {ref} {sha}\n" for ref, sha in refs) + "prepare\ncommit\n"
    result = git(repo, "update-ref", "--stdin", env={"GIT_REFLOG_ACTION": "mpspatch split"}, input_text=commands,
                 check=False)
    if not result.ok:
        raise GitError(f"{repo}: could not create the branches ({proc.tail(result.stderr, 3).strip()}); "
                       "pass --force to move existing ones or choose another --branches prefix")


def checked_out_branches(repo: Path) -> set[str]:
    """Full ref names of the branches checked out in any worktree of `repo`."""
    out = git(repo, "worktree", "list", "--porcelain").stdout
    return {line.split(" ", 1)[1] for line in out.splitlines() if line.startswith("branch ")}


# ------------------------------------------------------------------------------- audit checks (read-only)
# (issue 6, render: ancestry and apply-in-order checks; they never touch the clone's index, refs or objects)


def try_resolve_commit(repo: Path, ref: str) -> CommitSha | None:
    result = git(repo, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}", check=False)
    return commit_sha(result.stdout.strip()) if result.ok else None


def is_ancestor(repo: Path, ancestor: str, descendant: str) -> bool:
    result = git(repo, "merge-base", "--is-ancestor", ancestor, descendant, check=False)
    if result.returncode not in (0, 1):
        raise GitError(f"{repo}: cannot compare {ancestor} with {descendant}: {proc.tail(result.stderr, 3)}")
    return result.returncode == 0


def apply_in_order(repo: Path, base: str, patches: Sequence[Path]) -> tuple[Path | None, str, tuple[str, ...]]:
    """Apply each patch, in order, to a throwaway index at `base`: (first patch that fails, why, the files it
    changes that do not exist at `base` at all) or (None, "", ()).

    The index and any blobs `git apply` creates live in a temporary folder (the clone's object store is only
    borrowed as an alternate), so the user's clone gains nothing and loses nothing. No worktree is needed,
    which keeps the check cheap enough to run on every `status`.
    """
    import tempfile

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
