"""`mpspatch demo`: the whole job on a small offline sample, with the real tools, in one call.

The demo writes the sample (an upstream git history and a downstream stream-pool patch, see sample.py),
then runs the same core functions the commands run, in the order a contributor would type them:

    lock -> drift --onto v1.2 -> rebase --onto v1.2 -> verify --keep-going -> status -> render-pr,
    render-issue, render-audit

Nothing here is simulated: the build, the lint, the ThreadSanitizer run and the tests are the sample's
configured stages, run by the runner, and readiness is whatever status.py computes from the evidence.
The tools those stages need are checked first, so a missing one is one clear message, not a failed stage.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from enum import StrEnum
from functools import partial
from importlib.util import find_spec
from pathlib import Path
from typing import TypeVar

from mpspatch.foundation import proc
from mpspatch.foundation.config import Config, StageKind, load_config
from mpspatch.foundation.errors import CommandFailedError, InputError, ToolMissingError
from mpspatch.foundation.files import atomic_write_text
from mpspatch.git import verbs as git
from mpspatch.model.series import make_lock, parse_series, write_lock
from mpspatch.operations.drift import DriftReport, compute_drift
from mpspatch.operations.rebase import RebaseResult, RebaseStatus, start
from mpspatch.reporting.render import default_out, render_document, status_line
from mpspatch.reporting.status import Gap, StatusReport, compute_status
from mpspatch.sample.builder import COMPILER_NAME, Sample, SampleError, write_sample
from mpspatch.verify.evidence import VerifyOutcome, verify
from mpspatch.verify.machine import find_program
from mpspatch.verify.runner import Progress
from mpspatch.verify.stages import StageStatus

MIN_PYTHON = (3, 11)
MIN_GIT = git.MERGE_TREE_MIN_VERSION
COMPILERS = ("g++", "clang++")  # tried in this order after $CXX
STEPS = ("tools", "sample", "lock", "drift", "rebase", "verify", "status", "render-pr", "render-issue",
         "render-audit")
DOCUMENT_STEPS = {"render-pr": "pr", "render-issue": "issue", "render-audit": "audit"}

# Two threads writing one int: small enough to compile in well under a second, and running it proves the
# TSan runtime works on this kernel (some refuse its memory layout), which compiling alone would not.
_TSAN_PROBE = """\
#include <thread>
int main() {
  int value = 0;
  std::thread writer([&value] { value = 1; });
  writer.join();
  return value == 1 ? 0 : 1;
}
"""


# ------------------------------------------------------------------------------------------------- results


class StepStatus(StrEnum):
    OK = "ok"
    FAILED = "failed"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class Tool:
    name: str  # what the demo needs it for is in the name: "c++ (ThreadSanitizer)" etc.
    path: str
    version: str


@dataclass(frozen=True)
class Toolchain:
    tools: tuple[Tool, ...]
    cxx: str  # the compiler that passed the TSan probe; the sample's tsan stage calls it


@dataclass(frozen=True)
class Step:
    name: str  # one of STEPS
    status: StepStatus
    duration_s: float
    detail: str  # one line: what the step found or made


@dataclass(frozen=True)
class Documents:
    pr: Path
    issue: Path
    audit: Path


@dataclass(frozen=True)
class DemoResult:
    sample: Sample
    toolchain: Toolchain
    steps: tuple[Step, ...]
    lock: Path
    drift: DriftReport
    rebase: RebaseResult
    verify: VerifyOutcome | None
    report: StatusReport | None  # computed after verify; None when the pipeline stopped before it
    documents: Documents | None
    duration_s: float  # the whole demo, tool check included

    @property
    def interrupted(self) -> bool:
        return self.verify is not None and self.verify.interrupted

    @property
    def ready(self) -> bool:
        return self.report is not None and self.report.ready

    @property
    def gaps(self) -> tuple[Gap, ...]:
        return self.report.gaps if self.report is not None else ()

    @property
    def status_line(self) -> str:
        return status_line(self.report) if self.report is not None else "NOT READY — the pipeline stopped early"


# ------------------------------------------------------------------------------------------------ progress


class DemoProgress:
    """Callbacks for a live display; console.py overrides them. The default shows nothing."""

    def step_started(self, name: str, index: int, total: int) -> None:
        """Step `name` (one of STEPS) starts."""

    def step_finished(self, step: Step, index: int, total: int) -> None:
        """`step` is done, failed or skipped."""

    def verifying(self) -> AbstractContextManager[Progress]:
        """The stage progress that the verify step hands to the runner, open while it runs."""
        return _quiet()


@contextmanager
def _quiet() -> Iterator[Progress]:
    yield Progress()


# ------------------------------------------------------------------------------------------------- tools


def check_tools() -> Toolchain:
    """Everything the sample's stages need, or one ToolMissingError naming each missing tool and its fix."""
    found: list[Tool] = []
    problems: list[str] = []
    python = ".".join(str(n) for n in sys.version_info[:3])
    if sys.version_info[:2] < MIN_PYTHON:
        problems.append(f"Python {python} is too old: install Python 3.11 or newer and reinstall mpspatch with it")
    else:
        found.append(Tool("python", sys.executable, python))
    if find_spec("pytest") is None:
        problems.append(f"pytest is not importable by {sys.executable} (the tests stage runs `python -m pytest`): "
                        "`pip install pytest` into that environment")
    _check_git(found, problems)
    _check_program("cmake", ["--version"], found, problems,
                   "install CMake 3.16 or newer (`apt install cmake`, `brew install cmake` or `pip install cmake`)")
    cxx = _check_compiler(found, problems)
    for name in ("clang-format", "lintrunner"):
        _check_program(name, ["--version"], found, problems,
                       f"`pip install {name}` into the environment that runs mpspatch (it is a dependency: "
                       "`pip install -e .` installs it)")
    if problems:
        raise ToolMissingError("the demo needs tools that are missing: " + "; ".join(problems))
    assert cxx is not None
    return Toolchain(tools=tuple(found), cxx=cxx)


