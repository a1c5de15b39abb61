"""Shell completion through the installed console script: typer's --show-completion and the completion
protocol (the `_MPSPATCH_COMPLETE` environment variable) answer with mpspatch's commands."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

MPSPATCH = [sys.executable, "-m", "mpspatch.cli"]


def test_bash_completion_script_and_candidates(tmp_path: Path) -> None:
    script = subprocess.run([*MPSPATCH, "--show-completion", "bash"], cwd=tmp_path, capture_output=True,
                            text=True, check=False, timeout=60)
    assert script.returncode == 0 and "_mpspatch_completion" in script.stdout
    env = {**os.environ, "_MPSPATCH_COMPLETE": "complete_bash", "COMP_WORDS": "mpspatch st", "COMP_CWORD": "1"}
    done = subprocess.run([*MPSPATCH], cwd=tmp_path, env=env, capture_output=True, text=True, check=False,
                          timeout=60)
    assert done.returncode == 0 and done.stdout.split() == ["stats", "status"]
