"""`mpspatch drift` end to end on the shared scenarios, through the real CLI.

The forecast is held against two truths: the scenario's written expectations (EXPECT), and what
`mpspatch rebase` then really stops on, stop by stop, in the same repositories. A snapshot of the user's clone
taken before and after proves the forecast changed nothing there.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from native_scenarios import build_native_scenario
from scenarios import (
    ABSORBING_PR,
    EXPECT,
    LINEAR_MM,
    PR_URL,
    STREAM_MM,
    TEST_MPS,
    TORCH_MPS,
    Scenario,
    build_scenario,
)
from support import git_env

from mpspatch.foundation.config import load_config
from mpspatch.foundation.errors import ToolMissingError
from mpspatch.git import verbs as git
from mpspatch.git.commits import series_commits
from mpspatch.model import history, series_cache
from mpspatch.model.workspace import Workspace, resolve_ref
from mpspatch.operations import drift

MPSPATCH = [sys.executable, "-m", "mpspatch.cli"]
GOLDEN = Path(__file__).parent / "golden"


def run_cli(scenario: Scenario, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MPSPATCH_")}
    return subprocess.run([*MPSPATCH, *args], cwd=scenario.project, capture_output=True, text=True, check=False,
                          timeout=120, env=env)


def drift_json(scenario: Scenario, onto: str, *extra: str) -> tuple[int, dict[str, Any]]:
    result = run_cli(scenario, "drift", "--onto", onto, "--json", *extra)
    assert result.stdout.strip(), result.stderr
    return result.returncode, json.loads(result.stdout)  # exactly one JSON object, or this raises


def rebase_stops(scenario: Scenario, onto: str, blames: dict[str, Any] | None = None,
                 ) -> tuple[list[tuple[str, dict[str, int]]], dict[str, Any]]:
    """Run `mpspatch rebase`; at each stop take the patch's side of every conflict and continue.

    Returns each stop (patch name, {path: regions}) and the final JSON; `blames` collects each stop's
    `(patch, path) -> (blame, touched)`.
    """
    result = run_cli(scenario, "rebase", "--onto", onto, "--json")
    stops = []
    for _ in range(10):
        data = json.loads(result.stdout)
        if result.returncode != 1:
            break
        stops.append((data["stopped_at"], {c["path"]: c["regions"] for c in data["conflicts"]}))
        if blames is not None:
            blames.update({f"{data['stopped_at']}:{c['path']}": (c["blame"], c["touched"]) for c in data["conflicts"]})
        worktree = Path(data["worktree"])
        for conflict in data["conflicts"]:
            file = worktree / conflict["path"]
            file.write_bytes(history.take_patch_side(file.read_bytes()))
        result = run_cli(scenario, "rebase", "--continue", "--json")
    assert result.returncode == 0, result.stderr
    return stops, json.loads(result.stdout)


def forecast_stops(data: dict[str, Any]) -> list[tuple[str, dict[str, int]]]:
    stops: dict[str, dict[str, int]] = {}
    for conflict in data["conflicts"]:
        stops.setdefault(conflict["patch"], {})[conflict["path"]] = conflict["regions"]
    return list(stops.items())


def snapshot(clone: Path) -> dict[str, object]:
    """Everything of the user's clone a forecast could change: refs, worktrees, status, HEAD, index, objects."""
    env = {**git_env(), "GIT_OPTIONAL_LOCKS": "0"}  # so `git status` itself cannot refresh the index

    def run(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=clone, env=env, capture_output=True, text=True, check=True).stdout

    objects = clone / ".git" / "objects"
    return {
        "refs": run("for-each-ref", "--format=%(refname) %(objectname)"),
        "worktrees": run("worktree", "list", "--porcelain"),
        "status": run("status", "--porcelain=v1", "--untracked-files=all", "--ignored"),
        "head": run("rev-parse", "HEAD") + run("symbolic-ref", "-q", "HEAD"),
        "index": (clone / ".git" / "index").read_bytes(),
        "objects": sorted(str(p.relative_to(objects)) for p in objects.rglob("*")),
        "config": (clone / ".git" / "config").read_bytes(),
    }


