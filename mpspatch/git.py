"""Small typed git operations. Git failures become GitError here and never leak out as raw output.

The git CLI is called through mpspatch.proc; it is faster to start than GitPython's object model for the
one-shot plumbing commands used here, and its NUL-separated output formats are stable across versions.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from mpspatch import proc
from mpspatch.errors import CommandFailedError, GitError, ToolMissingError
from mpspatch.ids import CommitSha, commit_sha

# Reproducible, non-interactive git: no pager, no editor, no user config surprises in plumbing output.
_GIT_ENV = {
    "GIT_TERMINAL_PROMPT": "0",
    "GIT_EDITOR": "true",
    "GIT_PAGER": "cat",
    "LC_ALL": "C",
}


def git(
    repo: Path,
    *args: str,
    check: bool = True,
    env: Mapping[str, str] | None = None,
    input_text: str | None = None,
    timeout: float = 600,
) -> proc.Completed:
    merged = dict(_GIT_ENV)
    if env:
        merged.update(env)
    try:
        return proc.run(["git", *args], cwd=repo, env=merged, check=check, input_text=input_text, timeout=timeout)
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


def is_dirty(repo: Path) -> bool:
    return bool(git(repo, "status", "--porcelain=v1", "-z", "--untracked-files=no").stdout)


def ls_files_z(repo: Path, *args: str) -> list[str]:
    return [p for p in git(repo, "ls-files", "-z", *args).stdout.split("\0") if p]


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


def path_env_without_git_vars() -> dict[str, str]:
    """The current environment minus GIT_DIR-style variables that would redirect every command."""
    return {k: v for k, v in os.environ.items() if not k.startswith("GIT_") or k in _GIT_ENV}


def paths_args(paths: Sequence[str]) -> list[str]:
    return ["--", *paths]


# ------------------------------------------------------------------------------------- worktrees and apply
# (issue 3, rebase: add worktree, sparse-checkout, apply and rebase operations below this line)


# ----------------------------------------------------------------------------- history and object database
# (issue 4, drift: add log, merge-tree and patch-id operations below this line)


# ----------------------------------------------------------------------------------------- split and trees
# (issue 9, split: add temporary-index apply and branch operations below this line)


def objects_dir(repo: Path) -> Path:
    """The absolute object directory of `repo`, for borrowing its objects through alternates."""
    out = git(repo, "rev-parse", "--path-format=absolute", "--git-path", "objects").stdout.strip()
    return Path(out)


def init_bare(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "--bare", env=isolated_config_env())
    return path


def isolated_config_env() -> dict[str, str]:
    """No system or global config: a user's diff.*, format.* or color settings must not change our output."""
    # quotePath=false keeps non-ASCII names readable in patches; git still quotes tabs, newlines and quotes.
    return {"GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull, "GIT_LITERAL_PATHSPECS": "1",
            "GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "core.quotePath", "GIT_CONFIG_VALUE_0": "false"}


def tree_of(repo: Path, rev: str, env: Mapping[str, str] | None = None) -> str:
    """The full SHA of the tree `rev` names."""
    return git(repo, "rev-parse", "--verify", "--end-of-options", f"{rev}^{{tree}}", env=env).stdout.strip()


def commit_time(repo: Path, commit: str) -> int:
    return int(git(repo, "show", "-s", "--format=%ct", commit).stdout.strip())


def read_tree(repo: Path, tree: str, env: Mapping[str, str]) -> None:
    """Load `tree` into the index named by env's GIT_INDEX_FILE (never the repository's own index)."""
    _require_private_index(env)
    git(repo, "read-tree", tree, env=env)


def apply_cached(repo: Path, patch: Path, env: Mapping[str, str]) -> proc.Completed:
    """Apply `patch` to the private index only; the result says whether it applied and why not."""
    _require_private_index(env)
    return git(repo, "apply", "--cached", "--whitespace=nowarn", str(patch), env=env, check=False)


def write_tree(repo: Path, env: Mapping[str, str]) -> str:
    _require_private_index(env)
    return git(repo, "write-tree", env=env).stdout.strip()


def update_index_entries(repo: Path, entries: Sequence[tuple[str, str, str]], env: Mapping[str, str]) -> None:
    """Set (mode, blob, path) entries in the private index; mode "0" removes the path."""
    _require_private_index(env)
    if not entries:
        return
    lines = "".join(
        f"0 {'0' * 40}\t{path}\0" if mode == "0" else f"{mode} {blob}\t{path}\0" for mode, blob, path in entries
    )
    git(repo, "update-index", "-z", "--index-info", env=env, input_text=lines)


def tree_entries(repo: Path, tree: str, paths: Sequence[str], env: Mapping[str, str]) -> dict[str, tuple[str, str]]:
    """path -> (mode, object) in `tree` for the given paths; absent paths are left out."""
    if not paths:
        return {}
    out = git(repo, "ls-tree", "-r", "-z", "--full-tree", tree, "--", *paths, env=env).stdout
    found: dict[str, tuple[str, str]] = {}
    for record in out.split("\0"):
        if not record:
            continue
        meta, path = record.split("\t", 1)
        mode, _kind, obj = meta.split(" ")
        found[path] = (mode, obj)
    return found


def diff_trees(repo: Path, old: str, new: str, env: Mapping[str, str], output: Path) -> bytes:
    """A full-index, binary-safe, minimal diff between two trees, as `git apply --3way` wants it.

    git writes it to `output` itself and the bytes are returned untouched: decoding captured text would turn
    CRLF into LF and non-UTF-8 bytes into replacement characters, and the patch would no longer apply.
    """
    git(repo, "diff", "--full-index", "--binary", "-M", "--minimal", "--no-color", "--no-ext-diff",
        f"--output={output}", old, new, env=env)
    return output.read_bytes()


def commit_tree(repo: Path, tree: str, parent: str, message: str, env: Mapping[str, str]) -> CommitSha:
    result = git(repo, "commit-tree", tree, "-p", parent, "-F", "-", env=env, input_text=message, check=False)
    if not result.ok:
        fix = "set user.name and user.email in that clone" if "identity" in result.stderr else "see the message"
        raise GitError(f"{repo}: cannot create a commit ({proc.tail(result.stderr, 3).strip()}); {fix}")
    return commit_sha(result.stdout.strip())


def format_patches(repo: Path, base: str, tip: str, out_dir: Path, env: Mapping[str, str]) -> list[Path]:
    """`git format-patch` of base..tip into out_dir, numbered [PATCH k/n], one file per commit, in order."""
    git(repo, "format-patch", "-q", "-o", str(out_dir), "--numbered", "--full-index", "--binary", "-M",
        "--minimal", "--no-signature", "--stat=80", "--no-color", "--no-thread", "--no-cover-letter",
        f"{base}..{tip}", env=env)
    return sorted(out_dir.glob("*.patch"))


def has_identity(repo: Path) -> bool:
    return git(repo, "var", "GIT_AUTHOR_IDENT", check=False).ok and git(repo, "var", "GIT_COMMITTER_IDENT",
                                                                         check=False).ok


def valid_branch_name(repo: Path, name: str) -> bool:
    return git(repo, "check-ref-format", "--branch", name, check=False).ok and not name.startswith("-")


def ref_exists(repo: Path, ref: str) -> bool:
    return git(repo, "rev-parse", "--verify", "--quiet", "--end-of-options", ref, check=False).ok


def refs_under(repo: Path, prefix: str) -> list[str]:
    out = git(repo, "for-each-ref", "--format=%(refname)", prefix).stdout
    return [line for line in out.splitlines() if line]


def set_refs(repo: Path, refs: Sequence[tuple[str, str]], *, overwrite: bool) -> None:
    """Create (or with overwrite, move) several refs in one transaction: all of them change or none does."""
    verb = "update" if overwrite else "create"
    commands = "start\n" + "".join(f"{verb} {ref} {sha}\n" for ref, sha in refs) + "prepare\ncommit\n"
    result = git(repo, "update-ref", "--stdin", env={"GIT_REFLOG_ACTION": "mpspatch split"}, input_text=commands,
                 check=False)
    if not result.ok:
        raise GitError(f"{repo}: could not create the branches ({proc.tail(result.stderr, 3).strip()}); "
                       "pass --force to move existing ones or choose another --branches prefix")


def _require_private_index(env: Mapping[str, str]) -> None:
    # A guard, not a convenience: index operations here must never touch a user's real index.
    if not env.get("GIT_INDEX_FILE"):
        raise ValueError("index operations need GIT_INDEX_FILE set to a private index")


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


def apply_in_order(repo: Path, base: str, patches: Sequence[Path]) -> tuple[Path | None, str]:
    """Apply each patch, in order, to a throwaway index at `base`: (first patch that fails, why) or (None, "").

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
                return patch, proc.tail(result.stderr or result.stdout, 3)
    return None, ""
