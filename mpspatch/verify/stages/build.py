"""kind = "build" and kind = "command": the exit code, plus the log lines that say what went wrong.

A build log runs to hundreds of thousands of lines; the lines worth quoting are the compiler and CMake
errors near the end, not the last line (which is usually "ninja: build stopped" or a pip traceback).

A command may report its own counts with a line `mpspatch-counts: rounds=20 crashes=0` (the stress
harness does); the last such line wins, so a command can print progress as it goes. A nonzero
`crashes`, `failed`, `failures`, `errors`, `mismatches` or `hangs` fails the stage even when the command exited 0.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from mpspatch.verify.stages import ERROR, FAILED, PASSED, Parsed, ParseInput, command_label, describe_exit

MAX_ERROR_LINES = 12
BAD_COUNTS = frozenset({"crashes", "failed", "failures", "errors", "mismatches", "hangs"})

_ERROR_LINE = re.compile(
    r"(?:^|\s)(?:fatal )?error(?:\[[^\]]*\])?:|^FAILED: |^CMake Error|^ninja: build stopped|^make(?:\[\d+\])?: \*\*\*"
    r"|^(?:\w+\.)*\w*(?:Error|Exception)\b(?::|$)|^Traceback \(most recent call last\)|^ld: |^clang(?:\+\+)?: error",
    re.IGNORECASE,
)
_COUNTS = re.compile(r"^mpspatch-counts:((?:\s+[A-Za-z_][\w-]*=\d+)+)\s*$", re.M)
_COUNTS_LINE = re.compile(r"^mpspatch-counts:.*$", re.M)


class MalformedCounts(ValueError):
    """A `mpspatch-counts:` line that does not read `key=N ...`: ignoring it could turn a failure into a pass."""


def keeps_going(exit_code: int, env: Sequence[tuple[str, str]] = ()) -> bool:
    return exit_code == 0


def error_lines(text: str, limit: int = MAX_ERROR_LINES) -> tuple[str, ...]:
    """The last lines that look like errors; the last few lines of all when none does."""
    lines = [line.rstrip() for line in text.splitlines() if line.strip() and not line.startswith("$ ")]
    errors = [line for line in lines if _ERROR_LINE.search(line)]
    chosen = errors[-limit:] if errors else lines[-limit:]
    return tuple(line[:300] for line in chosen)


def reported_counts(text: str) -> tuple[tuple[str, int], ...]:
    """The pairs of the last `mpspatch-counts:` line. Raises MalformedCounts quoting the first bad one."""
    for line in _COUNTS_LINE.findall(text):
        if not _COUNTS.match(line):
            raise MalformedCounts(f"malformed counts line {line.strip()[:120]!r}; print `mpspatch-counts: "
                                  "key=N ...` with whole numbers")
    matches = _COUNTS.findall(text)
    if not matches:
        return ()
    pairs = (item.split("=", 1) for item in matches[-1].split())
    return tuple((key, int(value)) for key, value in pairs)


def parse(inp: ParseInput) -> Parsed:
    try:
        counts = reported_counts("\n".join(c.output for c in inp.commands))
    except MalformedCounts as exc:
        return Parsed(ERROR, str(exc), (), ())
    for command in inp.commands:
        if command.exit_code not in (0, None):
            reason = f"`{command_label(command.argv)}` {describe_exit(command.exit_code)}"
            found = error_lines(command.output)
            if found:
                reason += f": {found[-1][:160]}"
            return Parsed(FAILED, reason, counts, found)
    bad = [f"{key}={n}" for key, n in counts if key in BAD_COUNTS and n > 0]
    if bad:
        # The command exited 0 but says it saw crashes or failures: believe the counts, not the exit code.
        return Parsed(FAILED, f"reported {', '.join(bad)}", counts, ())
    return Parsed(PASSED, "", counts, ())
