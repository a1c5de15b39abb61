"""The object database without a worktree: logs, patch-ids, merge-tree, blobs and rewritten trees.

What the history model (upstream commits, the merge forecast, already-upstream detection) asks of git.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Mapping, Sequence
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
    """log_name_only for each path on its own (one git call per path, newest first).

    git 2.39 uses the commit-graph's Bloom filters (see index_history) only for a single-path pathspec, so
    for a few paths this is far cheaper than one walk over many, and it does not grow with history.
    """
    return {p: log_name_only(repo, exclude, include, [p]) for p in dict.fromkeys(paths)}


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


def rewrite_tree(repo: Path, tree: TreeSha, *, source: CommitSha, from_source: Sequence[str] = (),
                 contents: Mapping[str, bytes] | None = None) -> TreeSha:
    """`tree` with `from_source` paths as `source` has them (gone where it lacks them) and `contents` paths
    replaced by new blobs (keeping their mode in `tree`).

    Only the folders on the changed paths are read and written (see edit_tree): the work is proportional to
    the changed paths, never to the size of the tree, and no index of any repository is involved.
    """
    contents = contents or {}
    if not from_source and not contents:
        return tree
    names = sorted(contents)
    # One read for both: the folders of `tree` on every changed path, and `source`'s folders of from_source.
    listing = _read_trees(repo, [*((tree, f) for f in _folders([*from_source, *names])),
                                 *((source, _parent(p)) for p in from_source)])
    changes: dict[str, TreeEntry | None] = {
        p: listing.get((source, _parent(p)), {}).get(_name(p)) for p in from_source
    }
    for path, blob in zip(names, write_blobs(repo, [contents[p] for p in names]), strict=True):
        kept = listing.get((tree, _parent(path)), {}).get(_name(path))
        changes[path] = (kept[0] if kept is not None else "100644", blob)
    return _edit(repo, changes, {f: e for (t, f), e in listing.items() if t == tree})


# One tree entry as git stores it: mode (octal text, "40000" for a folder) and the object's SHA in hex.
TreeEntry = tuple[str, str]


def _folders(paths: Sequence[str]) -> set[str]:
    """Every folder on the way to `paths`, the root ("") included."""
    found: set[str] = set()
    for path in paths:
        folder = _parent(path)
        while folder not in found:
            found.add(folder)
            if not folder:
                break
            folder = _parent(folder)
    return found


def edit_tree(repo: Path, tree: str, changes: Mapping[str, TreeEntry | None]) -> TreeSha:
    """`tree` with each path of `changes` set to its (mode, SHA) entry, or removed where it maps to None.

    Only the folders on the changed paths are read (one `git cat-file --batch`) and rewritten (one
    `git mktree --batch`): the cost follows the number and depth of the changed paths, not the tree's size.
    """
    editor = TreeEditor.read(repo, tree, list(changes))
    result = editor.edit(changes)
    editor.write()
    return result


def _edit(repo: Path, changes: Mapping[str, TreeEntry | None],
          listing: Mapping[str, Mapping[str, TreeEntry]]) -> TreeSha:
    editor = TreeEditor(repo, listing)
    result = editor.edit(changes)
    editor.write()
    return result


class TreeEditor:
    """Successive edits of one tree, computed here over the folders on the edited paths, which are read once.

    Each edit gives the SHA of the tree it makes (git's SHA: entries sorted by name, a folder's name compared
    as if it ended in '/'), starting from the previous edit's tree, without starting a git process;
    `write()` then stores every tree made so far with one `git mktree --batch` and checks git's SHAs against
    these. Folders left empty disappear, as in git. `--missing` keeps a blobless clone from fetching the
    siblings of an edited file (their SHAs are copied, never read).
    """

    def __init__(self, repo: Path, listing: Mapping[str, Mapping[str, TreeEntry]]) -> None:
        self.repo = repo
        self.folders: dict[str, dict[str, TreeEntry]] = {f: dict(e) for f, e in listing.items()}
        self.read_folders = set(listing)
        self.pending: list[tuple[str, dict[str, TreeEntry]]] = []

    @classmethod
    def read(cls, repo: Path, tree: str, paths: Sequence[str]) -> TreeEditor:
        """An editor of `tree` for edits of `paths` (one `git cat-file --batch`)."""
        folders = _folders(paths)
        listing = _read_trees(repo, [(tree, f) for f in folders])
        editor = cls(repo, {f: listing.get((tree, f), {}) for f in folders})
        return editor

    def entries(self, path: str) -> TreeEntry | None:
        return self.folders.get(_parent(path), {}).get(_name(path))

    def edit(self, changes: Mapping[str, TreeEntry | None]) -> TreeSha:
        folders = _folders(list(changes))
        unread = folders - self.read_folders
        if unread and self.read_folders:
            raise ValueError(f"tree edit outside the folders read: {sorted(unread)[:3]}")
        # Deepest folders first, so each folder's new SHA is known before its parent is rebuilt.
        order = sorted(folders, key=lambda f: (-(f.count("/") + 1 if f else 0), f))
        edits: dict[str, dict[str, TreeEntry | None]] = {f: {} for f in folders}
        for path, entry in changes.items():
            edits[_parent(path)][_name(path)] = entry
        root = ""
        for folder in order:
            entries = self.folders.setdefault(folder, {})
            for name, entry in edits[folder].items():
                if entry is None:
                    entries.pop(name, None)
                else:
                    entries[name] = entry
            sha = _tree_sha(entries)
            if entries or not folder:
                self.pending.append((folder, dict(entries)))
            if folder:
                edits[_parent(folder)][_name(folder)] = ("40000", sha) if entries else None
            else:
                root = sha
        return tree_sha(root)

    def write(self) -> None:
        """Store every tree the edits made (one `git mktree --batch`)."""
        if not self.pending:
            return
        written = list({_tree_sha(e): e for _, e in self.pending}.items())
        batch = "".join(
            "".join(f"{mode} {_KIND.get(mode, 'blob')} {sha}\t{name}\0" for name, (mode, sha) in entries.items())
            + "\0"
            for _, entries in written
        )
        out = verbs.git(self.repo, "mktree", "-z", "--missing", "--batch", input_text=batch).stdout.split()
        expected = [sha for sha, _ in written]
        if out != expected:
            raise GitError(f"{self.repo}: git mktree wrote {out[-1:]} where {expected[-1:]} was computed; "
                           "the tree could not be rebuilt")
        self.pending = []


_KIND = {"40000": "tree", "160000": "commit"}


def _parent(path: str) -> str:
    return path.rsplit("/", 1)[0] if "/" in path else ""


def _name(path: str) -> str:
    return path.rsplit("/", 1)[-1]


def _read_trees(repo: Path, specs: Sequence[tuple[str, str]]) -> dict[tuple[str, str], dict[str, TreeEntry]]:
    """The entries of each (tree-ish, folder) pair, one `git cat-file --batch` for all; a folder the tree-ish
    lacks, or holds as a file, is left out."""
    wanted = sorted(set(specs))
    if any("\n" in f for _, f in wanted):
        raise GitError(f"{repo}: a path with a newline cannot be read through `git cat-file --batch`")
    stdin = "".join(f"{t}:{f}\n" if f else f"{t}^{{tree}}\n" for t, f in wanted).encode("utf-8")
    out = git_bytes(repo, "cat-file", "--batch", input_bytes=stdin)
    found: dict[tuple[str, str], dict[str, TreeEntry]] = {}
    pos = 0
    for spec in wanted:
        end = out.index(b"\n", pos)
        header = out[pos:end].split()
        pos = end + 1
        if len(header) != 3:  # "<spec> missing"
            continue
        size = int(header[2])
        if header[1] == b"tree":
            found[spec] = _parse_tree(out[pos : pos + size])
        pos += size + 1
    return found


def _parse_tree(raw: bytes) -> dict[str, TreeEntry]:
    entries: dict[str, TreeEntry] = {}
    pos = 0
    while pos < len(raw):
        space = raw.index(b" ", pos)
        nul = raw.index(b"\0", space)
        mode, name = raw[pos:space].decode("ascii"), raw[space + 1 : nul].decode("utf-8", errors="surrogateescape")
        entries[name] = (mode, raw[nul + 1 : nul + 21].hex())
        pos = nul + 21
    return entries


def _tree_sha(entries: Mapping[str, TreeEntry]) -> str:
    """The SHA git gives a tree of `entries`: sorted by name, a folder's name compared as if it ended in '/'."""
    def key(item: tuple[str, TreeEntry]) -> bytes:
        name = item[0].encode("utf-8", errors="surrogateescape")
        return name + b"/" if item[1][0] == "40000" else name

    body = b"".join(
        mode.encode("ascii") + b" " + name.encode("utf-8", errors="surrogateescape") + b"\0" + bytes.fromhex(sha)
        for name, (mode, sha) in sorted(entries.items(), key=key)
    )
    return hashlib.sha1(b"tree %d\0" % len(body) + body, usedforsecurity=False).hexdigest()


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
