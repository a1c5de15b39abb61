"""Run verify stages on the patched tree: placeholders, requirements, logs, timeouts, parsers and the cache.

The runner knows nothing about where evidence lives. It is handed a `lookup` that finds an earlier passing
result for a cache key, and a `Progress` whose methods it calls as stages start and finish; console.py
subclasses Progress to draw live progress, so the core never imports rich.
"""

from __future__ import annotations

import errno
import functools
import hashlib
import json
import os
import re
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import mpspatch
from mpspatch.foundation import proc
from mpspatch.foundation.config import Config, Stage
from mpspatch.foundation.errors import CommandFailedError, ToolMissingError
from mpspatch.foundation.files import sha256_file, write_failed
from mpspatch.foundation.redact import Redactor, excerpt
from mpspatch.verify import findings, stage_group
from mpspatch.verify.logsink import LogWriter
from mpspatch.verify.machine import Machine, MpsProbe, find_program, probe_mps, tool_versions, unmet, with_torch
from mpspatch.verify.patched_tree import PatchedTree
from mpspatch.verify.pins import clang_format_pin, runs_clang_format
from mpspatch.verify.placeholders import (
    TESTS,
    Placeholders,
    default_jobs,
    empty_patched,
    expand_argv,
    expand_env,
    expand_scalars,
    selected_tests,
)
from mpspatch.verify.stages import (
    CommandOutput,
    Parsed,
    ParseInput,
    StageResult,
    StageStatus,
    command_label,
    signal_name,
)
from mpspatch.verify.stages import tests as tests_parser
from mpspatch.verify.stages.kinds import kind_of

CACHE_VERSION = 1
MAX_PARSED_BYTES = 16 * 1024 * 1024  # parsers read at most the last 16 MiB of a command's output
MAX_REASON_CHARS = 500  # what of a stage's output may reach evidence, JSON and documents: short excerpts
MAX_DETAIL_CHARS = 300
MAX_DETAILS = 50


# ----------------------------------------------------------------------------------------------- progress


class Progress:
    """Callbacks for a live display. The default does nothing; console.py overrides what it shows."""

    def tree_ready(self, tree: PatchedTree) -> None:
        """The patched tree is on disk (or planned only, when no stage needs its files)."""

    def stage_started(self, stage: Stage, index: int, total: int, log: Path | None) -> None:
        """`stage` starts running; its output streams to `log`."""

    def command_started(self, stage: Stage, argv: Sequence[str]) -> None:
        """One command of the running stage starts."""

    def stage_finished(self, result: StageResult, index: int, total: int) -> None:
        """`result` is final: run, skipped, cached or failed."""


# ------------------------------------------------------------------------------------------------- cache


def cache_key(
    stage: Stage, *, series: Sequence[str], base: str, tree: str, tools: Sequence[tuple[str, str]], machine: Machine
) -> str:
    """sha256 over what decides a stage's result: the series, the base, the stage definition and the tools.

    A stage that installs torch (a build) leaves torch out of its key: it is what produces it.
    """
    relevant = [(k, v) for k, v in tools if not (kind_of(stage.kind).installs_torch and k == "torch")]
    body = {
        "version": CACHE_VERSION,
        "mpspatch": mpspatch.__version__,  # a parser fix in a new release must not reuse a cached pass
        "series": list(series),
        "base": base,
        "tree": tree,
        "stage": {
            "name": stage.name, "kind": stage.kind, "run": [list(c) for c in stage.run], "cwd": stage.cwd,
            "env": [list(e) for e in stage.env], "timeout": stage.timeout,
            "requires": {"os": stage.requires.os, "arch": stage.requires.arch, "mps": stage.requires.mps},
            "junit": stage.junit, "min_tests": stage.min_tests, "full_tree": stage.needs_full_tree,
            # Only for a selecting stage, so every other stage keeps the key it had.
            **({"test_map": [[g, list(t)] for g, t in stage.test_map]} if stage.select_tests else {}),
            # Only when set, so the keys of stages without it (every cached pass so far) stay the same.
            **({"sparse": list(stage.sparse)} if stage.sparse else {}),
        },
        "tools": relevant,
        "machine": {"os": machine.os, "arch": machine.arch},
    }
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class CachedResult:
    run_id: str  # the run that actually ran the stage
    result: StageResult  # as recorded there