@pytest.fixture(scope="module")
def two(tmp_path_factory: pytest.TempPathFactory) -> Scenario:
    """One scenario for the read-only tests; the tests that rebase build their own."""
    return build_scenario(tmp_path_factory.mktemp("drift-two"), "two")


# ------------------------------------------------------------------------------ forecast equals rebase


@pytest.mark.parametrize(("onto", "layout"), [("v1.1", "two"), ("v1.2", "single"), ("v1.3", "two"),
                                              ("v1.3", "single")])
def test_forecast_equals_what_rebase_then_finds(tmp_path: Path, onto: str, layout: str) -> None:
    scenario = build_scenario(tmp_path, layout)
    code, data = drift_json(scenario, onto)
    blames: dict[str, Any] = {}
    stops, rebased = rebase_stops(scenario, onto, blames)
    assert forecast_stops(data) == stops
    # Each region is blamed on the same upstream commits, and the same others are only `touched`.
    assert {f"{c['patch']}:{c['path']}": (c["blame"], c["touched"]) for c in data["conflicts"]} == blames
    assert code == (1 if stops else 0) and data["status"] == ("conflict" if stops else "clean")
    assert data["stopped_at"] == (stops[0][0] if stops else None)
    # The same changes are found already upstream, with the same PRs, by both commands.
    assert {(a["path"], a["whole_file"], tuple(a["pull_requests"])) for a in data["absorbed"]} == {
        (a["path"], a["whole_file"], tuple(a["pull_requests"])) for a in rebased["absorbed"]}


@pytest.mark.parametrize(("case", "config"), [
    ("dispatch-keys", ""), ("same-key", ""), ("new-entries", ""), ("same-key", '[rebase]\nconflict_style = "zdiff3"'),
    ("mm-conflict", '[rebase]\nconflict_style = "diff3"')])
def test_forecast_equals_rebase_with_the_shadows_merge_drivers(tmp_path: Path, case: str, config: str) -> None:
    """The structured merge of native_functions.yaml and the conflict style act in merge-tree as in rebase."""
    scenario = build_native_scenario(tmp_path, case, config)
    code, data = drift_json(scenario, "v1.1")
    stops, _ = rebase_stops(scenario, "v1.1")
    assert forecast_stops(data) == stops
    assert code == (1 if stops else 0)
    assert bool(stops) == (case in ("same-key", "mm-conflict"))


@pytest.mark.parametrize("onto", ["v1.1", "v1.2", "v1.3"])
def test_forecast_matches_the_scenario_expectations(two: Scenario, onto: str) -> None:
    expect = EXPECT[onto]
    _, data = drift_json(two, onto)
    assert {c["path"]: c["regions"] for c in data["conflicts"]} == {c.path: c.regions for c in expect.conflicts}
    assert [tuple(p for p, _ in stop[1].items()) for stop in forecast_stops(data)] == [
        tuple(sorted(paths)) for paths in expect.conflicts_by_patch]
    for want in expect.conflicts:
        got = next(c for c in data["conflicts"] if c["path"] == want.path)
        assert tuple(u["pull_request"] for u in got["upstream_commits"]) == want.pull_requests
    assert sorted((a["path"], tuple(a["pull_requests"]), a["whole_file"]) for a in data["absorbed"]) == sorted(
        (a.path, a.pull_requests, a.whole_file) for a in expect.absorbed)


