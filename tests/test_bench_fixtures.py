"""Smoke test of the real-scale benchmark fixtures, built small (300 files) so it runs in seconds."""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import bench_git, fixtures  # noqa: E402

SMALL = 300


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> fixtures.FixtureSet:
    return fixtures.ensure_fixtures(tmp_path_factory.mktemp("bench") / "fixture", n_files=SMALL)


def git(fx: fixtures.FixtureSet, *args: str, ok: tuple[int, ...] = (0,), index: Path | None = None) -> str:
    env = fixtures.identity_env(1_760_000_000)
    if index is not None:
        env["GIT_INDEX_FILE"] = str(index)
    return fixtures.run_git(args, fx.upstream.repo, env=env, ok=ok).stdout.decode()


def test_releases_tags_and_branches(built: fixtures.FixtureSet) -> None:
    up = built.upstream
    assert git(built, "cat-file", "-t", "v2.9.1").strip() == "tag"  # annotated, as PyTorch's are
    assert git(built, "rev-parse", "v2.9.1^{commit}").strip() == up.base_commit
    assert git(built, "rev-parse", "v2.15.0^{commit}").strip() == up.target_commit
    assert git(built, "rev-parse", "viable/strict").strip() == up.target_commit
    assert git(built, "rev-list", "--count", "v2.9.1..v2.15.0").strip() == str(len(up.commits))
    assert 30 <= len(up.commits) <= 60
    assert git(built, "rev-list", "--count", "viable/strict..main").strip() == "2"
    assert git(built, "status", "--porcelain").strip() == ""  # the user's checkout is clean


def test_tree_is_pytorch_shaped(built: fixtures.FixtureSet) -> None:
    paths = git(built, "ls-tree", "-r", "--name-only", "v2.9.1").split()
    assert len(paths) == SMALL == built.upstream.files_at_base
    for prefix in ("aten/src/ATen/mps/", "aten/src/ATen/native/mps/operations/", "torch/csrc/mps/", "test/", "c10/",
                   "tools/", "torch/"):
        assert any(p.startswith(prefix) for p in paths), prefix
    assert {".h", ".mm", ".cpp", ".py", ".yaml"} <= {Path(p).suffix for p in paths}
    assert fixtures.NEW_FILE not in paths


def test_generated_sources_are_well_formed(built: fixtures.FixtureSet) -> None:
    # The user's checkout holds main, so this covers the base files and every upstream edit on top.
    files = [p for p in built.upstream.repo.rglob("*") if p.is_file() and ".git" not in p.parts]
    python = [p for p in files if p.suffix == ".py"]
    cfamily = [p for p in files if p.suffix in (".h", ".cpp", ".mm", ".cu", ".cuh", ".metal")]
    assert len(python) > 20 and len(cfamily) > 100
    for path in python:
        ast.parse(path.read_text(), str(path))
    for path in cfamily:  # plausible, not compilable: but braces and parentheses pair up
        text = path.read_text()
        assert (text.count("{"), text.count("(")) == (text.count("}"), text.count(")")), path


def test_slice_patch_shape(built: fixtures.FixtureSet) -> None:
    patch = built.slice_patch
    text = patch.path.read_text()
    numstat = git(built, "apply", "--numstat", str(patch.path))
    rows = [line.split("\t") for line in numstat.splitlines()]
    assert len(rows) == 13
    assert sum(int(r[0]) + int(r[1]) for r in rows) == 1448 == patch.insertions + patch.deletions
    assert all(r[2].startswith(("aten/src/ATen/mps/", "aten/src/ATen/native/mps/")) for r in rows)
    assert len(re.findall(r"^index [0-9a-f]{40}\.\.[0-9a-f]{40} 100644$", text, re.M)) == 12
    assert "new file mode 100644\nindex 0000000000000000000000000000000000000000.." in text
    # The downstream commit was made in a clone that no longer exists.
    assert patch.downstream_commit is not None
    git(built, "cat-file", "-e", f"{patch.downstream_commit}^{{commit}}", ok=(128,))


def test_slice_applies_with_3way_at_base(built: fixtures.FixtureSet) -> None:
    worktree = built.root / "scratch-test-apply"
    git(built, "worktree", "add", "-q", "--detach", str(worktree), "v2.9.1")
    try:
        fixtures.run_git(["apply", "--3way", str(built.slice_patch.path)], worktree)
        staged = fixtures.run_git(["diff", "--cached", "--numstat"], worktree).stdout.decode()
        assert sum(int(a) + int(d) for a, d, _ in (line.split("\t") for line in staged.splitlines())) == 1448
    finally:
        git(built, "worktree", "remove", "--force", str(worktree))


