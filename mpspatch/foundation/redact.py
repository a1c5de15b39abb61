"""Secrets out of everything mpspatch writes or shows: logs, evidence, JSON, documents and error lines.

Two kinds of secret are found. By value: every environment variable a stage receives whose name says it is
secret (TOKEN, SECRET, PASSWORD, KEY, CREDENTIAL, PAT, AUTH...) or whose value is a URL with a password
(DATABASE_URL). By shape, wherever they appear: GitHub tokens, `Bearer x`, the userinfo of a URL, AWS access
key ids and the values of `--token=`/`--password=` style options. Each is replaced by `***`.

This is the one place that knows what a secret looks like; the verify runner applies it to every line before
the log is written, and to every string that goes into evidence.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

MASK = "***"
MIN_SECRET = 4  # shorter values would mask ordinary text ("1", "on") everywhere

# Substrings of a variable name that mark it secret, and whole `_`-separated words that do.
_NAME_SUBSTRINGS = ("TOKEN", "SECRET", "PASSWORD", "PASSWD", "CREDENTIAL", "APIKEY", "API_KEY", "PRIVATE")
_NAME_WORDS = frozenset({"KEY", "PAT", "AUTH", "AUTHORIZATION", "COOKIE"})
# Variables that say KEY or AUTH yet hold no secret, and are needed to read a log.
_NOT_SECRET = frozenset({"PWD", "OLDPWD", "PATH", "SSH_AUTH_SOCK", "GPG_KEY_ID", "KEYTIMEOUT"})

_URL_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^\s/@:'\"]+):(?P<pw>[^\s/@'\"]+)@")
_URL_TOKEN_USER = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^\s/@:'\"]{20,})@")
# (trigger, pattern): a pattern runs only on text that holds its trigger, a plain substring search, so that
# hundreds of megabytes of build log are redacted at the speed of `in` rather than of a regex per position.
_SHAPES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("gh", re.compile(r"gh[pousr]_[A-Za-z0-9]{16,}")),
    ("github_pat_", re.compile(r"github_pat_[A-Za-z0-9_]{20,}")),
    ("AKIA", re.compile(r"AKIA[0-9A-Z]{16}")),
    ("ASIA", re.compile(r"ASIA[0-9A-Z]{16}")),
    ("xox", re.compile(r"xox[abprs]-[A-Za-z0-9-]{10,}")),
    ("PRIVATE KEY-----", re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")),
)
_BEARER = re.compile(
    r"(?P<word>Bearer|bearer|Authorization:[ \t]*(?:Basic|token|Token))[ \t]+(?P<value>[A-Za-z0-9._~+/=-]{8,})"
)
_OPTION = re.compile(
    r"(?P<opt>-(?:-?)(?:[A-Za-z0-9]+[-_])*(?:token|password|passwd|secret|api[-_]?key|access[-_]key|auth)"
    r"(?:[-_][A-Za-z0-9]+)*)(?P<sep>=|[ \t]+)(?P<value>[^\s'\"]{4,})",
    re.IGNORECASE,
)
_OPTION_WORDS = ("token", "passw", "secret", "key", "auth", "TOKEN", "PASSW", "SECRET", "KEY", "AUTH")
# `NAME=value` is masked when NAME is secret by name; env-style upper-case names are what tools print.
_ASSIGN = re.compile(r"(?P<name>[A-Z_][A-Z0-9_]*)=(?P<value>[^\s'\"]{4,})")
_ASSIGN_WORDS = ("TOKEN", "SECRET", "PASSW", "CREDENTIAL", "KEY", "PAT", "AUTH", "COOKIE", "PRIVATE")


def secret_name(name: str) -> bool:
    """Whether an environment variable's name says it holds a secret."""
    upper = name.upper()
    if upper in _NOT_SECRET:
        return False
    if any(part in upper for part in _NAME_SUBSTRINGS):
        return True
    return any(word in _NAME_WORDS for word in re.split(r"[_\W]+", upper))


def secret_value(value: str) -> bool:
    """Whether a value is secret by its shape alone: a URL with a password, a known token format."""
    return bool(_URL_USERINFO.search(value)) or any(p.search(value) for _, p in _SHAPES)


def redact_shapes(text: str) -> str:
    """`text` with every secret recognisable by its shape masked; no environment needed."""
    if not text:
        return text
    if "://" in text:
        text = _URL_USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", text)
        text = _URL_TOKEN_USER.sub(lambda m: f"{m['scheme']}{MASK}@", text)
    for trigger, pattern in _SHAPES:
        if trigger in text:
            text = pattern.sub(MASK, text)
    if "earer" in text or "Authorization:" in text:
        text = _BEARER.sub(lambda m: f"{m['word']} {MASK}", text)
    if "-" in text and any(word in text for word in _OPTION_WORDS):
        text = _OPTION.sub(lambda m: f"{m['opt']}{m['sep']}{MASK}", text)
    if "=" in text and any(word in text for word in _ASSIGN_WORDS):
        text = "\n".join(_assignments(line) for line in text.split("\n"))
    return text


def _assignments(line: str) -> str:
    if "=" not in line or not any(word in line for word in _ASSIGN_WORDS):
        return line
    return _ASSIGN.sub(lambda m: f"{m['name']}={MASK}" if secret_name(m["name"]) else m[0], line)


def redact_url(url: str) -> str:
    """A URL fit to show: any user name and password in it replaced."""
    return _URL_USERINFO.sub(lambda m: f"{m['scheme']}{MASK}@", _URL_TOKEN_USER.sub(
        lambda m: f"{m['scheme']}{MASK}@", url))


@dataclass(frozen=True)
class Redactor:
    """Masks the given secret values, longest first, and every secret shape."""

    values: tuple[str, ...] = ()

    @classmethod
    def from_env(cls, *envs: Mapping[str, str] | Iterable[tuple[str, str]]) -> Redactor:
        found: set[str] = set()
        for env in envs:
            pairs = env.items() if isinstance(env, Mapping) else env
            for name, value in pairs:
                if len(value) < MIN_SECRET:
                    continue
                if secret_name(name) or secret_value(value):
                    found.add(value)
                    match = _URL_USERINFO.search(value)
                    if match and len(match["pw"]) >= MIN_SECRET:
                        found.add(match["pw"])  # the password alone, as tools print it
        return cls(tuple(sorted(found, key=len, reverse=True)))

    def text(self, text: str) -> str:
        for value in self.values:
            if value in text:
                text = text.replace(value, MASK)
        return redact_shapes(text)

    def line(self, data: bytes) -> bytes:
        """Lines of output as bytes (no pattern crosses a line); bytes that are not UTF-8 are kept as they were."""
        text = data.decode("utf-8", errors="surrogateescape")
        clean = self.text(text)
        return data if clean == text else clean.encode("utf-8", errors="surrogateescape")

    def env(self, pairs: Sequence[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
        """A stage's env fit to record: secret names or values masked whole, others redacted by shape."""
        return tuple((k, MASK if secret_name(k) or secret_value(v) or v in self.values else self.text(v))
                     for k, v in pairs)

    def argv(self, argv: Sequence[str]) -> tuple[str, ...]:
        return tuple(self.text(arg) for arg in argv)


def excerpt(text: str, limit: int) -> str:
    """At most `limit` characters of `text`, with an ellipsis when cut."""
    return text if len(text) <= limit else text[: max(limit - 1, 0)] + "…"
