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
from scenarios import build_scenario
from support import Repo, cpp_source, pooled_stream_project, write_config

import mpspatch

MPSPATCH = [sys.executable, "-m", "mpspatch.cli"]


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*MPSPATCH, *args], cwd=cwd, capture_output=True, text=True, check=False, timeout=60)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return pooled_stream_project(tmp_path, {"torch/mps/__init__.py": "def stream_pool_size():\n    return 32\n",
                                            "tools/gen.py": "print(1)\n"})


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


# Files whose names exercise the glob matcher: a leading M, a `]`, a literal `*`, and a `b` one folder down.
GLOB_FILES = ("MPSStream.h", "Other.h", "]x.h", "a*b.mm", "axb.mm", "yb.cpp", "sub/yb.cpp")


@pytest.fixture
def glob_project(tmp_path: Path) -> Path:
    upstream = Repo.create(tmp_path / "upstream")
    upstream.write("README.md", "base\n")
    upstream.commit("base", tag="v1.0")
    for name in GLOB_FILES:
        upstream.write(f"aten/src/ATen/mps/{name}", f"// {name}\n")
    upstream.git("add", "-A")
    patch = upstream.git("diff", "--cached", "--full-index", "v1.0")
    upstream.git("reset", "-q", "--hard")
    project = tmp_path / "project"
    (project / "patches").mkdir(parents=True)
    (project / "patches/pool.patch").write_text(patch)
    write_config(project, patches=["patches/pool.patch"])
    return project


@pytest.mark.parametrize(
    ("glob", "expected"),
    [
        ("[!M]*.h", ["Other.h", "]x.h"]),  # a negated class: every header not starting with M
        ("[]]x.h", ["]x.h"]),  # a `]` first in a class is a member, not the end
        ("a\\*b.mm", ["a*b.mm"]),  # a backslash escapes: a literal star, so axb.mm stays out
        ("**b.cpp", ["yb.cpp"]),  # `**` that is not a whole segment is a `*`: it never crosses a folder
        ("**/yb.cpp", ["sub/yb.cpp", "yb.cpp"]),  # a whole-segment `**` matches any number of folders
    ],
)
def test_category_globs_follow_glob_syntax(glob_project: Path, glob: str, expected: list[str]) -> None:
    config = glob_project / "mpspatch.toml"
    text = config.read_text().replace('"Core MPS" = ["aten/src/ATen/mps/**"]',
                                      f'"Core MPS" = [{json.dumps("aten/src/ATen/mps/" + glob)}]')
    config.write_text(text)
    result = run_cli("stats", "--json", cwd=glob_project)
    assert result.returncode == 0, result.stderr
    files = json.loads(result.stdout)["categories"]["Core MPS"]["files"]
    assert files == sorted(f"aten/src/ATen/mps/{name}" for name in expected)


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (('"Core MPS" = ["aten/src/ATen/mps/**"]', '"Core MPS" = ["aten/src/ATen/mps/[abc"]'),
         """[categories."Core MPS"]: bad glob 'aten/src/ATen/mps/[abc': unclosed '['"""),
        (('"Tests" = ["test/test_mps.py"]', '"Tests" = ["test/[z-a].py"]'),
         "[categories.Tests]: bad glob 'test/[z-a].py': the range 'z-a' is empty"),
        (("", '\n[[split.groups]]\ntitle = "x"\npaths = ["aten/\\\\"]\n'),
         "[split.groups[0]].paths: bad glob 'aten/\\': it ends in a lone '\\'"),
        (("", '\n[[stages]]\nname = "fmt"\nkind = "lint"\nrun = [["clang-format", "{patched:**/*.h,a/[b}"]]\n'),
         "[stages.fmt].run: bad glob 'a/[b' in {patched:**/*.h,a/[b}: unclosed '['"),
    ],
)
def test_a_malformed_glob_is_a_config_error_naming_the_key(glob_project: Path, edit: tuple[str, str],
                                                            expected: str) -> None:
    config = glob_project / "mpspatch.toml"
    old, new = edit
    text = config.read_text()
    config.write_text(text.replace(old, new, 1) if old else text + new)
    result = run_cli("stats", "--json", cwd=glob_project)
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    message = result.stderr.strip()
    assert "\n" not in message and "Traceback" not in message
    assert f"mpspatch.toml: {expected}" in message
    assert message.endswith("; fix the pattern")


