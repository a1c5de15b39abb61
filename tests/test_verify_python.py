"""`[verify] python`: the interpreter `{python}` means, so builds and linters go into the user's own environment.
Tested with a real venv made by `python -m venv` and real throwaway git repositories."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from test_verify import Project, run_cli, stage_toml

PRINT_PREFIX = stage_toml("which", "command", [["{python}", "-c", "import sys; print('prefix=' + sys.prefix)"]])


def test_python_names_a_venv_folder(tmp_path: Path) -> None:
    venv = tmp_path / "build-env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    project = Project(tmp_path)
    project.stages('[verify]\npython = "../build-env"\n\n' + PRINT_PREFIX)
    outcome = project.verify()
    stage = outcome.run.stages[0]
    assert stage.status == "passed", stage.reason
    assert stage.commands[0][0] == str(venv / "bin" / "python")
    assert f"prefix={venv}" in (outcome.run_dir / "logs/which.log").read_text()


def test_default_is_the_interpreter_running_mpspatch(tmp_path: Path) -> None:
    project = Project(tmp_path)
    project.stages(PRINT_PREFIX)
    stage = project.verify().run.stages[0]
    assert stage.commands[0][0] == sys.executable


def test_a_missing_interpreter_is_bad_input(tmp_path: Path) -> None:
    project = Project(tmp_path)
    project.stages('[verify]\npython = "envs/nowhere/bin/python"\n\n' + PRINT_PREFIX)
    done = run_cli("verify", cwd=project.dir)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "[verify].python is not an executable file (envs/nowhere/bin/python)" in lines[0]
    assert "Traceback" not in done.stderr
