"""The path globs of the config ([categories], [split] groups, `{patched:GLOB}`, test maps): their syntax check
and their matcher, one home for both."""

from __future__ import annotations

import re
from pathlib import Path

from mpspatch.foundation.errors import ConfigError

# Path globs ([categories], [split] groups, `{patched:GLOB}`): `*`, `?` and `[...]` (`[!...]` negates) stay
# inside one path segment; `**` as a whole segment matches any number of folders, elsewhere it is a `*`;
# `\` escapes the next character; names starting with a dot match like any other. No braces, no `!` patterns.
_GLOB_SPECIAL = re.compile(r"[*?\[\\]")


def check_glob(pattern: str) -> None:
    """Raise ValueError saying what is wrong with `pattern`, a path glob relative to the tree root.

    The matcher (wcmatch) takes a lone `[` or a trailing `\\` as literal text; in a config they are typos, so
    they are refused here rather than quietly matching nothing.
    """
    if not pattern or pattern.startswith("/"):
        raise ValueError("a glob must be a non-empty path relative to the tree root")
    i, n = 0, len(pattern)
    while i < n:
        char = pattern[i]
        if char == "\\":
            if i + 1 == n:
                raise ValueError("it ends in a lone '\\' that escapes nothing")
            i += 2
            continue
        if char == "[":
            i = _bracket_end(pattern, i)
        i += 1


def _bracket_end(pattern: str, start: int) -> int:
    """The index of the `]` closing the bracket expression that opens at `start`."""
    i, n = start + 1, len(pattern)
    if i < n and pattern[i] in "!^":
        i += 1
    first, previous = True, ""
    while i < n:
        char = pattern[i]
        if char == "]" and not first:
            return i
        if char == "/":
            raise ValueError("'[...]' cannot hold '/' (write '\\[' for a literal bracket)")
        if pattern.startswith("[:", i) and (close := pattern.find(":]", i + 2)) != -1:
            i, previous, first = close + 2, "", False
            continue
        if char == "\\" and i + 1 < n:
            i += 1
            char = pattern[i]
        if char == "-" and previous and i + 1 < n and pattern[i + 1] != "]":
            high = pattern[i + 2] if pattern[i + 1] == "\\" and i + 2 < n else pattern[i + 1]
            if high < previous:
                raise ValueError(f"the range '{previous}-{high}' is empty")
            i += 2 if pattern[i + 1] != "\\" else 3
            previous, first = "", False
            continue
        previous, first = char, False
        i += 1
    raise ValueError("unclosed '[' (write '\\[' for a literal bracket)")


def matches_any(path: str, globs: tuple[str, ...] | list[str]) -> bool:
    """Whether the tree path matches one of the globs (see check_glob for the syntax).

    A literal path or `literal/**` (what most configs hold) is compared directly; anything else goes to
    wcmatch, imported only then, because its import compiles some 40 regular expressions (~10 ms) and
    `stats` should not pay for them on the shipped config.
    """
    rest = []
    for pattern in globs:
        if not _GLOB_SPECIAL.search(pattern):
            if path == pattern:
                return True
        elif pattern.endswith("/**") and not _GLOB_SPECIAL.search(pattern[:-3]):
            if path.startswith(pattern[:-2]):
                return True
        else:
            rest.append(pattern)
    if not rest:
        return False
    from wcmatch import glob

    return glob.globmatch(path, rest, flags=glob.GLOBSTAR | glob.DOTGLOB | glob.FORCEUNIX)


def check_globs(file: Path, where: str, globs: list[str] | tuple[str, ...], context: str = "") -> None:
    for pattern in globs:
        try:
            check_glob(pattern)
        except ValueError as exc:
            raise ConfigError(f"{file}: {where}: bad glob '{pattern}'{context}: {exc}; fix the pattern") from None