def test_per_file_outcomes_and_commit_marks(two: Scenario) -> None:
    code, data = drift_json(two, "v1.3")
    assert code == 1
    outcomes = {f["path"]: f["outcome"] for f in data["files"]}
    assert outcomes[STREAM_MM] == outcomes[LINEAR_MM] == outcomes[TEST_MPS] == "conflict"
    assert outcomes[TORCH_MPS] == "absorbed"
    assert set(outcomes.values()) == {"conflict", "absorbed", "clean"}
    _, partial = drift_json(two, "v1.2")
    assert {f["path"]: f["outcome"] for f in partial["files"]}[STREAM_MM] == "partly-absorbed"
    stream = next(f for f in partial["files"] if f["path"] == STREAM_MM)
    assert (stream["absorbed_hunks"], stream["hunks"]) == (1, 3)

    commits = data["upstream_commits"]
    assert all(set(c) >= {"sha", "subject", "pull_request", "paths", "conflicting", "absorbed"} for c in commits)
    log = git.git(two.checkout, "log", "--format=%H", "v1.0..v1.3").stdout.split()
    assert [c["sha"] for c in commits] == [s for s in log if s in {c["sha"] for c in commits}]  # newest first
    by_pr = {c["pull_request"]: c for c in commits}
    # It also touched MPSStream.mm, but no line of a conflict region there: touched, not conflicting.
    assert by_pr[ABSORBING_PR]["absorbed"] and not by_pr[ABSORBING_PR]["conflicting"]
    assert not by_pr[170001]["conflicting"] and by_pr[171000]["conflicting"]
    assert sorted(by_pr[ABSORBING_PR]["paths"]) == [STREAM_MM, TORCH_MPS]
    assert by_pr[171001]["conflicting"] and not by_pr[171001]["absorbed"]
    assert not by_pr[170002]["conflicting"] and not by_pr[170002]["absorbed"]
    assert by_pr[None]["subject"] == "Add stream tests for MPS" and by_pr[None]["conflicting"]
    assert "c10/core/Allocator.h" not in {p for c in commits for p in c["paths"]}  # only patched paths


# ------------------------------------------------------------------------------------ changes nothing


def test_drift_changes_nothing_in_the_users_clone(tmp_path: Path) -> None:
    scenario = build_scenario(tmp_path, "two")
    clone = scenario.checkout
    (clone / STREAM_MM).write_text("// the user's own uncommitted edit\n")  # a dirty clone stays dirty
    (clone / "scratch.txt").write_text("untracked\n")
    subprocess.run(["git", "worktree", "add", "-q", str(tmp_path / "user-wt"), "v1.1"], cwd=clone, env=git_env(),
                   check=True, capture_output=True)
    lock = [scenario.project / "patches" / "series.lock", *scenario.patches]
    before, patch_bytes = snapshot(clone), [p.read_bytes() if p.exists() else None for p in lock]
    for onto in ("v1.3", "v1.2", "v1.1"):
        assert drift_json(scenario, onto)[0] in (0, 1)
    assert run_cli(scenario, "drift", "--onto", "v1.3", "--markdown", str(tmp_path / "summary.md")).returncode == 1
    assert snapshot(clone) == before
    assert [p.read_bytes() if p.exists() else None for p in lock] == patch_bytes


def test_a_git_hook_environment_does_not_redirect_the_forecast(two: Scenario, tmp_path: Path) -> None:
    """Run from a hook of the project's own repository, git exports GIT_DIR, GIT_WORK_TREE and GIT_INDEX_FILE
    for that repository; mpspatch must still read the upstream clone, and leave the hook's repository alone."""
    hook_repo = tmp_path / "project-repo"
    subprocess.run(["git", "init", "-q", str(hook_repo)], env=git_env(), check=True, capture_output=True)
    _, expected = drift_json(two, "v1.3")
    hooked = {"GIT_DIR": str(hook_repo / ".git"), "GIT_WORK_TREE": str(hook_repo),
              "GIT_INDEX_FILE": str(hook_repo / ".git" / "index")}
    before = sorted(str(p.relative_to(hook_repo)) for p in hook_repo.rglob("*"))
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("MPSPATCH_")}, **hooked}
    result = subprocess.run([*MPSPATCH, "drift", "--onto", "v1.3", "--json"], cwd=two.project, capture_output=True,
                            text=True, check=False, timeout=120, env=env)
    assert result.returncode == 1, result.stderr
    assert json.loads(result.stdout) == expected
    assert sorted(str(p.relative_to(hook_repo)) for p in hook_repo.rglob("*")) == before


