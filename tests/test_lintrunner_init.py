"""`lintrunner init` one linter at a time, with the real lintrunner wheel on real throwaway git repositories.

Stand-ins declared here: the checkout's `.lintrunner.toml` names two linters whose initializers and adapters
are small Python scripts written by the test. CLANGFORMAT's initializer prints what an offline S3 download
prints (a urllib name-resolution error) and exits 1, without touching the network; its adapter then reports
`command-failed`, as PyTorch's adapters do when their binary is missing. RUFF's initializer writes a marker
file, and its adapter reports one warning per patched Python file once the marker is there.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from test_verify import DEFAULT_PATCH, Project, stage_toml

from mpspatch.verify.stages.lintrunner import failure_cause, per_linter

BIN = Path(sys.executable).parent
PY = sys.executable

LINTRUNNER_TOML = f"""
[[linter]]
code = 'CLANGFORMAT'
include_patterns = ['**/*.mm']
command = ['{PY}', 'tools/clangformat_adapter.py', '--', '@{{{{PATHSFILE}}}}']
init_command = ['{PY}', 'tools/clangformat_init.py', '--dry-run={{{{DRYRUN}}}}']

[[linter]]
code = 'RUFF'
include_patterns = ['**/*.py']
command = ['{PY}', 'tools/ruff_adapter.py', '--', '@{{{{PATHSFILE}}}}']
init_command = ['{PY}', 'tools/ruff_init.py', '--dry-run={{{{DRYRUN}}}}']
"""
CLANGFORMAT_INIT = """import sys
if "--dry-run=1" in sys.argv:
    sys.exit(0)
print("Downloading clang-format to .lintbin/clang-format", file=sys.stderr)
print("urllib.error.URLError: <urlopen error [Errno -3] Temporary failure in name resolution>", file=sys.stderr)
sys.exit(1)
"""
CLANGFORMAT_ADAPTER = """import json
print(json.dumps({"path": None, "line": None, "char": None, "code": "CLANGFORMAT", "severity": "error",
                  "name": "command-failed", "original": None, "replacement": None,
                  "description": "Failed due to FileNotFoundError: .lintbin/clang-format"}))
"""
RUFF_INIT = """import pathlib, sys
if "--dry-run=1" not in sys.argv:
    pathlib.Path("tools/ruff-installed").write_text("ok")
"""
RUFF_ADAPTER = """import argparse, json, pathlib
parser = argparse.ArgumentParser(fromfile_prefix_chars="@")
parser.add_argument("paths", nargs="*")
if not pathlib.Path("tools/ruff-installed").exists():
    print(json.dumps({"path": None, "line": None, "code": "RUFF", "severity": "error", "name": "command-failed",
                      "description": "ruff is not installed"}))
else:
    for path in parser.parse_args().paths:
        print(json.dumps({"path": path, "line": 1, "code": "RUFF", "severity": "warning", "name": "E999",
                          "description": "seen by ruff"}))