def _first_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0] if lines else ""


def _check_git(found: list[Tool], problems: list[str]) -> None:
    # git.py runs `git` from PATH only, so the demo looks there too (no fallback beside the interpreter).
    program = shutil.which("git")
    need = ".".join(str(n) for n in MIN_GIT[:2])
    if program is None:
        problems.append(f"git: not found on PATH; install git {need} or newer (`apt install git`, `brew install git`)")
        return
    done = proc.run([program, "--version"], cwd=Path.cwd(), timeout=30, check=False)
    match = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", done.stdout)
    have = tuple(int(n or 0) for n in match.groups()) if match else (0, 0, 0)
    if have < MIN_GIT:
        shown = ".".join(str(n) for n in have) if match else repr(_first_line(done.stdout))
        problems.append(f"git {shown} is too old: drift needs `git merge-tree --write-tree` from git {need}; "
                        "upgrade git")
        return
    found.append(Tool("git", program, ".".join(str(n) for n in have)))


def _check_program(name: str, args: Sequence[str], found: list[Tool], problems: list[str], fix: str) -> None:
    # The runner finds stage programs on PATH, else beside the interpreter (a venv's wheels): so does this.
    program = find_program(name)
    if program is None:
        problems.append(f"{name}: not found on PATH; {fix}")
        return
    try:
        done = proc.run([program, *args], cwd=Path.cwd(), timeout=60, check=False)
    except (ToolMissingError, CommandFailedError) as exc:
        problems.append(f"{name}: {program} does not run ({exc.message}); {fix}")
        return
    if not done.ok:
        problems.append(f"{name}: `{program} {' '.join(args)}` exited {done.returncode}; {fix}")
        return
    found.append(Tool(name, program, _first_line(done.stdout or done.stderr)))


def _check_compiler(found: list[Tool], problems: list[str]) -> str | None:
    """The first of $CXX, g++ and clang++ that compiles and runs a ThreadSanitizer program."""
    tried: list[str] = []
    wanted = os.environ.get("CXX", "").strip()
    if wanted and not COMPILER_NAME.fullmatch(wanted):
        tried.append(f"$CXX {wanted!r} is not a single program name or path, so it was passed over")
        wanted = ""
    candidates = list(dict.fromkeys([wanted, *COMPILERS] if wanted else COMPILERS))
    with tempfile.TemporaryDirectory(prefix="mpspatch-tsan-probe-") as scratch:
        folder = Path(scratch)
        (folder / "probe.cpp").write_text(_TSAN_PROBE, encoding="utf-8")
        for name in candidates:
            program = find_program(name)
            if program is None:
                tried.append(f"{name} not found")
                continue
            why = _tsan_probe(program, folder)
            if why is None:
                found.append(Tool("c++ (ThreadSanitizer)", program, _compiler_version(program, folder)))
                return name
            tried.append(f"{name} {why}")
    problems.append(
        "a C++ compiler with ThreadSanitizer (" + "; ".join(tried) + "): install g++ with its TSan runtime "
        "(`apt install g++`, which brings libtsan) or clang (`xcode-select --install` on macOS, "
        "`apt install clang`), or point $CXX at one"
    )
    return None


