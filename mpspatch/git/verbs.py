"""Small typed git verbs: the one `git()` runner and the plumbing commands the layers above need.

A git command that fails unexpectedly becomes a GitCommandError here (exit 3, naming the command; its output
under --debug); failures the user can fix are recognised by the callers and raised as GitError (exit 2).
The shadow repository's lifecycle lives in git/shadow.py, the series as commits in git/commits.py, the rebase
driver in git/rebasing.py, and logs, merge-tree and blob work in git/objects.py.

The git CLI is called through mpspatch.foundation.proc; it is faster to start than GitPython's object model for the
one-shot plumbing commands used here, and its NUL-separated output formats are stable across versions.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from mpspatch.foundation import proc
from mpspatch.foundation.errors import CommandFailedError, GitCommandError, GitError, ToolMissingError
from mpspatch.foundation.files import utf8_patch
from mpspatch.foundation.ids import CommitSha, TreeSha, commit_sha, tree_sha

# Reproducible, non-interactive git: no pager, no editor, no user config surprises in plumbing output.
_GIT_ENV = {
    "GIT_TERMINAL_PROMPT": "0",
    "GIT_EDITOR": "true",
    "GIT_PAGER": "cat",
    "LC_ALL": "C",
}

# The user's git setup stays out of the shadow repository, its worktrees and the clone: no global or system
# config (core.autocrlf, core.splitIndex, merge.renormalize, filters, init templates), no hooks and no
# fsmonitor (a hook path in the clone's own config included), and no optional index writes, so reading the
# clone never rewrites its index. Given as GIT_CONFIG_PARAMETERS, which `-c` options add to and override.
_ISOLATED_ENV = {
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_OPTIONAL_LOCKS": "0",
    "GIT_CONFIG_PARAMETERS": f"'core.hooksPath={os.devnull}' 'core.fsmonitor=false'",
}
# Inherited GIT_* variables are dropped, except the one that says where git's own programs are; `user_config`
# calls keep what reaching a remote or naming the user needs. GIT_DIFF_OPTS or GIT_EXTERNAL_DIFF would change
# patch bytes; the repository-local ones a git hook exports (GIT_DIR, GIT_INDEX_FILE, GIT_WORK_TREE...) would
# point every command at that hook's repository instead of the clone or shadow named by `repo`.
_KEPT_GIT_VARS = frozenset({"GIT_EXEC_PATH"})
_USER_GIT_VARS = frozenset({
    "GIT_SSH", "GIT_SSH_COMMAND", "GIT_SSH_VARIANT", "GIT_ASKPASS", "GIT_PROXY_COMMAND", "GIT_PROXY_SSL_CERT",
    "GIT_SSL_CAINFO", "GIT_SSL_CAPATH", "GIT_SSL_CERT", "GIT_SSL_KEY", "GIT_SSL_NO_VERIFY", "GIT_HTTP_USER_AGENT",
    "GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL",
})


def _env(extra: Mapping[str, str] | None = None, *, user_config: bool = False) -> dict[str, str]:
    """The whole environment for a git command: the inherited one without git's variables, ours, then `extra`.

    `user_config` keeps the user's global and system config and identity: only for talking to a remote (a
    clone, a fetch: proxies, credentials) and for commits made in the user's clone under the user's name.
    """
    kept = _KEPT_GIT_VARS | (_USER_GIT_VARS if user_config else frozenset())
    merged = {k: v for k, v in os.environ.items() if not k.startswith("GIT_") or k in kept}
    merged.update(_GIT_ENV)
    merged.update(_ISOLATED_ENV)
    if user_config:
        del merged["GIT_CONFIG_NOSYSTEM"], merged["GIT_CONFIG_GLOBAL"]
    if extra:
        merged.update(extra)
    return merged


# How much of a failed command's argv its one-line message shows (the whole of it is in the --debug detail).
_ARGV_SHOWN = 160


def command_failed(argv: Sequence[str], cwd: Path, returncode: int, stderr: str, stdout: str = "") -> GitCommandError:
    """The error for a git command of mpspatch's own that git refused: exit 3, naming the command.

    Callers that know a failure comes from the user's input (an unknown ref, a patch that does not apply)
    run git with check=False and raise a GitError that says what to fix instead.
    """
    shown = proc.describe(argv)
    if len(shown) > _ARGV_SHOWN:
        shown = shown[:_ARGV_SHOWN] + "…"
    output = proc.tail(stderr or stdout)
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    # git's verdict is its fatal:/error: line; hints may follow it.
    said = next((line for line in lines if line.startswith(("fatal:", "error:"))), lines[-1] if lines else "no output")
    return GitCommandError(
        f"git failed unexpectedly: `{shown}` exited {returncode} in {cwd}: {said}",
        argv=tuple(argv), cwd=str(cwd), returncode=returncode,
        output=f"$ {proc.describe(argv)}  (in {cwd}, exit {returncode})\n{output}",
    )


# git's words (strerror, LC_ALL=C) when the machine refused a write: the user's to fix, not a bug.
_NO_ROOM = ("No space left on device", "Disk quota exceeded", "Read-only file system")


def _no_room(repo: Path, stderr: str) -> GitError | None:
    """A GitError (exit 2) when git failed because it could not write: a full disk, a read-only file system."""
    said = next((line.strip() for line in stderr.splitlines() if any(w in line for w in _NO_ROOM)), None)
    if said is None:
        return None
    what = "the file system is read-only" if "Read-only" in said else "the disk is full"
    return GitError(f"{repo}: {what}, git could not write ({said}); free some space or make it writable, then run "
                    "the command again")


def git(
    repo: Path,
    *args: str,
    check: bool = True,
    env: Mapping[str, str] | None = None,
    input_text: str | None = None,
    timeout: float = 600,
    user_config: bool = False,
) -> proc.Completed:
    """Run git in `repo`. With check, a non-zero exit is a GitCommandError (exit 3): a failure that is the
    user's to fix is recognised by the caller, which passes check=False and raises a GitError naming the fix.
    The user's git config, hooks and GIT_* variables are kept out (see _env); `user_config` lets them in."""
    try:
        result = proc.run(["git", *args], cwd=repo, env=_env(env, user_config=user_config), check=False,
                          input_text=input_text,
                          timeout=timeout, inherit_env=False)
    except ToolMissingError:
        raise ToolMissingError("git: not found on PATH; install git 2.38 or newer") from None
    except CommandFailedError as exc:  # a timeout, or a folder that is gone: not a refusal by git
        raise GitError(f"{repo}: {exc.message}") from None
    if check and not result.ok:
        raise _no_room(repo, result.stderr) or command_failed(result.argv, repo, result.returncode, result.stderr,
                                                              result.stdout)
    return result


