"""The stages shipped in mpspatch.toml for the real PyTorch job, checked against the real job, and the harness.

The build, TSan, MPS tests and stress stages need macOS on Apple Silicon with a working GPU, so on Linux
they are checked as configuration, and the harness scripts are run where they can run without MPS.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from mpspatch.foundation.config import load_config
from mpspatch.verify.machine import Machine, MpsProbe, unmet
from mpspatch.verify.placeholders import Placeholders, expand_argv, expand_env, validate
from mpspatch.verify.stages import FAILED, CommandOutput, ParseInput
from mpspatch.verify.stages import build as build_parser
from mpspatch.verify.stages import tests as tests_parser
from mpspatch.verify.stages import tsan as tsan_parser

ROOT = Path(__file__).resolve().parent.parent
CONFIG = load_config(ROOT / "mpspatch.toml")
STAGES = {s.name: s for s in CONFIG.stages}
PATCHED = ("aten/src/ATen/mps/MPSStream.mm", "aten/src/ATen/mps/MPSStream.h", "aten/src/ATen/native/mps/Ops.mm",
           "aten/src/ATen/native/mps/kernels/Foo.metal", "aten/src/ATen/native/native_functions.yaml",
           "test/test_mps.py", "torch/csrc/mps/Module.cpp", "torch/mps/__init__.py")


def expanded(name: str) -> list[tuple[str, ...]]:
    ph = Placeholders(python="/venv/bin/python", jobs=3, tree=Path("/t"), root=Path("/r"), patched=PATCHED)
    return [expand_argv(STAGES[name], argv, ph) for argv in STAGES[name].run]


def test_the_stage_names_ci_calls_exist_and_expand() -> None:
    assert {"build", "lint", "tsan", "tests", "stress"} <= set(STAGES)
    validate(CONFIG, CONFIG.stages)


def test_build_stage_matches_the_documented_build() -> None:
    build = STAGES["build"]
    assert build.kind == "build" and build.requires.os == "darwin" and build.requires.arch == "arm64"
    assert expanded("build")[-1] == ("/venv/bin/python", "-m", "pip", "install", "-e", ".", "-v",
                                     "--no-build-isolation")
    ph = Placeholders(python="p", jobs=3, tree=Path("/t"), root=Path("/r"), patched=())
    env = dict(expand_env(build, ph))
    assert env == {"USE_CUDA": "0", "BUILD_TEST": "0", "USE_DISTRIBUTED": "0", "MAX_JOBS": "3",
                   "CMAKE_C_COMPILER_LAUNCHER": "ccache", "CMAKE_CXX_COMPILER_LAUNCHER": "ccache"}
    assert build.timeout < 280 * 60  # the CI step's limit: mpspatch reports the timeout itself


def test_lint_stages_take_exactly_the_patched_files() -> None:
    assert expanded("lint") == [("lintrunner", "init"), ("lintrunner", "--output", "json", *PATCHED)]
    (clang_format,) = expanded("lint-clang-format")
    assert clang_format == ("/r/.mpspatch/tools/clang-format-19.1.4/clang_format/data/bin/clang-format",
                            "--dry-run", "--Werror", "aten/src/ATen/mps/MPSStream.mm",
                            "aten/src/ATen/mps/MPSStream.h", "aten/src/ATen/native/mps/Ops.mm",
                            "torch/csrc/mps/Module.cpp")
    assert not STAGES["lint-clang-format"].needs_full_tree
    # The binary is the pinned wheel the stage before it installs, at the version PyTorch pins.
    names = list(STAGES)
    assert names.index("clang-format-wheel") == names.index("lint-clang-format") - 1
    (install,) = expanded("clang-format-wheel")
    assert install[-1] == "clang-format==19.1.4" and "/r/.mpspatch/tools/clang-format-19.1.4" in install
    # lintrunner runs on a sparse tree that also holds the linters' scripts (the folder .lintrunner.toml names).
    assert not STAGES["lint"].needs_full_tree and STAGES["lint"].sparse == ("tools/linter",)


def test_gpu_stages_need_a_real_mps_device() -> None:
    for name in ("tsan", "tests", "stress"):
        requires = STAGES[name].requires
        assert (requires.os, requires.arch, requires.mps) == ("darwin", "arm64", True), name
    hosted_vm = Machine("darwin", "arm64")
    reason = unmet(STAGES["tsan"].requires, hosted_vm, lambda: MpsProbe(False, "a 256x256 matmul on mps failed"))
    assert reason == "requires mps: a 256x256 matmul on mps failed"


def test_tsan_stage_runs_the_harness_at_both_sizes() -> None:
    runs = expanded("tsan")
    assert runs[-2][-2:] == ("8", "50") and runs[-1][-2:] == ("31", "100")
    assert "-fsanitize=thread" in runs[1] and "/r/harness/tsan_mps_parallel.cpp" in runs[1]
    options = dict(STAGES["tsan"].env)["TSAN_OPTIONS"]
    assert "halt_on_error=0" in options and "suppressions={root}/harness/tsan.supp" in options


def test_tests_stage_reads_junit_with_a_floor() -> None:
    tests = STAGES["tests"]
    assert tests.junit == "test-results/*.xml" and tests.min_tests >= 8
    runs = expanded("tests")
    assert runs[1][4:6] == ("-k", "TestMPSParallelInference")
    assert all(any(a.startswith("--junitxml=test-results/") for a in argv) for argv in runs[1:])


def test_tsan_parser_reads_the_harness_counts() -> None:
    out = CommandOutput(("harness", "8", "50"), 1,
                        "thread 3 failed: boom\nmpspatch-counts: threads=8 iterations=50 mismatches=2 failures=1\n")
    parsed = tsan_parser.parse(ParseInput(commands=(out,), tree=""))
    assert parsed.status == FAILED
    assert parsed.reason == "no ThreadSanitizer report, but the harness reported mismatches=2, failures=1"
    assert dict(parsed.counts)["threads"] == 8 and dict(parsed.counts)["races"] == 0


def test_stress_script_counts_rounds_that_die(tmp_path: Path) -> None:
    # Without torch every round dies on import: the script must count those as crashes, not as passes.
    try:
        import torch  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("torch is importable here; the rounds would run for real")
    done = subprocess.run([sys.executable, str(ROOT / "harness/stress_parallel_inference.py"), "--rounds", "2"],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 1
    out = CommandOutput(("stress",), done.returncode, done.stdout + done.stderr)
    parsed = build_parser.parse(ParseInput(commands=(out,), tree=""))
    assert parsed.status == FAILED
    assert dict(parsed.counts) == {"rounds": 2, "crashes": 2, "mismatches": 0, "hangs": 0}
    assert "round 1: exited 1 without a result" in done.stdout


def test_own_suite_cannot_pass_without_mps(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           str(ROOT / "harness/test_stream_pool.py"), f"--junitxml={tmp_path / 'r.xml'}"],
                          capture_output=True, text=True, timeout=120, check=False, cwd=tmp_path)
    out = CommandOutput(("pytest",), done.returncode, done.stdout)
    parsed = tests_parser.parse(ParseInput(commands=(out,), tree="", junit_files=(str(tmp_path / "r.xml"),),
                                           min_tests=STAGES["tests"].min_tests))
    if sys.platform == "darwin":
        pytest.skip("on macOS the suite may really run")
    assert parsed.status == FAILED and parsed.reason.startswith("ran 0 tests")