def test_lock_then_status(project: Path) -> None:
    before = json.loads(run_cli("status", "--json", cwd=project).stdout)
    assert before["ready"] is False
    assert before["lock"]["matches"] is False
    locked = run_cli("lock", cwd=project)
    assert locked.returncode == 0, locked.stderr
    lock = json.loads((project / "patches/series.lock").read_text())
    assert lock["base_ref"] == "v1.0" and len(lock["base"]) == 40
    assert lock["written_by"] == f"mpspatch lock (mpspatch {mpspatch.__version__})"  # who wrote it, which release
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
        (["lock", "--base", "no-such-ref"], "the clone has no 'no-such-ref'; bring it with `git -C"),
    ],
)
def test_bad_input_exits_2_with_one_line(project: Path, args: list[str], expected: str) -> None:
    result = run_cli(*args, cwd=project)
    assert result.returncode == 2, result.stderr
    assert expected in result.stderr
    assert result.stdout == ""


def test_a_ref_only_under_origin_is_one_rule_for_lock_rebase_and_drift(tmp_path: Path) -> None:
    # `git fetch` leaves upstream branches as refs/remotes/origin/NAME only; every command taking a ref must
    # find `feature` there, as `rebase --onto` always did.
    upstream = Repo.create(tmp_path / "upstream")
    upstream.write("aten/src/ATen/mps/MPSStream.mm", cpp_source("MPSStream.mm", 6))
    upstream.commit("base", tag="v1.0")
    upstream.write("aten/src/ATen/mps/MPSStream.mm", cpp_source("MPSStream.mm", 8, variant=" pooled"))
    upstream.git("add", "-A")
    patch = upstream.git("diff", "--cached", "--full-index", "v1.0")
    upstream.git("reset", "-q", "--hard")
    upstream.git("checkout", "-q", "-b", "feature")
    upstream.write("torch/mps/__init__.py", "def device_count():\n    return 1\n")
    feature = upstream.commit("upstream: device count")
    upstream.git("checkout", "-q", "-")
    upstream.git("clone", "-q", str(upstream.path), str(tmp_path / "clone"))
    clone = Repo(tmp_path / "clone")
    assert clone.git("rev-parse", "--verify", "--quiet", "feature", check=False) == ""  # no local branch
    assert clone.git("rev-parse", "refs/remotes/origin/feature").strip() == feature
    project = tmp_path / "project"
    (project / "patches").mkdir(parents=True)
    (project / "patches/pool.patch").write_text(patch)
    write_config(project, patches=["patches/pool.patch"], checkout="../clone")

    locked = run_cli("lock", "--base", "feature", "--json", cwd=project)
    assert locked.returncode == 0, locked.stderr
    assert json.loads(locked.stdout)["base"] == feature
    assert run_cli("lock", cwd=project).returncode == 0  # back to v1.0 for the forecast and the rebase

    drift = run_cli("drift", "--onto", "feature", "--json", cwd=project)
    assert drift.returncode == 0, drift.stderr
    assert json.loads(drift.stdout)["onto"] == feature
    rebased = run_cli("rebase", "--onto", "feature", "--json", cwd=project)
    assert rebased.returncode == 0, rebased.stderr
    assert json.loads(rebased.stdout)["onto"] == feature
    assert json.loads((project / "patches/series.lock").read_text())["base"] == feature


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


def test_a_folder_where_a_file_belongs_is_bad_input(project: Path) -> None:
    (project / "patches/series.lock").mkdir()  # the user can remove it: exit 2 naming it, not a crash
    result = run_cli("lock", cwd=project)
    assert result.returncode == 2, result.stderr
    assert "series.lock: is a folder, not a file" in result.stderr and "Traceback" not in result.stderr


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


# ------------------------------------------------------------------- a patch made on another tree (wrong checkout)


@pytest.fixture
def wrong_checkout(tmp_path: Path) -> Path:
    """The scenario's two-patch series with [upstream] checkout pointing at an unrelated repository that has a
    v1.0 tag too: every file the series modifies is missing at that base."""
    scenario = build_scenario(tmp_path)
    other = Repo.create(tmp_path / "other")
    other.write("README.md", "another project\n")
    other.write("src/main.c", "int main(void) { return 0; }\n")
    other.commit("another project", tag="v1.0")
    text = scenario.config.read_text().replace('checkout = "../pytorch"', 'checkout = "../other"')
    scenario.config.write_text(text + '\n[[stages]]\nname = "ok"\nkind = "command"\nrun = [["true"]]\n')
    return scenario.project