def git_bytes(repo: Path, *args: str, input_bytes: bytes, timeout: float = 600) -> bytes:
    """git() for binary protocols such as `cat-file --batch`: the bytes in and out are never decoded."""
    try:
        result = proc.run_bytes(["git", *args], cwd=repo, env=_env(), input_bytes=input_bytes, timeout=timeout,
                                check=False, inherit_env=False)
    except ToolMissingError:
        raise ToolMissingError("git: not found on PATH; install git 2.38 or newer") from None
    except CommandFailedError as exc:
        raise GitError(f"{repo}: {exc.message}") from None
    if not result.ok:
        raise _no_room(repo, result.stderr) or command_failed(result.argv, repo, result.returncode, result.stderr)
    return result.stdout


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
    if not path.is_dir():
        raise GitError(f"{path}: is a file, not a clone; point [upstream].checkout at a clone of the upstream")
    result = git(path, "rev-parse", "--show-toplevel", check=False)
    if not result.ok:
        raise GitError(f"{path}: not a git repository; point [upstream].checkout at a clone of the upstream")
    return Path(result.stdout.strip())


def repo_layout(path: Path) -> tuple[Path, Path] | None:
    """(top of the working tree, common git directory), both absolute, in one git call; None when `path` is
    not the inside of a repository with a working tree."""
    found = git(path, "rev-parse", "--path-format=absolute", "--show-toplevel", "--git-common-dir", check=False)
    lines = found.stdout.splitlines()
    return (Path(lines[0]), Path(lines[1])) if found.ok and len(lines) == 2 else None


