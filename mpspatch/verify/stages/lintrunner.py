"""`lintrunner init`, one linter at a time, and what its log says about each linter.

`lintrunner init` runs the initializers of `.lintrunner.toml` in order and stops at the first that fails.
Offline, that is CLANGFORMAT's S3 download, so linters after it (RUFF, ...) are never installed and later
show up only as `command-failed`. A plain `lintrunner init` in a stage is therefore run as one
`lintrunner init --take CODE` per linter that has an `init_command`: a failing initializer stops only itself.
The parser then names, per linter, whether it was initialized and, when not, the cause from the log.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Sequence
from pathlib import Path, PurePosixPath

CONFIG = ".lintrunner.toml"
_INFO = re.compile(r"^\[\S+ (?:INFO|DEBUG|TRACE|WARN)\s")
_FAILED = re.compile(r"lint initializer for '(?P<code>[^']+)' failed")
_INITIALIZING = re.compile(r"Initializing linter: '(?P<code>[^']+)'")
# What an offline download looks like from Python's urllib/requests, curl and pip.
_NO_NETWORK = re.compile(
    r"Temporary failure in name resolution|Name or service not known|nodename nor servname|Network is unreachable"
    r"|No route to host|Could not resolve host|getaddrinfo failed|Failed to establish a new connection"
    r"|Connection refused|No matching distribution found",
    re.I,
)


def per_linter(argv: Sequence[str], cwd: Path) -> tuple[tuple[str, ...], ...]:
    """`lintrunner init` as one `lintrunner init --take CODE` per linter with an initializer; other argv as is.

    Only a bare `lintrunner init` is split: any other option (`--take`, `--skip`, `--configs`, ...) is the
    stage's own choice. A missing or unreadable `.lintrunner.toml` is left to lintrunner to report.
    """
    argv = tuple(argv)
    if len(argv) != 2 or PurePosixPath(argv[0]).name != "lintrunner" or argv[1] != "init":
        return (argv,)
    try:
        config = tomllib.loads((cwd / CONFIG).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return (argv,)
    linters = config.get("linter")
    if not isinstance(linters, list):
        return (argv,)
    codes = [str(item["code"]) for item in linters
             if isinstance(item, dict) and item.get("code") and item.get("init_command")]
    if not codes:
        return (argv,)
    return tuple((*argv, "--take", code) for code in dict.fromkeys(codes))


def init_code(argv: Sequence[str]) -> str | None:
    """The linter a `lintrunner init --take CODE` command initializes, or None for any other command."""
    if len(argv) == 4 and PurePosixPath(argv[0]).name == "lintrunner" and argv[1] == "init" and argv[2] == "--take":
        return argv[3]
    return None


def is_init(argv: Sequence[str]) -> bool:
    return len(argv) >= 2 and PurePosixPath(argv[0]).name == "lintrunner" and argv[1] == "init"


def failure_cause(output: str) -> str:
    """One line saying why an initializer failed, from its output: the last line it printed itself."""
    own: list[str] = []
    for line in output.splitlines():
        text = line.strip()
        if not text or _INFO.match(text) or text.startswith("$ "):
            continue
        if text.startswith("error:") or text.startswith("Stack backtrace:"):
            break  # lintrunner's own error and its backtrace follow the initializer's output
        own.append(text)
    cause = own[-1] if own else ""
    for line in reversed(own):
        if _NO_NETWORK.search(line):
            return f"download blocked: no network ({line[:160]})"
    return cause[:200] or "its initializer exited non-zero without saying why"


def report(commands: Sequence[tuple[Sequence[str], int | None, str]]) -> tuple[tuple[str, ...], dict[str, str]]:
    """(linters initialized, {linter: why it was not}) from the init commands' argv, exit code and output."""
    initialized: list[str] = []
    failed: dict[str, str] = {}
    for argv, exit_code, output in commands:
        if not is_init(argv):
            continue
        code = init_code(argv)
        names = [m["code"] for m in _FAILED.finditer(output)]
        for name in names:
            failed.setdefault(name, failure_cause(output))
        if code is not None and exit_code == 0 and code not in failed:
            initialized.append(code)
        elif code is None:  # a bare `lintrunner init`: every linter it started and did not see fail
            initialized += [m["code"] for m in _INITIALIZING.finditer(output) if m["code"] not in failed]
    return tuple(dict.fromkeys(initialized)), failed
