"""Run verify stages on the patched tree: placeholders, requirements, logs, timeouts, parsers and the cache.

The runner knows nothing about where evidence lives. It is handed a `lookup` that finds an earlier passing
result for a cache key, and a `Progress` whose methods it calls as stages start and finish; console.py
subclasses Progress to draw live progress, so the core never imports rich.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import shutil
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from mpspatch.foundation import proc
from mpspatch.foundation.config import Config, Requires, Stage, check_glob, matches_any
from mpspatch.foundation.errors import CommandFailedError, ConfigError, ToolMissingError
from mpspatch.foundation.files import sha256_file
from mpspatch.verify.patched_tree import PatchedTree
from mpspatch.verify.stages import (
    ERROR,
    FAILED,
    PASSED,
    SKIPPED,
    CommandOutput,
    Parsed,
    ParseInput,
    StageResult,
    command_label,
    signal_name,
)
from mpspatch.verify.stages import build as build_parser
from mpspatch.verify.stages import lint as lint_parser
from mpspatch.verify.stages import tests as tests_parser
from mpspatch.verify.stages import tsan as tsan_parser

CACHE_VERSION = 1
MAX_PARSED_BYTES = 16 * 1024 * 1024  # parsers read at most the last 16 MiB of a command's output
SECRET_MARKERS = ("TOKEN", "SECRET", "PASSWORD", "KEY", "CREDENTIAL")
MPS_PROBE_TIMEOUT = 300.0

_PARSERS: Mapping[str, Callable[[ParseInput], Parsed]] = {
    "build": build_parser.parse,
    "command": build_parser.parse,
    "lint": lint_parser.parse,
    "tsan": tsan_parser.parse,
    "tests": tests_parser.parse,
}
_KEEPS_GOING: Mapping[str, Callable[[int, Sequence[tuple[str, str]]], bool]] = {
    "build": build_parser.keeps_going,
    "command": build_parser.keeps_going,
    "lint": lint_parser.keeps_going,
    "tsan": tsan_parser.keeps_going,
    "tests": tests_parser.keeps_going,
}
_PLACEHOLDER = re.compile(r"\{(python|jobs|tree|root|patched(?::[^{}]*)?)\}")
_ARCH_ALIASES = {"aarch64": "arm64", "amd64": "x86_64", "x64": "x86_64"}


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


# ------------------------------------------------------------------------------------------ placeholders


@dataclass(frozen=True)
class Placeholders:
    python: str
    jobs: int
    tree: Path
    root: Path
    patched: tuple[str, ...]

    def scalar(self, name: str) -> str:
        return {"python": self.python, "jobs": str(self.jobs), "tree": str(self.tree), "root": str(self.root)}[name]


def default_jobs() -> int:
    return os.cpu_count() or 1


def empty_patched(argv: Sequence[str], ph: Placeholders) -> str | None:
    """The `{patched...}` item of argv that expands to no path, if any.

    Such a command is not run: clang-format or lintrunner given no file would read stdin or lint something
    else, and a pass over no file proves nothing.
    """
    for item in argv:
        whole = _PLACEHOLDER.fullmatch(item)
        if whole and whole.group(1).startswith("patched"):
            token = whole.group(1)
            if not _patched_unchecked(token, ph.patched):
                return item
    return None


def _patched_unchecked(token: str, paths: Sequence[str]) -> list[str]:
    if ":" not in token:
        return list(paths)
    globs = tuple(g.strip() for g in token.split(":", 1)[1].split(",") if g.strip())
    try:
        for glob in globs:
            check_glob(glob)
    except ValueError:
        return list(paths)  # expand_argv reports the bad glob
    return [p for p in paths if matches_any(p, globs)]


def expand_argv(stage: Stage, argv: Sequence[str], ph: Placeholders) -> tuple[str, ...]:
    """Expand `{python}`, `{jobs}`, `{tree}`, `{root}`; an item that is exactly `{patched...}` becomes the paths."""
    out: list[str] = []
    for item in argv:
        whole = _PLACEHOLDER.fullmatch(item)
        if whole and whole.group(1).startswith("patched"):
            out.extend(_patched(stage, whole.group(1), ph.patched))
            continue
        out.append(_expand_scalars(stage, item, ph, "run"))
    return tuple(out)


def expand_env(stage: Stage, ph: Placeholders) -> tuple[tuple[str, str], ...]:
    return tuple((key, _expand_scalars(stage, value, ph, f"env.{key}")) for key, value in stage.env)


def validate(config: Config, stages: Sequence[Stage]) -> None:
    """Expand every stage once with stand-in values, so a bad placeholder stops the run before it starts."""
    stand_in = Placeholders(python="python", jobs=1, tree=Path("/tree"), root=config.root, patched=("a.h",))
    for stage in stages:
        try:
            for argv in stage.run:
                expand_argv(stage, argv, stand_in)
            expand_env(stage, stand_in)
            _expand_scalars(stage, stage.cwd, stand_in, "cwd")
            if stage.junit:
                _expand_scalars(stage, stage.junit, stand_in, "junit")
        except ConfigError as exc:
            raise ConfigError(f"{config.path}: {exc.message}") from None


def _expand_scalars(stage: Stage, text: str, ph: Placeholders, where: str) -> str:
    def one(match: re.Match[str]) -> str:
        if match.group(1).startswith("patched"):
            raise ConfigError(
                f"[stages.{stage.name}].{where}: {match.group(0)} must be a whole argv item, not part of {text!r}; "
                f"fix: write it as its own list element"
            )
        return ph.scalar(match.group(1))

    return _PLACEHOLDER.sub(one, text)


def _patched(stage: Stage, token: str, paths: Sequence[str]) -> list[str]:
    if ":" in token:
        globs = tuple(g.strip() for g in token.split(":", 1)[1].split(",") if g.strip())
        if not globs:
            raise ConfigError(f"[stages.{stage.name}].run: {{{token}}} names no glob; fix: {{patched:**/*.mm}}")
        for glob in globs:
            try:
                check_glob(glob)
            except ValueError as exc:
                raise ConfigError(
                    f"[stages.{stage.name}].run: bad glob {glob!r} in {{{token}}} ({exc}); fix the pattern"
                ) from None
    return _patched_unchecked(token, paths)


# ------------------------------------------------------------------------------------------ requirements


@dataclass(frozen=True)
class Machine:
    os: str  # platform.system().lower(): darwin, linux, windows
    arch: str  # platform.machine(), with aarch64 spelled arm64 and amd64 spelled x86_64

    @classmethod
    def current(cls) -> Machine:
        machine = platform.machine().lower()
        return cls(os=platform.system().lower(), arch=_ARCH_ALIASES.get(machine, machine))


@dataclass(frozen=True)
class MpsProbe:
    ok: bool
    reason: str  # why MPS is not usable, in words; "" when ok


# Real work on the GPU, checked against the CPU: torch.backends.mps.is_available() can say True on a VM
# (GitHub's macOS runners) where kernels then fail or run out of memory.
_MPS_PROBE = """
import sys
def say(text, ok=False):
    print("MPSPROBE " + text, flush=True)
    sys.exit(0 if ok else 3)