def test_forecast_onto_target_meets_the_design(built: fixtures.FixtureSet) -> None:
    expected = built.upstream.expected
    bench = bench_git.Bench(built, built.root / "scratch-test-forecast")
    bench.reset_scratch()
    commit = bench_git.patched_commit(bench)
    out = git(built, "merge-tree", "--write-tree", "--name-only", "--no-messages", "v2.15.0", commit, ok=(1,))
    tree, *conflicted = out.split()
    assert conflicted == [c.path for c in expected.conflicts]
    for conflict in expected.conflicts:
        merged = git(built, "cat-file", "-p", f"{tree}:{conflict.path}")
        assert merged.count("\n<<<<<<< ") == conflict.regions, conflict.path

    def blob(rev: str, path: str) -> str:
        return git(built, "rev-parse", f"{rev}:{path}").strip()

    for path in expected.absorbed:  # every change already upstream: the merge is exactly upstream's file
        assert blob(tree, path) == blob("v2.15.0", path) != blob("v2.9.1", path)
    for path in expected.partly_absorbed:  # one hunk already upstream: what is left is smaller than the patch
        left = git(built, "diff", "--numstat", "v2.15.0", tree, "--", path).split()
        whole = git(built, "diff", "--numstat", "v2.9.1", commit, "--", path).split()
        assert 0 < int(left[0]) + int(left[1]) < int(whole[0]) + int(whole[1])
    for path in expected.clean:  # both sides changed it, and it merged: differs from both parents
        assert len({blob(tree, path), blob("v2.15.0", path), blob(commit, path)}) == 3, path


def test_pull_request_trailers(built: fixtures.FixtureSet) -> None:
    log = git(built, "log", "--format=%H%x00%B%x01", "v2.9.1..v2.15.0")
    found: dict[str, int | None] = {}
    for record in filter(str.strip, log.split("\x01")):
        sha, body = record.strip().split("\x00", 1)
        match = re.search(r"^Pull Request resolved: https://github\.com/pytorch/pytorch/pull/(\d+)$", body, re.M)
        found[sha] = int(match.group(1)) if match else None
    assert found == {c.sha: c.pull_request for c in built.upstream.commits}
    assert sum(pr is not None for pr in found.values()) >= 30
    assert fixtures.ABSORBING_PR in found.values()
    untrailed = [c for c in built.upstream.commits if c.pull_request is None]
    assert any("aten/src/ATen/mps/MPSGuardImpl.h" in c.paths for c in untrailed)  # a conflict with no PR
    assert any(c.subject.startswith("Revert ") for c in untrailed)


def test_cumulative_patch_shape(built: fixtures.FixtureSet) -> None:
    patch = built.cumulative_patch
    text = patch.path.read_text()
    assert len(text.splitlines()) == 7608
    rows = [line.split("\t") for line in git(built, "apply", "--numstat", str(patch.path)).splitlines()]
    assert len(rows) == 50
    assert (sum(int(r[0]) for r in rows), sum(int(r[1]) for r in rows)) == (4173, 798)
    assert len(re.findall(r"^index [0-9a-f]{8}\.\.[0-9a-f]{8} 100644$", text, re.M)) == 49
    assert {c.name: c.files for c in patch.categories} == {
        "Core MPS": 14,
        "Operations": 32,
        "Python bindings": 3,
        "Tests": 1,
    }


def test_builds_are_deterministic_and_cached(built: fixtures.FixtureSet, tmp_path: Path) -> None:
    again = fixtures.build_all(tmp_path / "again", n_files=SMALL)
    assert (again.upstream.base_commit, again.upstream.target_commit, again.upstream.main_commit) == (
        built.upstream.base_commit,
        built.upstream.target_commit,
        built.upstream.main_commit,
    )
    assert again.slice_patch.path.read_bytes() == built.slice_patch.path.read_bytes()
    assert again.cumulative_patch.path.read_bytes() == built.cumulative_patch.path.read_bytes()
    manifest = built.root / fixtures.MANIFEST
    before = manifest.stat().st_mtime_ns
    assert fixtures.ensure_fixtures(built.root, n_files=SMALL) == built
    assert manifest.stat().st_mtime_ns == before


def test_too_small_a_tree_is_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert fixtures.main(["--root", str(tmp_path / "fx"), "--files", "10"]) == 2
    assert "n_files must be at least" in capsys.readouterr().err


def test_baseline_scenarios_run_and_check_their_outcome(built: fixtures.FixtureSet) -> None:
    names = ["full_worktree_rebase", "sparse_worktree_rebase", "merge_tree_forecast", "odb_forecast_from_patch"]
    # No disk flush here: os.sync() is machine-wide and would make the test wait for unrelated writers.
    report = bench_git.run(built, runs=1, only=names, warmup=0, settle=None)
    assert [t.name for t in report.results] == names
    assert git(built, "worktree", "list", "--porcelain").count("worktree ") == 1  # nothing left behind
    assert git(built, "status", "--porcelain").strip() == ""


def test_time_median() -> None:
    calls: list[int] = []
    settled: list[int] = []
    timing = bench_git.time_median(lambda: calls.append(1), 3, warmup=2, name="noop", settle=lambda: settled.append(1))
    assert len(calls) == len(settled) == 5
    assert len(timing.samples_s) == 3
    assert timing.min_s <= timing.median_s
    with pytest.raises(ValueError):
        bench_git.time_median(lambda: None, 0)
