"""The machine a stage runs on: os and arch, whether MPS really works, and the versions of the tools.

A stage's `requires` is checked against this, and the tool versions go into every cache key, so a new
compiler or torch never reuses a result made with the old one.
"""

from __future__ import annotations

import os
import platform
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import mpspatch
from mpspatch.foundation import proc
from mpspatch.foundation.config import Requires
from mpspatch.foundation.errors import CommandFailedError, ToolMissingError
from mpspatch.verify.stages import describe_exit

MPS_PROBE_TIMEOUT = 300.0
_ARCH_ALIASES = {"aarch64": "arm64", "amd64": "x86_64", "x64": "x86_64"}


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
    how = describe_exit(done.returncode)
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
    found: dict[str, str] = {"python": f"{platform.python_implementation()} {platform.python_version()}",
                             "mpspatch": mpspatch.__version__}
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


def with_torch(tools: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
    """`tools` with torch's version as installed now (a build stage may just have replaced it)."""
    current = dict(tools)
    version = torch_version()
    if version:
        current["torch"] = version
    else:
        current.pop("torch", None)
    return tuple(sorted(current.items()))


def describe_machine(cwd: Path) -> tuple[tuple[str, str], ...]:
    """What a run's evidence records about the machine: os, its version, arch and the CPU or SoC model.

    The documents show it beside each figure ("macOS 15.1, arm64, Apple M2"), because a count from a GitHub
    VM and one from an Apple Silicon machine do not mean the same. A value that cannot be read is left out.
    """
    current = Machine.current()
    found = [("os", current.os)]
    version = platform.mac_ver()[0] if current.os == "darwin" else _os_release()
    if version:
        found.append(("os_version", version))
    found.append(("arch", current.arch))
    model = _cpu_model(current.os, cwd)
    if model:
        found.append(("model", model))
    return tuple(found)


def _os_release() -> str:
    try:
        text = Path("/etc/os-release").read_text(encoding="utf-8")
    except OSError:
        return platform.release()
    fields = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
    return fields.get("PRETTY_NAME", "").strip().strip('"') or platform.release()


def _cpu_model(os_name: str, cwd: Path) -> str:
    if os_name == "darwin":
        program = find_program("sysctl")
        if program is None:
            return ""
        try:
            done = proc.run([program, "-n", "machdep.cpu.brand_string"], cwd=cwd, timeout=10, check=False)
        except (proc.CommandTimeoutError, ToolMissingError, CommandFailedError):
            return ""
        return done.stdout.strip() if done.ok else ""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return next((line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name")), "")