Lookup = Callable[[str], CachedResult | None]


def redact(env: Sequence[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    """A stage's env fit for evidence: values secret by name or shape masked (see foundation/redact.py)."""
    return Redactor.from_env(os.environ, env).env(env)


def _recorded(result: StageResult, redactor: Redactor) -> StageResult:
    """The one gate between a stage's output and evidence: reason and details redacted, short and few."""
    return replace(
        result,
        reason=excerpt(redactor.text(result.reason), MAX_REASON_CHARS),
        details=tuple(excerpt(redactor.text(d), MAX_DETAIL_CHARS) for d in result.details[:MAX_DETAILS]),
        commands=tuple(redactor.argv(c) for c in result.commands),
        env=redactor.env(result.env),
    )


# ------------------------------------------------------------------------------------------------ running


@dataclass(frozen=True)
class RunRequest:
    config: Config
    stages: tuple[Stage, ...]
    tree: PatchedTree  # planned; checked out by `materialize` only when a stage has to run
    series: tuple[str, ...]  # the patches' sha256s, in series order
    run_dir: Path
    keep_going: bool = False
    force: bool = False
    python: str = sys.executable
    jobs: int = 0  # 0: the CPU count


@dataclass(frozen=True)
class RunOutcome:
    tree: PatchedTree
    tools: tuple[tuple[str, str], ...]
    results: tuple[StageResult, ...]
    interrupted: bool
    # Stages whose program could not be started (not found, not executable): bad input, one line each with
    # the stage, the program and the fix. The stage is also recorded as `error`.
    unrunnable: tuple[str, ...] = ()


def run_stages(
    request: RunRequest,
    *,
    lookup: Lookup,
    materialize: Callable[[PatchedTree, bool], PatchedTree],
    progress: Progress | None = None,
    machine: Machine | None = None,
) -> RunOutcome:
    """Run the stages in order. Stops after the first failed or error stage unless `keep_going`.

    Stages left out by a stop are recorded as skipped with the reason, so the evidence shows the gap.
    On Ctrl-C the running stage is recorded as error "interrupted" and the outcome says so.
    """
    progress = progress or Progress()
    machine = machine or Machine.current()
    tools = tool_versions(request.config.root)
    probe: list[MpsProbe] = []

    def mps() -> MpsProbe:
        if not probe:
            probe.append(probe_mps(request.python, request.config.root))
        return probe[0]

    # os and arch are known up front; the MPS probe runs when a stage that needs it comes up, and again
    # after a build, because the torch it probes is the one the build stage installs.
    static = {s.name: unmet(replace(s.requires, mps=False), machine, mps) for s in request.stages}
    tree = request.tree
    results: list[StageResult] = []
    unrunnable: list[str] = []
    stopped: str | None = None
    interrupted = False
    total = len(request.stages)
    for index, stage in enumerate(request.stages):
        key = cache_key(stage, series=request.series, base=tree.base, tree=tree.tree, tools=tools, machine=machine)
        why_not = static[stage.name] or (unmet(stage.requires, machine, mps) if stopped is None else None)
        if stopped is not None:
            result = _not_run(stage, key, stopped)
        elif why_not is not None:
            result = _not_run(stage, key, why_not)
        elif not request.force and (hit := lookup(key)) is not None:
            result = _cached(stage, key, hit)
        else:
            log = request.run_dir / "logs" / f"{_safe(stage.name)}.log"
            try:
                if not tree.checked_out or (stage.needs_full_tree and not tree.full):
                    # A full PyTorch checkout takes minutes, so Ctrl-C here must still leave evidence.
                    # The checkout is full when any stage still to come may need it, so it happens once.
                    full = any(s.needs_full_tree for s in request.stages[index:] if static[s.name] is None)
                    tree = materialize(tree, full or stage.needs_full_tree)
                    progress.tree_ready(tree)
                progress.stage_started(stage, index, total, log)
                result = _run_one(stage, request, tree, key, log, progress, unrunnable)
            except KeyboardInterrupt:
                result = _interrupted(stage, key, log, request.run_dir)
                interrupted = True
            if kind_of(stage.kind).installs_torch and result.status == StageStatus.PASSED:
                tools = with_torch(tools)  # the build just installed a new torch
                probe.clear()
        results.append(result)
        progress.stage_finished(result, index, total)
        if interrupted and stopped is None:
            stopped = "not run: interrupted"
        elif result.status in (StageStatus.FAILED, StageStatus.ERROR) and not request.keep_going and stopped is None:
            stopped = f"not run: stage {stage.name!r} {result.status}; --keep-going runs the rest"
    return RunOutcome(tree=tree, tools=with_torch(tools), results=tuple(results), interrupted=interrupted,
                      unrunnable=tuple(unrunnable))


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)


def _now() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _not_run(stage: Stage, key: str, reason: str) -> StageResult:
    now = _now()
    return StageResult(
        name=stage.name, kind=stage.kind, status=StageStatus.SKIPPED, reason=reason, duration_s=0.0, counts=(),
        log=None, log_sha256=None, commands=(), env=redact(stage.env), started_at=now, finished_at=now, cache_key=key,
    )


def _cached(stage: Stage, key: str, hit: CachedResult) -> StageResult:
    earlier = hit.result
    log = earlier.log
    if log is not None and not log.startswith("../"):
        log = f"../{hit.run_id}/{log}"  # still relative to this run's folder, pointing into the earlier one
    now = _now()
    return replace(earlier, name=stage.name, kind=stage.kind, status=StageStatus.PASSED, reason="cached", log=log,
                   started_at=now, finished_at=now, duration_s=0.0, cache_key=key,
                   cached_from=earlier.cached_from or hit.run_id)


def _interrupted(stage: Stage, key: str, log: Path, run_dir: Path) -> StageResult:
    now = _now()
    exists = log.is_file()
    return StageResult(
        name=stage.name, kind=stage.kind, status=StageStatus.ERROR, reason="interrupted", duration_s=0.0, counts=(),
        log=log.relative_to(run_dir).as_posix() if exists else None,
        log_sha256=sha256_file(log) if exists else None, commands=(), env=redact(stage.env),
        started_at=now, finished_at=now, cache_key=key,
    )


_NO_ROOM = (errno.ENOSPC, errno.EDQUOT, errno.EROFS)  # a log write the machine refused: exit 2, not a crash


def _run_one(
    stage: Stage, request: RunRequest, tree: PatchedTree, key: str, log: Path, progress: Progress,
    unrunnable: list[str],
) -> StageResult:
    ph = Placeholders(python=request.python, jobs=request.jobs or default_jobs(), tree=tree.path,
                      root=request.config.root, patched=tuple(tree.paths),
                      tests=selected_tests(stage, tree.paths) if stage.select_tests else ())
    commands = tuple(expand_argv(stage, argv, ph) for argv in stage.run)
    nothing = tuple(empty_patched(argv, ph) for argv in stage.run)
    env = expand_env(stage, ph)
    cwd = Path(expand_scalars(stage, stage.cwd, ph, "cwd"))
    cwd = cwd if cwd.is_absolute() else tree.path / cwd
    kind = kind_of(stage.kind)
    if kind.split is not None:
        commands, nothing = _split(kind.split, commands, nothing, cwd)
    junit_pattern = expand_scalars(stage, stage.junit, ph, "junit") if stage.junit else None
    if junit_pattern:
        # A results file left by an earlier run must never be counted as this run's.
        for stale in tests_parser.junit_files(junit_pattern, cwd):
            Path(stale).unlink(missing_ok=True)
    redactor = Redactor.from_env(os.environ, env)
    try:
        writer = LogWriter(log, redactor)
        try:
            result = _recorded(
                _run_commands(stage, request, tree, key, log, progress, commands, nothing, env, cwd, junit_pattern,
                              writer, unrunnable, redactor),
                redactor,
            )
        finally:
            writer.close()
    except OSError as exc:
        if exc.errno not in _NO_ROOM:
            raise
        raise write_failed(log, exc) from None  # the stage was stopped: its log could not be written
    if stage.select_tests:
        result = replace(result, selected_tests=ph.tests)
    return _with_pins(result, tree, commands, cwd, env)


def _run_commands(
    stage: Stage, request: RunRequest, tree: PatchedTree, key: str, log: Path, progress: Progress,
    commands: tuple[tuple[str, ...], ...], nothing: tuple[str | None, ...], env: tuple[tuple[str, str], ...],
    cwd: Path, junit_pattern: str | None, writer: LogWriter, unrunnable: list[str], redactor: Redactor,
) -> StageResult:
    kind = kind_of(stage.kind)
    started_at, started = _now(), time.monotonic()
    deadline = started + stage.timeout
    outputs: list[CommandOutput] = []
    trouble: str | None = None  # an error that overrides the parser: timeout, missing tool, crash
    path_env = dict(env).get("PATH", os.environ.get("PATH", ""))
    for argv, empty in zip(commands, nothing, strict=True):
        if empty is not None:
            writer.note(f"$ {command_label(argv)}\nmpspatch: not run: {_nothing_for(empty)}\n")
            continue
        if kind.precheck and (why := kind.precheck(argv, cwd, tree.path)):
            trouble = why
            writer.note(f"$ {command_label(argv)}\nmpspatch: not run: {why}\n")
            break
        program = find_program(argv[0], path_env) if argv else None
        run_argv = (program, *argv[1:]) if program else argv
        progress.command_started(stage, run_argv)
        writer.end_command()
        offset = log.stat().st_size
        try:
            try:
                done = proc.run_logged(run_argv, cwd=cwd, log=log, env=dict(env),
                                       timeout=max(deadline - time.monotonic(), 0.001), on_output=writer.feed,
                                       on_start=functools.partial(stage_group.record, request.config.state_dir,
                                                                  what=stage.name))
            finally:
                stage_group.clear(request.config.state_dir)
        except proc.NotExecutableError as exc:
            trouble = exc.message
            writer.note(f"mpspatch: {trouble}\n")
            unrunnable.append(redactor.text(f"stage {stage.name!r}: {exc.message}"))
            break
        except ToolMissingError:
            trouble = f"program not found: {argv[0]} (install it or put it on PATH)"
            writer.note(f"mpspatch: {trouble}\n")
            unrunnable.append(redactor.text(
                f"stage {stage.name!r}: program not found: {argv[0]}; install it, put it on PATH or fix the "
                f"stage's run in {request.config.path.name}"))
            break
        except CommandFailedError as exc:
            trouble = exc.message
            writer.note(f"mpspatch: {trouble}\n")
            break
        writer.end_command()
        output, truncated = _read_from(log, offset)
        outputs.append(CommandOutput(argv=argv, exit_code=done.returncode, output=output, truncated=truncated))
        if done.timed_out:
            trouble = f"timed out after {stage.timeout:g}s in `{command_label(argv)}`"
            writer.note(f"mpspatch: {trouble}; the process group was killed\n")
            break
        code = done.returncode if done.returncode is not None else 0
        if code < 0:
            trouble = f"`{command_label(argv)}` crashed: killed by {signal_name(code)}"
            break
        if code != 0 and not kind.keeps_going(code, env):
            break
    duration = time.monotonic() - started
    found = tests_parser.junit_files(junit_pattern, cwd) if junit_pattern else ()
    tests_parser.keep_junit(found, log)
    parsed = kind.parse(ParseInput(
        commands=tuple(outputs), tree=str(tree.path.resolve()), junit_files=found, junit_pattern=junit_pattern,
        min_tests=stage.min_tests, env=env,
        changed_lines=findings.changed_lines(tree.shadow, tree.base, tree.commit, tree.paths) if kind.lint else None,
    ))
    if trouble is not None:
        parsed = Parsed(StageStatus.ERROR, trouble, parsed.counts, parsed.details)
    elif all(e is not None for e in nothing):
        skipped = sorted({e for e in nothing if e})
        parsed = Parsed(StageStatus.SKIPPED, "; ".join(_nothing_for(e) for e in skipped) if TESTS in skipped
                        else f"no patched file matches {', '.join(skipped)}", (), ())
    writer.close()
    if kind.scrub_line is not None:
        _scrub_log(log, kind.scrub_line)
    return StageResult(
        name=stage.name, kind=stage.kind, status=parsed.status, reason=parsed.reason, duration_s=round(duration, 3),
        counts=parsed.counts, log=log.relative_to(request.run_dir).as_posix(), log_sha256=sha256_file(log),
        commands=commands, env=redact(env), started_at=started_at, finished_at=_now(), cache_key=key,
        details=parsed.details, findings=parsed.findings,
    )


def _with_pins(result: StageResult, tree: PatchedTree, commands: tuple[tuple[str, ...], ...], cwd: Path,
               env: tuple[tuple[str, str], ...]) -> StageResult:
    """The stage's clang-format against the version the checkout pins, when it ran one and the tree pins one;
    a mismatch also heads the details, so the audit's notes show it."""
    argv = next((a for a in commands if runs_clang_format(a)), None)
    if argv is None or result.status == StageStatus.SKIPPED:
        return result
    program = find_program(argv[0], dict(env).get("PATH", os.environ.get("PATH", "")))
    pin = clang_format_pin(tree.shadow, tree.tree, cwd, program) if program else None
    if pin is None:
        return result
    notes = () if pin.matches else (f"note: {pin.note()}",)
    return replace(result, tool_pins=(pin,), details=(*notes, *result.details))


def _nothing_for(item: str) -> str:
    """Why a command whose `{patched...}` or `{tests}` item expands to nothing was not run."""
    if item == TESTS:
        return "no [verify.test_map] glob matches a patched path, so {tests} selects no test"
    return f"no patched file matches {item}"


def _split(
    split: Callable[[Sequence[str], Path], tuple[tuple[str, ...], ...]],
    commands: tuple[tuple[str, ...], ...], nothing: tuple[str | None, ...], cwd: Path,
) -> tuple[tuple[tuple[str, ...], ...], tuple[str | None, ...]]:
    """The commands as the kind runs them (e.g. `lintrunner init` once per linter), each keeping its
    `{patched}` verdict."""
    pairs = [(part, empty) for argv, empty in zip(commands, nothing, strict=True) for part in split(argv, cwd)]
    return tuple(p for p, _ in pairs), tuple(e for _, e in pairs)


def _read_from(log: Path, offset: int) -> tuple[str, bool]:
    size = log.stat().st_size
    start = max(offset, size - MAX_PARSED_BYTES)
    with log.open("rb") as source:
        source.seek(start)
        data = source.read()
    return data.decode("utf-8", errors="replace"), start > offset


def _scrub_log(log: Path, scrub_line: Callable[[str], str]) -> None:
    """Rewrite the stored log line by line (logs can be large), e.g. without lintrunner's embedded file copies."""
    scrubbed = log.with_name(log.name + ".scrub")
    changed = False
    with log.open(encoding="utf-8", errors="replace", newline="") as source, \
            scrubbed.open("w", encoding="utf-8", newline="") as sink:
        for line in source:
            clean = scrub_line(line)
            changed = changed or clean != line
            sink.write(clean)
    if changed:
        os.replace(scrubbed, log)
    else:
        scrubbed.unlink()
