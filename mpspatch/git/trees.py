"""Trees edited path by path: only the folders on the changed paths are read (one `git cat-file --batch`) and
written (one `git mktree --batch`), so the cost follows the changed paths, never the size of the tree, and no
index of any repository is involved."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from pathlib import Path

from mpspatch.foundation.errors import GitError
from mpspatch.foundation.ids import CommitSha, TreeSha, tree_sha
from mpspatch.git import verbs
from mpspatch.git.objects import write_blobs
from mpspatch.git.verbs import git_bytes


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
