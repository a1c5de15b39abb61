"""`mpspatch verify` end to end on real throwaway repositories, with real g++, clang-format and lintrunner."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support import Repo, write_config

from mpspatch.foundation.config import load_config
from mpspatch.foundation.errors import InputError, StateError
from mpspatch.foundation.files import sha256_file
from mpspatch.model.workspace import Workspace
from mpspatch.verify.evidence import claim_run_dir, latest_run, read_run, verify, write_run

MPSPATCH = [sys.executable, "-m", "mpspatch.cli"]
BIN = Path(sys.executable).parent

CLANG_FORMAT_STYLE = """---
Language: Cpp
BasedOnStyle: Google
---
Language: ObjC
BasedOnStyle: Google
...
"""
CLEAN_MM = "namespace at::mps {\nint stream_count() { return 1; }\n}  // namespace at::mps\n"
POOL_MM = "namespace at::mps {\nint pool_size() { return 32; }\n}  // namespace at::mps\n"
BADLY_FORMATTED_MM = "namespace at::mps {\nint  pool_size( ){return 32;}\n}\n"
ADAPTER = '''
import argparse, json
parser = argparse.ArgumentParser(fromfile_prefix_chars="@")
parser.add_argument("paths", nargs="*")
for path in parser.parse_args().paths:
    text = open(path, encoding="utf-8").read()
    for number, line in enumerate(text.split("\\n"), 1):
        if line != line.rstrip():
            print(json.dumps({"path": path, "line": number, "char": None, "code": "SPACE", "severity": "warning",
                              "name": "trailing-space", "original": text, "replacement": text.replace(" \\n", "\\n"),
                              "description": "trailing whitespace"}))
'''
SECRET_SOURCE_MARKER = "UNIQUE_SOURCE_TEXT_41"


def make_upstream(root: Path) -> Repo:
    up = Repo.create(root / "upstream")
    up.write(".clang-format", CLANG_FORMAT_STYLE)
    up.write(".lintrunner.toml", (
        "[[linter]]\ncode = 'SPACE'\ninclude_patterns = ['**/*.py']\n"
        f"command = ['{sys.executable}', 'tools/space_adapter.py', '--', '@{{{{PATHSFILE}}}}']\n"
    ))
    up.write("tools/space_adapter.py", ADAPTER)
    up.write("aten/src/ATen/mps/MPSStream.mm", CLEAN_MM)
    up.write("aten/src/ATen/mps/MPSOld.h", "// removed by the patch\n")
    up.write("torch/mps/__init__.py", "def device_count():\n    return 1\n")
    up.write("docs/unrelated/readme.txt", "upstream docs\n")
    up.commit("upstream release 1.0", tag="v1.0")
    return up


def make_patch(up: Repo, files: dict[str, str | None]) -> str:
    for path, content in files.items():
        if content is None:
            up.git("rm", "-q", path)
        else:
            up.write(path, content)
    up.git("add", "-A")
    patch = up.git("diff", "--cached", "--full-index", "v1.0")
    up.git("reset", "-q", "--hard")
    return patch


DEFAULT_PATCH = {
    "aten/src/ATen/mps/MPSStreamPool.mm": POOL_MM,
    "aten/src/ATen/mps/MPSOld.h": None,
    "torch/mps/__init__.py": (
        f"def device_count():\n    return 1\n\n\ndef pool_size():  \n    return 32  # {SECRET_SOURCE_MARKER}\n"
    ),
}


class Project:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.up = make_upstream(root)
        self.dir = root / "project"
        (self.dir / "patches").mkdir(parents=True)
        self.set_patch(DEFAULT_PATCH)

    def set_patch(self, files: dict[str, str | None]) -> None:
        (self.dir / "patches/pool.patch").write_text(make_patch(self.up, files))

    def stages(self, text: str) -> None:
        write_config(self.dir, patches=["patches/pool.patch"], extra=text)

    def verify(self, *names: str, **kw: bool):  # type: ignore[no-untyped-def]
        return verify(Workspace(load_config(self.dir / "mpspatch.toml")), stage_names=names, **kw)

    @property
    def tree(self) -> Path:
        return self.dir / ".mpspatch/worktrees/verify"


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return Project(tmp_path)


def stage_toml(name: str, kind: str, run: list[list[str]], **extra: object) -> str:
    lines = ["[[stages]]", f'name = "{name}"', f'kind = "{kind}"', f"run = {json.dumps(run)}"]
    for key, value in extra.items():
        if isinstance(value, dict):
            inner = ", ".join(f"{k} = {json.dumps(v)}" for k, v in value.items())
            lines.append(f"{key} = {{ {inner} }}")
        else:
            lines.append(f"{key} = {json.dumps(value)}")
    return "\n".join(lines) + "\n\n"


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*MPSPATCH, *args], cwd=cwd, capture_output=True, text=True, check=False, timeout=120)


# ------------------------------------------------------------------------------------------ evidence


def test_evidence_records_the_run(project: Project) -> None:
    project.stages(stage_toml(
        "list", "command",
        [["{python}", "-c", "import sys; print('\\n'.join(sys.argv[1:]))", "{patched}"],
         ["sh", "-c", "echo $MAX_JOBS"]],
        env={"MAX_JOBS": "{jobs}", "GITHUB_TOKEN": "ghp_not_a_real_token", "HF_API_KEY": "k"},
    ))
    outcome = project.verify()
    assert outcome.ok
    run = read_run(outcome.evidence)
    assert run == outcome.run and latest_run(project.dir / "audit/runs") == run
    assert (project.dir / "audit/runs/latest").read_text() == run.run_id + "\n"
    assert run.base == project.up.git("rev-parse", "v1.0").strip() and run.base_ref == "v1.0"
    assert run.series[0].path == "patches/pool.patch"
    assert run.series[0].sha256 == sha256_file(project.dir / "patches/pool.patch")
    commit = project.up.git("rev-parse", "v1.0").strip()
    assert run.tree == subprocess.run(["git", "rev-parse", "HEAD^{tree}"], cwd=project.tree, capture_output=True,
                                      text=True, check=True).stdout.strip()
    assert run.tree != project.up.git("rev-parse", f"{commit}^{{tree}}").strip()
    assert dict(run.tools)["git"].startswith("git version")
    stage = run.stages[0]
    assert stage.status == "passed" and stage.reason == "" and stage.cache_key
    # {patched}: what the series adds or modifies, sorted; the deleted header is not there.
    assert stage.commands[0][3:] == ("aten/src/ATen/mps/MPSStreamPool.mm", "torch/mps/__init__.py")
    assert dict(stage.env) == {"GITHUB_TOKEN": "***", "HF_API_KEY": "***", "MAX_JOBS": str(os.cpu_count())}
    log = outcome.run_dir / stage.log  # type: ignore[operator]
    assert stage.log_sha256 == sha256_file(log)
    text = log.read_text()
    assert "aten/src/ATen/mps/MPSStreamPool.mm\ntorch/mps/__init__.py\n" in text
    assert f"\n{os.cpu_count()}\n" in text
    assert "ghp_not_a_real_token" not in outcome.evidence.read_text()


def test_evidence_is_never_overwritten(project: Project) -> None:
    project.stages(stage_toml("ok", "command", [["true"]]))
    first = project.verify()
    before = first.evidence.read_bytes()
    second = project.verify(force=True)
    assert second.run.run_id != first.run.run_id
    assert first.evidence.read_bytes() == before
    with pytest.raises(StateError, match="runs are never overwritten"):
        write_run(project.dir / "audit/runs", first.run)
    ids = {claim_run_dir(project.dir / "audit/runs", ["a"], "b")[0] for _ in range(5)}
    assert len(ids) == 5


# -------------------------------------------------------------------------------- errors, skips, stopping


def test_darwin_stage_is_skipped_with_its_reason_on_linux(project: Project) -> None:
    if sys.platform == "darwin":
        pytest.skip("this machine is darwin")
    project.stages(stage_toml("tsan", "tsan", [["false"]], requires={"os": "darwin"})
                   + stage_toml("after", "command", [["true"]]))
    outcome = project.verify()
    tsan, after = outcome.run.stages
    assert tsan.status == "skipped" and tsan.reason == "requires os=darwin, this machine is linux"
    assert tsan.log is None and after.status == "passed"
    assert outcome.ok  # a skip is a gap for the audit, not a failure


def test_timeout_is_an_error(project: Project) -> None:
    project.stages(stage_toml("slow", "command", [["{python}", "-c", "import time; time.sleep(60)"]], timeout=0.5))
    outcome = project.verify()
    result = outcome.run.stages[0]
    assert result.status == "error" and not outcome.ok
    assert result.reason.startswith("timed out after 0.5s in `")
    assert "the process group was killed" in (outcome.run_dir / "logs/slow.log").read_text()


def test_missing_tool_and_crash_are_errors(project: Project) -> None:
    project.stages(
        stage_toml("missing", "build", [["no-such-tool-mpspatch"]])
        + stage_toml("crash", "command", [["{python}", "-c", "import os; os.abort()"]])
    )
    missing, crash = project.verify(keep_going=True).run.stages
    assert missing.status == "error" and missing.reason.startswith("program not found: no-such-tool-mpspatch")
    assert crash.status == "error" and crash.reason.endswith("crashed: killed by SIGABRT")


def test_stops_after_a_failure_unless_keep_going(project: Project) -> None:
    project.stages(
        stage_toml("first", "command", [["sh", "-c", "echo error: it broke; exit 3"]])
        + stage_toml("second", "command", [["true"]])
    )
    outcome = project.verify()
    first, second = outcome.run.stages
    assert not outcome.ok
    assert first.status == "failed"
    assert first.reason == "`sh -c 'echo error: it broke; exit 3'` exited 3: error: it broke"
    assert second.status == "skipped"
    assert second.reason == "not run: stage 'first' failed; --keep-going runs the rest"
    kept = project.verify(keep_going=True, force=True).run.stages
    assert [s.status for s in kept] == ["failed", "passed"]


def test_stage_selection(project: Project) -> None:
    project.stages(stage_toml("a", "command", [["true"]]) + stage_toml("b", "command", [["true"]]))
    assert [s.name for s in project.verify("b").run.stages] == ["b"]
    with pytest.raises(InputError, match="no stage named 'nope'; configured: a, b"):
        project.verify("nope")


# ------------------------------------------------------------------------------------------------ caching


def test_cached_rerun_skips_and_force_reruns(project: Project, tmp_path: Path) -> None:
    counter = tmp_path / "ran.txt"
    project.stages(stage_toml("count", "command", [["sh", "-c", f"echo run >> {counter}"]]))
    first = project.verify()
    second = project.verify()
    assert counter.read_text().count("run") == 1
    cached = second.run.stages[0]
    assert cached.status == "passed" and cached.reason == "cached"
    assert cached.cached_from == first.run.run_id
    assert cached.log == f"../{first.run.run_id}/logs/count.log"
    assert (second.run_dir / cached.log).resolve() == (first.run_dir / "logs/count.log").resolve()
    third = project.verify()  # a cache hit on a cache hit still points at the run that really ran it
    assert third.run.stages[0].cached_from == first.run.run_id
    forced = project.verify(force=True)
    assert counter.read_text().count("run") == 2
    assert forced.run.stages[0].reason == "" and forced.run.stages[0].cached_from is None


def test_cache_misses_when_the_series_or_stage_changes(project: Project, tmp_path: Path) -> None:
    counter = tmp_path / "ran.txt"
    project.stages(stage_toml("count", "command", [["sh", "-c", f"echo run >> {counter}"]]))
    project.verify()
    project.set_patch({**DEFAULT_PATCH, "aten/src/ATen/mps/MPSStreamPool.mm": POOL_MM + "// v2\n"})
    assert project.verify().run.stages[0].reason == ""
    project.stages(stage_toml("count", "command", [["sh", "-c", f"echo run >> {counter}"]], timeout=100))
    assert project.verify().run.stages[0].reason == ""
    assert counter.read_text().count("run") == 3


def test_failures_are_never_cached(project: Project, tmp_path: Path) -> None:
    counter = tmp_path / "ran.txt"
    project.stages(stage_toml("flaky", "command", [["sh", "-c", f"echo run >> {counter}; exit 1"]]))
    project.verify()
    project.verify()
    assert counter.read_text().count("run") == 2


# -------------------------------------------------------------------------------------- the patched tree


def git_state(repo: Path) -> list[str]:
    def run(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True).stdout

    return [run("rev-parse", "HEAD"), run("symbolic-ref", "HEAD"), run("status", "--porcelain", "--ignored"),
            run("for-each-ref"), run("worktree", "list", "--porcelain"), run("stash", "list"),
            run("config", "--local", "--list")]


def test_user_clone_is_never_touched(project: Project) -> None:
    project.up.write("torch/mps/__init__.py", "# the user's own uncommitted edit\n")
    before = git_state(project.up.path)
    project.stages(stage_toml("ok", "command", [["true"]]))
    project.verify()
    project.set_patch({**DEFAULT_PATCH, "aten/src/ATen/mps/MPSStreamPool.mm": POOL_MM + "// v2\n"})
    project.up.write("torch/mps/__init__.py", "# the user's own uncommitted edit\n")
    before = git_state(project.up.path)
    project.verify()
    assert git_state(project.up.path) == before
    assert (project.up.path / "torch/mps/__init__.py").read_text() == "# the user's own uncommitted edit\n"


def test_tree_is_reused_and_only_changed_files_are_rewritten(project: Project) -> None:
    project.stages(stage_toml("build", "build", [["sh", "-c", "mkdir -p build && echo object > build/pool.o"]]))
    first = project.verify()
    assert first.tree.reused is False and first.tree.full
    stream = project.tree / "aten/src/ATen/mps/MPSStream.mm"
    pool = project.tree / "aten/src/ATen/mps/MPSStreamPool.mm"
    os.utime(stream, ns=(1_000_000_000, 1_000_000_000))
    os.utime(pool, ns=(1_000_000_000, 1_000_000_000))
    again = project.verify(force=True)
    assert again.tree.reused is True and again.tree.commit == first.tree.commit
    assert stream.stat().st_mtime_ns == 1_000_000_000 and pool.stat().st_mtime_ns == 1_000_000_000
    project.set_patch({**DEFAULT_PATCH, "aten/src/ATen/mps/MPSStreamPool.mm": POOL_MM + "// v2\n"})
    changed = project.verify()
    assert changed.tree.commit != first.tree.commit and changed.tree.reused is False
    assert pool.read_text().endswith("// v2\n") and pool.stat().st_mtime_ns != 1_000_000_000
    assert stream.stat().st_mtime_ns == 1_000_000_000  # untouched by the series: not rewritten
    assert (project.tree / "build/pool.o").read_text() == "object\n"  # build output survives
    assert not (project.tree / "aten/src/ATen/mps/MPSOld.h").exists()  # the series deletes it


def test_sparse_tree_until_a_stage_needs_the_full_tree(project: Project) -> None:
    project.stages(stage_toml("sparse", "command", [["true"]], full_tree=False)
                   + stage_toml("full", "command", [["true"]]))
    sparse = project.verify("sparse")
    assert not sparse.tree.full
    assert (project.tree / "aten/src/ATen/mps/MPSStreamPool.mm").exists()
    assert (project.tree / ".clang-format").exists()  # files at the top level come with cone mode
    assert not (project.tree / "docs/unrelated/readme.txt").exists()
    full = project.verify("full")
    assert full.tree.full and (project.tree / "docs/unrelated/readme.txt").exists()
    assert full.tree.tree == sparse.tree.tree


def test_cached_and_skipped_stages_need_no_checkout(project: Project) -> None:
    project.stages(stage_toml("ok", "command", [["true"]]))
    project.verify()
    shutil.rmtree(project.tree / "aten")
    cached = project.verify()
    assert cached.run.stages[0].reason == "cached" and not cached.tree.checked_out
    assert not (project.tree / "aten").exists()


def test_a_series_that_does_not_apply_at_its_base_is_bad_input(project: Project) -> None:
    patch = project.dir / "patches/pool.patch"
    patch.write_text(patch.read_text().replace("def device_count():", "def device_kount():"))
    project.stages(stage_toml("ok", "command", [["true"]]))
    with pytest.raises(InputError, match=r"pool.patch: series inconsistent: does not apply on top of its base in "
                                          r"torch/mps/__init__.py"):
        project.verify()


def test_a_stale_junit_file_is_never_counted(project: Project) -> None:
    project.stages(stage_toml("tests", "tests", [["true"]], junit="results.xml", full_tree=False))
    project.verify()  # checks out the tree
    (project.tree / "results.xml").write_text(
        '<testsuite tests="1"><testcase classname="old" name="test_passed_last_week"/></testsuite>'
    )
    result = project.verify(force=True).run.stages[0]
    assert result.status == "error" and result.reason == "no JUnit XML found at results.xml"


# ---------------------------------------------------------------------------------- real tools, full path


def test_tests_stage_with_real_pytest(project: Project) -> None:
    suite = "def test_a():\n    pass\n\n\ndef test_b():\n    assert 2 + 2 == 5\n"
    project.set_patch({**DEFAULT_PATCH, "test/test_mps.py": suite})
    project.stages(stage_toml("tests", "tests",
                              [["{python}", "-m", "pytest", "-q", "-p", "no:cacheprovider", "test/test_mps.py",
                                "--junitxml=test-results/mps.xml"]],
                              junit="test-results/*.xml", min_tests=2))
    result = project.verify().run.stages[0]
    assert result.status == "failed" and result.reason == "1 failed of 2 tests run"
    assert dict(result.counts) == {"passed": 1, "failed": 1, "errors": 0, "skipped": 0}
    assert result.details == ("test.test_mps::test_b: failed: assert (2 + 2) == 5",)


def test_the_junit_files_are_kept_next_to_the_log(project: Project) -> None:
    suite = "def test_a():\n    pass\n"
    project.set_patch({**DEFAULT_PATCH, "test/test_mps.py": suite})
    project.stages(stage_toml("tests", "tests",
                              [["{python}", "-m", "pytest", "-q", "-p", "no:cacheprovider", "test/test_mps.py",
                                "--junitxml=test-results/mps.xml"]],
                              junit="test-results/*.xml", min_tests=1))
    outcome = project.verify()
    assert outcome.run.stages[0].status == "passed"
    kept = outcome.run_dir / "logs" / "tests.junit.xml"
    assert kept.read_bytes() == (project.tree / "test-results" / "mps.xml").read_bytes()
    assert "test_a" in kept.read_text()


def test_lint_stage_with_clang_format_and_lintrunner(project: Project, tmp_path: Path) -> None:
    if not (BIN / "lintrunner").exists() or not (BIN / "clang-format").exists():
        pytest.skip("lintrunner and clang-format wheels are not installed in this venv")
    project.set_patch({**DEFAULT_PATCH, "aten/src/ATen/mps/MPSStreamPool.mm": BADLY_FORMATTED_MM})
    project.stages(stage_toml(
        "lint", "lint",
        [["lintrunner", "--output", "json", "{patched:**/*.py}"],
         ["clang-format", "--dry-run", "--Werror", "{patched:**/*.h,**/*.mm,**/*.cpp}"]],
        env={"XDG_DATA_HOME": str(tmp_path / "xdg")},
    ))
    outcome = project.verify()
    lint = outcome.run.stages[0]
    assert lint.status == "failed"
    counts = dict(lint.counts)
    assert counts["files_flagged"] == 2 and counts["warning"] == 1 and counts["error"] == counts["messages"] - 1 > 0
    assert any(d.startswith("torch/mps/__init__.py: 1 (SPACE x1)") for d in lint.details)
    assert any(d.startswith("aten/src/ATen/mps/MPSStreamPool.mm: ") for d in lint.details)
    log = (outcome.run_dir / "logs/lint.log").read_text()
    assert '"code":"SPACE"' in log
    assert SECRET_SOURCE_MARKER not in log and SECRET_SOURCE_MARKER not in outcome.evidence.read_text()
    assert lint.log_sha256 == sha256_file(outcome.run_dir / "logs/lint.log")


# Clean in the checkout's (Google) style; LLVM's style wants the short `if` split and one space before `//`.
LLVM_ONLY_VIOLATION_MM = (
    "namespace at::mps {\nint pool_size(int n) {\n  if (n) return 32;\n  return 0;\n}\n}  // namespace at::mps\n"
)


@pytest.mark.parametrize("style_file", ["missing", "above-the-tree", "present"])
def test_clang_format_without_the_checkouts_style_file_is_an_error(project: Project, style_file: str) -> None:
    if not (BIN / "clang-format").exists():
        pytest.skip("the clang-format wheel is not installed in this venv")
    if style_file != "present":
        # The wrong checkout: one without .clang-format. The base commit is remade without it.
        project.up.git("rm", "-q", ".clang-format")
        project.up.commit("no style file")
        project.up.git("tag", "-f", "v1.0")
    if style_file == "above-the-tree":
        (project.dir / ".clang-format").write_text(CLANG_FORMAT_STYLE)  # the tree lives under the project
    project.set_patch({**DEFAULT_PATCH, "aten/src/ATen/mps/MPSStreamPool.mm": LLVM_ONLY_VIOLATION_MM})
    project.stages(stage_toml("fmt", "lint", [["clang-format", "--dry-run", "--Werror", "{patched:**/*.mm}"]],
                              full_tree=False))
    result = run_cli("verify", "--json", cwd=project.dir)
    (stage,) = json.loads(result.stdout)["stages"]
    if style_file == "present":
        assert result.returncode == 0 and stage["status"] == "passed", stage
        return
    assert result.returncode == 1, result.stderr
    assert stage["status"] == "error"
    assert stage["reason"].startswith("no .clang-format in the patched tree for 1 file (each file's folder and its "
                                      "parents up to the tree root), first `aten/src/ATen/mps/MPSStreamPool.mm`; "
                                      "clang-format would use LLVM's default style")
    log = (project.dir / "audit/runs" / json.loads(result.stdout)["run_id"] / stage["log"]).read_text()
    assert "clang-format-violations" not in log  # it was never run against a style nobody chose


# -------------------------------------------------------------------------------------------------- CLI


def test_cli_json_and_exit_codes(project: Project) -> None:
    project.stages(stage_toml("ok", "command", [["true"]])
                   + stage_toml("bad", "command", [["sh", "-c", "exit 2"]]))
    passed = run_cli("verify", "--stage", "ok", "--json", cwd=project.dir)
    assert passed.returncode == 0, passed.stderr
    data = json.loads(passed.stdout)
    assert set(data) >= {"run_id", "evidence", "stages"}
    assert Path(data["evidence"]) == project.dir / "audit/runs" / data["run_id"] / "evidence.json"
    (stage,) = data["stages"]
    assert set(stage) >= {"name", "kind", "status", "reason", "duration_s", "counts", "log"}
    assert stage["status"] == "passed" and Path(stage["log"]).is_file()
    failed = run_cli("verify", "--json", cwd=project.dir)
    assert failed.returncode == 1
    assert [s["status"] for s in json.loads(failed.stdout)["stages"]] == ["passed", "failed"]
    assert json.loads(failed.stdout)["stages"][0]["reason"] == "cached"
    table = run_cli("verify", "--stage", "bad", cwd=project.dir)
    assert table.returncode == 1 and "bad" in table.stdout and "exited 2" in table.stdout
    unknown = run_cli("verify", "--stage", "nope", cwd=project.dir)
    assert unknown.returncode == 2 and "no stage named 'nope'" in unknown.stderr and unknown.stdout == ""


def test_cli_tsan_stage_compiles_and_counts_a_race(project: Project, tmp_path: Path) -> None:
    if shutil.which("g++") is None:
        pytest.skip("g++ is not installed")
    racy = write_racy_program(tmp_path)
    binary = tmp_path / "racy"
    project.stages(stage_toml("tsan", "tsan", [["g++", "-fsanitize=thread", "-g", str(racy), "-o", str(binary)],
                                               [str(binary)], [str(binary)]], full_tree=False))
    result = run_cli("verify", "--json", cwd=project.dir)
    assert result.returncode == 1, result.stderr
    (stage,) = json.loads(result.stdout)["stages"]
    assert stage["status"] == "failed" and stage["counts"]["races"] == 2  # one per run of the harness
    assert stage["details"][0].startswith("SUMMARY: ThreadSanitizer: data race ")


def test_under_github_actions_verify_annotates_the_race_at_its_line_and_keeps_stdout_json(
    project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if shutil.which("g++") is None:
        pytest.skip("g++ is not installed")
    racy = write_racy_program(tmp_path)
    binary = tmp_path / "racy"
    project.stages(stage_toml("tsan", "tsan", [["g++", "-fsanitize=thread", "-g", str(racy), "-o", str(binary)],
                                               [str(binary)]], full_tree=False))
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    result = run_cli("verify", "--json", cwd=project.dir)
    assert result.returncode == 1, result.stderr
    assert json.loads(result.stdout)["stages"][0]["status"] == "failed"  # stdout is still exactly the JSON
    annotations = [line for line in result.stderr.splitlines() if line.startswith("::error ")]
    assert annotations and all("title=tsan::" in line for line in annotations), result.stderr
    assert any(f"file={racy}".replace(":", "%3A").replace(",", "%2C") in line and ",line=" in line
               for line in annotations), annotations
    monkeypatch.delenv("GITHUB_ACTIONS")
    assert "::error" not in run_cli("verify", "--json", "--force", cwd=project.dir).stderr


def test_cli_ctrl_c_records_an_interrupted_run(project: Project, tmp_path: Path) -> None:
    project.stages(stage_toml("slow", "command", [["{python}", "-c", "print('started', flush=True); "
                                                                      "import time; time.sleep(60)"]])
                   + stage_toml("next", "command", [["true"]]))
    child = subprocess.Popen([*MPSPATCH, "verify", "--json"], cwd=project.dir, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    runs = project.dir / "audit/runs"
    deadline = time.monotonic() + 60
    while not any("started" in p.read_text() for p in runs.glob("*/logs/slow.log")):
        assert time.monotonic() < deadline and child.poll() is None, "the stage never started"
        time.sleep(0.05)
    child.send_signal(signal.SIGINT)
    stdout, stderr = child.communicate(timeout=60)
    assert child.returncode == 130, stderr
    data = json.loads(stdout)
    assert [(s["status"], s["reason"]) for s in data["stages"]] == [
        ("error", "interrupted"), ("skipped", "not run: interrupted")
    ]
    assert read_run(Path(data["evidence"])).stages[0].reason == "interrupted"


# ------------------------------------------------------------------------------------------- with rebase


def test_verify_refuses_while_a_rebase_is_stopped_and_follows_a_finished_one(project: Project) -> None:
    from mpspatch.operations import rebase

    project.stages(stage_toml("ok", "command", [["true"]]))
    project.up.write("aten/src/ATen/mps/MPSStream.mm", CLEAN_MM + "// upstream note\n")
    project.up.commit("upstream: a note", tag="v1.2")
    project.up.git("checkout", "-q", "-b", "side", "v1.0")
    project.up.write("torch/mps/__init__.py", "def device_count():\n    return 2\n")
    project.up.commit("upstream: two devices", tag="conflicting")
    project.up.git("checkout", "-q", "main")
    config = load_config(project.dir / "mpspatch.toml")
    stopped = rebase.start(Workspace(config), "conflicting")
    assert stopped.status == "conflict"
    with pytest.raises(StateError, match=r"onto conflicting \(\w+\) is stopped.*`mpspatch verify` waits for it"):
        project.verify()
    rebase.abort(Workspace(config))
    before = project.verify()
    assert before.run.base == project.up.git("rev-parse", "v1.0").strip() and before.run.onto is None
    done = rebase.start(Workspace(load_config(project.dir / "mpspatch.toml")), "v1.2")
    assert done.status == "rebased"
    after = project.verify()
    onto = project.up.git("rev-parse", "v1.2").strip()
    assert after.run.base == onto and after.run.onto == onto and after.run.base_ref == "v1.2"
    assert after.run.stages[0].reason == ""  # a new base is a new cache key
    assert (project.tree / "aten/src/ATen/mps/MPSStream.mm").read_text().endswith("// upstream note\n")
    assert (project.tree / "aten/src/ATen/mps/MPSStreamPool.mm").read_text() == POOL_MM


# ------------------------------------------------------------------------------------- edges of the runner


def test_a_patched_glob_matching_nothing_skips_the_command(project: Project) -> None:
    project.stages(stage_toml("cuda-format", "lint", [["clang-format", "--dry-run", "{patched:**/*.cu}"]])
                   + stage_toml("mixed", "command", [["{python}", "-c", "print('ran')"],
                                                     ["cat", "{patched:**/*.metal}"]]))
    cuda, mixed = project.verify().run.stages
    assert cuda.status == "skipped" and cuda.reason == "no patched file matches {patched:**/*.cu}"
    assert mixed.status == "passed"
    assert "not run: no patched file matches {patched:**/*.metal}" in (
        project.dir / "audit/runs" / project.verify(force=True).run.run_id / "logs/mixed.log").read_text()


def test_stage_commands_never_read_our_stdin(project: Project) -> None:
    project.stages(stage_toml("reads-stdin", "command", [["cat"]]))
    assert project.verify().run.stages[0].status == "passed"


def test_a_bad_placeholder_stops_before_anything_runs(project: Project) -> None:
    project.stages(stage_toml("bad", "command", [["echo", "--files={patched}"]]))
    result = run_cli("verify", cwd=project.dir)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"mpspatch: error: {project.dir / 'mpspatch.toml'}: [stages.bad].run: {{patched}} must be a whole argv "
        "item, not part of '--files={patched}'; fix: write it as its own list element"
    )
    assert not (project.dir / "audit/runs").exists()


def test_one_verify_at_a_time_and_a_stale_lock_is_taken_over(project: Project) -> None:
    from mpspatch.verify import patched_tree

    project.stages(stage_toml("ok", "command", [["true"]]))
    config = load_config(project.dir / "mpspatch.toml")
    with patched_tree.exclusive(config), pytest.raises(StateError, match=rf"\(pid {os.getpid()}\) is running"):
        project.verify()
    dead = subprocess.Popen(["true"])
    dead.wait()
    (project.dir / ".mpspatch/verify.lock").write_text(f"{dead.pid}\n")  # its process is gone
    assert project.verify().ok
    assert not (project.dir / ".mpspatch/verify.lock").exists()


def test_the_lock_is_born_with_its_pid(project: Project) -> None:
    # A lock that could exist empty, even for an instant, would let a second run take it for a stale one.
    from mpspatch.verify import patched_tree

    project.stages(stage_toml("ok", "command", [["true"]]))
    config = load_config(project.dir / "mpspatch.toml")
    with patched_tree.exclusive(config):
        assert (project.dir / ".mpspatch/verify.lock").read_text() == f"{os.getpid()}\n"
    assert sorted(p.name for p in (project.dir / ".mpspatch").iterdir() if "verify.lock" in p.name) == []


def test_an_unreadable_old_run_does_not_block_verify(project: Project) -> None:
    project.stages(stage_toml("ok", "command", [["true"]]))
    first = project.verify()
    broken = project.dir / "audit/runs/20000101T000000Z-deadbeef"
    broken.mkdir()
    (broken / "evidence.json").write_text("{not json")
    again = project.verify()
    assert again.run.stages[0].cached_from == first.run.run_id


def test_mps_is_probed_after_the_build_that_installs_torch(project: Project, tmp_path: Path) -> None:
    # The build stage is what puts torch in place, so a probe made before it would skip every GPU stage of a
    # first run. The torch here is test_machine's declared stand-in: Metal cannot exist on Linux.
    from test_machine import FAKE_TORCH

    site = tmp_path / "site"
    site.mkdir()
    python = tmp_path / "python"
    python.write_text(f'#!/bin/sh\nFAKE_MPS=right PYTHONPATH="{site}" exec "{sys.executable}" "$@"\n')
    python.chmod(0o755)
    (tmp_path / "torch_init.py").write_text(FAKE_TORCH)
    project.stages(
        stage_toml("early-gpu", "command", [["true"]], requires={"mps": True})
        + stage_toml("build", "build", [["sh", "-c", f"mkdir -p {site}/torch && cp {tmp_path}/torch_init.py "
                                                    f"{site}/torch/__init__.py"]])
        + stage_toml("gpu", "command", [["{python}", "-c", "import torch; print(torch.__version__)"]],
                     requires={"mps": True})
    )
    early, build, gpu = verify(Workspace(load_config(project.dir / "mpspatch.toml")), python=str(python)).run.stages
    assert early.status == "skipped" and early.reason.startswith("requires mps: torch is not importable by")
    assert build.status == "passed"
    assert gpu.status == "passed", gpu.reason


def write_racy_program(folder: Path) -> Path:
    """A C++ program whose two threads increment one int unguarded: ThreadSanitizer reports one race a run."""
    racy = folder / "racy.cpp"
    racy.write_text(
        "#include <thread>\nstatic int shared = 0;\n"
        "int main() { std::thread a([] { for (int i = 0; i < 1000; ++i) ++shared; });\n"
        "  std::thread b([] { for (int i = 0; i < 1000; ++i) ++shared; }); a.join(); b.join(); return 0; }\n"
    )
    return racy
