"""The user's git setup never reaches mpspatch's private repositories nor changes its results.

A HOME whose .gitconfig sets core.autocrlf, a hooks folder, core.splitIndex and merge.renormalize, plus
GIT_DIFF_OPTS in the environment: rebase, drift and status give what they give without them, no hook runs,
and the user's clone gains no split-index file. Real git, real CLI, real throwaway repositories.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from scenarios import Scenario, build_scenario

MPSPATCH = [sys.executable, "-m", "mpspatch.cli"]


def hostile_env(tmp: Path) -> dict[str, str]:
    home = tmp / "home"
    hooks = home / "hooks"
    hooks.mkdir(parents=True)
    marker = tmp / "hook-ran"
    for name in ("post-checkout", "pre-commit", "post-commit", "post-rewrite", "pre-rebase", "post-merge",
                 "reference-transaction", "post-index-change", "pre-auto-gc"):
        hook = hooks / name
        hook.write_text(f"#!/bin/sh\necho {name} >> {marker}\n")
        hook.chmod(0o755)
    (home / ".gitconfig").write_text(
        "[core]\n\tautocrlf = true\n\thooksPath = " + str(hooks) + "\n\tsplitIndex = true\n"
        "[merge]\n\trenormalize = true\n[diff]\n\tnoprefix = true\n\tcontext = 1\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update({"HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"), "GIT_DIFF_OPTS": "-u0"})
    return env


def run(scenario: Scenario, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*MPSPATCH, *args], cwd=scenario.project, capture_output=True, text=True, check=False,
                          timeout=120, env=env)


def outcome(scenario: Scenario, env: dict[str, str]) -> dict[str, object]:
    """What the commands say and write, with the scenario's own folder taken out of it."""
    found: dict[str, object] = {}
    for name, args in (("drift", ("drift", "--onto", "v1.3", "--json")), ("status", ("status", "--json")),
                       ("rebase", ("rebase", "--onto", "v1.1", "--json"))):
        result = run(scenario, env, *args)
        found[name] = (result.returncode, result.stdout.replace(str(scenario.root), "ROOT"))
    found["patches"] = [p.read_bytes() for p in scenario.patches]
    found["lock-base"] = json.loads((scenario.project / "patches/series.lock").read_text())["base"]
    return found


def test_global_config_hooks_and_git_variables_change_nothing(tmp_path: Path) -> None:
    clean = build_scenario(tmp_path / "clean")
    hostile = build_scenario(tmp_path / "hostile")
    env = hostile_env(tmp_path)
    plain = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    assert run(clean, plain, "lock").returncode == 0 and run(hostile, env, "lock").returncode == 0
    expected = outcome(clean, plain)
    got = outcome(hostile, env)
    assert got["rebase"] == expected["rebase"] and got["rebase"][0] == 0  # type: ignore[index]
    assert got == expected
    assert not (tmp_path / "hook-ran").exists(), (tmp_path / "hook-ran").read_text()
    assert not list((hostile.checkout / ".git").glob("sharedindex.*"))
    assert b"\r\n" not in b"".join(got["patches"])  # type: ignore[arg-type]
