"""The result every stage produces, and what a parser reads and returns.

A stage's parser reads what the tools wrote (JUnit XML, TSan reports, lint JSON, build logs) and turns it
into `counts`; the exit code alone never decides a pass. What each kind does lives in `kinds.py`.
"""

from __future__ import annotations

import shlex
import signal
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from mpspatch.foundation.config import StageKind
from mpspatch.verify.pins import ToolPin


class StageStatus(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    SKIPPED = "skipped"
    ERROR = "error"


# Short names, used by every parser.
PASSED, FAILED, SKIPPED, ERROR = StageStatus.PASSED, StageStatus.FAILED, StageStatus.SKIPPED, StageStatus.ERROR


@dataclass(frozen=True)
class StageResult:
    name: str
    kind: StageKind
    status: StageStatus
    reason: str  # why: the failing counts, what is missing for a skip, the error; "" for a plain pass
    duration_s: float
    counts: tuple[tuple[str, int], ...]  # e.g. (("passed", 24), ("failed", 0)); ordered for stable output
    log: str | None  # log path relative to the run folder, e.g. "logs/tsan.log"
    log_sha256: str | None
    commands: tuple[tuple[str, ...], ...]  # the argv lists as run, placeholders expanded
    env: tuple[tuple[str, str], ...]  # the stage's env, secrets redacted
    started_at: str  # ISO 8601 UTC
    finished_at: str
    cache_key: str  # sha256 over series hashes, base, stage definition and tool versions
    cached_from: str | None = None  # run id whose passing result this one reuses
    details: tuple[str, ...] = ()  # notable lines: TSan SUMMARY lines, last error lines, failing test ids
    # Stable ids of what failed, compared across runs (verify/regressions.py): failing test ids, TSan SUMMARY
    # signatures, lint findings as "path: CODE: message" (new ones only, while the baseline is on).
    findings: tuple[str, ...] = ()
    # `select_tests` stages: the test targets `{tests}` expanded to ([verify.test_map] over the patched paths).
    selected_tests: tuple[str, ...] = ()
    # Tools whose version the checkout pins (clang-format in tools/linter/adapters/s3_init_config.json): the
    # pin beside the version the stage ran. A mismatch is a note, shown by status and the audit.
    tool_pins: tuple[ToolPin, ...] = ()

    @property
    def pin_notes(self) -> tuple[str, ...]:
        """One line per pin the stage's tool does not match (or whose version cannot be read)."""
        return tuple(p.note() for p in self.tool_pins if not p.matches)

    def count(self, key: str) -> int:
        return dict(self.counts).get(key, 0)


@dataclass(frozen=True)
class CommandOutput:
    """One command of a stage as it ran: what a parser reads besides the files the tools wrote."""

    argv: tuple[str, ...]
    exit_code: int | None  # None when it was killed for running past the stage timeout
    output: str  # its stdout and stderr, interleaved as the log holds them (the tail, for huge logs)
    truncated: bool = False  # True when `output` is only the tail of a very large log


@dataclass(frozen=True)
class ParseInput:
    commands: tuple[CommandOutput, ...]
    tree: str  # the patched tree's path, to show tool-reported absolute paths relative to it
    junit_files: tuple[str, ...] = ()  # kind = tests: the JUnit XML files found after the run
    junit_pattern: str | None = None  # what `junit` asked for, to name it when nothing was written
    min_tests: int = 1
    env: tuple[tuple[str, str], ...] = ()  # the stage's env (TSAN_OPTIONS can move TSan's exit code)
    # kind = lint: the lines the series adds or changes, per path (verify/findings.py); None: no baseline,
    # every finding counts as the series'.
    changed_lines: Mapping[str, frozenset[int]] | None = None


@dataclass(frozen=True)
class Parsed:
    status: StageStatus
    reason: str
    counts: tuple[tuple[str, int], ...] = ()
    details: tuple[str, ...] = ()
    findings: tuple[str, ...] = ()  # see StageResult.findings


def signal_name(code: int) -> str:
    try:
        return signal.Signals(-code).name
    except ValueError:
        return f"signal {-code}"


def describe_exit(code: int) -> str:
    return f"was killed by {signal_name(code)}" if code < 0 else f"exited {code}"


def command_label(argv: tuple[str, ...], limit: int = 80) -> str:
    """A short quote of a command for a reason line: long argv lists (hundreds of paths) are elided."""
    text = shlex.join(argv)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def plural(n: int, word: str, many: str | None = None) -> str:
    return f"{n} {word if n == 1 else (many or word + 's')}"
