"""Regressions across runs: after the base moves, which test failures, TSan reports and lint findings are new
since the newest earlier passing run. Real throwaway git repositories, real pytest with JUnit XML, real g++
with -fsanitize=thread and the real clang-format wheel."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
from support import write_config
from test_verify import CLANG_FORMAT_STYLE, Project, run_cli, stage_toml

from mpspatch.verify.evidence import read_run
from mpspatch.verify.stages.tsan import tsan_signature

BIN = Path(sys.executable).parent

UPSTREAM_TESTS = '''
from mps_lib import scale

def test_scale():
    assert scale(2) == 4

def test_identity():
    assert scale(0) == 0
'''


def move_base(project: Project, files: dict[str, str], tag: str, stages: str) -> None:
    """Upstream lands `files` as `tag`, and the project's base moves there (the patch still applies)."""
    for path, content in files.items():
        project.up.write(path, content)
    project.up.commit(f"upstream {tag}", tag=tag)
    write_config(project.dir, patches=["patches/pool.patch"], base=tag, extra=stages)


def pytest_stage() -> str:
    return stage_toml("tests", "tests", [["{python}", "-m", "pytest", "-q", "-p", "no:cacheprovider",
                                          "test/test_scale.py", "--junitxml=test-results/r.xml"]],
                      junit="test-results/*.xml", min_tests=2)


def test_a_test_that_starts_failing_after_a_base_change_is_a_regression(tmp_path: Path) -> None:
    project = Project(tmp_path)
    move_base(project, {"mps_lib.py": "def scale(x):\n    return 2 * x\n", "test/test_scale.py": UPSTREAM_TESTS},
              "v1.1", pytest_stage())
    first = run_cli("verify", "--json", cwd=project.dir)
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["regressions"] == []
    first_id = json.loads(first.stdout)["run_id"]

    move_base(project, {"mps_lib.py": "def scale(x):\n    return 2 * x + 1\n"}, "v1.2", pytest_stage())
    second = run_cli("verify", "--json", cwd=project.dir)
    assert second.returncode == 1, second.stderr
    data = json.loads(second.stdout)
    assert data["stages"][0]["status"] == "failed"
    assert sorted(r["id"] for r in data["regressions"]) == ["test.test_scale::test_identity",
                                                            "test.test_scale::test_scale"]
    assert {(r["stage"], r["kind"], r["since_run"]) for r in data["regressions"]} == {("tests", "test", first_id)}
    recorded = read_run(Path(data["evidence"]))
    assert [r.id for r in recorded.regressions] == [r["id"] for r in data["regressions"]]
    assert "Regressions" in run_cli("verify", cwd=project.dir).stdout  # the table names them too

    # Run again on the same base: the reference is still the passing run on the previous base, and a failure
    # already there is no regression of this base only.
    again = json.loads(run_cli("verify", "--json", cwd=project.dir).stdout)
    assert {r["since_run"] for r in again["regressions"]} == {first_id}


def test_no_regression_without_an_earlier_passing_run(tmp_path: Path) -> None:
    project = Project(tmp_path)
    move_base(project, {"mps_lib.py": "def scale(x):\n    return 3 * x\n", "test/test_scale.py": UPSTREAM_TESTS},
              "v1.1", pytest_stage())
    failing = json.loads(run_cli("verify", "--json", cwd=project.dir).stdout)
    assert failing["stages"][0]["status"] == "failed" and failing["regressions"] == []


RACE_FREE = "#include <thread>\nint main() { std::thread a([] {}); a.join(); return 0; }\n"
RACY = (
    "#include <thread>\nstatic int shared = 0;\nvoid bump() { for (int i = 0; i < 1000; ++i) ++shared; }\n"
    "int main() { std::thread a(bump);\n  std::thread b(bump); a.join(); b.join(); return 0; }\n"
)


def tsan_stage() -> str:
    return stage_toml("tsan", "tsan", [["mkdir", "-p", "out"],
                                       ["g++", "-fsanitize=thread", "-g", "harness/race.cpp", "-o", "out/race"],
                                       ["out/race"]])


@pytest.mark.skipif(shutil.which("g++") is None, reason="g++ is not installed")
def test_a_race_introduced_by_a_rebase_is_a_regression(tmp_path: Path) -> None:
    project = Project(tmp_path)
    move_base(project, {"harness/race.cpp": RACE_FREE}, "v1.1", tsan_stage())
    first = json.loads(run_cli("verify", "--json", cwd=project.dir).stdout)
    assert first["stages"][0]["status"] == "passed", first["stages"][0]["reason"]
    move_base(project, {"harness/race.cpp": RACY}, "v1.2", tsan_stage())
    second = json.loads(run_cli("verify", "--json", cwd=project.dir).stdout)
    assert second["stages"][0]["status"] == "failed"
    (regression,) = second["regressions"]
    assert regression["kind"] == "race" and regression["since_run"] == first["run_id"]
    assert regression["id"] == "data race in bump() (race.cpp)"


def test_tsan_signature_drops_line_numbers_and_folders() -> None:
    summary = "SUMMARY: ThreadSanitizer: data race /tree/aten/src/ATen/mps/MPSStream.mm:120:7 in at::mps::pool()"
    assert tsan_signature(summary) == "data race in at::mps::pool() (MPSStream.mm)"


