"""kind = "tests": counts come from the JUnit XML the test runner wrote, never from its exit code alone.

A suite that ran nothing has not passed: `test/test_mps.py` prints "MPS not available" and exits 0 with zero
tests on a machine without a usable GPU, so zero tests (or fewer than `min_tests`) is a failure.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mpspatch.verify.stages import (
    ERROR,
    FAILED,
    PASSED,
    CommandOutput,
    Parsed,
    ParseInput,
    command_label,
    describe_exit,
    plural,
)

# pytest: 0 all passed, 1 some tests failed. Anything else (2 interrupted, 3 internal error, 4 usage,
# 5 nothing collected) means later commands would run on a broken premise.
_CONTINUE = frozenset({0, 1})
MAX_DETAILS = 30


def keeps_going(exit_code: int, env: Sequence[tuple[str, str]] = ()) -> bool:
    return exit_code in _CONTINUE


@dataclass(frozen=True)
class JUnitCounts:
    passed: int
    failed: int
    errors: int
    skipped: int
    problems: tuple[str, ...]  # "classname::name: first line of the message" for failures and errors
    failing: tuple[str, ...] = ()  # "classname::name" of each failure and error: stable ids across runs

    @property
    def ran(self) -> int:
        return self.passed + self.failed + self.errors


def keep_junit(files: Sequence[str], log: Path) -> tuple[Path, ...]:
    """Copy the JUnit files a stage wrote next to its log (`<stage>.junit.xml`, or `<stage>.<k>.junit.xml` when
    there are several), so the evidence run folder keeps what the counts were read from."""
    stem = log.name.removesuffix(".log")
    kept = []
    for k, name in enumerate(files, start=1):
        target = log.with_name(f"{stem}.junit.xml" if len(files) == 1 else f"{stem}.{k}.junit.xml")
        shutil.copyfile(name, target)
        kept.append(target)
    return tuple(kept)


def read_junit(files: Sequence[str]) -> JUnitCounts:
    """Sum the test cases of every file. Raises ValueError naming the file when one is not JUnit XML."""
    from junitparser import Error, Failure, JUnitXml, Skipped

    passed = failed = errors = skipped = 0
    problems: list[str] = []
    failing: list[str] = []
    for name in files:
        try:
            xml = JUnitXml.fromfile(name)
        except Exception as exc:  # junitparser surfaces lxml/ElementTree errors of several types
            raise ValueError(f"{name}: not readable JUnit XML ({exc})") from None
        for case in _cases(xml):
            results = list(case.result)
            label = f"{case.classname}::{case.name}" if case.classname else str(case.name)
            if any(isinstance(r, Error) for r in results):
                errors += 1
                problems.append(_problem(label, "error", results))
                failing.append(label)
            elif any(isinstance(r, Failure) for r in results):
                failed += 1
                problems.append(_problem(label, "failed", results))
                failing.append(label)
            elif any(isinstance(r, Skipped) for r in results):
                skipped += 1
            else:
                passed += 1
    return JUnitCounts(passed, failed, errors, skipped, tuple(problems), tuple(dict.fromkeys(failing)))


def _cases(node: Any) -> Iterator[Any]:
    """Every test case under a <testsuites> or <testsuite> element, nested suites included."""
    from junitparser import TestCase

    for child in node:
        if isinstance(child, TestCase):
            yield child
        else:
            yield from _cases(child)


def _problem(label: str, what: str, results: list[object]) -> str:
    message = next((str(getattr(r, "message", "") or "") for r in results if getattr(r, "message", None)), "")
    first = message.strip().splitlines()[0] if message.strip() else ""
    return f"{label}: {what}" + (f": {first[:200]}" if first else "")


def parse(inp: ParseInput) -> Parsed:
    last = inp.commands[-1] if inp.commands else None
    if not inp.junit_files:
        wanted = inp.junit_pattern or "(no `junit` set for this stage)"
        how = f"; `{command_label(last.argv)}` {describe_exit(last.exit_code)}" if last and last.exit_code else ""
        return Parsed(ERROR, f"no JUnit XML found at {wanted}{how}", (), _tail_details(last))
    try:
        junit = read_junit(inp.junit_files)
    except ValueError as exc:
        return Parsed(ERROR, str(exc), (), ())
    counts = (("passed", junit.passed), ("failed", junit.failed), ("errors", junit.errors),
              ("skipped", junit.skipped))
    details = tuple(junit.problems[:MAX_DETAILS])
    if junit.failed or junit.errors:
        parts = [f"{junit.failed} failed"] + ([plural(junit.errors, "error")] if junit.errors else [])
        return Parsed(FAILED, f"{', '.join(parts)} of {plural(junit.ran, 'test')} run", counts, details,
                      junit.failing)
    if junit.ran == 0:
        skipped = f" ({junit.skipped} skipped)" if junit.skipped else ""
        return Parsed(FAILED, f"ran 0 tests{skipped}", counts, details)
    if junit.ran < inp.min_tests:
        return Parsed(FAILED, f"ran {plural(junit.ran, 'test')}, fewer than min_tests = {inp.min_tests}",
                      counts, details)
    bad = _bad_exit(inp.commands)
    if bad is not None:
        # The XML says all passed but a runner still failed: a crash after writing, or a second suite.
        return Parsed(FAILED, f"the JUnit XML shows no failure but `{command_label(bad.argv)}` "
                              f"{describe_exit(bad.exit_code or 0)}", counts, _tail_details(bad))
    return Parsed(PASSED, "", counts, details)


def _bad_exit(commands: Sequence[CommandOutput]) -> CommandOutput | None:
    return next((c for c in commands if c.exit_code not in (0, None)), None)


def _tail_details(command: CommandOutput | None, lines: int = 10) -> tuple[str, ...]:
    if command is None:
        return ()
    return tuple(line for line in command.output.rstrip("\n").splitlines()[-lines:] if line.strip())


def junit_files(pattern: str, cwd: Path) -> tuple[str, ...]:
    """The files `junit` names, relative to the stage's cwd; a glob pattern may name several."""
    if any(ch in pattern for ch in "*?["):
        base = Path(pattern)
        if base.is_absolute():
            return tuple(sorted(str(p) for p in Path(base.anchor).glob(str(base.relative_to(base.anchor)))))
        return tuple(sorted(str(p) for p in cwd.glob(pattern) if p.is_file()))
    path = Path(pattern) if Path(pattern).is_absolute() else cwd / pattern
    return (str(path),) if path.is_file() else ()
