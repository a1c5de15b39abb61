"""One writer per project, and stages that never outlive mpspatch: real processes, real signals, real git.

`mpspatch verify` runs a stage that records its pid in a file and sleeps; the tests then start a second
writer, or send the verify SIGTERM, SIGHUP or SIGKILL, and look at the processes that are left.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_verify import Project, stage_toml

MPSPATCH = [sys.executable, "-m", "mpspatch.cli"]


def gone(pid: int) -> bool:
    """No such process, or only a zombie nobody reaped yet."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] == "Z"


def wait_for(check, timeout: float = 30) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return False


def run_cli(project: Project, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*MPSPATCH, *args], cwd=project.dir, capture_output=True, text=True, check=False,
                          timeout=120)


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return Project(tmp_path)


@pytest.fixture
def sleeping(project: Project, tmp_path: Path) -> Iterator[tuple[Project, subprocess.Popen[str], int]]:
    """A running `mpspatch verify` whose stage has started; yields it with the stage's pid."""
    marker = tmp_path / "stage.pid"
    code = f"import os, time; open({str(marker)!r}, 'w').write(str(os.getpid())); time.sleep(120)"
    project.stages(stage_toml("slow", "command", [["{python}", "-c", code]], timeout=300))
    assert run_cli(project, "lock").returncode == 0
    verify = subprocess.Popen([*MPSPATCH, "verify"], cwd=project.dir, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, start_new_session=True)
    stage = 0
    try:
        assert wait_for(lambda: marker.is_file() and marker.read_text().strip()), "the stage never started"
        stage = int(marker.read_text())
        yield project, verify, stage
    finally:
        for pid in (verify.pid, stage):
            if pid and not gone(pid):
                os.kill(pid, signal.SIGKILL)
        verify.communicate(timeout=30)


def test_a_second_writer_is_refused_naming_the_holder(sleeping: tuple[Project, subprocess.Popen[str], int]) -> None:
    project, verify, _stage = sleeping
    for args in (("lock",), ("rebase", "--onto", "v1.0"), ("verify",)):
        refused = run_cli(project, *args)
        assert refused.returncode == 2, (args, refused.stdout, refused.stderr)
        assert f"another mpspatch (pid {verify.pid}, `mpspatch verify`) is changing this project" in refused.stderr
        assert "Traceback" not in refused.stderr
    assert run_cli(project, "regenerate", "--check").returncode in (0, 1)  # a reader is never refused


def test_sigkill_releases_the_lock_and_the_next_verify_kills_the_orphaned_stage(
        sleeping: tuple[Project, subprocess.Popen[str], int]) -> None:
    project, verify, stage = sleeping
    os.kill(verify.pid, signal.SIGKILL)
    verify.wait(timeout=30)
    assert not gone(stage)  # SIGKILL leaves mpspatch no chance: the stage lives on, for now
    assert run_cli(project, "lock").returncode == 0  # the kernel released the lock with the process
    project.stages(stage_toml("quick", "command", [["{python}", "-c", "pass"]]))
    again = run_cli(project, "verify")
    assert again.returncode == 0, again.stderr
    assert "left running by a verify that was killed" in again.stderr and f"pid {verify.pid}" in again.stderr
    assert wait_for(lambda: gone(stage), 10), "the orphaned stage is still running"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_term_and_hup_stop_the_stage_group(sleeping: tuple[Project, subprocess.Popen[str], int],
                                           sig: signal.Signals) -> None:
    project, verify, stage = sleeping
    os.kill(verify.pid, sig)
    verify.wait(timeout=30)
    assert verify.returncode == 130, verify.returncode
    assert wait_for(lambda: gone(stage), 10), "the stage outlived mpspatch"
    assert not (project.dir / ".mpspatch/stage-group").exists()
    assert run_cli(project, "lock").returncode == 0
