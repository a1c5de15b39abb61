"""The object database without a worktree: logs, patch-ids, merge-tree, blobs and rewritten trees.

What the history model (upstream commits, the merge forecast, already-upstream detection) asks of git.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mpspatch.foundation import proc
from mpspatch.foundation.errors import GitError, ToolMissingError
from mpspatch.foundation.ids import CommitSha, TreeSha, commit_sha, tree_sha
from mpspatch.git import verbs
from mpspatch.git.verbs import git, git_bytes, identity_env, paths_args

# `git merge-tree --write-tree` (a real merge that writes only objects, no worktree and no index) arrived in
# git 2.38. Older gits only have the trivial mode, whose output cannot predict what a rebase stops on.
MERGE_TREE_MIN_VERSION = (2, 38, 0)
# Commits made only to steer merge-tree's merge-base choice: fixed identity and date, so reruns reuse objects.
_FORECAST_ENV = identity_env("mpspatch forecast", "mpspatch@localhost", "@946684800 +0000")


def require_merge_tree() -> None:
    """Raise ToolMissingError unless this git can run `merge-tree --write-tree`."""
    found = verbs.version()  # through the module, so a test can stand in an old git
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


def index_history(repo: Path, tips: Sequence[str]) -> bool:
    """Extend `repo`'s commit-graph, with changed-path Bloom filters, to every commit reachable from `tips`.

    Only a cache: a later `git log -- PATH` over a single path then skips the commits that cannot touch it
    instead of diffing each one, so its cost stops growing with history. The graph is split
    (`--split`): commits already in it are not written again, so a covered history costs one quick git call.
    False when git could not write it (nothing depends on it).
    """
    if not tips:
        return False
    done = git(repo, "commit-graph", "write", "--stdin-commits", "--changed-paths", "--split", "--no-progress",
               input_text="".join(f"{t}\n" for t in tips), check=False)
    return done.ok


def log_each_path(repo: Path, exclude: str, include: str, paths: Sequence[str]) -> dict[str, tuple[LogEntry, ...]]:
    """log_name_only for each path on its own (one git call per path, newest first, run side by side).

    git 2.39 uses the commit-graph's Bloom filters (see index_history) only for a single-path pathspec, so
    for a few paths this is far cheaper than one walk over many, and it does not grow with history.
    """
    unique = list(dict.fromkeys(paths))
    if len(unique) < 2:
        return {p: log_name_only(repo, exclude, include, [p]) for p in unique}
    from concurrent.futures import ThreadPoolExecutor  # git processes side by side: no GIL contention

    with ThreadPoolExecutor(max_workers=min(4, len(unique))) as pool:
        return dict(zip(unique, pool.map(lambda p: log_name_only(repo, exclude, include, [p]), unique), strict=True))


def walk_order(repo: Path, exclude: str, include: str) -> tuple[CommitSha, ...]:
    """Every commit of `exclude..include` in the order `git log` walks them (newest first): one `git rev-list`,
    which reads the commit-graph only when one covers the range."""
    return tuple(commit_sha(line) for line in git(repo, "rev-list", f"{exclude}..{include}").stdout.split())


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


def numstats(repo: Path, commits: Sequence[str], paths: Sequence[str]) -> dict[CommitSha, str]:
    """Each commit's `--numstat` limited to `paths`, as one comparable string ("" for no change there).

    One `git log --no-walk --stdin` for any number of commits (the SHAs go through stdin, never argv). Two
    commits with the same patch-id over `paths` always have the same string here.
    """
    if not commits or not paths:
        return {}
    out = git(
        repo, "--literal-pathspecs", "-c", "core.quotePath=false", "log", "--no-walk=unsorted", "--stdin",
        "--no-renames", "--no-color", "--no-ext-diff", "--numstat", "-z", "--format=%x01%H", *paths_args(paths),
        input_text="".join(f"{c}\n" for c in commits),
    ).stdout
    found: dict[CommitSha, str] = {}
    for record in out.split("\x01")[1:]:
        # -z: "<sha>\0\n<added>\t<deleted>\t<path>\0..."; commits without a change in `paths` are left out.
        sha, *rows = record.split("\0")
        found[commit_sha(sha.strip())] = ";".join(sorted(r.strip("\n") for r in rows if r.strip("\n")))
    for sha in commits:
        found.setdefault(commit_sha(sha), "")
    return found


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
    out = git_bytes(repo, "cat-file", "--batch", input_bytes=stdin)
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


def merge_file(cwd: Path, ours: Path, base: Path, theirs: Path, *, style: str, marker_size: int,
               labels: tuple[str, str, str] = ("ours", "base", "theirs")) -> bool:
    """`git merge-file`: git's own line merge of three files, written into `ours`; True when it is clean.

    `style` is a merge.conflictStyle value (merge, diff3, zdiff3); the markers are `marker_size` long.
    """
    args = ["merge-file", f"--marker-size={marker_size}", "-L", labels[0], "-L", labels[1], "-L", labels[2]]
    if style != "merge":
        args.append(f"--{style}")
    result = git(cwd, *args, "--", str(ours), str(base), str(theirs), check=False)
    if not 0 <= result.returncode < 128:
        raise GitError(f"{ours}: git merge-file failed: {proc.tail(result.stderr, 3)}")
    return result.returncode == 0


@dataclass(frozen=True)
class BlamedLine:
    line: int  # 1-based line of the file at `include`
    sha: CommitSha
    boundary: bool  # the line is older than the range (it comes from `exclude` or before)
    summary: str  # the commit's subject


def blame_lines(repo: Path, exclude: str, include: str, path: str,
                ranges: Sequence[tuple[int, int]]) -> tuple[BlamedLine, ...] | None:
    """`git blame --porcelain` of `path` at `include`, limited to `exclude..include` and to the 1-based
    inclusive line `ranges` (one call for every range); None when git cannot blame it (a missing blob)."""
    if not ranges:
        return ()
    limits = [arg for start, end in ranges for arg in ("-L", f"{start},{end}")]
    result = git(repo, "--literal-pathspecs", "blame", "--porcelain", *limits, f"{exclude}..{include}", "--", path,
                 check=False)
    if not result.ok:
        return None
    found: list[BlamedLine] = []
    summaries: dict[str, str] = {}
    boundaries: set[str] = set()
    current: tuple[str, int] | None = None
    for row in result.stdout.split("\n"):
        if row.startswith("\t"):  # the line's text ends its record
            if current is not None:
                sha, line = current
                found.append(BlamedLine(line=line, sha=commit_sha(sha), boundary=sha in boundaries,
                                        summary=summaries.get(sha, "")))
            current = None
            continue
        head = row.split(" ")
        if current is None and len(head) in (3, 4) and len(head[0]) == 40 and head[2].isdigit():
            current = (head[0], int(head[2]))
        elif current is not None and row.startswith("summary "):
            summaries[current[0]] = row[len("summary "):]
        elif current is not None and row == "boundary":
            boundaries.add(current[0])
    return tuple(found)
