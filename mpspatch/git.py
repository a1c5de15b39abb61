"""Small typed git operations. Git failures become GitError here and never leak out as raw output.

The git CLI is called through mpspatch.proc; it is faster to start than GitPython's object model for the
one-shot plumbing commands used here, and its NUL-separated output formats are stable across versions.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from mpspatch import proc
from mpspatch.errors import CommandFailedError, GitError, ToolMissingError
from mpspatch.ids import CommitSha, TreeSha, commit_sha, tree_sha

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


def tree_of(repo: Path, commit: str) -> TreeSha:
    return tree_sha(git(repo, "rev-parse", "--verify", "--end-of-options", f"{commit}^{{tree}}").stdout.strip())


def commit_tree(repo: Path, tree: TreeSha, parents: Sequence[CommitSha], message: str) -> CommitSha:
    """A commit object for `tree`, written to `repo` only; no ref, index or worktree changes."""
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
        out = proc.run_bytes(["git", "cat-file", "--batch"], cwd=repo, env=_GIT_ENV, input_bytes=stdin).stdout
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


def changed_paths(repo: Path, old: str, new: str, paths: Sequence[str] = ()) -> tuple[str, ...]:
    """Paths whose blob or mode differs between two trees (optionally limited to `paths`)."""
    args = ["--literal-pathspecs", "diff-tree", "-r", "-z", "--no-renames", "--name-only", old, new]
    if paths:
        args += paths_args(paths)
    return tuple(p for p in git(repo, *args).stdout.split("\0") if p)


def diff_trees(repo: Path, old: str, new: str, paths: Sequence[str]) -> str:
    """A plain unified diff between two trees, limited to `paths` (3 lines of context, no renames)."""
    return git(
        repo, "--literal-pathspecs", "-c", "core.quotePath=false", "diff", "--no-renames", "--no-color",
        "--no-ext-diff", "--full-index", old, new, *paths_args(paths),
    ).stdout


# ----------------------------------------------------------------------------------------- split and trees
# (issue 9, split: add temporary-index apply and branch operations below this line)
