"""`mpspatch init`: a starter project from the package's own files, derived from a patch, never overwriting.

Every test runs the real console entry point against a real throwaway upstream clone and a real `git diff`.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from scenarios import build_upstream, diff_against, patch1_files

from mpspatch.commands.init import allowed_paths_for

MPSPATCH = [sys.executable, "-m", "mpspatch.cli"]
ROOT = Path(__file__).resolve().parent.parent


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*MPSPATCH, *args], cwd=cwd, capture_output=True, text=True, check=False, timeout=120)


@pytest.fixture
def upstream_and_patch(tmp_path: Path) -> tuple[Path, Path]:
    upstream, _ = build_upstream(tmp_path / "pytorch")
    patch = tmp_path / "downloads" / "stream-pool-v1.0.patch"
    patch.parent.mkdir()
    patch.write_text(diff_against(upstream, "v1.0", patch1_files()))
    upstream.git("checkout", "-q", "main")
    return upstream.path, patch


def test_init_from_a_patch_reaches_a_full_status(tmp_path: Path, upstream_and_patch: tuple[Path, Path]) -> None:
    checkout, patch = upstream_and_patch
    project = tmp_path / "project"
    done = run_cli("init", str(project), "--from-patch", str(patch), "--upstream", str(checkout), "--json",
                   cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["base"] == "v1.0" and result["base_from"] == "patch name"
    assert result["checkout"] == "../pytorch"
    assert result["patches"] == ["patches/stream-pool-v1.0.patch"]
    assert (project / "patches/stream-pool-v1.0.patch").read_text() == patch.read_text()
    assert (project / ".gitignore").read_text().splitlines()[-1] == ".mpspatch/"
    for rel in ("harness/tsan_mps_parallel.cpp", "harness/tsan.supp", "harness/test_stream_pool.py",
                "harness/stress_parallel_inference.py", "audit/requirements.toml"):
        assert (project / rel).read_bytes() == (ROOT / rel).read_bytes(), rel

    config = tomllib.loads((project / "mpspatch.toml").read_text())
    touched = sorted(patch1_files())
    allowed = config["series"]["allowed_paths"]
    assert all(any(p.startswith(a) for a in allowed) for p in touched)
    assert config["render"]["requirements"] == "audit/requirements.toml"

    assert run_cli("lock", cwd=project).returncode == 0
    status = run_cli("status", "--json", cwd=project)
    assert status.returncode == 0, status.stderr
    report = json.loads(status.stdout)
    gaps = {g["id"]: g for g in report["gaps"]}
    assert "requirements" not in gaps  # the checklist is there: every row, not one over-optimistic gap
    checklist = tomllib.loads((ROOT / "audit/requirements.toml").read_text())["requirement"]
    rows = {c["name"] for c in report["checks"]} | {s["name"] for s in report["stages"]}
    assert {r["satisfied_by"].get("check") or r["satisfied_by"].get("stage") for r in checklist} - {None} <= rows
    assert len(report["human_actions"]) == sum("human" in r["satisfied_by"] for r in checklist)
    # The skeletons hold one line of guidance each: the prose check counts them as not written.
    prose = next(c for c in report["checks"] if c["name"] == "prose")
    assert prose["state"] == "failed" and "docs/prose/summary.md" in prose["detail"]
    assert report["stats"]["outside_allowed"] == [] and report["stats"]["uncategorized"] == []


def test_written_prose_passes_and_guidance_alone_does_not(tmp_path: Path,
                                                          upstream_and_patch: tuple[Path, Path]) -> None:
    checkout, patch = upstream_and_patch
    project = tmp_path / "project"
    assert run_cli("init", str(project), "--from-patch", str(patch), "--upstream", str(checkout),
                   cwd=tmp_path).returncode == 0
    assert run_cli("lock", cwd=project).returncode == 0
    for name in ("summary", "motivation", "alternatives", "limitations"):
        skeleton = project / "docs/prose" / f"{name}.md"
        assert skeleton.read_text().startswith("<!--")
        skeleton.write_text(skeleton.read_text() + f"The {name} of the stream pool.\n")
    report = json.loads(run_cli("status", "--json", cwd=project).stdout)
    prose = next(c for c in report["checks"] if c["name"] == "prose")
    assert prose["state"] == "passed", prose

    (project / "audit/requirements.toml").unlink()
    report = json.loads(run_cli("status", "--json", cwd=project).stdout)
    missing = next(g for g in report["gaps"] if g["id"] == "requirements")
    assert "mpspatch init" in missing["fix"] and "copy audit/requirements.toml from mpspatch" not in missing["fix"]


def test_init_without_a_patch_writes_a_config_that_loads(tmp_path: Path) -> None:
    project = tmp_path / "fresh"
    project.mkdir()
    done = run_cli("init", cwd=project)
    assert done.returncode == 0, done.stderr
    assert "mpspatch.toml" in done.stdout and "Next:" in done.stdout
    config = tomllib.loads((project / "mpspatch.toml").read_text())
    assert config["upstream"]["checkout"] == "../pytorch"
    assert config["series"]["patches"] == ["patches/downstream.patch"]
    # ciflow/mps is a maintainer's label, never one the submitter is told to apply; the cc line is left to fill.
    render = config["render"]
    assert render["labels"] == ["module: mps", "release notes: mps"]
    assert render["maintainer_labels"] == ["ciflow/mps"] and render["cc"] == []
    stats = run_cli("status", "--json", cwd=project)  # no patch yet: bad input, naming the next step
    assert stats.returncode == 2 and "mpspatch import" in stats.stderr and "Traceback" not in stats.stderr


def test_init_refuses_to_overwrite_and_writes_nothing(tmp_path: Path) -> None:
    project = tmp_path / "proj"
    (project / "docs/prose").mkdir(parents=True)
    (project / "docs/prose/motivation.md").write_text("mine\n")
    done = run_cli("init", str(project), cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "docs/prose/motivation.md already exists" in done.stderr
    assert sorted(p.relative_to(project).as_posix() for p in project.rglob("*")) == [
        "docs", "docs/prose", "docs/prose/motivation.md"]
    assert (project / "docs/prose/motivation.md").read_text() == "mine\n"


@pytest.mark.parametrize(("args", "words"), [
    (("--from-patch", "missing.patch"), "missing.patch does not exist"),
    (("--from-patch", "notes.txt"), "changes no file"),
    (("--upstream", "nowhere"), "nowhere is not a git clone"),
])
def test_bad_input_is_exit_2_with_one_line(tmp_path: Path, args: tuple[str, ...], words: str) -> None:
    (tmp_path / "notes.txt").write_text("just words\n")
    done = run_cli("init", "proj", *args, cwd=tmp_path)
    assert done.returncode == 2 and words in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "proj").exists()


def test_base_commit_and_subject_of_a_format_patch(tmp_path: Path, upstream_and_patch: tuple[Path, Path]) -> None:
    _, patch = upstream_and_patch
    mail = tmp_path / "0001-pool.patch"
    mail.write_text("From 0 Mon Sep 17 00:00:00 2001\nSubject: [PATCH] Add an MPS stream pool\n\n---\n"
                    + patch.read_text() + "--\nbase-commit: " + "ab" * 20 + "\n")
    done = run_cli("init", "p", "--from-patch", str(mail), "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    config = tomllib.loads((tmp_path / "p/mpspatch.toml").read_text())
    assert config["upstream"]["base"] == "ab" * 20 and config["render"]["title"] == "Add an MPS stream pool"


def test_allowed_paths_are_folders_of_two_or_more_files_else_the_file() -> None:
    assert allowed_paths_for(["a/b/x.h", "a/b/y.mm", "a/b/c/z.mm", "t/test_mps.py", "top.txt"]) == (
        "a/b/", "t/test_mps.py", "top.txt")


def test_starter_stages_match_the_shipped_config() -> None:
    """The starter's [[stages]] are mpspatch's own, so the checklist's stage rows all have a stage."""
    starter = (ROOT / "mpspatch/starter/mpspatch.toml.in").read_text()
    stages = tomllib.loads(starter[starter.index("# ---"):].replace("$$", "$"))["stages"]  # `$$` is Template's `$`
    assert stages == tomllib.loads((ROOT / "mpspatch.toml").read_text())["stages"]


def test_the_wheel_carries_the_starter(tmp_path: Path) -> None:
    """`mpspatch init` from a wheel needs nothing from this repository: the starter files are inside it."""
    import zipfile

    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path), str(ROOT)],
                           capture_output=True, text=True, check=False, timeout=300)
    if built.returncode != 0:
        pytest.skip(f"cannot build the wheel here (no build backend reachable): {built.stderr.strip()[-200:]}")
    names = set(zipfile.ZipFile(next(tmp_path.glob("*.whl"))).namelist())
    for rel in ("mpspatch.toml.in", "gitignore", "audit/requirements.toml", "docs/prose/summary.md",
                "harness/tsan_mps_parallel.cpp", "harness/tsan.supp", "harness/test_stream_pool.py",
                "harness/stress_parallel_inference.py"):
        assert f"mpspatch/starter/{rel}" in names, rel
