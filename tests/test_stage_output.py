"""What verify keeps of a stage's output: secrets redacted, bounded memory and size, no false passes.

Stages are real programs (sh, python) run by the installed CLI on real throwaway git repositories; no
stand-in programs are used.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_verify import Project, run_cli, stage_toml


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return Project(tmp_path)


# ------------------------------------------------------------------------------------------ false passes


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "-5"])
def test_a_timeout_that_is_not_a_positive_number_is_a_config_error(project: Project, value: str) -> None:
    project.stages(stage_toml("ok", "command", [["true"]]).replace("\n\n", f"\ntimeout = {value}\n\n"))
    result = run_cli("verify", "--json", cwd=project.dir)
    assert result.returncode == 2, result.stderr
    assert "[stages.ok].timeout must be a positive number of seconds" in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize("kind", ["command", "tsan"])
def test_a_malformed_counts_line_is_an_error_not_a_pass(project: Project, kind: str) -> None:
    project.stages(stage_toml("stress", kind, [["sh", "-c", "echo 'mpspatch-counts: rounds=20 crashes=one'"]]))
    result = run_cli("verify", "--json", cwd=project.dir)
    assert result.returncode == 1, result.stderr
    (stage,) = json.loads(result.stdout)["stages"]
    assert stage["status"] == "error"
    assert "malformed counts line 'mpspatch-counts: rounds=20 crashes=one'" in stage["reason"]