def _tsan_probe(program: str, folder: Path) -> str | None:
    """None when `program` builds and runs a -fsanitize=thread binary here, else why not (one line)."""
    binary = folder / "probe"
    binary.unlink(missing_ok=True)
    argv = [program, "-std=c++17", "-fsanitize=thread", "-g", "-pthread", "probe.cpp", "-o", "probe"]
    try:
        built = proc.run(argv, cwd=folder, timeout=120, check=False)
    except (ToolMissingError, CommandFailedError) as exc:
        return f"does not run ({exc.message})"
    if not built.ok:
        return f"cannot compile with -fsanitize=thread ({proc.tail(built.stderr or built.stdout, 1)})"
    try:
        ran = proc.run([str(binary)], cwd=folder, timeout=60, check=False)
    except (ToolMissingError, CommandFailedError) as exc:
        return f"builds a TSan binary that does not start ({exc.message})"
    if not ran.ok:
        return f"builds a TSan binary that exits {ran.returncode} ({proc.tail(ran.stderr or ran.stdout, 1)})"
    return None


def _compiler_version(program: str, folder: Path) -> str:
    try:
        done = proc.run([program, "--version"], cwd=folder, timeout=30, check=False)
    except (ToolMissingError, CommandFailedError):
        return ""
    return _first_line(done.stdout)


# -------------------------------------------------------------------------------------------------- folder


def prepare_dir(dest: Path | None) -> Path:
    """The folder to write the sample into: `dest` if new or empty (bad input otherwise), else a fresh temp one."""
    if dest is None:
        return Path(tempfile.mkdtemp(prefix="mpspatch-demo-"))
    if dest.exists() and not dest.is_dir():
        raise InputError(f"{dest}: --dir names a file; pass a new or empty folder")
    if dest.is_dir() and any(dest.iterdir()):
        raise InputError(f"{dest}: --dir is not empty; pass a new or empty folder, or leave --dir out for a "
                         "fresh temporary one")
    return dest


# ---------------------------------------------------------------------------------------------- the demo

T = TypeVar("T")


def run_demo(
    dest: Path | None = None,
    *,
    break_race: bool = False,
    progress: DemoProgress | None = None,
    python: str = sys.executable,
) -> DemoResult:
    """Write the sample and run the pipeline on it. Bad input and missing tools raise before anything is written.

    Steps after a stop (a conflicting rebase, an interrupted verify) are recorded as skipped, so the result
    always lists every step.
    """
    progress = progress or DemoProgress()
    started = time.monotonic()
    # Checked before the tool probe (it compiles and runs a program) and before anything is created.
    if dest is not None:
        prepare_dir(dest)
    with _installed_tools_first():
        return _pipeline(dest, break_race, progress, python, started)


@contextmanager
def _installed_tools_first() -> Iterator[None]:
    """Put the interpreter's folder first on PATH while the demo runs, as activating its venv would.

    clang-format and lintrunner come from pip with mpspatch. An older clang-format elsewhere on PATH (a
    distribution's) formats Google style a little differently and would fail the sample's lint stage for
    reasons that have nothing to do with the patch; the sample's lintrunner adapter runs `python3`, which
    then is this interpreter too.
    """
    folder = str(Path(sys.executable).parent)
    before = os.environ.get("PATH")
    parts = [p for p in (before or "").split(os.pathsep) if p and p != folder]
    os.environ["PATH"] = os.pathsep.join([folder, *parts])
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("PATH", None)
        else:
            os.environ["PATH"] = before


def _pipeline(
    dest: Path | None, break_race: bool, progress: DemoProgress, python: str, started: float
) -> DemoResult:
    steps: list[Step] = []
    total = len(STEPS)

    def step(name: str, work: Callable[[], T], detail: Callable[[T], tuple[StepStatus, str]]) -> T:
        index = STEPS.index(name)
        progress.step_started(name, index, total)
        began = time.monotonic()
        value = work()
        status, text = detail(value)
        done = Step(name=name, status=status, duration_s=round(time.monotonic() - began, 3), detail=text)
        steps.append(done)
        progress.step_finished(done, index, total)
        return value

    def skip(names: Sequence[str], why: str) -> None:
        for name in names:
            skipped = Step(name=name, status=StepStatus.SKIPPED, duration_s=0.0, detail=why)
            steps.append(skipped)
            progress.step_finished(skipped, STEPS.index(name), total)

    toolchain = step("tools", check_tools, _tools_detail)
    root = prepare_dir(dest)
    sample = step("sample", lambda: _write(root, break_race, toolchain.cxx), _sample_detail)
    config = load_config(sample.config)
    lock = step("lock", lambda: _lock(config),
                lambda path: (StepStatus.OK, f"{config.upstream.base} locked in {path.name}"))
    target = config.upstream.target
    drift = step("drift", lambda: compute_drift(config, target), _drift_detail)
    rebased = step("rebase", lambda: start(config, target), _rebase_detail)
    outcome: VerifyOutcome | None = None
    report: StatusReport | None = None
    documents: Documents | None = None
    if rebased.status != RebaseStatus.REBASED:
        skip(STEPS[STEPS.index("verify"):], "not run: the rebase stopped on conflicts")
    else:
        with progress.verifying() as stage_progress:
            outcome = step("verify", lambda: verify(config, keep_going=True, progress=stage_progress, python=python),
                           _verify_detail)
        if outcome.interrupted:
            skip(STEPS[STEPS.index("status"):], "not run: verify was interrupted")
        else:
            report = step("status", lambda: compute_status(config), _status_detail)
            written: dict[str, Path] = {}
            for name, kind in DOCUMENT_STEPS.items():
                written[kind] = step(name, partial(_render, config, report, kind),
                                     lambda path: (StepStatus.OK, path.name))
            documents = Documents(pr=written["pr"], issue=written["issue"], audit=written["audit"])
    return DemoResult(
        sample=sample, toolchain=toolchain, steps=tuple(steps), lock=lock, drift=drift, rebase=rebased,
        verify=outcome, report=report, documents=documents, duration_s=round(time.monotonic() - started, 3),
    )


