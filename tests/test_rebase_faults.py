"""Faults around `mpspatch rebase`: a reset or killed git rebase, a git that fails without conflicts, kills of
mpspatch itself (real SIGKILL), and `lock` after a rebase. Every test drives the real CLI on real git repositories."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from scenarios import Scenario, build_scenario

from mpspatch.operations.rebase import INTERRUPT_ENV

KILL_ENV = "MPSPATCH_TEST_KILL"  # mpspatch sends itself SIGKILL at the named point

MPSPATCH = [sys.executable, "-m", "mpspatch.cli"]


def run_cli(scenario: Scenario, *args: str, env: dict[str, str] | None = None,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
    merged = {k: v for k, v in os.environ.items() if k not in (INTERRUPT_ENV, KILL_ENV)}
    merged.update(env or {})
    return subprocess.run([*MPSPATCH, *args], cwd=scenario.project, capture_output=True, text=True, check=False,
                          timeout=timeout, env=merged)


def digests(scenario: Scenario) -> dict[str, str]:
    files = [*scenario.patches, scenario.project / "patches" / "series.lock"]
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in files if p.exists()}


def resolve_keeping_both(path: Path) -> None:
    kept = [line for line in path.read_text().splitlines(keepends=True)
            if not line.startswith(("<<<<<<<", "=======", ">>>>>>>"))]
    path.write_text("".join(kept))


def stopped(scenario: Scenario, *args: str) -> dict[str, object]:
    result = run_cli(scenario, "rebase", *args, "--json")
    assert result.returncode == 1, result.stderr
    data: dict[str, object] = json.loads(result.stdout)
    return data


def git_dir(worktree: Path, name: str) -> Path:
    out = subprocess.run(["git", "-C", str(worktree), "rev-parse", "--path-format=absolute", "--git-path", name],
                         capture_output=True, text=True, check=True).stdout
    return Path(out.strip())


@pytest.fixture
def scenario(tmp_path: Path) -> Scenario:
    built = build_scenario(tmp_path)
    assert run_cli(built, "lock").returncode == 0
    return built


def test_continue_after_the_worktree_was_reset_refuses_and_abort_restores(scenario: Scenario) -> None:
    """A reset pick (what a killed git rebase leaves) must not be skipped into a 0-byte patch."""
    before = digests(scenario)
    data = stopped(scenario, "--onto", "v1.3")
    worktree = Path(str(data["worktree"]))
    subprocess.run(["git", "-C", str(worktree), "reset", "-q", "--hard"], check=True)
    result = run_cli(scenario, "rebase", "--continue")
    for _ in range(3):  # were a later stop reported, resolve it: the end result is what must not lose the patch
        if result.returncode != 1:
            break
        for path in worktree.rglob("*"):
            if path.is_file() and ".git" not in path.parts and "<<<<<<<" in path.read_text(errors="replace"):
                resolve_keeping_both(path)
        result = run_cli(scenario, "rebase", "--continue")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "drops all of its changes" in result.stderr and "upstream does not have them" in result.stderr
    assert scenario.patches[0].name in result.stderr and "Traceback" not in result.stderr
    assert digests(scenario) == before and all(p.stat().st_size for p in scenario.patches)
    assert (scenario.project / ".mpspatch/rebase.json").exists()
    again = run_cli(scenario, "rebase", "--continue")  # refused again, never half-done
    assert again.returncode == 2 and digests(scenario) == before
    aborted = run_cli(scenario, "rebase", "--abort")
    assert aborted.returncode == 0, aborted.stderr
    assert digests(scenario) == before and not (scenario.project / ".mpspatch/rebase.json").exists()


def test_continue_reports_gits_error_instead_of_retrying_forever(scenario: Scenario) -> None:
    """`git rebase --continue` failing with no unmerged path (its message file gone) used to be retried in a loop."""
    before = digests(scenario)
    data = stopped(scenario, "--onto", "v1.3")
    worktree = Path(str(data["worktree"]))
    for item in data["conflicts"]:  # type: ignore[attr-defined]
        resolve_keeping_both(worktree / item["path"])
    (git_dir(worktree, "rebase-merge") / "message").unlink()
    try:
        result = run_cli(scenario, "rebase", "--continue", timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail("rebase --continue did not return within 60 s")
    assert result.returncode == 2, result.stderr
    assert "`git rebase --continue` made no progress" in result.stderr
    assert "could not read log file" in result.stderr and "rebase-merge/message" in result.stderr
    assert digests(scenario) == before
    assert run_cli(scenario, "rebase", "--abort").returncode == 0
    assert digests(scenario) == before


@pytest.mark.parametrize("point", ["before-write", "mid-write"])
def test_sigkill_while_writing_then_continue_or_abort(scenario: Scenario, point: str) -> None:
    before = digests(scenario)
    killed = run_cli(scenario, "rebase", "--onto", "v1.2", env={KILL_ENV: point})
    assert killed.returncode == -9, killed.stderr
    aborted = run_cli(scenario, "rebase", "--abort")
    assert aborted.returncode == 0, aborted.stderr
    assert digests(scenario) == before

    assert run_cli(scenario, "rebase", "--onto", "v1.2", env={KILL_ENV: point}).returncode == -9
    finished = run_cli(scenario, "rebase", "--continue", "--json")
    assert finished.returncode == 0, finished.stderr
    assert json.loads(finished.stdout)["status"] == "rebased"
    assert all(p.stat().st_size for p in scenario.patches)
    lock = json.loads((scenario.project / "patches/series.lock").read_text())
    assert lock["base"] == scenario.tags["v1.2"]


def test_every_previous_version_is_kept_numbered(scenario: Scenario) -> None:
    first = scenario.patches[0].read_bytes()
    assert run_cli(scenario, "rebase", "--onto", "v1.1").returncode == 0
    second = scenario.patches[0].read_bytes()
    assert run_cli(scenario, "rebase", "--onto", "v1.2").returncode == 0
    previous = scenario.project / ".mpspatch/previous"
    name = scenario.patches[0].name
    assert (previous / f"{name}.1").read_bytes() == first
    assert (previous / f"{name}.2").read_bytes() == second
    assert (previous / "series.lock.1").is_file() and (previous / "series.lock.2").is_file()


def test_lock_after_a_rebase_keeps_the_rebased_base(scenario: Scenario) -> None:
    assert run_cli(scenario, "rebase", "--onto", "v1.1").returncode == 0
    relock = run_cli(scenario, "lock", "--json")
    assert relock.returncode == 0, relock.stderr
    lock = json.loads((scenario.project / "patches/series.lock").read_text())
    assert lock["base"] == scenario.tags["v1.1"] and lock["base_ref"] == "v1.1"
    assert run_cli(scenario, "lock", "--base", "v1.0").returncode == 0  # --base still moves it, on purpose
    assert json.loads((scenario.project / "patches/series.lock").read_text())["base"] == scenario.tags["v1.0"]
