"""The CLI end to end through the installed console script: exit codes, --json purity, stats and status."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support import Repo, cpp_source, write_config

MPSPATCH = [sys.executable, "-m", "mpspatch.cli"]


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*MPSPATCH, *args], cwd=cwd, capture_output=True, text=True, check=False, timeout=60)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    upstream = Repo.create(tmp_path / "upstream")
    upstream.write("aten/src/ATen/mps/MPSStream.mm", cpp_source("MPSStream.mm", 6))
    upstream.commit("base", tag="v1.0")
    upstream.write("aten/src/ATen/mps/MPSStream.mm", cpp_source("MPSStream.mm", 8, variant=" pooled"))
    upstream.write("torch/mps/__init__.py", "def stream_pool_size():\n    return 32\n")
    upstream.write("tools/gen.py", "print(1)\n")
    upstream.git("add", "-A")
    patch = upstream.git("diff", "--cached", "--full-index", "v1.0")
    upstream.git("reset", "-q", "--hard")
    project = tmp_path / "project"
    (project / "patches").mkdir(parents=True)
    (project / "patches/pool.patch").write_text(patch)
    write_config(project, patches=["patches/pool.patch"])
    return project


def test_stats_json_is_one_object_with_the_contract_keys(project: Path) -> None:
    result = run_cli("stats", "--json", cwd=project)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert {"files", "insertions", "deletions", "categories", "uncategorized", "outside_allowed"} <= data.keys()
    assert data["files"] == 3
    assert data["categories"]["Core MPS"] == {
        "files": ["aten/src/ATen/mps/MPSStream.mm"], "insertions": 16, "deletions": 6,
    }
    assert data["categories"]["Python bindings"]["files"] == ["torch/mps/__init__.py"]
    assert data["uncategorized"] == data["outside_allowed"] == ["tools/gen.py"]


def test_stats_terminal_table(project: Path) -> None:
    result = run_cli("stats", cwd=project)
    assert result.returncode == 0
    assert "Core MPS" in result.stdout and "Total" in result.stdout
    assert "outside allowed_paths: tools/gen.py" in result.stdout


def test_stats_of_explicit_patch_without_config(project: Path, tmp_path: Path) -> None:
    lone = tmp_path / "lone"
    lone.mkdir()
    result = run_cli("stats", "--json", str(project / "patches/pool.patch"), cwd=lone)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["insertions"] == 16 + 2 + 1


def test_lock_then_status(project: Path) -> None:
    before = json.loads(run_cli("status", "--json", cwd=project).stdout)
    assert before["ready"] is False
    assert before["lock"]["matches"] is False
    locked = run_cli("lock", cwd=project)
    assert locked.returncode == 0, locked.stderr
    lock = json.loads((project / "patches/series.lock").read_text())
    assert lock["base_ref"] == "v1.0" and len(lock["base"]) == 40 and lock["written_by"] == "mpspatch lock"
    after = json.loads(run_cli("status", "--json", cwd=project).stdout)
    assert after["lock"]["matches"] is True
    assert after["base"] == lock["base"]
    assert after["ready"] is False and any(g["id"] == "requirements" and g["blocking"] for g in after["gaps"])
    (project / "patches/pool.patch").write_text((project / "patches/pool.patch").read_text() + "\n")
    edited = json.loads(run_cli("status", "--json", cwd=project).stdout)
    assert edited["lock"]["matches"] is False
    assert "changed since the lock was written" in edited["lock"]["problems"][0]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["stats", "--bogus"], "No such option"),
        (["--config", "missing.toml", "stats"], "config file not found"),
        (["lock", "--base", "no-such-ref"], "unknown ref 'no-such-ref'; fetch it first"),
    ],
)
def test_bad_input_exits_2_with_one_line(project: Path, args: list[str], expected: str) -> None:
    result = run_cli(*args, cwd=project)
    assert result.returncode == 2, result.stderr
    assert expected in result.stderr
    assert result.stdout == ""


def test_malformed_patch_exits_2_naming_file_and_line(project: Path) -> None:
    patch = project / "patches/pool.patch"
    patch.write_text(re.sub(r"^@@ -\d+,\d+ \+\d+,\d+ @@", "@@ -1,90 +1,90 @@", patch.read_text(), count=1, flags=re.M))
    result = run_cli("stats", cwd=project)
    assert result.returncode == 2
    assert f"{patch}:55: " in result.stderr and "fix the @@ counts" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_missing_checkout_exits_2(project: Path, tmp_path: Path) -> None:
    (project / "mpspatch.toml").write_text((project / "mpspatch.toml").read_text().replace("../upstream", "../gone"))
    result = run_cli("lock", cwd=project)
    assert result.returncode == 2
    assert "upstream checkout does not exist" in result.stderr


def test_internal_error_exits_3_without_traceback(project: Path) -> None:
    (project / "patches/series.lock").mkdir()  # a folder where a file belongs: not a user mistake we model
    result = run_cli("lock", cwd=project)
    assert result.returncode == 3
    assert "internal error" in result.stderr and "Traceback" not in result.stderr
    debug = run_cli("--debug", "lock", cwd=project)
    assert "Traceback" in debug.stderr


@pytest.mark.parametrize("debug", [False, True])
def test_an_internal_mpspatch_error_exits_3_with_its_traceback_under_debug(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], debug: bool
) -> None:
    from mpspatch import cli
    from mpspatch.operations import split

    def broken(*args: object, **kwargs: object) -> None:
        raise split.SplitProofError("refusing to write the stack: part 2 gives tree 0123, planned 4567")

    monkeypatch.setattr(split, "split_series", broken)
    monkeypatch.chdir(project)
    with pytest.raises(SystemExit) as caught:
        cli.main([*(["--debug"] if debug else []), "split", "--max-lines", "50"])
    assert caught.value.code == 3
    err = capsys.readouterr().err
    assert "refusing to write the stack" in err
    assert ("Traceback" in err) is debug and ("in broken" in err) is debug
    assert ("Rerun with --debug" in err) is not debug


def test_ctrl_c_exits_130(project: Path) -> None:
    # A real SIGINT into a real process: git is replaced by a script that sleeps, so the signal lands mid-run.
    fake_bin = project / "slowbin"
    fake_bin.mkdir()
    slow = fake_bin / "git"
    slow.write_text("#!/bin/sh\nsleep 30\n")
    slow.chmod(0o755)
    env = dict(os.environ, PATH=f"{fake_bin}{os.pathsep}{os.environ['PATH']}")
    child = subprocess.Popen([*MPSPATCH, "lock"], cwd=project, env=env, stderr=subprocess.PIPE, text=True)
    time.sleep(1.5)
    child.send_signal(signal.SIGINT)
    _, stderr = child.communicate(timeout=30)
    assert child.returncode == 130, stderr
    assert "interrupted" in stderr


@pytest.mark.parametrize("command", ["rebase", "drift", "verify", "split"])
def test_a_series_with_paths_outside_allowed_paths_is_refused(project: Path, command: str) -> None:
    # The fixture's patch adds tools/gen.py, which no allowed prefix covers: `import` would have refused it,
    # so a hand-edited series holding it is refused too, before anything is written.
    config = project / "mpspatch.toml"
    config.write_text(config.read_text() + '\n[[stages]]\nname = "t"\nkind = "command"\nrun = [["true"]]\n')
    patch = project / "patches/pool.patch"
    before = patch.read_bytes()
    result = run_cli(command, "--json", cwd=project)
    assert result.returncode == 2, result.stderr
    assert result.stdout == "" and result.stderr.count("\n") == 1
    assert f"{patch}: 1 path(s) outside [series].allowed_paths: tools/gen.py" in result.stderr
    assert "add their prefixes to allowed_paths" in result.stderr
    assert patch.read_bytes() == before
    assert not (project / "patches/series.lock").exists() and not (project / "audit").exists()


def test_an_output_path_that_cannot_be_written_is_bad_input(project: Path) -> None:
    (project / "notes").write_text("a file where --out expects a folder\n")
    result = run_cli("render-audit", "--out", "notes/audit.md", cwd=project)
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and "internal error" not in result.stderr
    assert "notes/audit.md: cannot write here" in result.stderr
    assert (project / "notes").read_text() == "a file where --out expects a folder\n"


def test_a_stale_document_note_is_one_line_however_long(project: Path) -> None:
    out = "a-rather-long-folder-name-for-rendered-documents/and-another-level/submission_audit.md"
    (project / out).parent.mkdir(parents=True)
    (project / out).write_text("stale\n")
    result = run_cli("render-audit", "--out", out, "--check", cwd=project)
    assert result.returncode == 1
    assert result.stdout.startswith(f"--- {out} (on disk)")
    assert result.stderr == f"{out} is stale; run `mpspatch render-audit` to rewrite it\n"
