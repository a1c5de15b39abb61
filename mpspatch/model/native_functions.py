"""A three-way merge of PyTorch's `native_functions.yaml` by its structure, not by its lines.

The file is a list of entries, each opened by a `- func: NAME.OVERLOAD(...) -> ...` line, with keys two spaces
in (`variants:`, `dispatch:`, `tags:` ...) and, under `dispatch:`, one `BACKEND[, BACKEND...]: kernel` line per
backend four spaces in. A line merge conflicts whenever two sides add different entries at one spot or
different backends to one `dispatch:` map, although the results compose. Here entries are keyed by their
op name with overload, keys by name, dispatch lines by their backends, and a key conflicts only when both
sides changed it differently.

The merged text is the first side (`ours`: upstream, in a rebase or a forecast) byte for byte, with the
second side's changes applied where they belong: an addition goes just before the next element it preceded
on that side (or at the end of its map), so the file keeps its formatting and order.

Pure text in, text out. A file this parser cannot read with certainty (an entry it does not recognise, a
duplicate op, a side that moves entries around) raises Unstructured, and the caller merges by lines instead.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

# The conflict marker styles, spelt as git's merge.conflictStyle and [rebase] conflict_style. Strings here,
# so the driver process git starts imports nothing beyond re and dataclasses.
MERGE, DIFF3, ZDIFF3 = "merge", "diff3", "zdiff3"
STYLES = (MERGE, DIFF3, ZDIFF3)

FILE_NAME = "native_functions.yaml"

# An entry: its `- func:` line and the indented, non-blank lines under it.
_ENTRY = re.compile(r"^- func: *([A-Za-z0-9_.]+) *\([^\n]*\n(?: [^\n]*\S[^\n]*\n)*", re.M)
# Between entries: a line that is indented and not blank, or a `- func:` line the entry pattern refused.
_STRAY = re.compile(r"^(?:[ \t]+\S|- func:)", re.M)
_KEY = re.compile(r"^  ([A-Za-z_][A-Za-z0-9_]*):")
_DISPATCH_ITEM = re.compile(r"^    ([A-Za-z0-9_]+(?: *, *[A-Za-z0-9_]+)*) *:")


class Unstructured(ValueError):
    """The text is not shaped the way this merge needs; merge it by lines."""


@dataclass(frozen=True)
class Node:
    """One element of a map: an entry, a key of an entry, or a line of a dispatch map.

    `head` holds the element's own lines (comments before it included); `children` its sub-elements, in
    order, when it has a structure this merge looks into (entries, dispatch maps), else None.
    """

    key: str
    head: tuple[str, ...]
    children: tuple[Node, ...] | None = None

    @property
    def lines(self) -> tuple[str, ...]:
        if self.children is None:
            return self.head
        return self.head + tuple(line for child in self.children for line in child.lines)


@dataclass(frozen=True)
class Conflict:
    name: str  # the key both sides changed differently, e.g. "record_stream / dispatch / MPS"
    ours: tuple[str, ...]
    base: tuple[str, ...]
    theirs: tuple[str, ...]


Piece = str | Conflict


@dataclass(frozen=True)
class MergeResult:
    text: str
    conflicts: tuple[str, ...]  # the names of the conflicting keys, in file order

    @property
    def clean(self) -> bool:
        return not self.conflicts


# ---------------------------------------------------------------------------------------------- parsing


def parse(text: str) -> tuple[Node, ...]:
    """The file as entries keyed by op name with overload; the lines after the last entry are a "#end" node.

    Entries are cut and keyed here, with one regular expression over the whole text, and read into keys only
    when a merge needs to look inside (expand): in a 16k-line file, the few entries both sides changed. Until
    then an entry's head is its whole text as one string.
    """
    if text and not text.endswith("\n"):
        raise Unstructured("the file does not end with a newline")
    entries: list[Node] = []
    start = 0  # where the current entry's text starts (the comments and blank lines before it included)
    for match in _ENTRY.finditer(text):
        _check_gap(text, start, match.start())
        entries.append(Node(key=match.group(1), head=(text[start:match.end()],)))
        start = match.end()
    _check_gap(text, start, len(text))
    entries.append(Node(key="#end", head=(text[start:],) if start < len(text) else ()))
    _require_unique(entries, "op")
    return tuple(entries)


def _check_gap(text: str, start: int, end: int) -> None:
    """What lies between entries may hold only comments and blank lines."""
    stray = _STRAY.search(text, start, end)
    if stray is not None:
        line = text.count("\n", 0, stray.start()) + 1
        raise Unstructured(f"line {line} belongs to no entry")


def expand(node: Node) -> Node:
    """An entry cut by parse(), read into its keys (dispatch maps into their backends)."""
    if node.children is not None or node.key == "#end":
        return node
    lines = "".join(node.head).splitlines(keepends=True)
    at = next(i for i, line in enumerate(lines) if line.startswith("- func:"))
    return _entry(node.key, tuple(lines[:at + 1]), lines[at + 1:], at + 2)


def _entry(name: str, head: tuple[str, ...], body: Sequence[str], first_line: int) -> Node:
    keys: list[tuple[str, list[str]]] = []
    comments: list[str] = []
    for offset, line in enumerate(body):
        match = _KEY.match(line)
        if match is not None:
            keys.append((match.group(1), [*comments, line]))
            comments = []
        elif line.startswith("  #"):
            comments.append(line)
        elif keys and (line.startswith("   ") or line.startswith("  - ")):
            keys[-1][1].extend([*comments, line])
            comments = []
        else:
            raise Unstructured(f"line {first_line + offset} of {name} is not a key of the entry")
    if comments:  # comments after the last key stay with it
        if not keys:
            return Node(key=name, head=(*head, *comments))
        keys[-1][1].extend(comments)
    children = tuple(_dispatch(name, lines) if key == "dispatch" else Node(key=key, head=tuple(lines))
                     for key, lines in keys)
    try:
        _require_unique(children, f"key of {name}")
    except Unstructured:
        return Node(key=name, head=(*head, *(line for child in children for line in child.lines)))
    return Node(key=name, head=head, children=children)


def _dispatch(entry: str, lines: list[str]) -> Node:
    """A `dispatch:` key: its map lines keyed by backends; one the parser cannot read stays one whole."""
    start = next(i for i, line in enumerate(lines) if _KEY.match(line))
    head, body = tuple(lines[:start + 1]), lines[start + 1:]
    whole = Node(key="dispatch", head=tuple(lines))
    if head[-1].split(":", 1)[1].split("#", 1)[0].strip():  # an inline value, e.g. `dispatch: {}`
        return whole
    items: list[Node] = []
    comments: list[str] = []
    for line in body:
        match = _DISPATCH_ITEM.match(line)
        if match is not None:
            backends = ",".join(sorted(b.strip() for b in match.group(1).split(",")))
            items.append(Node(key=backends, head=(*comments, line)))
            comments = []
        elif line.lstrip().startswith("#") and line.startswith("    "):
            comments.append(line)
        else:
            return whole
    if comments:
        if not items:
            return whole
        items[-1] = Node(key=items[-1].key, head=(*items[-1].head, *comments))
    seen: set[str] = set()
    for item in items:
        named = set(item.key.split(","))
        if named & seen:
            return whole
        seen |= named
    return Node(key="dispatch", head=head, children=tuple(items))


def _require_unique(nodes: Sequence[Node], what: str) -> None:
    seen: set[str] = set()
    for node in nodes:
        if node.key in seen:
            raise Unstructured(f"the {what} {node.key!r} appears twice")
        seen.add(node.key)


# ---------------------------------------------------------------------------------------------- merging


def merge(base: str, ours: str, theirs: str) -> tuple[Piece, ...]:
    """The merged file as text pieces and conflicts; raises Unstructured when a side cannot be parsed.

    The entries before the first and after the last difference are the same on all three sides and are
    kept as they are; only the entries between are parsed and merged (in PyTorch's 16k-line file, a few).
    """
    for text in (base, ours, theirs):
        if text and not text.endswith("\n"):
            raise Unstructured("the file does not end with a newline")
    head, tail = _common_ends(base, ours, theirs)
    sides = [text[head:len(text) - tail] for text in (base, ours, theirs)]
    middle = _merge_children(parse(sides[0]), parse(sides[1]), parse(sides[2]), ())
    return (base[:head], *middle, base[len(base) - tail:])


_BLOCK = 4096


def _common_ends(base: str, ours: str, theirs: str) -> tuple[int, int]:
    """How many characters the three texts share at their start and at their end, each cut back to the start
    of a `- func:` line, so what lies between is whole entries (the lines before an entry stay outside)."""
    shortest = min(len(base), len(ours), len(theirs))
    start = 0
    while start + _BLOCK <= shortest and base[start:start + _BLOCK] == ours[start:start + _BLOCK] \
            == theirs[start:start + _BLOCK]:
        start += _BLOCK
    while start < shortest and base[start] == ours[start] == theirs[start]:
        start += 1
    head = base.rfind("\n- func:", 0, start) + 1  # 0 when there is none
    end = 0
    limit = shortest - head
    while end + _BLOCK <= limit and base[len(base) - end - _BLOCK:len(base) - end] \
            == ours[len(ours) - end - _BLOCK:len(ours) - end] == theirs[len(theirs) - end - _BLOCK:len(theirs) - end]:
        end += _BLOCK
    while end < limit and base[-end - 1] == ours[-end - 1] == theirs[-end - 1]:
        end += 1
    # The shared end starts at the first `- func:` line inside it (or is empty).
    found = base.find("\n- func:", len(base) - end) if end else -1
    tail = len(base) - found - 1 if found != -1 else 0
    return head, tail


def _merge_children(base: Sequence[Node], ours: Sequence[Node], theirs: Sequence[Node],
                    path: tuple[str, ...]) -> list[Piece]:
    b = {n.key: n for n in base}
    o = {n.key: n for n in ours}
    t = {n.key: n for n in theirs}
    kept = [n.key for n in base if n.key in t]
    if [n.key for n in theirs if n.key in b] != kept:
        where = " / ".join(path) or "the file"
        raise Unstructured(f"the second side reorders {where}")
    # Ours gives the order; each element is merged with the other two sides' version of it.
    merged: dict[str, list[Piece]] = {}
    order: list[str] = []
    for node in ours:
        pieces = _merge_node(b.get(node.key), node, t.get(node.key), path)
        if pieces is not None:
            merged[node.key] = pieces
            order.append(node.key)
    # Then what only theirs has (its additions, and its edits of what ours deleted), each placed just before
    # the element that followed it on that side, or at the end.
    following: str | None = None
    for node in reversed(theirs):
        if node.key in o:
            if node.key in merged:
                following = node.key
            continue
        pieces = _merge_node(b.get(node.key), None, node, path)
        if pieces is None:
            continue
        at = order.index(following) if following is not None else len(order)
        order.insert(at, node.key)
        merged[node.key] = pieces
        following = node.key
    return [piece for key in order for piece in merged[key]]


def _merge_node(base: Node | None, ours: Node | None, theirs: Node | None,
                path: tuple[str, ...]) -> list[Piece] | None:
    """One element's merged pieces; None when the merge deletes it."""
    if ours == theirs or theirs == base:
        return list(ours.lines) if ours is not None else None
    if ours == base:
        return list(theirs.lines) if theirs is not None else None
    name = (*path, (ours or theirs or base).key)  # type: ignore[union-attr]  # not all three are None
    if not path:  # entries are read into their keys only now, when both sides changed them
        base, ours, theirs = (expand(n) if n is not None else None for n in (base, ours, theirs))
    if ours is not None and theirs is not None and ours.children is not None and theirs.children is not None \
            and (base is None or base.children is not None):
        base_head = base.head if base is not None else ()
        if ours.head == theirs.head or theirs.head == base_head:
            head = ours.head
        elif ours.head == base_head:
            head = theirs.head
        else:
            head = None
        if head is not None:
            children = _merge_children(base.children or () if base is not None else (), ours.children,
                                       theirs.children, name)
            clash = _backend_clash(children) if name[-1] == "dispatch" else None
            if clash is None:
                return [*head, *children]
            name = (*name, clash)
    return [Conflict(name=" / ".join(name), ours=_split(ours), base=_split(base), theirs=_split(theirs))]


def _split(node: Node | None) -> tuple[str, ...]:
    """A node's text as lines (an entry not yet expanded holds its text as one string)."""
    return tuple("".join(node.lines).splitlines(keepends=True)) if node is not None else ()


def _backend_clash(pieces: Sequence[Piece]) -> str | None:
    """A backend that two lines of one merged dispatch map both name (each side added it with another group)."""
    seen: set[str] = set()
    for piece in pieces:
        if isinstance(piece, str):
            match = _DISPATCH_ITEM.match(piece)
            if match is None:
                continue
            backends = {b.strip() for b in match.group(1).split(",")}
            common = backends & seen
            if common:
                return sorted(common)[0]
            seen |= backends
    return None


# -------------------------------------------------------------------------------------------- rendering


def render(pieces: Sequence[Piece], style: str = MERGE, marker_size: int = 7,
           labels: tuple[str, str, str] = ("ours", "base", "theirs")) -> MergeResult:
    """The merged text, with each conflict in git's marker format for `style`; each label names the key."""
    out: list[str] = []
    names: list[str] = []
    for piece in pieces:
        if isinstance(piece, str):
            out.append(piece)
            continue
        names.append(piece.name)
        ours, theirs = list(piece.ours), list(piece.theirs)
        after: list[str] = []
        if style == ZDIFF3:  # lines both sides share at the region's edges stay outside it
            while ours and theirs and ours[0] == theirs[0]:
                out.append(ours.pop(0))
                theirs.pop(0)
            while ours and theirs and ours[-1] == theirs[-1]:
                after.insert(0, ours.pop())
                theirs.pop()
        out.append(f"{'<' * marker_size} {labels[0]} ({piece.name})\n")
        out.extend(ours)
        if style != MERGE:
            out.append(f"{'|' * marker_size} {labels[1]} ({piece.name})\n")
            out.extend(piece.base)
        out.append(f"{'=' * marker_size}\n")
        out.extend(theirs)
        out.append(f"{'>' * marker_size} {labels[2]} ({piece.name})\n")
        out.extend(after)
    return MergeResult(text="".join(out), conflicts=tuple(names))


def merge_text(base: str, ours: str, theirs: str, style: str = MERGE,
               marker_size: int = 7) -> MergeResult:
    """merge() and render() in one call; raises Unstructured when the file must be merged by lines."""
    return render(merge(base, ours, theirs), style, marker_size)


# ----------------------------------------------------------------------------------------- the driver

DRIVER_NAME = "mpspatch-native-functions"
DRIVER_PATTERN = "aten/src/ATen/native/native_functions.yaml"
DRIVER_MODULE = "mpspatch.commands.merge_driver"  # the entry point git runs (the edge reads the files)


def driver_command(python: str, style: str) -> str:
    """The `merge.<name>.driver` line: this interpreter, not whatever `python` a hook's PATH finds."""
    import shlex

    # -P: the folder git runs the driver in (the shadow, or a worktree of it) is never on sys.path.
    return f"{shlex.quote(python)} -P -m {DRIVER_MODULE} --style {style} %O %A %B %L %P"
