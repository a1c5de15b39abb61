"""Hunk-to-test selection: a `select_tests` stage passes only the test targets that [verify.test_map] maps the
patched paths to, through `{tests}`. A real pytest run on a real throwaway git repository."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support import write_config
from test_verify import Project, run_cli, stage_toml

from mpspatch.foundation.config import load_config
from mpspatch.foundation.errors import ConfigError
from mpspatch.verify.evidence import read_run

MPS_TESTS = "def test_pool():\n    assert True\n\n\ndef test_streams():\n    assert 1 + 1 == 2\n"
# Would fail the stage if it ran: the patch touches nothing this file covers.
OTHER_TESTS = "def test_sparse():\n    assert False, 'not selected, so never run'\n"

QUICK = stage_toml("quick", "tests", [["{python}", "-m", "pytest", "-q", "-p", "no:cacheprovider", "{tests}",
                                       "--junitxml=test-results/quick.xml"]],
                   junit="test-results/*.xml", select_tests=True)
TEST_MAP = """
[verify.test_map]
"aten/src/ATen/mps/**" = ["test/test_mps.py"]
"aten/src/ATen/native/sparse/**" = ["test/test_sparse.py"]
"""


def selecting_project(tmp_path: Path, patched: str) -> Project:
    project = Project(tmp_path)
    project.up.write("test/test_mps.py", MPS_TESTS)
    project.up.write("test/test_sparse.py", OTHER_TESTS)
    project.up.commit("upstream tests", tag="v1.1")
    project.up.write(patched, "// changed by the series\n")
    project.up.git("add", "-A")
    (project.dir / "patches/pool.patch").write_text(project.up.git("diff", "--cached", "--full-index", "v1.1"))
    project.up.git("reset", "-q", "--hard")
    write_config(project.dir, patches=["patches/pool.patch"], base="v1.1", extra=QUICK + TEST_MAP)
    return project


def test_only_the_mapped_test_file_runs(tmp_path: Path) -> None:
    project = selecting_project(tmp_path, "aten/src/ATen/mps/MPSStreamPool.mm")
    done = run_cli("verify", "--json", cwd=project.dir)
    assert done.returncode == 0, done.stdout + done.stderr
    (stage,) = json.loads(done.stdout)["stages"]
    assert stage["status"] == "passed", stage["reason"]
    assert stage["selected_tests"] == ["test/test_mps.py"]
    assert stage["counts"]["passed"] == 2 and stage["counts"]["failed"] == 0  # test_mps.py's two, nothing else
    recorded = read_run(Path(json.loads(done.stdout)["evidence"])).stages[0]
    assert recorded.selected_tests == ("test/test_mps.py",)
    (argv,) = recorded.commands
    assert "test/test_mps.py" in argv and "test/test_sparse.py" not in argv


def test_no_mapped_path_skips_the_stage_with_the_reason(tmp_path: Path) -> None:
    project = selecting_project(tmp_path, "torch/mps/__init__.py")
    (stage,) = json.loads(run_cli("verify", "--json", cwd=project.dir).stdout)["stages"]
    assert stage["status"] == "skipped"
    assert stage["reason"] == "no [verify.test_map] glob matches a patched path, so {tests} selects no test"


def test_tests_placeholder_needs_select_tests_and_a_map(tmp_path: Path) -> None:
    no_select = QUICK.replace("select_tests = true\n", "")
    write_config(tmp_path, patches=["p.patch"], extra=no_select + TEST_MAP)
    with pytest.raises(ConfigError, match="without select_tests = true"):
        load_config(tmp_path / "mpspatch.toml")
    write_config(tmp_path, patches=["p.patch"], extra=QUICK)
    with pytest.raises(ConfigError, match=r"needs a \[verify.test_map\]"):
        load_config(tmp_path / "mpspatch.toml")
    write_config(tmp_path, patches=["p.patch"], extra=QUICK + '[verify.test_map]\n"aten/[" = ["test/x.py"]\n')
    with pytest.raises(ConfigError, match="bad glob"):
        load_config(tmp_path / "mpspatch.toml")