# ------------------------------------------------------------------------------------------- bad input


def test_unknown_ref_is_exit_2_and_names_the_fetch(two: Scenario) -> None:
    result = run_cli(two, "drift", "--onto", "v1.4", "--json")
    assert result.returncode == 2 and result.stdout == ""
    assert "fetch origin tag v1.4" in result.stderr and result.stderr.count("\n") == 1


def test_old_git_is_refused_before_any_work(two: Scenario, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(git, "version", lambda: (2, 34, 1))
    with pytest.raises(ToolMissingError) as info:
        drift.compute_drift(Workspace(load_config(two.config)), "v1.1")
    assert "git 2.34.1 is too old" in info.value.message and "2.38" in info.value.message


# -------------------------------------------------------------------------------------- terminal, markdown


def test_terminal_report_lists_files_then_commits(two: Scenario) -> None:
    result = run_cli(two, "drift", "--onto", "v1.3")
    assert result.returncode == 1, result.stderr
    text = result.stdout
    assert "Forecast per file" in text and "Upstream commits touching patched files" in text
    assert text.index("Forecast per file") < text.index("Upstream commits touching patched files")
    assert "#190375" in text and "3 conflict(s) predicted" in text


def test_markdown_report_matches_the_golden_file(two: Scenario, tmp_path: Path) -> None:
    out = tmp_path / "summary.md"
    result = run_cli(two, "drift", "--onto", "v1.3", "--json", "--markdown", str(out))
    assert result.returncode == 1
    json.loads(result.stdout)  # --markdown does not disturb the JSON contract
    text = out.read_text()
    golden = GOLDEN / "drift_v1.3.md"
    if os.environ.get("MPSPATCH_UPDATE_GOLDEN"):
        golden.parent.mkdir(exist_ok=True)
        golden.write_text(text)
    assert text == golden.read_text(), "rerun with MPSPATCH_UPDATE_GOLDEN=1 if the change is intended"
    assert f"[#{ABSORBING_PR}]({PR_URL}{ABSORBING_PR})" not in text  # config's URL is not GitHub in the scenario
    assert "| `aten/src/ATen/mps/MPSStream.mm` | conflict | 2 | 1 of 3 |" in text


def test_history_records_tonights_forecast_and_charts_every_night(two: Scenario, tmp_path: Path) -> None:
    history = tmp_path / "nightly"
    history.mkdir()
    older = {"date": "2000-01-01", "onto": "ab" * 20, "onto_ref": "v1.2", "conflicts": 1, "regions": 1,
             "absorbed": 0, "upstream_commits": 2, "patch_hunks": 3}
    (history / "drift-history.jsonl").write_text(json.dumps(older) + "\n")
    out = tmp_path / "summary.md"
    code, data = drift_json(two, "v1.3", "--markdown", str(out), "--history", str(history))
    assert code == 1  # the exit code and the JSON contract are the forecast's, history or not
    records = [json.loads(line) for line in (history / "drift-history.jsonl").read_text().splitlines()]
    assert records[0] == older and len(records) == 2
    tonight = records[1]
    assert tonight["onto"] == data["onto"] and tonight["onto_ref"] == "v1.3"
    assert tonight["conflicts"] == len(data["conflicts"]) == 3
    assert tonight["regions"] == sum(c["regions"] for c in data["conflicts"])
    assert tonight["absorbed"] == sum(a["hunks"] for a in data["absorbed"]) > 0
    assert tonight["upstream_commits"] == len(data["upstream_commits"])
    assert tonight["patch_hunks"] == sum(f["hunks"] for f in data["files"]) > 0
    text = out.read_text()
    assert text.startswith((GOLDEN / "drift_v1.3.md").read_text().rstrip("\n"))  # the forecast, then the trend
    assert "```mermaid\nxychart-beta\n" in text
    assert f'    x-axis ["01-01", "{tonight["date"][5:]}"]' in text
    assert f"    line [1, {tonight['regions']}]" in text
    # A second forecast the same night replaces tonight's record rather than adding a point.
    assert run_cli(two, "drift", "--onto", "v1.3", "--history", str(history)).returncode == 1
    assert len((history / "drift-history.jsonl").read_text().splitlines()) == 2


def test_history_must_be_a_folder(two: Scenario, tmp_path: Path) -> None:
    not_a_folder = tmp_path / "history.jsonl"
    not_a_folder.write_text("")
    result = run_cli(two, "drift", "--onto", "v1.3", "--history", str(not_a_folder))
    assert result.returncode == 2 and "not a folder" in result.stderr and "Traceback" not in result.stderr


def test_pull_request_links_only_for_github_upstreams() -> None:
    assert drift.pull_request_url("https://github.com/pytorch/pytorch.git") == "https://github.com/pytorch/pytorch/pull/"
    assert drift.pull_request_url("git@github.com:pytorch/pytorch.git") == "https://github.com/pytorch/pytorch/pull/"
    assert drift.pull_request_url("https://example.invalid/upstream.git") is None


def test_missing_clone_and_inconsistent_series_are_bad_input(tmp_path: Path) -> None:
    scenario = build_scenario(tmp_path / "inconsistent", "inconsistent")
    result = run_cli(scenario, "drift", "--onto", "v1.1", "--json")
    assert result.returncode == 2 and result.stdout == ""
    assert "series inconsistent" in result.stderr and "0002-python-and-tests.patch" in result.stderr
    config = scenario.config.read_text().replace('checkout = "../pytorch"', 'checkout = "../no-such-clone"')
    scenario.config.write_text(config)
    result = run_cli(scenario, "drift", "--onto", "v1.1")
    assert result.returncode == 2 and "no-such-clone" in result.stderr and "does not exist" in result.stderr


def test_series_commits_are_cached_by_content_and_rebuilt_when_gone(tmp_path: Path) -> None:
    scenario = build_scenario(tmp_path, "two")
    config = load_config(scenario.config)
    first = drift.compute_drift(Workspace(config), "v1.3")
    shadow = Workspace(config).shadow
    cache = shadow / series_cache.CACHE_FILE
    cached = json.loads(cache.read_text())
    key, commits = cached["key"], cached["commits"]
    assert cached == {"version": series_cache.CACHE_VERSION, "key": key, "commits": commits, "notes": []}
    assert drift.compute_drift(Workspace(config), "v1.3") == first  # from the cache: same commits, same report
    base = resolve_ref(scenario.checkout, "v1.0")
    assert tuple(commits) == series_commits(shadow, base, config.series.patches)  # deterministic SHAs
    # A cache entry naming a commit the shadow does not have is ignored, not trusted.
    cache.write_text(json.dumps({**cached, "commits": ["0" * 40]}))
    assert drift.compute_drift(Workspace(config), "v1.3") == first
    assert json.loads(cache.read_text()) == cached
    # A cache that is not valid (here: not JSON) is rebuilt, never an error.
    cache.write_text("{not json")
    assert drift.compute_drift(Workspace(config), "v1.3") == first
    assert json.loads(cache.read_text()) == cached
    # Another patch text is another key: the forecast follows the edit.
    patch = scenario.patches[1]
    patch.write_text(patch.read_text().replace("stream_pool_size() >= 1", "stream_pool_size() >= 2"))
    edited = drift.compute_drift(Workspace(config), "v1.3")
    assert json.loads(cache.read_text())["key"] != key
    assert [c.path for c in edited.conflicts] == [c.path for c in first.conflicts]
