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
