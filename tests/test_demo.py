"""`mpspatch demo` end to end through the real CLI: the sample, git, cmake, g++ with TSan, clang-format,
lintrunner and pytest all run for real. One clean run and one run with the injected race, each once per
module; the tests below read what those runs left on disk.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from mpspatch.commands.demo import STEPS, prepare_dir
from mpspatch.foundation.errors import InputError
from mpspatch.sample.builder import RACE_FILE
from mpspatch.verify.evidence import read_run

MPSPATCH = [sys.executable, "-m", "mpspatch.cli"]
STAGE_KINDS = {"build", "lint", "tsan", "tests"}


@dataclass(frozen=True)
class DemoRun:
    dir: Path
    returncode: int
    data: dict[str, Any]
    stderr: str

    @property
    def project(self) -> Path:
        return self.dir / "project"

    def document(self, kind: str) -> str:
        return Path(self.data["documents"][kind]).read_text(encoding="utf-8")


def run_cli(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*MPSPATCH, *args], cwd=cwd, env=env, capture_output=True, text=True, check=False,
                          timeout=180)


def run_demo(root: Path, *extra: str) -> DemoRun:
    folder = root / "demo"
    result = run_cli("demo", "--dir", str(folder), "--json", *extra, cwd=root)
    # --json: stdout is exactly one JSON object, whatever the outcome.
    data = json.loads(result.stdout)
    return DemoRun(dir=folder, returncode=result.returncode, data=data, stderr=result.stderr)


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    return run_demo(tmp_path_factory.mktemp("clean"))


@pytest.fixture(scope="module")
def raced(tmp_path_factory: pytest.TempPathFactory) -> DemoRun:
    return run_demo(tmp_path_factory.mktemp("raced"), "--break", "race")


# --- the clean demo -------------------------------------------------------------------------------------


def test_clean_demo_exits_0_with_every_step_ok(clean: DemoRun) -> None:
    assert clean.returncode == 0, clean.stderr
    steps = clean.data["steps"]
    assert [s["name"] for s in steps] == list(STEPS)
    assert {s["status"] for s in steps} == {"ok"}, steps
    assert all(s["duration_s"] >= 0 for s in steps)
    assert clean.data["dir"] == str(clean.dir)
    # Progress went to stderr, a line per step with its timing.
    for name in STEPS:
        assert re.search(rf"\] {re.escape(name)}\s+\d+\.\ds\s+ok", clean.stderr), name


def test_clean_demo_evidence_has_every_stage_kind_passed(clean: DemoRun) -> None:
    evidence = Path(clean.data["evidence"])
    assert evidence.is_file() and evidence.is_relative_to(clean.project / "audit" / "runs")
    run = read_run(evidence)
    assert {s.kind for s in run.stages} == STAGE_KINDS
    assert {s.name: s.status for s in run.stages} == {"build": "passed", "lint": "passed", "tsan": "passed",
                                                      "tests": "passed"}
    counts = {s.kind: dict(s.counts) for s in run.stages}
    assert counts["tsan"]["races"] == 0
    assert counts["tests"]["passed"] >= 5 and counts["tests"]["failed"] == 0
    for stage in run.stages:
        assert stage.log is not None and (evidence.parent / stage.log).is_file()
        assert stage.cached_from is None  # a fresh folder: everything really ran
    assert [s["status"] for s in clean.data["stages"]] == ["passed"] * 4


def test_clean_demo_rebased_onto_v1_2_and_found_ops_already_upstream(clean: DemoRun) -> None:
    rebase = clean.data["rebase"]
    assert rebase["status"] == "rebased"
    assert rebase["onto_ref"] == "v1.2" and rebase["base_ref"] == "v1.0"
    absorbed = {a["path"]: a["pull_requests"] for a in rebase["absorbed"]}
    assert list(absorbed) == ["aten/src/ATen/native/mps/Ops.cpp"]
    assert 900142 in absorbed["aten/src/ATen/native/mps/Ops.cpp"]
    patch = (clean.project / "patches" / "stream-pool.patch").read_text(encoding="utf-8")
    assert "Ops.cpp" not in patch  # the rewritten patch no longer carries the absorbed change
    lock = json.loads((clean.project / "patches" / "series.lock").read_text(encoding="utf-8"))
    assert lock["base"] == rebase["onto"] and lock["base_ref"] == "v1.2"


def test_clean_demo_documents_say_ready_and_match_the_rebased_patch(clean: DemoRun) -> None:
    assert clean.data["ready"] is True and clean.data["gaps"] == []
    audit = clean.document("audit")
    assert "**Status**: READY FOR SUBMISSION" in audit
    assert "NOT READY" not in audit
    stats = json.loads(run_cli("stats", "--json", cwd=clean.project).stdout)
    pr = clean.document("pr")
    assert pr.startswith("Fixes #900150\n")  # the body only; the title is a separate output
    assert (f"{stats['files']} files changed, {stats['insertions']} insertions(+), {stats['deletions']} "
            f"deletions(-).") in pr
    for name, category in stats["categories"].items():
        if category["files"]:
            n = len(category["files"])
            plural = "file" if n == 1 else "files"
            assert f"### {name} ({n} {plural}, +{category['insertions']} -{category['deletions']})" in pr
    tests = next(s for s in clean.data["stages"] if s["kind"] == "tests")["counts"]
    assert f"{tests['passed']} of {tests['passed']} tests passed on " in pr
    issue = clean.document("issue")
    assert issue.startswith("### 🚀 The feature, motivation and pitch")
    for text in (audit, pr, issue):
        assert str(clean.dir) not in text  # documents go to GitHub: no machine path


def test_clean_demo_documents_are_what_the_commands_render(clean: DemoRun) -> None:
    for kind in ("pr", "issue", "audit"):
        check = run_cli(f"render-{kind}", "--check", cwd=clean.project)
        assert check.returncode == 0, check.stdout + check.stderr
    status = json.loads(run_cli("status", "--json", cwd=clean.project).stdout)
    assert status["ready"] is True and status["gaps"] == []
    assert status["human_actions"] and not any(h["blocking"] for h in status["human_actions"])


# --- the injected race ------------------------------------------------------------------------------------


def test_race_demo_exits_1_with_tsan_failed(raced: DemoRun) -> None:
    assert raced.returncode == 1, raced.stderr
    assert raced.data["ready"] is False
    run = read_run(Path(raced.data["evidence"]))
    statuses = {s.name: s.status for s in run.stages}
    # Only TSan can see the missing lock: everything else still passes (verify runs with --keep-going).
    assert statuses == {"build": "passed", "lint": "passed", "tsan": "failed", "tests": "passed"}
    tsan = run.stage("tsan")
    assert tsan is not None and dict(tsan.counts)["races"] > 0
    log = (Path(raced.data["evidence"]).parent / str(tsan.log)).read_text(encoding="utf-8")
    assert "WARNING: ThreadSanitizer: data race" in log
    assert "Stream.cpp" in log  # the report points at the file the race was injected into
    assert RACE_FILE.endswith("Stream.cpp")


def test_race_demo_audit_is_not_ready_and_names_the_tsan_gap(raced: DemoRun) -> None:
    gaps = raced.data["gaps"]
    assert [g["id"] for g in gaps if g["blocking"]] == ["stage:tsan"]
    assert "data race" in gaps[0]["reason"]
    audit = raced.document("audit")
    assert "**Status**: NOT READY — 1 gap" in audit
    assert "**Status**: READY FOR SUBMISSION" not in audit
    assert "(`stage:tsan`)" in audit
    steps = {s["name"]: s["status"] for s in raced.data["steps"]}
    assert steps["verify"] == steps["status"] == "failed"
    assert steps["render-audit"] == "ok"  # the documents are still written, and say why it is not ready


# --- bad input and missing tools -------------------------------------------------------------------------


def test_non_empty_dir_is_refused_with_exit_2(tmp_path: Path) -> None:
    folder = tmp_path / "taken"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine\n")
    result = run_cli("demo", "--dir", str(folder), cwd=tmp_path)
    assert result.returncode == 2
    assert "--dir is not empty" in result.stderr and str(folder) in result.stderr
    assert sorted(p.name for p in folder.iterdir()) == ["notes.txt"]


def test_unknown_fault_is_exit_2(tmp_path: Path) -> None:
    result = run_cli("demo", "--dir", str(tmp_path / "d"), "--break", "deadlock", cwd=tmp_path)
    assert result.returncode == 2 and "--break race" in result.stderr
    assert not (tmp_path / "d").exists()


def test_prepare_dir_refuses_a_file(tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_text("x")
    with pytest.raises(InputError, match="names a file"):
        prepare_dir(target)
    assert prepare_dir(tmp_path / "new") == tmp_path / "new"
    made = prepare_dir(None)
    try:
        assert made.is_dir() and not any(made.iterdir())
    finally:
        made.rmdir()


def path_without(tmp_path: Path, *hidden: str) -> str:
    """A PATH holding links to every program on the current PATH except `hidden`."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for folder in os.environ.get("PATH", "").split(os.pathsep):
        if not folder or not Path(folder).is_dir():
            continue
        for entry in Path(folder).iterdir():
            link = bin_dir / entry.name
            if entry.name in hidden or link.exists() or link.is_symlink():
                continue
            link.symlink_to(entry)
    return str(bin_dir)


