"""The demo sample, checked with the real tools: git, cmake, g++ with TSan, pytest, clang-format and
lintrunner. Independent of the rest of mpspatch: the stage commands of the sample's config are
expanded here by a few lines of test code, not by mpspatch's runner.

Every expensive step (writing the samples, building, compiling the TSan harness) runs once per
module through module-scoped fixtures.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

import mpspatch.sample.builder as sample_module
from mpspatch.sample.builder import RACE_FILE, Sample, SampleError, write_sample

PR_TRAILER = re.compile(r"^Pull Request resolved: https://github\.com/pytorch/pytorch/pull/(\d+)$", re.M)
FULL_INDEX = re.compile(r"^index [0-9a-f]{40}\.\.[0-9a-f]{40}( \d{6})?$")
ALLOWED_PLACEHOLDERS = re.compile(r"\{(python|jobs|tree|patched(:[^}]*)?)\}")
TOOLS_DIR = str(Path(sys.executable).parent)  # clang-format and lintrunner come with the venv


def run(
    argv: Sequence[str],
    cwd: Path,
    env: Mapping[str, str] | None = None,
    timeout: float = 300,
) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    full_env.update(
        GIT_AUTHOR_NAME="Test Author",
        GIT_AUTHOR_EMAIL="author@test.example",
        GIT_AUTHOR_DATE="1736500000 +0000",
        GIT_COMMITTER_NAME="Test Author",
        GIT_COMMITTER_EMAIL="author@test.example",
        GIT_COMMITTER_DATE="1736500000 +0000",
        GIT_CONFIG_NOSYSTEM="1",
        GIT_CONFIG_GLOBAL=os.devnull,
        PATH=TOOLS_DIR + os.pathsep + os.environ.get("PATH", ""),
    )
    full_env.update(env or {})
    return subprocess.run(
        list(argv), cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout, check=False
    )


def ok(argv: Sequence[str], cwd: Path, env: Mapping[str, str] | None = None) -> str:
    result = run(argv, cwd, env)
    assert result.returncode == 0, f"{argv} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def glob_match(path: str, pattern: str) -> bool:
    """`**` crosses `/`, `*` does not, as in contract-extra.md."""
    regex = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            regex += "(?:.*/)?"
            i += 3
        elif pattern.startswith("**", i):
            regex += ".*"
            i += 2
        elif pattern[i] == "*":
            regex += "[^/]*"
            i += 1
        else:
            regex += re.escape(pattern[i])
            i += 1
    return re.fullmatch(regex, path) is not None


@dataclass(frozen=True)
class Tree:
    """A git clone of the sample's upstream with the series applied at v1.0 and committed."""

    path: Path
    patched: tuple[str, ...]  # added or modified paths, sorted


@dataclass(frozen=True)
class StageResult:
    name: str
    returncode: int
    output: str


def expand(argv: Sequence[str], tree: Tree) -> list[str]:
    out: list[str] = []
    for item in argv:
        if item == "{patched}":
            out.extend(tree.patched)
        elif item.startswith("{patched:") and item.endswith("}"):
            globs = item[len("{patched:") : -1].split(",")
            out.extend(p for p in tree.patched if any(glob_match(p, g) for g in globs))
        else:
            out.append(
                item.replace("{python}", sys.executable)
                .replace("{jobs}", str(os.cpu_count() or 1))
                .replace("{tree}", str(tree.path))
            )
    return out


def run_stage(sample: Sample, tree: Tree, name: str) -> StageResult:
    """Runs one configured stage's commands in order, stopping at the first failure."""
    config = tomllib.loads(sample.config.read_text())
    (stage,) = (s for s in config["stages"] if s["name"] == name)
    output = ""
    for argv in stage["run"]:
        result = run(expand(argv, tree), tree.path / stage.get("cwd", "."), stage.get("env", {}))
        output += result.stdout + result.stderr
        if result.returncode != 0:
            return StageResult(name, result.returncode, output)
    return StageResult(name, 0, output)


