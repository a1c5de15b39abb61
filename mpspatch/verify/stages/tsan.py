"""kind = "tsan": ThreadSanitizer reports read from the log.

Each report opens with `WARNING: ThreadSanitizer: <kind> (pid=N)` and closes with one
`SUMMARY: ThreadSanitizer: <kind> <file:line> in <func>`; at exit the runtime prints
`ThreadSanitizer: reported N warnings` and exits 66. Any report fails the stage, whatever the exit code:
`TSAN_OPTIONS=exitcode=0` must not turn a race into a pass.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from mpspatch.verify.stages import (
    ERROR,
    FAILED,
    PASSED,
    Parsed,
    ParseInput,
    command_label,
    describe_exit,
    plural,
)
from mpspatch.verify.stages.build import BAD_COUNTS, MalformedCounts, reported_counts

TSAN_EXIT = 66  # the runtime's default exit code when it reported anything
MAX_SUMMARIES = 50

_WARNING = re.compile(r"^WARNING: ThreadSanitizer: (?P<kind>.+?) \(pid=\d+\)\s*$", re.M)
_SUMMARY = re.compile(r"^SUMMARY: ThreadSanitizer: .+$", re.M)
_SIGNATURE = re.compile(r"^SUMMARY: ThreadSanitizer: (?P<kind>.+?) (?P<where>\S+?)(?::\d+)* in (?P<func>.+)$")
_REPORTED = re.compile(r"^ThreadSanitizer: reported (\d+) warnings?\s*$", re.M)
_SUPPRESSED = re.compile(r"^ThreadSanitizer: Matched (\d+) suppressions?", re.M)
# Errors of the runtime itself (a SEGV it caught, a bad mapping, a bad option) rather than findings.
_RUNTIME_ERROR = re.compile(r"^(?:==\d+==)?(?:FATAL|ERROR): ThreadSanitizer: .+$", re.M)


def exit_code_from(env: Sequence[tuple[str, str]]) -> int:
    """The exit code TSan uses for a run with reports, honouring an `exitcode=` in TSAN_OPTIONS."""
    options = dict(env).get("TSAN_OPTIONS", "")
    match = re.search(r"(?:^|[\s:,])exitcode=(\d+)", options)
    return int(match.group(1)) if match else TSAN_EXIT


def keeps_going(exit_code: int, env: Sequence[tuple[str, str]] = ()) -> bool:
    # A harness run with races still lets the next configuration (say 31 threads after 8) run and report.
    return exit_code in (0, exit_code_from(env))


def tsan_signature(summary: str) -> str:
    """A TSan report's id that survives a rebase: kind, function and file name, without line numbers or
    folders (a rebase moves lines; the tree may sit elsewhere)."""
    match = _SIGNATURE.match(summary.strip())
    if match is None:
        return summary.strip().removeprefix("SUMMARY: ThreadSanitizer: ")
    where = match["where"].rsplit("/", 1)[-1]
    return f"{match['kind']} in {match['func'].strip()} ({where})"


def _key(kind: str) -> str:
    return "races" if kind == "data race" else re.sub(r"[^a-z0-9]+", "_", kind.lower()).strip("_")


def parse(inp: ParseInput) -> Parsed:
    text = "\n".join(c.output for c in inp.commands)
    try:
        harness = reported_counts(text)
    except MalformedCounts as exc:
        return Parsed(ERROR, str(exc), (), ())
    by_kind: dict[str, int] = {}
    for match in _WARNING.finditer(text):
        by_kind[match.group("kind")] = by_kind.get(match.group("kind"), 0) + 1
    found = sum(by_kind.values())
    reported = sum(int(n) for n in _REPORTED.findall(text))
    suppressed = sum(int(n) for n in _SUPPRESSED.findall(text))
    summaries = tuple(dict.fromkeys(m.group(0) for m in _SUMMARY.finditer(text)))[:MAX_SUMMARIES]
    runtime_errors = tuple(dict.fromkeys(m.group(0) for m in _RUNTIME_ERROR.finditer(text)))

    counts: dict[str, int] = {"races": by_kind.get("data race", 0)}
    for kind, n in sorted(by_kind.items()):
        if kind != "data race":
            counts[_key(kind)] = n
    # A log that lost report bodies (log_path set, output cut) still has the runtime's own total.
    counts["warnings"] = max(found, reported)
    if suppressed:
        counts["suppressed"] = suppressed
    for key, value in harness:  # the harness's own tally (mismatches against the CPU...)
        counts.setdefault(key, value)
    ordered = tuple(counts.items())
    tsan_exit = exit_code_from(inp.env)

    if counts["warnings"]:
        parts = [plural(n, kind) if kind == "data race" else f"{n} {kind}" for kind, n in sorted(by_kind.items())]
        if not parts:
            parts = [plural(counts["warnings"], "warning")]
        signatures = tuple(dict.fromkeys(tsan_signature(m.group(0)) for m in _SUMMARY.finditer(text)))
        return Parsed(FAILED, "ThreadSanitizer reported " + ", ".join(parts), ordered, summaries + runtime_errors,
                      signatures)
    if runtime_errors:
        return Parsed(ERROR, runtime_errors[0], ordered, runtime_errors)
    bad = [f"{key}={n}" for key, n in harness if key in BAD_COUNTS and n > 0]
    if bad:
        return Parsed(FAILED, f"no ThreadSanitizer report, but the harness reported {', '.join(bad)}", ordered, ())
    for command in inp.commands:
        if command.exit_code == tsan_exit and tsan_exit != 0:
            return Parsed(FAILED, f"`{command_label(command.argv)}` exited {tsan_exit}, ThreadSanitizer's report "
                                  "code, but the log holds no report; check TSAN_OPTIONS log_path", ordered, ())
        if command.exit_code not in (0, None):
            tail = tuple(line for line in command.output.rstrip().splitlines()[-10:] if line.strip())
            return Parsed(FAILED, f"`{command_label(command.argv)}` {describe_exit(command.exit_code)}",
                          ordered, tail)
    return Parsed(PASSED, "", ordered, ())