@pytest.mark.parametrize("hidden", [("cmake",), ("cmake", "git")])
def test_missing_tools_are_named_up_front_with_exit_2(tmp_path: Path, hidden: tuple[str, ...]) -> None:
    beside = Path(sys.executable).parent
    if any((beside / name).exists() for name in hidden):
        pytest.skip(f"{hidden} sits beside the interpreter, where the runner would find it anyway")
    env = {**os.environ, "PATH": path_without(tmp_path, *hidden)}
    assert all(shutil.which(name, path=env["PATH"]) is None for name in hidden)
    folder = tmp_path / "demo"
    result = run_cli("demo", "--dir", str(folder), "--json", cwd=tmp_path, env=env)
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    (line,) = result.stderr.strip().splitlines()  # one line naming every missing tool and its fix
    for name in hidden:
        assert f"{name}: not found on PATH" in line
    assert "install" in line
    assert not folder.exists()  # nothing is written before the tools are known to be there


def test_sample_checklist_fits_the_sample_config(tmp_path: Path) -> None:
    from mpspatch.foundation.config import load_config
    from mpspatch.reporting.requirements import HUMAN, load_requirements
    from mpspatch.sample.builder import write_sample

    sample = write_sample(tmp_path)
    config = load_config(sample.config)
    checklist = load_requirements(config.render.requirements)
    assert checklist is not None
    assert set(checklist.stage_names()) == {s.name for s in config.stages} == STAGE_KINDS
    humans = [r for r in checklist.items if r.kind == HUMAN]
    assert humans and not any(r.blocking for r in humans)
    assert config.render.issue is not None and config.render.prose_dir is not None
    assert all((config.render.prose_dir / f"{name}.md").is_file()
               for name in ("summary", "motivation", "alternatives", "limitations"))
