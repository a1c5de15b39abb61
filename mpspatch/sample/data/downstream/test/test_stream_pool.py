"""Tests for the stream pool, driven through the mpsrun binary that CMake builds.

The binary is taken from the MPSRUN environment variable when set, else from build/mpsrun under
this tree. Build it first with `cmake -S . -B build && cmake --build build`.
"""

from __future__ import annotations

import os
import subprocess
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

TREE = Path(__file__).resolve().parent.parent
DEFAULT_POOL_SIZE = 4


@pytest.fixture(scope="session")
def mpsrun() -> Path:
    configured = os.environ.get("MPSRUN")
    binary = Path(configured) if configured else TREE / "build" / "mpsrun"
    if not binary.is_absolute():
        binary = TREE / binary
    if not binary.is_file():
        # A missing binary is a failed build, not a reason to skip.
        pytest.fail(f"{binary} not found: build it with cmake or point MPSRUN at it")
    return binary


def run(binary: Path, *args: str, pool_size: str | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.pop("MPS_STREAM_POOL_SIZE", None)
    if pool_size is not None:
        env["MPS_STREAM_POOL_SIZE"] = pool_size
    return subprocess.run(
        [str(binary), *args], capture_output=True, text=True, env=env, timeout=60, check=False
    )


def fields(stdout: str) -> dict[str, str]:
    """Parses `key=value` lines."""
    return dict(line.split("=", 1) for line in stdout.splitlines() if "=" in line)


def stream_by_thread(stdout: str) -> list[int]:
    """Parses `thread=T stream=S` lines into a list indexed by thread."""
    streams: dict[int, int] = {}
    for line in stdout.splitlines():
        thread, stream = (part.split("=", 1)[1] for part in line.split())
        streams[int(thread)] = int(stream)
    return [streams[t] for t in range(len(streams))]


@pytest.mark.parametrize(("n", "expected"), [(1, 0), (10, 135), (1000, 1498500)])
def test_add_matches_closed_form(mpsrun: Path, n: int, expected: int) -> None:
    # (0 + 1 + ... + n-1) * (1 + 2)
    result = run(mpsrun, "add", str(n))
    assert result.returncode == 0, result.stderr
    assert fields(result.stdout) == {"sum": str(expected)}


def test_scale_matches_closed_form(mpsrun: Path) -> None:
    result = run(mpsrun, "scale", "100", "-0.5")
    assert result.returncode == 0, result.stderr
    assert fields(result.stdout)["sum"] == str(-2475)


def test_pool_size_defaults_and_follows_environment(mpsrun: Path) -> None:
    default = run(mpsrun, "info")
    assert default.returncode == 0, default.stderr
    assert fields(default.stdout)["pool_size"] == str(DEFAULT_POOL_SIZE)
    custom = run(mpsrun, "info", pool_size="7")
    assert fields(custom.stdout)["pool_size"] == "7"


def test_threads_up_to_pool_size_get_distinct_streams(mpsrun: Path) -> None:
    result = run(mpsrun, "streams", "6", pool_size="6")
    assert result.returncode == 0, result.stderr
    assert sorted(stream_by_thread(result.stdout)) == list(range(6))


def test_extra_threads_share_streams_round_robin(mpsrun: Path) -> None:
    result = run(mpsrun, "streams", "10", pool_size="3")
    assert result.returncode == 0, result.stderr
    per_stream = Counter(stream_by_thread(result.stdout))
    # 10 threads over 3 streams: round-robin gives every stream 3 or 4 threads.
    assert set(per_stream) == {0, 1, 2}
    assert sorted(per_stream.values()) == [3, 3, 4]


def test_parallel_runs_commit_every_command(mpsrun: Path) -> None:
    result = run(mpsrun, "parallel", "8", "200")
    assert result.returncode == 0, result.stdout + result.stderr
    assert fields(result.stdout) == {"commands": "1600", "failures": "0"}


def test_concurrent_processes_agree(mpsrun: Path) -> None:
    # Several drivers at once, each with its own pool, must each see only their own commands.
    with ThreadPoolExecutor(max_workers=4) as executor:
        results = list(
            executor.map(lambda t: run(mpsrun, "parallel", str(t), "50", pool_size="2"), [1, 2, 3, 4])
        )
    for threads, result in zip([1, 2, 3, 4], results, strict=True):
        assert result.returncode == 0, result.stderr
        assert fields(result.stdout)["commands"] == str(threads * 50)


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["bogus"],
        ["add"],
        ["add", "0"],
        ["add", "-3"],
        ["add", "12abc"],
        ["scale", "5", "two"],
        ["scale", "5", "inf"],
        ["streams", "0"],
        ["parallel", "2"],
        ["parallel", "999999", "1"],
    ],
)
def test_bad_arguments_exit_2(mpsrun: Path, args: list[str]) -> None:
    result = run(mpsrun, *args)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith(("usage: mpsrun", "mpsrun: "))


@pytest.mark.parametrize("size", ["0", "65", "four"])
def test_bad_pool_size_exits_2(mpsrun: Path, size: str) -> None:
    result = run(mpsrun, "info", pool_size=size)
    assert result.returncode == 2
    assert "MPS_STREAM_POOL_SIZE" in result.stderr
