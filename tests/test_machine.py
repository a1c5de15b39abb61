"""The machine a stage runs on: requirements and the MPS probe."""

from __future__ import annotations

import importlib.util
import platform
import sys
from pathlib import Path

import pytest

from mpspatch.foundation.config import Requires
from mpspatch.verify.machine import Machine, MpsProbe, probe_mps, unmet


def test_unmet_requirements_say_exactly_what_is_missing() -> None:
    linux = Machine(os="linux", arch="x86_64")

    def never() -> MpsProbe:
        raise AssertionError("the MPS probe must not run when os/arch already rule the stage out")

    assert unmet(Requires(os="darwin"), linux, never) == "requires os=darwin, this machine is linux"
    assert unmet(Requires(os="darwin", arch="arm64", mps=True), linux, never) == (
        "requires os=darwin, this machine is linux; requires arch=arm64, this machine is x86_64"
    )
    assert unmet(Requires(arch="aarch64"), Machine("linux", "arm64"), never) is None
    assert unmet(Requires(mps=True), linux, lambda: MpsProbe(False, "no GPU")) == "requires mps: no GPU"
    assert unmet(Requires(mps=True), linux, lambda: MpsProbe(True, "")) is None
    assert unmet(Requires(), linux, never) is None


def test_machine_current_uses_platform_names() -> None:
    machine = Machine.current()
    assert machine.os == platform.system().lower()
    assert machine.arch == {"aarch64": "arm64", "amd64": "x86_64"}.get(platform.machine().lower(),
                                                                       platform.machine().lower())


def test_mps_probe_without_torch_names_the_interpreter(tmp_path: Path) -> None:
    if importlib.util.find_spec("torch") is not None:
        pytest.skip("torch is installed here; the fake-torch tests cover the probe's other answers")
    probe = probe_mps(sys.executable, tmp_path, timeout=60)
    assert not probe.ok
    assert probe.reason.startswith(f"torch is not importable by {sys.executable} (ModuleNotFoundError")


# A stand-in for torch, because Metal cannot exist on Linux. It is just enough of torch's surface for the
# probe's script to run: tensors are symbolic and `mps_error` makes the GPU result wrong by that much,
# which is how a VM that reports MPS as available but computes garbage looks to the probe.
FAKE_TORCH = '''
__version__ = "0.0-fake"
import os
MODE = os.environ.get("FAKE_MPS", "wrong")

class _Mps:
    @staticmethod
    def is_built(): return MODE != "unbuilt"
    @staticmethod
    def is_available(): return MODE not in ("unavailable", "unbuilt")

class backends:
    mps = _Mps

class mps:
    @staticmethod
    def synchronize(): pass

class Generator:
    def manual_seed(self, seed): return self

class Tensor:
    def __init__(self, value, device="cpu"): self.value, self.device = value, device
    def __matmul__(self, other):
        if self.device == "mps" and MODE == "wrong":
            return Tensor(self.value * other.value + 0.5, "mps")
        return Tensor(self.value * other.value, self.device)
    def to(self, device):
        if device == "mps" and MODE == "raises":
            raise RuntimeError("MPS backend out of memory (MPS allocated: 0 bytes)")
        return Tensor(self.value, device)
    def __sub__(self, other): return Tensor(self.value - other.value, self.device)
    def abs(self): return Tensor(abs(self.value), self.device)
    def max(self): return self
    def item(self): return self.value

def rand(*shape, generator=None): return Tensor(0.25)
'''


@pytest.fixture
def fake_python(tmp_path: Path) -> Path:
    (tmp_path / "fake/torch").mkdir(parents=True)
    (tmp_path / "fake/torch/__init__.py").write_text(FAKE_TORCH)
    wrapper = tmp_path / "python-with-fake-torch"
    wrapper.write_text(f'#!/bin/sh\nPYTHONPATH="{tmp_path / "fake"}" exec "{sys.executable}" "$@"\n')
    wrapper.chmod(0o755)
    return wrapper


@pytest.mark.parametrize(
    ("mode", "ok", "reason"),
    [
        ("wrong", False, "a 256x256 matmul on mps differs from the CPU result (max abs difference 0.5)"),
        ("raises", False, "a 256x256 matmul on mps failed (RuntimeError: MPS backend out of memory"),
        ("unavailable", False, "torch.backends.mps.is_available() is False"),
        ("unbuilt", False, "torch 0.0-fake was built without MPS"),
        ("right", True, ""),
    ],
)
def test_mps_probe_checks_real_work(fake_python: Path, tmp_path: Path, mode: str, ok: bool, reason: str,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_MPS", mode)
    probe = probe_mps(str(fake_python), tmp_path, timeout=60)
    assert probe.ok is ok
    assert probe.reason.startswith(reason)


def test_mps_probe_crash_is_reported(tmp_path: Path) -> None:
    crasher = tmp_path / "crash"
    crasher.write_text("#!/bin/sh\nkill -SEGV $$\n")
    crasher.chmod(0o755)
    probe = probe_mps(str(crasher), tmp_path, timeout=60)
    assert not probe.ok and probe.reason == "the MPS probe was killed by SIGSEGV"