def commit_of(repo: Path, spec: str) -> CommitSha | None:
    """The full SHA of the commit `spec` names exactly, or None. User refs go through model/workspace.py's rule."""
    result = git(repo, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{spec}^{{commit}}", check=False)
    return commit_sha(result.stdout.strip()) if result.ok else None


def commits_of(repo: Path, specs: Sequence[str]) -> tuple[CommitSha, ...] | None:
    """The commits of several specs in one `git rev-parse`; None unless every one names a commit."""
    result = git(repo, "rev-parse", "--end-of-options", *(f"{s}^{{commit}}" for s in specs), check=False)
    lines = result.stdout.split()
    if lines[:1] == ["--end-of-options"]:  # git before 2.43 echoes the marker when --verify is not given
        lines = lines[1:]
    if not result.ok or len(lines) != len(specs) or not all(re.fullmatch(r"[0-9a-f]{40}", x) for x in lines):
        return None
    return tuple(commit_sha(x) for x in lines)


def has_commit(repo: Path, sha: str) -> bool:
    """Whether the object store holds the commit (no lazy fetch is asked for; `cat-file -e` only looks)."""
    return git(repo, "cat-file", "-e", f"{sha}^{{commit}}", check=False).ok


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


# mpspatch's own commits (series, rebase, shadow config) carry this identity and fixed dates, so the same patch
# bytes on the same base always give the same commit SHA (ghstack's lesson: stable SHAs make results comparable).
SERIES_IDENTITY = ("mpspatch", "mpspatch@localhost")
SERIES_EPOCH = 946_684_800  # 2000-01-01T00:00:00Z; patch i is stamped SERIES_EPOCH + i seconds


def paths_args(paths: Sequence[str]) -> list[str]:
    return ["--", *paths]


def pinned_env() -> dict[str, str]:
    """Neutralise user and system git config for output that must be byte-identical everywhere."""
    return {"GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull}


def ref_exists(repo: Path, ref: str) -> bool:
    return git(repo, "rev-parse", "--verify", "--quiet", ref, check=False).ok


def _index_env(index: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {"GIT_INDEX_FILE": str(index)}
    if extra:
        env.update(extra)
    return env


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


def head_of(worktree: Path) -> CommitSha:
    return commit_sha(git(worktree, "rev-parse", "HEAD").stdout.strip())


def common_dir(worktree: Path) -> Path | None:
    """The repository a worktree belongs to (its common git dir), or None when `worktree` is not one."""
    result = git(worktree, "rev-parse", "--path-format=absolute", "--git-common-dir", check=False)
    return Path(result.stdout.strip()) if result.ok else None


def refresh_index(worktree: Path) -> None:
    """Re-hash files whose stat data changed but whose content did not, so a checkout leaves them alone."""
    git(worktree, "update-index", "-q", "--refresh", check=False, timeout=3600)


def checkout_detached(worktree: Path, commit: CommitSha) -> None:
    """Put `commit` on disk in `worktree` (detached HEAD), overwriting local changes."""
    git(worktree, "checkout", "-q", "-f", "--detach", commit, timeout=3600)


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
    return _utf8_diff(repo, args, pinned_env())


def worktree_patch_text(repo: Path, base: str) -> str:
    """patch_text of a working tree against `base`, read without taking even the optional index lock."""
    return _utf8_diff(repo, [*PATCH_DIFF_ARGS, base], {**pinned_env(), "GIT_OPTIONAL_LOCKS": "0"})


def _utf8_diff(repo: Path, args: Sequence[str], env: Mapping[str, str]) -> str:
    """A diff as text; one holding bytes that are not UTF-8 is refused naming the line, never rewritten."""
    text = git(repo, *args, env=env).stdout
    if "\ufffd" not in text:
        return text
    return utf8_patch(git_bytes(repo, *args, input_bytes=b""), f"`git diff` in {repo}")


def untracked_files(repo: Path, prefixes: Sequence[str]) -> tuple[str, ...]:
    """Files under `prefixes` that git does not track and does not ignore (read-only, no index refresh)."""
    out = git(repo, "ls-files", "-z", "--others", "--exclude-standard", "--", *prefixes,
              env={**pinned_env(), "GIT_OPTIONAL_LOCKS": "0"}).stdout
    return tuple(p for p in out.split("\0") if p)


def git_path(worktree: Path, name: str) -> Path:
    """Where git keeps `name` for this worktree (asked of git, never guessed)."""
    return Path(git(worktree, "rev-parse", "--path-format=absolute", "--git-path", name).stdout.strip())


def tree_sha_of(repo: Path, treeish: str) -> TreeSha:
    """The tree of a commit, or the tree itself."""
    return tree_sha(git(repo, "rev-parse", "--verify", f"{treeish}^{{tree}}").stdout.strip())


def diff_tree_paths(repo: Path, old: str, new: str, paths: Sequence[str] = (), *,
                    deleted: bool = True) -> tuple[str, ...]:
    """Paths whose blob or mode differs between two trees (optionally limited to `paths`; without deleted
    paths when `deleted` is False)."""
    args = ["--literal-pathspecs", "diff-tree", "-r", "-z", "--no-renames", "--name-only", old, new]
    if not deleted:
        args.insert(-2, "--diff-filter=d")
    if paths:
        args += paths_args(paths)
    return tuple(p for p in git(repo, *args).stdout.split("\0") if p)


def diff_trees(repo: Path, old: str, new: str, paths: Sequence[str] = ()) -> str:
    """A plain unified diff between two trees, optionally limited to `paths` (3 lines of context, no renames)."""
    return git(
        repo, "--literal-pathspecs", "-c", "core.quotePath=false", "diff", "--no-renames", "--no-color",
        "--no-ext-diff", "--full-index", old, new, *(paths_args(paths) if paths else []),
    ).stdout


# ----------------------------------------------------------------------------- index entries, commits, branches
# read_tree/apply_cached/write_tree above do the index work; these add what a split needs on top: index
# entries, tree listings, commits with a given identity, format-patch, branches.


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
    result = git(repo, "commit-tree", tree, "-p", parent, "-F", "-", env=env, input_text=message, check=False,
                 user_config=True)
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
    return (git(repo, "var", "GIT_AUTHOR_IDENT", check=False, user_config=True).ok
            and git(repo, "var", "GIT_COMMITTER_IDENT", check=False, user_config=True).ok)


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


def is_ancestor(repo: Path, ancestor: str, descendant: str) -> bool:
    result = git(repo, "merge-base", "--is-ancestor", ancestor, descendant, check=False)
    if result.returncode not in (0, 1):
        raise GitError(f"{repo}: cannot compare {ancestor} with {descendant}: {proc.tail(result.stderr, 3)}")
    return result.returncode == 0


