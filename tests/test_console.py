"""Output meant for logs: with stdout and stderr piped (CI, `| tee`, `> file`), no path is cut and no note wraps.

Each command runs in a real subprocess with its output captured, on a project whose paths are longer than the
80 columns rich assumes for a stream that is not a terminal.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from support import Repo, cpp_source, write_config

MPSPATCH = [sys.executable, "-m", "mpspatch.cli"]

# Each longer than 80 columns on its own, as real PyTorch paths often are once indented in a table.
LONG_MM = "aten/src/ATen/native/mps/operations/stream_pool/MPSStreamPoolCommandBufferReuseAcrossStreams.mm"
LONG_H = "aten/src/ATen/mps/detail/stream_pool/MPSStreamPoolHooksInterfaceForTheDownstreamSeries.h"
LONG_PATCH = "patches/0001-reuse-command-buffers-across-the-mps-stream-pool-without-reallocating-them.patch"


def run_piped(*args: str, cwd: Path, columns: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES") and not k.startswith("MPSPATCH_")}
    if columns is not None:
        env["COLUMNS"] = columns
    return subprocess.run([*MPSPATCH, *args], cwd=cwd, capture_output=True, text=True, check=False, timeout=120,
                          env=env)


@pytest.fixture
def long_paths(tmp_path: Path) -> Path:
    """A one-patch series over two long paths; upstream `main` changes one of them after the base."""
    assert min(len(LONG_MM), len(LONG_H), len(LONG_PATCH)) > 80
    upstream = Repo.create(tmp_path / "upstream")
    upstream.write(LONG_MM, cpp_source("MPSStreamPool.mm", 6))
    upstream.write(LONG_H, "#pragma once\nnamespace at::mps {\nint hooks();\n}\n")
    upstream.commit("base", tag="v1.0")
    upstream.write(LONG_MM, cpp_source("MPSStreamPool.mm", 6, variant=" reused"))
    upstream.write(LONG_H, "#pragma once\nnamespace at::mps {\nint hooks();\nint pool_hooks();\n}\n")
    upstream.git("add", "-A")
    patch = upstream.git("diff", "--cached", "--full-index", "v1.0")
    upstream.git("reset", "-q", "--hard")
    upstream.write(LONG_MM, cpp_source("MPSStreamPool.mm", 6, variant=" upstream"))
    upstream.commit("Rework the stream pool command buffers (#4242)")
    project = tmp_path / "project"
    (project / LONG_PATCH).parent.mkdir(parents=True)
    (project / LONG_PATCH).write_text(patch)
    write_config(project, patches=[LONG_PATCH])
    return project


def lines_of(text: str) -> list[str]:
    return text.splitlines()


def assert_whole(text: str, *needles: str) -> None:
    """Every needle appears unbroken on one line of `text`."""
    for needle in needles:
        assert any(needle in line for line in lines_of(text)), f"{needle!r} is cut in:\n{text}"


@pytest.mark.parametrize("columns", [None, "80"])
def test_stats_verbose_piped_keeps_every_path_on_one_line(long_paths: Path, columns: str | None) -> None:
    result = run_piped("stats", "-v", cwd=long_paths, columns=columns)
    assert result.returncode == 0, result.stderr
    assert_whole(result.stdout, f"Core MPS: {LONG_H}", f"Operations: {LONG_MM}")


@pytest.mark.parametrize("columns", [None, "80"])
def test_drift_piped_keeps_every_path_on_one_line(long_paths: Path, columns: str | None) -> None:
    result = run_piped("drift", "--onto", "main", cwd=long_paths, columns=columns)
    assert result.returncode in (0, 1), result.stderr
    assert_whole(result.stdout, LONG_MM, LONG_H, "Rework the stream pool command buffers (#4242)")
    # the closing verdict is one line too
    assert any(line.startswith(("no conflicts predicted", "1 conflict(s) predicted")) and line.rstrip().endswith(
        ("onto main", ".patch")) for line in lines_of(result.stdout)), result.stdout


@pytest.mark.parametrize("columns", [None, "80"])
def test_status_piped_keeps_paths_and_gap_lines_whole(long_paths: Path, columns: str | None) -> None:
    gaps = json.loads(run_piped("status", "--json", cwd=long_paths, columns=None).stdout)["gaps"]
    assert gaps
    result = run_piped("status", cwd=long_paths, columns=columns)
    assert result.returncode == 0, result.stderr
    assert_whole(result.stdout, LONG_PATCH, *(f"[{g['id']}] {g['title']}: {g['reason']}" for g in gaps))
