"""kind = "lint": lintrunner's `--output json` lines and clang-format's `--dry-run --Werror` diagnostics.

Messages are counted by severity and by path. A linter that could not run (its `lintrunner init` download
failed offline, its adapter crashed, its binary is missing) makes the stage an error, never a pass: silence
from a linter that never looked at the code proves nothing.

lintrunner messages may embed whole files in `original`/`replacement`; `scrub_line` drops those fields so
neither the stored log nor the evidence carries copies of the sources.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath

from mpspatch.verify.findings import NEW, classify
from mpspatch.verify.stages import (
    ERROR,
    FAILED,
    PASSED,
    Parsed,
    ParseInput,
    command_label,
    describe_exit,
    lintrunner,
    plural,
)

SEVERITIES = ("error", "warning", "advice", "disabled")
FAILING = frozenset({"error", "warning"})
MAX_MESSAGES = 40
BULKY_FIELDS = ("original", "replacement")

_CLANG_FORMAT = re.compile(
    r"^(?P<path>.+?):(?P<line>\d+):(?P<col>\d+): (?P<severity>error|warning): code should be clang-formatted "
    r"\[-Wclang-format-violations\]\s*$"
)
_CLANG_ERROR = re.compile(r"^(?P<path>.+?):\d+:\d+: error: (?P<message>.+)$")
_NO_FILE = re.compile(r"^(?P<path>\S.*?): No such file or directory\s*$")
_READ_ERROR = re.compile(r"^Error reading (?P<path>.+?): (?P<message>.+)$")
_INIT_FAILED = re.compile(r"lint initializer for '(?P<code>[^']+)' failed")
_LINTRUNNER_ERROR = re.compile(r"^error:\s+(?P<message>\S.*)$")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
# Adapter messages that mean "this linter did not run", as PyTorch's adapters name them.
_NOT_RUN_NAMES = frozenset({"init-error", "command-failed", "linter failed"})


def keeps_going(exit_code: int, env: Sequence[tuple[str, str]] = ()) -> bool:
    # lintrunner and clang-format exit 1 when they print findings; `lintrunner init` exits 1 offline.
    # The next linter command should still run and report what it can.
    return exit_code in (0, 1)


STYLE_FILES = (".clang-format", "_clang-format")  # the names clang-format's `--style=file` looks for


def missing_style(argv: Sequence[str], cwd: Path, tree: Path) -> str | None:
    """Why a clang-format command must not run: a file it would check has no style file in the tree; or None.

    With `--style=file` (its default) clang-format takes the nearest .clang-format from each file's folder
    upward and, finding none, falls back to LLVM's style (or with `--fallback-style=none` checks nothing). A
    checkout without the file (the wrong folder, a tree that lost it) would then report thousands of
    violations nobody caused, or pass having looked at nothing, so the stage is an error instead. The search
    stops at the tree root: a style file above it belongs to some other project. An explicit `--style=NAME`
    or `--style=file:PATH` is the stage's own choice and is left to clang-format.
    """
    if not argv or not PurePosixPath(argv[0]).name.startswith("clang-format"):
        return None
    style, files, args, options = "file", [], iter(argv[1:]), True
    for arg in args:
        if options and arg == "--":
            options = False
        elif options and arg in ("-style", "--style"):
            style = next(args, "")
        elif options and arg.startswith(("-style=", "--style=")):
            style = arg.split("=", 1)[1]
        elif not options or not arg.startswith("-"):
            files.append(arg)
    if style.lower() != "file":
        return None
    root = Path(os.path.abspath(tree))
    lacking = []
    for name in files:
        path = Path(os.path.abspath(cwd / name))  # as clang-format sees it: symbolic links are not followed
        if not path.is_file() or not path.is_relative_to(root):
            continue  # clang-format reports a missing file itself; one outside the tree is not ours to judge
        folders = [f for f in path.parents if f.is_relative_to(root)]
        if not any((folder / style_file).is_file() for folder in folders for style_file in STYLE_FILES):
            lacking.append(path.relative_to(root).as_posix())
    if not lacking:
        return None
    return (f"no .clang-format in the patched tree for {plural(len(lacking), 'file')} (each file's folder and its "
            f"parents up to the tree root), first `{lacking[0]}`; clang-format would use LLVM's default style, not "
            "the checkout's; check that [upstream] checkout is the project's clone (PyTorch keeps one at its root)")


@dataclass(frozen=True)
class Message:
    path: str
    line: int | None
    code: str
    severity: str
    name: str
    description: str
    spans_next: bool = False  # clang-format: the replacement starts at the end of `line`, over the line break
    origin: str = NEW  # NEW (on a line the series adds or changes) or PREEXISTING


def scrub_line(line: str) -> str:
    """The line without embedded file copies, if it is a lintrunner JSON message; otherwise unchanged."""
    body = _json_message(line)
    if body is None or not any(field in body for field in BULKY_FIELDS):
        return line
    kept = {k: v for k, v in body.items() if k not in BULKY_FIELDS}
    return json.dumps(kept, separators=(",", ":")) + ("\n" if line.endswith("\n") else "")


def _json_message(line: str) -> dict[str, object] | None:
    text = line.strip()
    if not (text.startswith("{") and text.endswith("}")):
        return None
    try:
        body = json.loads(text)
    except ValueError:
        return None
    if isinstance(body, dict) and "code" in body and "severity" in body:
        return body
    return None


def _relative(path: str, tree: str) -> str:
    """A tool-reported path relative to the tree (tools print absolute paths, sometimes with symlinks resolved)."""
    if not path:
        return path
    root = tree.rstrip("/") + "/"
    for candidate in (path, os.path.realpath(path) if os.path.isabs(path) else path):
        if tree and candidate.startswith(root):
            return candidate[len(root) :]
    return str(PurePosixPath(path))


def _first_line(text: object, limit: int = 200) -> str:
    lines = str(text or "").strip().splitlines()
    return lines[0][:limit] if lines else ""


def parse(inp: ParseInput) -> Parsed:
    messages: list[Message] = []
    not_run: dict[str, str] = {}  # linter or tool -> why it did not run
    silent_failures: list[str] = []
    initialized, init_failed = lintrunner.report([(c.argv, c.exit_code, c.output) for c in inp.commands])
    for code, cause in init_failed.items():
        not_run[code] = f"`lintrunner init` failed: {cause}"
    for command in inp.commands:
        before = len(messages) + len(not_run)
        output = command.output.splitlines()
        for index, raw in enumerate(output):
            line = _ANSI.sub("", raw)
            body = _json_message(line)
            if body is not None:
                message = _from_lintrunner(body, inp.tree)
                if message.name.lower() in _NOT_RUN_NAMES or "lintrunner init" in message.description:
                    not_run.setdefault(message.code, f"{message.name}: {message.description}")
                else:
                    messages.append(message)
                continue
            if match := _CLANG_FORMAT.match(line):
                source = _ANSI.sub("", output[index + 1]) if index + 1 < len(output) else ""
                messages.append(Message(_relative(match["path"], inp.tree), int(match["line"]), "CLANGFORMAT",
                                        match["severity"], "clang-format", "code should be clang-formatted",
                                        spans_next=int(match["col"]) > len(source.rstrip())))
            elif match := _INIT_FAILED.search(line):
                not_run.setdefault(match["code"], "`lintrunner init` failed for it (a download blocked offline?)")
            elif match := _CLANG_ERROR.match(line) or _READ_ERROR.match(line):
                not_run.setdefault("clang-format", f"{_relative(match['path'], inp.tree)}: {match['message']}")
            elif match := _NO_FILE.match(line):
                not_run.setdefault("clang-format", f"{_relative(match['path'], inp.tree)}: no such file")
            elif (match := _LINTRUNNER_ERROR.match(line)) and "lintrunner" in command.argv[0]:
                not_run.setdefault("lintrunner", match["message"])
        produced = len(messages) + len(not_run) > before
        if command.exit_code not in (0, None) and not produced and not lintrunner.is_init(command.argv):
            silent_failures.append(f"`{command_label(command.argv)}` {describe_exit(command.exit_code)} "
                                   f"without a lint message: {_first_line(_last_line(command.output))}")

    baseline = inp.changed_lines is not None
    if inp.changed_lines is not None:
        changed = inp.changed_lines
        messages = [replace(m, origin=classify(m.path, m.line, changed, spans_next=m.spans_next)) for m in messages]
    new = [m for m in messages if m.origin == NEW]
    counts = _counts(messages)
    if baseline:
        counts += (("new", len(new)), ("preexisting", len(messages) - len(new)))
    details = tuple(f"{name} did not run: {why}" for name, why in not_run.items()) + tuple(silent_failures)
    if any(lintrunner.is_init(c.argv) for c in inp.commands):
        counts += (("linters_initialized", len(initialized)), ("linters_not_initialized", len(init_failed)))
        summary = (f"lintrunner init: initialized {', '.join(initialized) or 'none'}; "
                   f"not initialized: {', '.join(init_failed) or 'none'}")
        details = (summary, *details)
    # New findings first: they are the submitter's to fix; pre-existing ones follow while the list has room.
    shown = sorted(messages, key=lambda m: m.origin != NEW)[:MAX_MESSAGES]
    details += _per_path(messages) + tuple(_describe(m, baseline) for m in shown)
    failing = [m for m in new if m.severity in FAILING]
    findings = tuple(sorted({f"{m.path}: {m.code}: {m.description}" for m in failing}))
    found = _summary(new if baseline else messages)
    if baseline:
        found = f"{'new: ' + found if new else 'no new lint message'}; {_preexisting(len(messages) - len(new))}"
    if not_run:
        names = "; ".join(f"{name}: {why}" for name, why in not_run.items())
        reason = f"{plural(len(not_run), 'linter')} did not run ({names})"
        return Parsed(ERROR, reason + (f"; {found}" if messages else ""), counts, details, findings)
    if silent_failures:
        return Parsed(ERROR, silent_failures[0], counts, details, findings)
    if failing:
        return Parsed(FAILED, found, counts, details, findings)
    return Parsed(PASSED, found if baseline and messages else "", counts, details, findings)


def _preexisting(n: int) -> str:
    """The part of a reason that says what the stage does not fail on."""
    if not n:
        return "no pre-existing message"
    return (f"{plural(n, 'pre-existing message')} on lines the series does not change, not counted as failures "
            "(the stage fails only on new findings)")


def _last_line(text: str) -> str:
    lines = [line for line in text.rstrip().splitlines() if line.strip() and not line.startswith("$ ")]
    return lines[-1] if lines else "(no output)"


def _from_lintrunner(body: dict[str, object], tree: str) -> Message:
    line = body.get("line")
    return Message(
        path=_relative(str(body.get("path") or ""), tree),
        line=line if isinstance(line, int) else None,
        code=str(body.get("code") or "?"),
        severity=str(body.get("severity") or "error").lower(),
        name=str(body.get("name") or ""),
        description=_first_line(body.get("description")),
    )


def _counts(messages: Sequence[Message]) -> tuple[tuple[str, int], ...]:
    counts = [("messages", len(messages))]
    for severity in SEVERITIES:
        n = sum(1 for m in messages if m.severity == severity)
        if n or severity in FAILING:  # error and warning always show, so "0 errors" is stated, not implied
            counts.append((severity, n))
    counts.append(("files_flagged", len({m.path for m in messages if m.path})))
    return tuple(counts)


def _summary(messages: Sequence[Message]) -> str:
    by_severity = [f"{n} {s}" for s in SEVERITIES if (n := sum(1 for m in messages if m.severity == s))]
    files = len({m.path for m in messages if m.path})
    return f"{plural(len(messages), 'lint message')} ({', '.join(by_severity)}) in {plural(files, 'file')}"


def _per_path(messages: Sequence[Message]) -> tuple[str, ...]:
    by_path: dict[str, dict[str, int]] = {}
    for m in messages:
        codes = by_path.setdefault(m.path or "(no path)", {})
        codes[m.code] = codes.get(m.code, 0) + 1
    return tuple(
        f"{path}: {sum(codes.values())} ({', '.join(f'{c} x{n}' for c, n in sorted(codes.items()))})"
        for path, codes in sorted(by_path.items())
    )


def _describe(m: Message, baseline: bool = False) -> str:
    where = f"{m.path}:{m.line}" if m.line is not None else m.path or "(no path)"
    origin = f" ({m.origin})" if baseline else ""
    return f"{where}: {m.severity}{origin} {m.code}/{m.name}: {m.description}"