def patched_tree(sample: Sample, dest: Path, ref: str = "v1.0") -> Tree:
    ok(["git", "clone", "-q", str(sample.upstream), str(dest)], sample.root)
    ok(["git", "checkout", "-q", "--detach", ref], dest)
    ok(["git", "apply", "--3way", "--index", str(sample.patch)], dest)
    ok(["git", "commit", "-q", "-m", "Apply the series"], dest)
    names = ok(["git", "diff", "--name-only", "--diff-filter=AM", ref, "HEAD"], dest)
    return Tree(dest, tuple(sorted(names.split())))


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Sample:
    return write_sample(tmp_path_factory.mktemp("sample"))


@pytest.fixture(scope="module")
def raced(tmp_path_factory: pytest.TempPathFactory) -> Sample:
    return write_sample(tmp_path_factory.mktemp("raced"), break_race=True)


@pytest.fixture(scope="module")
def tree(sample: Sample, tmp_path_factory: pytest.TempPathFactory) -> Tree:
    return patched_tree(sample, tmp_path_factory.mktemp("tree") / "t")


@pytest.fixture(scope="module")
def raced_tree(raced: Sample, tmp_path_factory: pytest.TempPathFactory) -> Tree:
    return patched_tree(raced, tmp_path_factory.mktemp("raced-tree") / "t")


@pytest.fixture(scope="module")
def built(sample: Sample, tree: Tree) -> Tree:
    result = run_stage(sample, tree, "build")
    assert result.returncode == 0, result.output
    return tree


def refs(repo: Path) -> str:
    return ok(["git", "for-each-ref", "--format=%(objectname) %(refname)"], repo)


# --- the sample as data: history, patch, config ---------------------------------------------------


def test_shas_and_patch_are_stable(sample: Sample, raced: Sample, tmp_path: Path) -> None:
    again = write_sample(tmp_path / "again")
    assert refs(again.upstream) == refs(sample.upstream)
    assert again.patch.read_bytes() == sample.patch.read_bytes()
    assert again.config.read_bytes() == sample.config.read_bytes()
    # The race changes the patch only, never the upstream history.
    assert refs(raced.upstream) == refs(sample.upstream)
    assert raced.patch.read_bytes() != sample.patch.read_bytes()


def test_upstream_history_shape(sample: Sample) -> None:
    names = [line.split()[1] for line in refs(sample.upstream).splitlines()]
    assert names == ["refs/heads/main", "refs/tags/v1.0", "refs/tags/v1.1", "refs/tags/v1.2"]
    for older, newer in [("v1.0", "v1.1"), ("v1.1", "v1.2")]:
        count = ok(["git", "rev-list", "--count", f"{older}..{newer}"], sample.upstream)
        assert int(count) >= 2
    assert ok(["git", "cat-file", "-t", "v1.0"], sample.upstream).strip() == "tag"
    messages = ok(["git", "log", "--format=%B", "v1.0..v1.2"], sample.upstream)
    assert len(PR_TRAILER.findall(messages)) >= 2
    assert ok(["git", "status", "--porcelain"], sample.upstream) == ""


def test_downstream_commit_is_not_in_upstream(sample: Sample) -> None:
    new_blobs = re.findall(r"^index [0-9a-f]{40}\.\.([0-9a-f]{40})", sample.patch.read_text(), re.M)
    assert new_blobs
    for blob in new_blobs:
        assert run(["git", "cat-file", "-e", blob], sample.upstream).returncode != 0


def test_patch_has_full_index_lines(sample: Sample) -> None:
    lines = sample.patch.read_text().splitlines()
    index_lines = [line for line in lines if line.startswith("index ")]
    assert len(index_lines) == sum(line.startswith("diff --git ") for line in lines) > 0
    assert all(FULL_INDEX.match(line) for line in index_lines), index_lines


def test_patch_applies_at_base_and_matches_overlay(tree: Tree) -> None:
    overlay = Path(sample_module.__file__).parent / "data" / "downstream"
    expected = sorted(
        str(p.relative_to(overlay)) for p in overlay.rglob("*") if p.is_file() and "__pycache__" not in p.parts
    )
    assert list(tree.patched) == expected
    for rel in expected:
        assert (tree.path / rel).read_bytes() == (overlay / rel).read_bytes(), rel


