"""The tools the demo's stages need, each found and tried: a missing one is one clear message, not a failed stage."""

from __future__ import annotations

import os
import re
import shutil
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path

from mpspatch.foundation import proc
from mpspatch.foundation.errors import CommandFailedError, ToolMissingError
from mpspatch.git.objects import MERGE_TREE_MIN_VERSION
from mpspatch.sample.builder import COMPILER_NAME
from mpspatch.verify.machine import find_program

MIN_PYTHON = (3, 11)
MIN_GIT = MERGE_TREE_MIN_VERSION
COMPILERS = ("g++", "clang++")  # tried in this order after $CXX

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


@dataclass(frozen=True)
class Tool:
    name: str  # what the demo needs it for is in the name: "c++ (ThreadSanitizer)" etc.
    path: str
    version: str


@dataclass(frozen=True)
class Toolchain:
    tools: tuple[Tool, ...]
    cxx: str  # the compiler that passed the TSan probe; the sample's tsan stage calls it


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
    # The git layer runs `git` from PATH only, so the demo looks there too (no fallback beside the interpreter).
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