def _only_project_paths(text: str, project: Path) -> None:
    """No temporary folder of ours in a message: every absolute path it holds is under the project."""
    assert "mpspatch-" not in text
    for path in re.findall(r"(?<![\w.])/[^\s:;,`']+", text):
        assert path.startswith(str(project)), path


@pytest.mark.parametrize(
    "args",
    [
        ["rebase"],
        ["rebase", "--json"],
        ["drift"],
        ["verify"],
        ["import", "patches/0001-stream-pool.patch", "--to", "patches/0001-stream-pool.patch"],
        ["split", "--max-lines", "5"],
    ],
)
def test_a_patch_whose_files_are_missing_at_the_base_says_so(wrong_checkout: Path, args: list[str]) -> None:
    result = run_cli(*args, cwd=wrong_checkout)
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    message = result.stderr.strip().splitlines()[-1]
    assert message.startswith(f"mpspatch: error: {wrong_checkout / 'patches/0001-stream-pool.patch'}: 4 files the "
                              "patch changes do not exist at the base ")
    assert "aten/src/ATen/mps/MPSStream.mm" in message and "and 1 more" in message
    assert "check that [upstream] checkout is the right clone and that [upstream] base" in message
    assert "3-way" not in result.stderr and "rebase" not in message
    _only_project_paths(result.stderr, wrong_checkout)


def test_status_says_the_files_are_missing_at_the_base_and_does_not_suggest_rebase(wrong_checkout: Path) -> None:
    result = run_cli("status", "--json", cwd=wrong_checkout)
    assert result.returncode == 0, result.stderr
    (gap,) = [g for g in json.loads(result.stdout)["gaps"] if g["id"] == "check:series-applies"]
    assert gap["reason"].startswith("`patches/0001-stream-pool.patch`: 4 files the patch changes do not exist at "
                                    "the base ")
    assert "aten/src/ATen/mps/MPSStream.mm" in gap["reason"]
    assert "[upstream] checkout" in gap["fix"] and "rebase" not in gap["fix"]
    _only_project_paths(f"{gap['reason']} {gap['fix']}", wrong_checkout)


# --------------------------------------------------------------- a git command of ours that fails: exit 3, not 2


def test_a_git_command_that_fails_unexpectedly_exits_3_naming_it(tmp_path: Path) -> None:
    # A stale lock file in the shadow repository (a git killed mid-write leaves one) makes git refuse to move
    # the ref mpspatch pins the series with: nothing the user typed is wrong, so it is not exit 2.
    scenario = build_scenario(tmp_path)
    assert run_cli("drift", "--onto", "v1.1", cwd=scenario.project).returncode == 0
    lock = scenario.project / ".mpspatch/shadow.git/refs/mpspatch/drift/series.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    lock.write_text("")
    (scenario.project / ".mpspatch/shadow.git/mpspatch-drift-series.json").unlink()  # so the series is pinned again
    result = run_cli("drift", "--onto", "v1.1", cwd=scenario.project)
    assert result.returncode == 3, result.stderr
    first = result.stderr.splitlines()[0]
    assert first.startswith("mpspatch: error: git failed unexpectedly: `git update-ref refs/mpspatch/drift/series ")
    assert "` exited 128 in " in first
    assert "series.lock" in first  # git's own last line says what went wrong
    assert "a bug in mpspatch, or a damaged repository. Rerun with --debug" in result.stderr
    assert result.stderr.count("\n") == 2 and "Traceback" not in result.stderr
    debug = run_cli("--debug", "drift", "--onto", "v1.1", cwd=scenario.project)
    assert debug.returncode == 3
    assert "$ git update-ref refs/mpspatch/drift/series " in debug.stderr and "exit 128)" in debug.stderr
    assert "fatal:" in debug.stderr and "Traceback" in debug.stderr


def test_an_unknown_ref_is_still_bad_input(tmp_path: Path) -> None:
    scenario = build_scenario(tmp_path)
    result = run_cli("drift", "--onto", "no-such-ref", cwd=scenario.project)
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and "no-such-ref" in result.stderr