@pytest.mark.parametrize("onto", ["v1.1", "v1.2"])
def test_patch_merges_cleanly_onto_newer_releases(tree: Tree, onto: str) -> None:
    merged = ok(["git", "merge-tree", "--write-tree", "HEAD", onto], tree.path).strip()
    changed = ok(["git", "diff", "--name-only", onto, merged], tree.path).split()
    # Upstream also touched some patched files; the merge kept both sides.
    touched = ok(["git", "diff", "--name-only", "v1.0", onto], tree.path).split()
    assert set(touched) & set(changed) >= {"aten/src/ATen/mps/Stream.h", "CMakeLists.txt"}
    ops = "aten/src/ATen/native/mps/Ops.cpp"
    if onto == "v1.2":
        assert ops not in changed  # v1.2 landed the patch's Ops.cpp hunk: already upstream
    else:
        assert ops in changed


def test_plain_apply_needs_three_way_at_v1_2(sample: Sample, tmp_path: Path) -> None:
    repo = tmp_path / "r"
    ok(["git", "clone", "-q", str(sample.upstream), str(repo)], tmp_path)
    ok(["git", "checkout", "-q", "--detach", "v1.2"], repo)
    assert run(["git", "apply", "--check", str(sample.patch)], repo).returncode != 0
    ok(["git", "apply", "--3way", "--index", str(sample.patch)], repo)
    assert "<<<<<<<" not in ok(["git", "diff", "--cached"], repo)


def test_config_matches_sample(sample: Sample, tree: Tree) -> None:
    config = tomllib.loads(sample.config.read_text())
    upstream = config["upstream"]
    assert (sample.project / upstream["checkout"]).resolve() == sample.upstream
    assert (upstream["base"], upstream["target"]) == ("v1.0", "v1.2")
    assert [sample.project / p for p in config["series"]["patches"]] == [sample.patch]
    assert [s["name"] for s in config["stages"]] == ["build", "lint", "tsan", "tests"]
    assert [s["kind"] for s in config["stages"]] == ["build", "lint", "tsan", "tests"]
    for stage in config["stages"]:
        for argv in stage["run"]:
            for item in argv:
                for brace in re.findall(r"\{[^}]*\}", item):
                    assert ALLOWED_PLACEHOLDERS.fullmatch(brace), brace
    allowed = config["series"]["allowed_paths"]
    categories: dict[str, list[str]] = config["categories"]
    for path in tree.patched:
        assert any(path.startswith(prefix) for prefix in allowed), path
        assert any(glob_match(path, g) for globs in categories.values() for g in globs), path
    assert all(categories.values())
    assert glob_match("aten/src/ATen/mps/Stream.h", "aten/src/ATen/mps/**")
    assert not glob_match("tools/mpsrun.cpp", "*.cpp")


def test_refuses_to_overwrite(sample: Sample) -> None:
    with pytest.raises(SampleError, match="already exists"):
        write_sample(sample.root)


# --- the sample's stages, run for real ------------------------------------------------------------


def test_build_stage(built: Tree) -> None:
    assert ok([str(built.path / "build" / "mpsrun"), "add", "10"], built.path) == "sum=135\n"


def test_tests_stage_passes_with_junit(sample: Sample, built: Tree) -> None:
    result = run_stage(sample, built, "tests")
    assert result.returncode == 0, result.output
    config = tomllib.loads(sample.config.read_text())
    (stage,) = (s for s in config["stages"] if s["name"] == "tests")
    suite = ET.parse(built.path / stage["junit"]).getroot().iter("testsuite")
    totals = [(int(s.get("tests", 0)), int(s.get("failures", 0)), int(s.get("errors", 0))) for s in suite]
    tests = sum(t for t, _, _ in totals)
    assert tests >= stage["min_tests"] >= 5
    assert sum(f + e for _, f, e in totals) == 0


def test_pytest_suite_fails_against_upstream_without_pool(
    sample: Sample, built: Tree, tmp_path: Path
) -> None:
    # The same suite against v1.0's own mpsrun (no pool) must fail: the tests can fail.
    upstream_tree = tmp_path / "v1.0"
    ok(["git", "clone", "-q", "--branch", "v1.0", str(sample.upstream), str(upstream_tree)], tmp_path)
    ok(["cmake", "-S", ".", "-B", "build"], upstream_tree)
    ok(["cmake", "--build", "build", "--parallel", str(os.cpu_count() or 1)], upstream_tree)
    result = run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test/test_stream_pool.py"],
        built.path,
        {"MPSRUN": str(upstream_tree / "build" / "mpsrun")},
    )
    assert result.returncode == 1, result.stdout
    assert re.search(r"\d+ failed", result.stdout)


