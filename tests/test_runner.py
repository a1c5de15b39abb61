"""Runner pieces: placeholders, requirements and the MPS probe, cache keys, secret redaction."""

from __future__ import annotations

import importlib.util
import os
import platform
import sys
from pathlib import Path

import pytest

from mpspatch.foundation.config import Requires, Stage
from mpspatch.foundation.errors import ConfigError
from mpspatch.verify.runner import (
    Machine,
    MpsProbe,
    Placeholders,
    cache_key,
    expand_argv,
    expand_env,
    probe_mps,
    redact,
    unmet,
)

PATCHED = ("aten/src/ATen/mps/MPSStream.h", "aten/src/ATen/mps/MPSStream.mm", "aten/src/ATen/native/mps/Ops.mm",
           "test/test_mps.py", "torch/mps/__init__.py")


def stage(**kw: object) -> Stage:
    values: dict[str, object] = {"name": "s", "kind": "command", "run": (("true",),)}
    values.update(kw)
    return Stage(**values)  # type: ignore[arg-type]


def ph(tmp_path: Path) -> Placeholders:
    return Placeholders(python="/py", jobs=3, tree=tmp_path / "tree", root=tmp_path, patched=PATCHED)


def test_scalar_placeholders(tmp_path: Path) -> None:
    argv = expand_argv(stage(), ["{python}", "-j{jobs}", "--tree={tree}", "{root}/harness.cpp", "{x: 1}"], ph(tmp_path))
    assert argv == ("/py", "-j3", f"--tree={tmp_path / 'tree'}", f"{tmp_path}/harness.cpp", "{x: 1}")


def test_patched_expands_to_items(tmp_path: Path) -> None:
    assert expand_argv(stage(), ["lint", "{patched}"], ph(tmp_path)) == ("lint", *PATCHED)
    assert expand_argv(stage(), ["cf", "{patched:**/*.h,**/*.mm}", "--end"], ph(tmp_path)) == (
        "cf", "aten/src/ATen/mps/MPSStream.h", "aten/src/ATen/mps/MPSStream.mm", "aten/src/ATen/native/mps/Ops.mm",
        "--end",
    )
    # `*` stays inside one folder; `**` crosses folders.
    assert expand_argv(stage(), ["{patched:aten/src/ATen/mps/*.mm}"], ph(tmp_path)) == (
        "aten/src/ATen/mps/MPSStream.mm",
    )
    assert expand_argv(stage(), ["{patched:**/*.cu}"], ph(tmp_path)) == ()


def test_patched_inside_an_item_is_bad_config(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"\[stages.s\].run: \{patched\} must be a whole argv item"):
        expand_argv(stage(), ["--files={patched}"], ph(tmp_path))


def test_env_values_expand_scalars(tmp_path: Path) -> None:
    s = stage(env=(("MAX_JOBS", "{jobs}"), ("CC", "ccache")))
    assert expand_env(s, ph(tmp_path)) == (("MAX_JOBS", "3"), ("CC", "ccache"))


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


def test_cache_key_covers_the_inputs() -> None:
    machine = Machine("linux", "x86_64")
    tools = (("git", "git version 2.39.5"), ("torch", "2.9.1"))
    base = dict(series=["a" * 64], base="b" * 40, tree="c" * 40, tools=tools, machine=machine)
    key = cache_key(stage(), **base)  # type: ignore[arg-type]
    assert key == cache_key(stage(), **base)  # type: ignore[arg-type]
    changed = [
        cache_key(stage(run=(("false",),)), **base),  # type: ignore[arg-type]
        cache_key(stage(env=(("A", "1"),)), **base),  # type: ignore[arg-type]
        cache_key(stage(timeout=5.0), **base),  # type: ignore[arg-type]
        cache_key(stage(requires=Requires(os="darwin")), **base),  # type: ignore[arg-type]
        cache_key(stage(min_tests=3), **base),  # type: ignore[arg-type]
        cache_key(stage(), **{**base, "series": ["d" * 64]}),  # type: ignore[arg-type]
        cache_key(stage(), **{**base, "base": "e" * 40}),  # type: ignore[arg-type]
        cache_key(stage(), **{**base, "tools": (("git", "git version 2.40.0"), ("torch", "2.9.1"))}),  # type: ignore[arg-type]
        cache_key(stage(), **{**base, "machine": Machine("darwin", "arm64")}),  # type: ignore[arg-type]
    ]
    assert key not in changed and len(set(changed)) == len(changed)
    # The build produces torch, so torch's version is not an input of a build stage's key.
    build = stage(kind="build")
    assert cache_key(build, **base) == cache_key(  # type: ignore[arg-type]
        build, **{**base, "tools": (("git", "git version 2.39.5"), ("torch", "2.10.0"))}  # type: ignore[arg-type]
    )


def test_redact_hides_secret_looking_keys() -> None:
    env = (("GITHUB_TOKEN", "ghp_x"), ("AWS_SECRET_ACCESS_KEY", "s"), ("DB_PASSWORD", "p"), ("API_KEY", "k"),
           ("GOOGLE_APPLICATION_CREDENTIALS", "c"), ("MAX_JOBS", "3"), ("TSAN_OPTIONS", "halt_on_error=0"))
    assert redact(env) == (("GITHUB_TOKEN", "***"), ("AWS_SECRET_ACCESS_KEY", "***"), ("DB_PASSWORD", "***"),
                           ("API_KEY", "***"), ("GOOGLE_APPLICATION_CREDENTIALS", "***"), ("MAX_JOBS", "3"),
                           ("TSAN_OPTIONS", "halt_on_error=0"))


def test_placeholder_jobs_defaults_to_cpu_count() -> None:
    from mpspatch.verify.runner import default_jobs

    assert default_jobs() == (os.cpu_count() or 1)
