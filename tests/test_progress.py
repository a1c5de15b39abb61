"""Step progress for rebase, drift and split: the operations name their steps through a callback, and the edge
draws them only on a terminal (never in a pipe, a CI log or `--json`)."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest
from scenarios import Scenario, build_scenario
from support import git_env
from test_split import build_project

from mpspatch.foundation.config import load_config
from mpspatch.foundation.progress import Steps
from mpspatch.model.workspace import Workspace
from mpspatch.operations import drift, rebase, split
from mpspatch.views import console
from mpspatch.views.progress import step_progress

MPSPATCH = [sys.executable, "-m", "mpspatch.cli"]


class Recorder(Steps):
    def __init__(self) -> None:
        self.steps: list[str] = []

    def step(self, text: str) -> None:
        self.steps.append(text)


@pytest.fixture
def scenario(tmp_path: Path) -> Scenario:
    return build_scenario(tmp_path, "two")


def test_drift_names_its_steps_with_counts(scenario: Scenario) -> None:
    steps = Recorder()
    report = drift.compute_drift(Workspace(load_config(scenario.config)), "v1.3", steps)
    onto = scenario.tags["v1.3"]
    assert steps.steps == [
        "resolving the target",
        "building the series (2 patches)",
        f"forecasting the merge onto {onto[:12]}",
        f"reading upstream history ({len(report.upstream)} commits)",
    ]
    assert report.upstream, "the scenario has upstream commits touching the series"


def test_rebase_names_its_steps(scenario: Scenario) -> None:
    steps = Recorder()
    rebase.start(Workspace(load_config(scenario.config)), "v1.1", steps)
    assert steps.steps == [
        "resolving the target",
        "building the series (2 patches)",
        f"rebasing onto v1.1 ({scenario.tags['v1.1'][:12]})",
    ]


def test_split_names_its_steps(tmp_path: Path) -> None:
    project, _ = build_project(tmp_path)
    steps = Recorder()
    result = split.split_series(Workspace(load_config(project / "mpspatch.toml")), steps=steps)
    parts = len(result.stack.parts)
    assert steps.steps[0] == "building the series (2 patches)"
    assert steps.steps[1] == "planning the parts (attempt 1)"
    assert steps.steps[-1] == f"proving the stack ({parts} parts)"


@pytest.mark.parametrize("args", [("drift", "--onto", "v1.3"), ("drift", "--onto", "v1.3", "--json"),
                                  ("rebase", "--onto", "v1.1", "--json")])
def test_piped_runs_print_no_progress(scenario: Scenario, args: tuple[str, ...]) -> None:
    result = subprocess.run([*MPSPATCH, *args], cwd=scenario.project, capture_output=True, text=True,
                            env=git_env(), timeout=120, check=False)
    assert result.returncode in (0, 1), result.stderr
    for step in ("resolving the target", "building the series", "forecasting the merge", "rebasing onto"):
        assert step not in result.stderr and step not in result.stdout


def test_a_terminal_gets_a_spinner_naming_the_step(monkeypatch: pytest.MonkeyPatch) -> None:
    from rich.console import Console

    screen = io.StringIO()
    monkeypatch.setattr(console, "_err", Console(file=screen, force_terminal=True, width=100))
    with step_progress("drift") as steps:
        assert type(steps) is not Steps
        steps.step("forecasting the merge [onto] x")
    assert "drift: forecasting the merge [onto] x" in screen.getvalue()
    screen.truncate(0)
    with step_progress("drift", as_json=True) as steps:
        assert type(steps) is Steps
    monkeypatch.setattr(console, "_err", Console(file=screen, force_terminal=False))
    with step_progress("drift") as steps:
        assert type(steps) is Steps