def test_tsan_stage_is_clean_on_the_pool(sample: Sample, tree: Tree) -> None:
    result = run_stage(sample, tree, "tsan")
    assert result.returncode == 0, result.output
    assert "ThreadSanitizer" not in result.output
    assert "tsan_stream_pool: OK" in result.output
    assert "threads=8 iters=50 streams=4 commands=800" in result.output


def test_tsan_stage_catches_the_injected_race(raced: Sample, raced_tree: Tree) -> None:
    assert "std::lock_guard" not in (raced_tree.path / RACE_FILE).read_text().split("commit(")[1][:200]
    result = run_stage(raced, raced_tree, "tsan")
    assert result.returncode == 66, result.output
    assert "WARNING: ThreadSanitizer: data race" in result.output
    assert re.search(r"SUMMARY: ThreadSanitizer: data race .*Stream\.cpp", result.output)


@pytest.mark.parametrize("which", ["good", "raced"])
def test_lint_stage_is_clean(sample: Sample, raced: Sample, tree: Tree, raced_tree: Tree, which: str) -> None:
    # The race is invisible to lint: only TSan may catch it.
    chosen, chosen_tree = (sample, tree) if which == "good" else (raced, raced_tree)
    result = run_stage(chosen, chosen_tree, "lint")
    assert result.returncode == 0, result.output
    assert "TRAILINGWS" not in result.output
    assert "clang-format-violations" not in result.output


def test_clang_format_flags_badly_formatted_code(tree: Tree) -> None:
    target = tree.path / "aten/src/ATen/mps/Executor.cpp"
    original = target.read_text()
    try:
        target.write_text(original.replace("void Executor::run(", "void   Executor::run(", 1))
        result = run(["clang-format", "--dry-run", "--Werror", str(target)], tree.path)
        assert result.returncode != 0
        assert "clang-format-violations" in result.stderr
    finally:
        target.write_text(original)


def test_lintrunner_finds_and_fixes_trailing_whitespace(tree: Tree, tmp_path: Path) -> None:
    target = tree.path / "tools/mpsrun.cpp"
    original = target.read_text()
    lines = original.splitlines(keepends=True)
    lines[3] = lines[3].rstrip("\n") + "  \n"
    lines[7] = lines[7].rstrip("\n") + "\t\n"
    argv = ["lintrunner", "--data-path", str(tmp_path), "--output", "oneline", "tools/mpsrun.cpp"]
    try:
        target.write_text("".join(lines))
        result = run(argv, tree.path)
        assert result.returncode == 1
        found = re.findall(
            r"^tools/mpsrun\.cpp:(\d+):\d+ .*\[TRAILINGWS/trailing-whitespace\]$", result.stdout, re.M
        )
        assert found == ["4", "8"], result.stdout
        fixed = run([*argv[:-1], "--apply-patches", "tools/mpsrun.cpp"], tree.path)
        assert "Successfully applied all patches" in fixed.stdout, fixed.stdout + fixed.stderr
        assert target.read_text() == original
        assert run(argv, tree.path).returncode == 0
    finally:
        target.write_text(original)


def test_tools_are_installed() -> None:
    for tool in ["git", "cmake", "g++", "clang-format", "lintrunner"]:
        assert shutil.which(tool, path=TOOLS_DIR + os.pathsep + os.environ.get("PATH", "")), tool


def test_tsan_compiler_is_a_parameter(tmp_path: Path) -> None:
    written = write_sample(tmp_path / "clang", cxx="clang++")
    assert written.cxx == "clang++"
    config = tomllib.loads(written.config.read_text())
    (stage,) = (s for s in config["stages"] if s["name"] == "tsan")
    assert stage["run"][1][:3] == ["clang++", "-std=c++17", "-fsanitize=thread"]
    default = tomllib.loads((write_sample(tmp_path / "gcc").config).read_text())
    assert [s for s in default["stages"] if s["name"] != "tsan"] == [
        s for s in config["stages"] if s["name"] != "tsan"
    ]
    with pytest.raises(SampleError, match="not a usable compiler"):
        write_sample(tmp_path / "bad", cxx="g++ -O3")