"""


@pytest.mark.skipif(not (BIN / "lintrunner").exists(), reason="the lintrunner wheel is not installed in this venv")
def test_one_failing_initializer_does_not_stop_the_others(tmp_path: Path) -> None:
    project = Project(tmp_path)
    for path, text in {".lintrunner.toml": LINTRUNNER_TOML, "tools/clangformat_init.py": CLANGFORMAT_INIT,
                       "tools/clangformat_adapter.py": CLANGFORMAT_ADAPTER, "tools/ruff_init.py": RUFF_INIT,
                       "tools/ruff_adapter.py": RUFF_ADAPTER}.items():
        project.up.write(path, text)
    project.up.commit("two linters")
    project.up.git("tag", "-f", "v1.0")
    project.set_patch(DEFAULT_PATCH)
    project.stages(stage_toml("lint", "lint", [["lintrunner", "init"],
                                               ["lintrunner", "--output", "json", "{patched:**/*.py,**/*.mm}"]],
                              env={"XDG_DATA_HOME": str(tmp_path / "xdg")}))
    outcome = project.verify()
    result = outcome.run.stages[0]
    # Each linter initialized on its own: the evidence shows the commands as run.
    assert result.commands[:2] == (("lintrunner", "init", "--take", "CLANGFORMAT"),
                                   ("lintrunner", "init", "--take", "RUFF"))
    assert result.status == "error"
    assert result.reason.startswith("1 linter did not run (CLANGFORMAT: `lintrunner init` failed: download blocked: "
                                    "no network (urllib.error.URLError: <urlopen error [Errno -3] Temporary failure")
    assert "command-failed" not in result.reason
    assert result.details[0] == "lintrunner init: initialized RUFF; not initialized: CLANGFORMAT"
    counts = dict(result.counts)
    assert counts["linters_initialized"] == 1 and counts["linters_not_initialized"] == 1
    # RUFF was installed and ran: its finding is there.
    assert counts["warning"] == 1
    assert any("torch/mps/__init__.py:1: warning (preexisting) RUFF/E999: seen by ruff" in d for d in result.details)


def test_only_a_bare_lintrunner_init_is_split(tmp_path: Path) -> None:
    (tmp_path / ".lintrunner.toml").write_text(LINTRUNNER_TOML)
    assert per_linter(["lintrunner", "init"], tmp_path) == (("lintrunner", "init", "--take", "CLANGFORMAT"),
                                                           ("lintrunner", "init", "--take", "RUFF"))
    assert per_linter(["lintrunner", "init", "--take", "RUFF"], tmp_path) == (("lintrunner", "init", "--take",
                                                                               "RUFF"),)
    assert per_linter(["lintrunner", "init"], tmp_path / "elsewhere") == (("lintrunner", "init"),)


def test_the_cause_is_the_initializers_last_line() -> None:
    log = ("[2026-11-29T10:57:33Z INFO lintrunner::linter] Initializing linter: 'X'\n"
           "pip: ERROR: permission denied: /usr/lib/python3/site-packages\n"
           "error:        lint initializer for 'X' failed with non-zero exit code\n\n       Stack backtrace:\n")
    assert failure_cause(log) == "pip: ERROR: permission denied: /usr/lib/python3/site-packages"


@pytest.mark.skipif(not (BIN / "lintrunner").exists(), reason="the lintrunner wheel is not installed in this venv")
def test_lintrunner_runs_on_a_sparse_tree_holding_the_stage_s_sparse_folders(tmp_path: Path) -> None:
    # PyTorch's layout: .lintrunner.toml at the top, the linters' init and adapter scripts under tools/linter/.
    project = Project(tmp_path)
    toml = f"""
[[linter]]
code = 'RUFF'
include_patterns = ['**/*.py']
command = ['{PY}', 'tools/linter/adapters/ruff_adapter.py', '--', '@{{{{PATHSFILE}}}}']
init_command = ['{PY}', 'tools/linter/adapters/ruff_init.py', '--dry-run={{{{DRYRUN}}}}']
"""
    for path, text in {".lintrunner.toml": toml, "tools/linter/adapters/ruff_init.py": RUFF_INIT,
                       "tools/linter/adapters/ruff_adapter.py": RUFF_ADAPTER,
                       "c10/core/Allocator.h": "// not patched, not needed by the linter\n"}.items():
        project.up.write(path, text)
    project.up.commit("a linter under tools/linter")
    project.up.git("tag", "-f", "v1.0")
    project.set_patch(DEFAULT_PATCH)
    project.stages(stage_toml("lint", "lint", [["lintrunner", "init"],
                                               ["lintrunner", "--output", "json", "{patched:**/*.py}"]],
                              env={"XDG_DATA_HOME": str(tmp_path / "xdg")}, full_tree=False,
                              sparse=["tools/linter/**"]))
    outcome = project.verify()
    result = outcome.run.stages[0]
    counts = dict(result.counts)
    assert counts["linters_initialized"] == 1 and counts["warning"] == 1, result.reason
    assert result.status != "error"
    assert (project.tree / "tools/linter/adapters/ruff_adapter.py").is_file()
    assert (project.tree / ".lintrunner.toml").is_file()
    assert not (project.tree / "c10/core/Allocator.h").exists()  # the tree stayed sparse