try:
    import torch
except Exception as exc:
    say(f"torch is not importable by {sys.executable} ({type(exc).__name__}: {exc})")
if not torch.backends.mps.is_built():
    say(f"torch {torch.__version__} was built without MPS")
if not torch.backends.mps.is_available():
    say("torch.backends.mps.is_available() is False")
gen = torch.Generator().manual_seed(0)
a = torch.rand(256, 256, generator=gen)
b = torch.rand(256, 256, generator=gen)
want = a @ b
try:
    got = (a.to("mps") @ b.to("mps")).to("cpu")
    torch.mps.synchronize()
except Exception as exc:
    say(f"a 256x256 matmul on mps failed ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})")
diff = (got - want).abs().max().item()
if not diff <= 1e-2:
    say(f"a 256x256 matmul on mps differs from the CPU result (max abs difference {diff:.3g})")
say("ok", ok=True)
"""


def probe_mps(python: str, cwd: Path, timeout: float = MPS_PROBE_TIMEOUT) -> MpsProbe:
    try:
        done = proc.run([python, "-c", _MPS_PROBE], cwd=cwd, timeout=timeout, check=False)
    except proc.CommandTimeoutError:
        return MpsProbe(False, f"the MPS probe (a 256x256 matmul) did not finish within {timeout:g}s")
    except (ToolMissingError, CommandFailedError) as exc:
        return MpsProbe(False, f"the MPS probe could not start ({exc.message})")
    said = [line[len("MPSPROBE ") :] for line in done.stdout.splitlines() if line.startswith("MPSPROBE ")]
    if done.returncode == 0 and said and said[-1] == "ok":
        return MpsProbe(True, "")
    if said:
        return MpsProbe(False, said[-1])
    how = f"was killed by {signal_name(done.returncode)}" if done.returncode < 0 else f"exited {done.returncode}"
    tail = proc.tail(done.stderr or done.stdout, 1)
    return MpsProbe(False, f"the MPS probe {how}" + (f": {tail}" if tail else ""))


def unmet(requires: Requires, machine: Machine, mps: Callable[[], MpsProbe]) -> str | None:
    """Why `requires` is not met here, in words, or None when it is. MPS is probed only when it matters."""
    missing = []
    if requires.os and requires.os.lower() != machine.os:
        missing.append(f"requires os={requires.os}, this machine is {machine.os}")
    if requires.arch and _ARCH_ALIASES.get(requires.arch.lower(), requires.arch.lower()) != machine.arch:
        missing.append(f"requires arch={requires.arch}, this machine is {machine.arch}")
    if missing:
        return "; ".join(missing)
    if requires.mps:
        probe = mps()
        if not probe.ok:
            return f"requires mps: {probe.reason}"
    return None


# ----------------------------------------------------------------------------------------- tool versions


def find_program(name: str, path: str | None = None) -> str | None:
    """`name` on PATH, else next to the running interpreter (a venv's clang-format and lintrunner wheels)."""
    if "/" in name:
        return name
    found = shutil.which(name, path=path if path is not None else os.environ.get("PATH"))
    if found:
        return found
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.is_file() and os.access(beside, os.X_OK) else None


def tool_versions(cwd: Path) -> tuple[tuple[str, str], ...]:
    """Versions of the tools that decide stage results; a tool that is not installed is left out."""
    found: dict[str, str] = {"python": f"{platform.python_implementation()} {platform.python_version()}"}
    probes = {
        "git": ["git", "--version"],
        "c++": ["c++", "--version"],
        "clang-format": ["clang-format", "--version"],
        "lintrunner": ["lintrunner", "--version"],
        "ccache": ["ccache", "--version"],
    }
    for tool, argv in probes.items():
        program = find_program(argv[0])
        if program is None:
            continue
        try:
            done = proc.run([program, *argv[1:]], cwd=cwd, timeout=30, check=False)
        except (proc.CommandTimeoutError, ToolMissingError, CommandFailedError):
            continue
        first = (done.stdout or done.stderr).strip().splitlines()
        if done.ok and first:
            found[tool] = first[0].strip()
    torch = torch_version()
    if torch:
        found["torch"] = torch
    return tuple(sorted(found.items()))


def torch_version() -> str | None:
    """torch's installed version from its metadata: importing torch would take seconds."""
    from importlib import metadata

    try:
        return metadata.version("torch")
    except metadata.PackageNotFoundError:
        return None


# ------------------------------------------------------------------------------------------------- cache


def cache_key(
    stage: Stage, *, series: Sequence[str], base: str, tree: str, tools: Sequence[tuple[str, str]], machine: Machine
) -> str:
    """sha256 over what decides a stage's result: the series, the base, the stage definition and the tools.

    A build stage's key leaves torch out: the build is what produces it.
    """
    relevant = [(k, v) for k, v in tools if not (stage.kind == "build" and k == "torch")]
    body = {
        "version": CACHE_VERSION,
        "series": list(series),
        "base": base,
        "tree": tree,
        "stage": {
            "name": stage.name, "kind": stage.kind, "run": [list(c) for c in stage.run], "cwd": stage.cwd,
            "env": [list(e) for e in stage.env], "timeout": stage.timeout,
            "requires": {"os": stage.requires.os, "arch": stage.requires.arch, "mps": stage.requires.mps},
            "junit": stage.junit, "min_tests": stage.min_tests, "full_tree": stage.needs_full_tree,
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
    return tuple((k, "***" if any(m in k.upper() for m in SECRET_MARKERS) else v) for k, v in env)


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
                result = _run_one(stage, request, tree, key, log, progress)
            except KeyboardInterrupt:
                result = _interrupted(stage, key, log, request.run_dir)
                interrupted = True
            if stage.kind == "build" and result.status == PASSED:
                tools = _with_torch(tools)  # the build just installed a new torch
                probe.clear()
        results.append(result)
        progress.stage_finished(result, index, total)
        if interrupted and stopped is None:
            stopped = "not run: interrupted"
        elif result.status in (FAILED, ERROR) and not request.keep_going and stopped is None:
            stopped = f"not run: stage {stage.name!r} {result.status}; --keep-going runs the rest"
    return RunOutcome(tree=tree, tools=_with_torch(tools), results=tuple(results), interrupted=interrupted)


def _with_torch(tools: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
    current = dict(tools)
    version = torch_version()
    if version:
        current["torch"] = version
    else:
        current.pop("torch", None)
    return tuple(sorted(current.items()))


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)


def _now() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _not_run(stage: Stage, key: str, reason: str) -> StageResult:
    now = _now()
    return StageResult(
        name=stage.name, kind=stage.kind, status=SKIPPED, reason=reason, duration_s=0.0, counts=(), log=None,
        log_sha256=None, commands=(), env=redact(stage.env), started_at=now, finished_at=now, cache_key=key,
    )


def _cached(stage: Stage, key: str, hit: CachedResult) -> StageResult:
    earlier = hit.result
    log = earlier.log
    if log is not None and not log.startswith("../"):
        log = f"../{hit.run_id}/{log}"  # still relative to this run's folder, pointing into the earlier one
    now = _now()
    return replace(earlier, name=stage.name, kind=stage.kind, status=PASSED, reason="cached", log=log,
                   started_at=now, finished_at=now, duration_s=0.0, cache_key=key,
                   cached_from=earlier.cached_from or hit.run_id)


def _interrupted(stage: Stage, key: str, log: Path, run_dir: Path) -> StageResult:
    now = _now()
    exists = log.is_file()
    return StageResult(
        name=stage.name, kind=stage.kind, status=ERROR, reason="interrupted", duration_s=0.0, counts=(),
        log=log.relative_to(run_dir).as_posix() if exists else None,
        log_sha256=sha256_file(log) if exists else None, commands=(), env=redact(stage.env),
        started_at=now, finished_at=now, cache_key=key,
    )


def _run_one(
    stage: Stage, request: RunRequest, tree: PatchedTree, key: str, log: Path, progress: Progress
) -> StageResult:
    ph = Placeholders(python=request.python, jobs=request.jobs or default_jobs(), tree=tree.path,
                      root=request.config.root, patched=tuple(tree.paths))
    commands = tuple(expand_argv(stage, argv, ph) for argv in stage.run)
    nothing = tuple(empty_patched(argv, ph) for argv in stage.run)
    env = expand_env(stage, ph)
    cwd = Path(_expand_scalars(stage, stage.cwd, ph, "cwd"))
    cwd = cwd if cwd.is_absolute() else tree.path / cwd
    junit_pattern = _expand_scalars(stage, stage.junit, ph, "junit") if stage.junit else None
    if junit_pattern:
        # A results file left by an earlier run must never be counted as this run's.
        for stale in tests_parser.junit_files(junit_pattern, cwd):
            Path(stale).unlink(missing_ok=True)
    log.parent.mkdir(parents=True, exist_ok=True)
    log.touch()
    started_at, started = _now(), time.monotonic()
    deadline = started + stage.timeout
    outputs: list[CommandOutput] = []
    trouble: str | None = None  # an error that overrides the parser: timeout, missing tool, crash
    path_env = dict(env).get("PATH", os.environ.get("PATH", ""))
    for argv, empty in zip(commands, nothing, strict=True):
        if empty is not None:
            _append(log, f"$ {command_label(argv)}\nmpspatch: not run: no patched file matches {empty}\n")
            continue
        if stage.kind == "lint" and (why := lint_parser.missing_style(argv, cwd, tree.path)):
            trouble = why
            _append(log, f"$ {command_label(argv)}\nmpspatch: not run: {why}\n")
            break
        program = find_program(argv[0], path_env) if argv else None
        run_argv = (program, *argv[1:]) if program else argv
        progress.command_started(stage, run_argv)
        offset = log.stat().st_size
        try:
            done = proc.run_logged(run_argv, cwd=cwd, log=log, env=dict(env),
                                   timeout=max(deadline - time.monotonic(), 0.001))
        except ToolMissingError:
            trouble = f"program not found: {argv[0]} (install it or put it on PATH)"
            _append(log, f"mpspatch: {trouble}\n")
            break
        except CommandFailedError as exc:
            trouble = exc.message
            _append(log, f"mpspatch: {trouble}\n")
            break
        output, truncated = _read_from(log, offset)
        outputs.append(CommandOutput(argv=argv, exit_code=done.returncode, output=output, truncated=truncated))
        if done.timed_out:
            trouble = f"timed out after {stage.timeout:g}s in `{command_label(argv)}`"
            _append(log, f"mpspatch: {trouble}; the process group was killed\n")
            break
        code = done.returncode if done.returncode is not None else 0
        if code < 0:
            trouble = f"`{command_label(argv)}` crashed: killed by {signal_name(code)}"
            break
        if code != 0 and not _KEEPS_GOING[stage.kind](code, env):
            break
    duration = time.monotonic() - started
    found = tests_parser.junit_files(junit_pattern, cwd) if junit_pattern else ()
    parsed = _PARSERS[stage.kind](ParseInput(
        commands=tuple(outputs), tree=str(tree.path.resolve()), junit_files=found, junit_pattern=junit_pattern,
        min_tests=stage.min_tests, env=env,
    ))
    if trouble is not None:
        parsed = Parsed(ERROR, trouble, parsed.counts, parsed.details)
    elif all(e is not None for e in nothing):
        skipped = ", ".join(sorted({e for e in nothing if e}))
        parsed = Parsed(SKIPPED, f"no patched file matches {skipped}", (), ())
    if stage.kind == "lint":
        _scrub_log(log)
    return StageResult(
        name=stage.name, kind=stage.kind, status=parsed.status, reason=parsed.reason, duration_s=round(duration, 3),
        counts=parsed.counts, log=log.relative_to(request.run_dir).as_posix(), log_sha256=sha256_file(log),
        commands=commands, env=redact(env), started_at=started_at, finished_at=_now(), cache_key=key,
        details=parsed.details,
    )


def _append(log: Path, text: str) -> None:
    with log.open("a", encoding="utf-8") as sink:
        sink.write(text)


def _read_from(log: Path, offset: int) -> tuple[str, bool]:
    size = log.stat().st_size
    start = max(offset, size - MAX_PARSED_BYTES)
    with log.open("rb") as source:
        source.seek(start)
        data = source.read()
    return data.decode("utf-8", errors="replace"), start > offset


def _scrub_log(log: Path) -> None:
    """Drop lintrunner's embedded file copies from the stored log, line by line (logs can be large)."""
    scrubbed = log.with_name(log.name + ".scrub")
    changed = False
    with log.open(encoding="utf-8", errors="replace", newline="") as source, \
            scrubbed.open("w", encoding="utf-8", newline="") as sink:
        for line in source:
            clean = lint_parser.scrub_line(line)
            changed = changed or clean != line
            sink.write(clean)
    if changed:
        os.replace(scrubbed, log)
    else:
        scrubbed.unlink()