def _write(root: Path, break_race: bool, cxx: str) -> Sample:
    try:
        return write_sample(root, break_race=break_race, cxx=cxx)
    except SampleError as exc:
        raise CommandFailedError(f"writing the demo sample into {root} failed: {exc}") from exc


def _lock(config: Config) -> Path:
    """What `mpspatch lock` does: record the configured base and the patch hashes."""
    ref = config.upstream.base
    sha = git.resolve_commit(git.require_repo(config.upstream.checkout), ref)
    write_lock(config.series.lock, make_lock(config, sha, ref, parse_series(config.series.patches), "mpspatch demo"))
    return config.series.lock


def _render(config: Config, report: StatusReport, kind: str) -> Path:
    """What `mpspatch render-<kind>` does, with the status computed once for all three documents."""
    target = default_out(config, kind)
    atomic_write_text(target, render_document(kind, report))
    return target


# ------------------------------------------------------------------------------------------- step details


def _tools_detail(toolchain: Toolchain) -> tuple[StepStatus, str]:
    found = (f"{t.name.split(' ')[0]} {_short_version(t.version)}".strip() for t in toolchain.tools)
    return StepStatus.OK, ", ".join(found)


def _short_version(text: str) -> str:
    match = re.search(r"\d+\.\d+(?:\.\d+)?", text)
    return match.group(0) if match else ""


def _sample_detail(sample: Sample) -> tuple[StepStatus, str]:
    race = " with the injected race" if sample.break_race else ""
    return StepStatus.OK, (f"upstream v1.0, v1.1, v1.2 and the stream-pool patch{race}; "
                           f"tsan stage compiles with {sample.cxx}")


def _drift_detail(report: DriftReport) -> tuple[StepStatus, str]:
    absorbed = f", {len(report.absorbed)} already upstream" if report.absorbed else ""
    if report.conflicts:
        return StepStatus.FAILED, f"{len(report.conflicts)} conflict(s) predicted onto {report.onto_ref}{absorbed}"
    return StepStatus.OK, f"no conflicts predicted onto {report.onto_ref}{absorbed}"


def _rebase_detail(result: RebaseResult) -> tuple[StepStatus, str]:
    if result.status != RebaseStatus.REBASED:
        return StepStatus.FAILED, f"stopped on {len(result.conflicts)} conflict(s) onto {result.onto_ref}"
    absorbed = "".join(f"; {a.path} already upstream" for a in result.absorbed)
    return StepStatus.OK, f"rebased onto {result.onto_ref} {result.onto[:12]}{absorbed}"


def _verify_detail(outcome: VerifyOutcome) -> tuple[StepStatus, str]:
    parts = []
    for s in outcome.run.stages:
        counted = dict(s.counts)
        extra = f" ({counted['races']} race(s))" if s.kind == StageKind.TSAN and counted.get("races") else ""
        parts.append(f"{s.name} {s.status}{extra}")
    failed = any(s.status != StageStatus.PASSED for s in outcome.run.stages) or outcome.interrupted
    return (StepStatus.FAILED if failed else StepStatus.OK), ", ".join(parts)


def _status_detail(report: StatusReport) -> tuple[StepStatus, str]:
    blocking = report.blocking_gaps
    if not blocking:
        return StepStatus.OK, status_line(report)
    named = ", ".join(g.id for g in blocking)
    return StepStatus.FAILED, f"{status_line(report)}: {named}"