@pytest.mark.skipif(not (BIN / "clang-format").exists(), reason="the clang-format wheel is not installed")
def test_a_new_lint_finding_after_a_rebase_is_a_regression(tmp_path: Path) -> None:
    project = Project(tmp_path)
    fmt = stage_toml("fmt", "lint", [["clang-format", "--dry-run", "--Werror", "{patched:**/*.mm}"]],
                     full_tree=False)
    move_base(project, {".clang-format": CLANG_FORMAT_STYLE}, "v1.1", fmt)
    first = json.loads(run_cli("verify", "--json", cwd=project.dir).stdout)
    assert first["stages"][0]["status"] == "passed", first["stages"][0]["reason"]
    # The rebased series brings a badly formatted line (as a conflict resolution might).
    project.up.write("aten/src/ATen/mps/MPSStreamPool.mm", "namespace at::mps {\nint  pool_size( ){return 32;}\n}\n")
    project.up.git("add", "-A")
    (project.dir / "patches/pool.patch").write_text(project.up.git("diff", "--cached", "--full-index", "v1.1"))
    project.up.git("reset", "-q", "--hard")
    move_base(project, {"docs/unrelated/readme.txt": "newer docs\n"}, "v1.2", fmt)
    second = json.loads(run_cli("verify", "--json", cwd=project.dir).stdout)
    assert second["stages"][0]["status"] == "failed", second["stages"][0]["reason"]
    assert second["regressions"] == [{
        "stage": "fmt", "kind": "lint", "since_run": first["run_id"],
        "id": "aten/src/ATen/mps/MPSStreamPool.mm: CLANGFORMAT: code should be clang-formatted",
    }]


def status(project: Project) -> dict[str, object]:
    done = run_cli("status", "--json", cwd=project.dir)
    assert done.returncode in (0, 1), done.stderr
    data: dict[str, object] = json.loads(done.stdout)
    return data


def test_a_regression_blocks_ready_and_a_failure_already_there_is_preexisting(tmp_path: Path) -> None:
    """Three bases: all pass; then one test breaks (a regression, NOT READY in status and the audit); then the
    next base breaks a second test while the first still fails: only the second is a regression."""
    project = Project(tmp_path)
    move_base(project, {"mps_lib.py": "def scale(x):\n    return 2 * x\n", "test/test_scale.py": UPSTREAM_TESTS},
              "v1.1", pytest_stage())
    assert run_cli("lock", "--base", "v1.1", cwd=project.dir).returncode == 0
    first = json.loads(run_cli("verify", "--json", cwd=project.dir).stdout)
    assert first["stages"][0]["status"] == "passed"
    before = status(project)
    assert before["regressions"] == [] and before["preexisting"] == []
    assert "check:no-regressions" not in {g["id"] for g in before["gaps"]}  # type: ignore[union-attr,index]

    move_base(project, {"mps_lib.py": "def scale(x):\n    return 2 * x + (1 if x == 0 else 0)\n"}, "v1.2",
              pytest_stage())
    assert run_cli("lock", "--base", "v1.2", cwd=project.dir).returncode == 0
    second = json.loads(run_cli("verify", "--json", cwd=project.dir).stdout)
    assert [r["id"] for r in second["regressions"]] == ["test.test_scale::test_identity"]
    now = status(project)
    assert now["ready"] is False
    assert now["regressions"] == [{"stage": "tests", "kind": "test", "id": "test.test_scale::test_identity",
                                   "since_run": first["run_id"]}]
    gap = next(g for g in now["gaps"] if g["id"] == "check:no-regressions")  # type: ignore[union-attr,index]
    assert gap["blocking"] is True and "test.test_scale::test_identity" in gap["reason"]
    text = run_cli("status", cwd=project.dir).stdout
    assert "Regressions" in text and "test.test_scale::test_identity (passed in run " + first["run_id"] in text

    move_base(project, {"mps_lib.py": "def scale(x):\n    return 2 * x + 1\n"}, "v1.3", pytest_stage())
    assert run_cli("lock", "--base", "v1.3", cwd=project.dir).returncode == 0
    third = json.loads(run_cli("verify", "--json", cwd=project.dir).stdout)
    assert third["regressions"] == [{"stage": "tests", "kind": "test", "id": "test.test_scale::test_scale",
                                     "since_run": first["run_id"]}]
    assert third["preexisting"] == [{"stage": "tests", "kind": "test", "id": "test.test_scale::test_identity",
                                     "failed_in": second["run_id"]}]
    latest = status(project)
    assert [r["id"] for r in latest["regressions"]] == ["test.test_scale::test_scale"]  # type: ignore[union-attr,index]
    assert [p["id"] for p in latest["preexisting"]] == ["test.test_scale::test_identity"]  # type: ignore[union-attr,index]
    audit = project.dir / "audit.md"
    run_cli("render-audit", "--out", str(audit), cwd=project.dir)
    rendered = audit.read_text()
    assert "NOT READY" in rendered
    assert f"REGRESSION: `tests` test `test.test_scale::test_scale` fails now and passed in run `{first['run_id']}`" \
        in rendered
    assert "Pre-existing, not a regression: `tests` test `test.test_scale::test_identity`" in rendered
