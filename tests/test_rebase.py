"""`mpspatch rebase` end to end on real repositories built by scenarios.py, through the real CLI."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from scenarios import (
    ABSORBING_PR,
    EXPECT,
    LINEAR_MM,
    STREAM_MM,
    TEST_MPS,
    TORCH_MPS,
    Scenario,
    build_scenario,
)
from support import Repo, git_env

import mpspatch
from mpspatch.foundation.ids import commit_sha
from mpspatch.git import commits
from mpspatch.model.history import pull_request_of
from mpspatch.model.workspace import fetch_hint
from mpspatch.operations.rebase import INTERRUPT_ENV, first_marker

MPSPATCH = [sys.executable, "-m", "mpspatch.cli"]


def run_cli(scenario: Scenario, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    merged = dict(os.environ)
    merged.pop(INTERRUPT_ENV, None)
    merged.update(env or {})
    return subprocess.run([*MPSPATCH, *args], cwd=scenario.project, capture_output=True, text=True, check=False,
                          timeout=120, env=merged)


def rebase_json(scenario: Scenario, *args: str, env: dict[str, str] | None = None) -> tuple[int, dict[str, object]]:
    result = run_cli(scenario, "rebase", *args, "--json", env=env)
    assert result.stdout.strip(), result.stderr
    return result.returncode, json.loads(result.stdout)


def git(repo: Path, *args: str, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(["git", *args], cwd=repo, env={**git_env(), **(env or {})}, capture_output=True,
                            check=False)
    assert result.returncode == 0, f"git {' '.join(args)}: {result.stderr.decode()}"
    return result.stdout.decode()


def digests(scenario: Scenario) -> dict[str, str]:
    files = [*scenario.patches, scenario.project / "patches" / "series.lock"]
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in files if p.exists()}


def tree_after_patches(scenario: Scenario, at: str, patches: list[Path]) -> str:
    """Apply patch files at `at` with plain (not 3-way) git apply in a throwaway index; the tree SHA."""
    with tempfile.TemporaryDirectory() as tmp:
        env = {"GIT_INDEX_FILE": str(Path(tmp) / "index")}
        git(scenario.checkout, "read-tree", at, env=env)
        for patch in patches:
            if patch.read_text().strip():
                git(scenario.checkout, "apply", "--cached", str(patch), env=env)
        return git(scenario.checkout, "write-tree", env=env).strip()


def gits_own_rebase_tree(scenario: Scenario, onto: str) -> str:
    """The tree git itself produces: commit the original patches on v1.0 in a scratch clone, `git rebase`."""
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp) / "scratch"
        git(scenario.root, "clone", "-q", "--shared", str(scenario.checkout), str(scratch))
        git(scratch, "checkout", "-q", "-b", "series", "v1.0")
        for patch in scenario.patches:
            git(scratch, "apply", "--index", str(patch))
            git(scratch, "commit", "-q", "-m", patch.name)
        git(scratch, "rebase", "-q", "--onto", onto, "v1.0")
        return git(scratch, "rev-parse", "HEAD^{tree}").strip()


def resolve_keeping_both(path: Path) -> None:
    """A resolution a person might make: keep both sides, drop the markers."""
    kept = [line for line in path.read_text().splitlines(keepends=True)
            if not line.startswith(("<<<<<<<", "=======", ">>>>>>>"))]
    path.write_text("".join(kept))


@pytest.fixture
def scenario(tmp_path: Path) -> Scenario:
    return build_scenario(tmp_path)


# ------------------------------------------------------------------------------------------- clean drift


def test_clean_drift_rewrites_patches_that_give_gits_own_tree(scenario: Scenario) -> None:
    code, data = rebase_json(scenario, "--onto", "v1.1")
    assert code == 0, data
    assert data["status"] == "rebased"
    assert data["base"] == scenario.tags["v1.0"] and data["onto"] == scenario.tags["v1.1"]
    assert data["conflicts"] == [] and data["absorbed"] == []
    assert data["worktree"] is None
    assert data["patches"] == [str(p) for p in scenario.patches]
    assert tree_after_patches(scenario, "v1.1", list(scenario.patches)) == gits_own_rebase_tree(scenario, "v1.1")
    lock = json.loads((scenario.project / "patches/series.lock").read_text())
    assert lock["base"] == scenario.tags["v1.1"] and lock["base_ref"] == "v1.1"
    assert lock["written_by"] == f"mpspatch rebase (mpspatch {mpspatch.__version__})"
    text = scenario.patches[0].read_text()
    assert "index 0000000000000000000000000000000000000000.." in text  # the added header, full index
    assert all(len(line.split()[1].split("..")[0]) == 40 for line in text.splitlines() if line.startswith("index "))
    # The previous versions are kept next to the state.
    kept = scenario.project / ".mpspatch/previous" / f"{scenario.patches[0].name}.1"
    assert kept.read_bytes() != scenario.patches[0].read_bytes()
    assert not (scenario.project / ".mpspatch/rebase.json").exists()
    assert not (scenario.project / ".mpspatch/worktrees").exists()


def test_rebasing_twice_gives_byte_identical_patches(tmp_path: Path) -> None:
    first, second = build_scenario(tmp_path / "a"), build_scenario(tmp_path / "b")
    for s in (first, second):
        code, _ = rebase_json(s, "--onto", "v1.2")
        assert code == 0
    assert [p.read_bytes() for p in first.patches] == [p.read_bytes() for p in second.patches]
    # Rebasing the result onto the same commit again changes nothing.
    before = [p.read_bytes() for p in first.patches]
    code, data = rebase_json(first, "--onto", "v1.2")
    assert code == 0 and [c["old_sha256"] == c["new_sha256"] for c in data["changes"]] == [True, True]
    assert [p.read_bytes() for p in first.patches] == before


# ------------------------------------------------------------------------------------------------ absorbed


def test_upstream_landing_part_of_the_patch_is_reported_and_dropped(scenario: Scenario) -> None:
    code, data = rebase_json(scenario, "--onto", "v1.2")
    assert code == 0
    expected = {a.path: (list(a.pull_requests), a.whole_file) for a in EXPECT["v1.2"].absorbed}
    assert {a["path"]: (a["pull_requests"], a["whole_file"]) for a in data["absorbed"]} == expected
    second = scenario.patches[1].read_text()
    assert TORCH_MPS not in second and TEST_MPS in second
    assert "acquire_stream" not in scenario.patches[0].read_text()  # the hunk PR 190375 already landed
    assert "kStreamPoolSize" in scenario.patches[0].read_text()
    assert tree_after_patches(scenario, "v1.2", list(scenario.patches)) == gits_own_rebase_tree(scenario, "v1.2")


def test_what_upstream_landed_is_recorded_and_the_documents_and_prose_check_say_so(scenario: Scenario) -> None:
    """A rebase that drops changes PR 190375 landed keeps who landed what beside the lock; the PR, the issue and
    the audit name the PR and the files, and prose that still describes a dropped file fails the prose check."""
    prose = scenario.project / "docs/prose"
    prose.mkdir(parents=True)
    (prose / "summary.md").write_text(
        f"The pool lives in `{STREAM_MM}`. The Python side, `{TORCH_MPS}`, exposes its size.\n")
    scenario.config.write_text(scenario.config.read_text()
                               + '\n[render]\nprose = "docs/prose"\nsections = ["summary"]\nissue = 190001\n')
    assert run_cli(scenario, "status", "--json").returncode in (0, 1)
    code, _ = rebase_json(scenario, "--onto", "v1.2")
    assert code == 0

    record = json.loads((scenario.project / "patches/landed.json").read_text())
    assert {(c["path"], c["whole_file"], tuple(c["pull_requests"])) for c in record["changes"]} == {
        (TORCH_MPS, True, (ABSORBING_PR,)), (STREAM_MM, False, (ABSORBING_PR,))}
    assert {c["onto_ref"] for c in record["changes"]} == {"v1.2"}

    landed = json.loads(run_cli(scenario, "render-pr", "--json").stdout)
    body = (scenario.project / landed["body_file"]).read_text()
    part = next(c for c in record["changes"] if not c["whole_file"])
    sentence = (f"- {part['hunks']} of the {part['of_hunks']} hunks of `{STREAM_MM}` and `{TORCH_MPS}` landed "
                f"upstream in #{ABSORBING_PR}.")
    assert "## Already upstream" in body and sentence in body, body
    issue = json.loads(run_cli(scenario, "render-issue", "--json").stdout)
    assert sentence in (scenario.project / issue["body_file"]).read_text()
    assert run_cli(scenario, "render-audit").returncode == 0
    audit = (scenario.project / "audit/submission_audit.md").read_text()
    assert "## Landed upstream" in audit and sentence in audit and "Rebases onto v1.2 (" in audit

    status = json.loads(run_cli(scenario, "status", "--json").stdout)
    gap = next(g for g in status["gaps"] if g["id"] == "check:prose")
    assert f"`{TORCH_MPS}` (docs/prose/summary.md) landed upstream in #{ABSORBING_PR}" in gap["reason"], gap
    # Saying so in the prose is what the check asks for.
    (prose / "summary.md").write_text(
        f"The pool lives in `{STREAM_MM}`. `{TORCH_MPS}` landed upstream in #{ABSORBING_PR}.\n")
    status = json.loads(run_cli(scenario, "status", "--json").stdout)
    assert "check:prose" not in {g["id"] for g in status["gaps"]}, status["gaps"]


# ----------------------------------------------------------------------------------------------- conflicts


def test_conflicts_report_regions_and_upstream_prs_then_continue(scenario: Scenario) -> None:
    expect = EXPECT["v1.3"]
    code, data = rebase_json(scenario, "--onto", "v1.3")
    assert code == 1
    assert data["status"] == "conflict" and data["stopped_at"] == scenario.patches[0].name
    by_path = {c.path: c for c in expect.conflicts}
    assert [c["path"] for c in data["conflicts"]] == sorted(expect.conflicts_by_patch[0])
    for item in data["conflicts"]:
        want = by_path[item["path"]]
        assert item["regions"] == want.regions
        assert tuple(u["pull_request"] for u in item["upstream_commits"]) == want.pull_requests
        assert all(len(u["sha"]) == 40 and u["subject"] for u in item["upstream_commits"])
    worktree = Path(data["worktree"])
    assert worktree == scenario.project / ".mpspatch/worktrees/rebase"
    # Sparse: the series' files are there, the rest of the upstream tree is not.
    assert (worktree / STREAM_MM).is_file() and not (worktree / "README.md").exists()
    assert git(worktree, "config", "--get", "rerere.enabled").strip() == "true"
    assert data["absorbed"] == []  # the already-upstream check needs the rebased tree: it runs at the finish

    refused = run_cli(scenario, "rebase", "--continue")
    assert refused.returncode == 2
    # Every conflicted file, in path order, with the line of its first marker, and the count.
    marked = sorted(c["path"] for c in data["conflicts"])
    assert len(marked) == 2
    listed = ", ".join(f"{p} (line {first_marker(worktree / p)})" for p in marked)
    assert f"2 files still have conflict markers: {listed}; resolve them in {worktree}, then run " \
           "`mpspatch rebase --continue`" in refused.stderr
    resolve_keeping_both(worktree / marked[0])
    one_left = run_cli(scenario, "rebase", "--continue")
    assert one_left.returncode == 2
    assert f"1 file still has conflict markers: {marked[1]} (line {first_marker(worktree / marked[1])}); " \
           "resolve it in" in one_left.stderr

    for item in data["conflicts"]:
        resolve_keeping_both(worktree / item["path"])
    git(worktree, "add", LINEAR_MM)  # one staged, one not: both are accepted
    code, data = rebase_json(scenario, "--continue")
    assert code == 1 and data["stopped_at"] == scenario.patches[1].name
    assert [(c["path"], c["regions"]) for c in data["conflicts"]] == [(TEST_MPS, 1)]
    assert [u["pull_request"] for u in data["conflicts"][0]["upstream_commits"]] == [None]

    resolve_keeping_both(worktree / TEST_MPS)
    code, data = rebase_json(scenario, "--continue")
    assert code == 0 and data["status"] == "rebased"
    assert json.loads((scenario.project / "patches/series.lock").read_text())["base"] == scenario.tags["v1.3"]
    assert {a["path"] for a in data["absorbed"]} == {a.path for a in expect.absorbed}
    # The rewritten series applies to v1.3 with plain git apply and carries both sides of each resolution.
    tree = tree_after_patches(scenario, "v1.3", list(scenario.patches))
    stream = git(scenario.checkout, "cat-file", "blob", f"{tree}:{STREAM_MM}")
    assert "mpsstream_pool_size" in stream and "mpsstream_query_all" in stream
    assert "TestMPSParallelInference" in git(scenario.checkout, "cat-file", "blob", f"{tree}:{TEST_MPS}")
    assert not worktree.exists()
    shadow = scenario.project / ".mpspatch/shadow.git"
    assert git(shadow, "for-each-ref", "refs/heads", "refs/mpspatch").strip() == ""


def test_single_cumulative_patch_stops_once_with_every_conflict(tmp_path: Path) -> None:
    scenario = build_scenario(tmp_path, layout="single")
    code, data = rebase_json(scenario, "--onto", "v1.3")
    assert code == 1
    got = [(c["path"], c["regions"], tuple(u["pull_request"] for u in c["upstream_commits"]))
           for c in data["conflicts"]]
    assert got == [(c.path, c.regions, c.pull_requests) for c in sorted(EXPECT["v1.3"].conflicts,
                                                                         key=lambda c: c.path)]


def test_abort_leaves_patches_and_lock_byte_identical(scenario: Scenario) -> None:
    assert run_cli(scenario, "lock").returncode == 0
    before = digests(scenario)
    code, data = rebase_json(scenario, "--onto", "v1.3")
    assert code == 1
    resolve_keeping_both(Path(data["worktree"]) / STREAM_MM)  # half-resolved work is dropped too
    code, aborted = rebase_json(scenario, "--abort")
    assert code == 0 and aborted["status"] == "aborted" and aborted["restored"] == []
    assert digests(scenario) == before
    shadow = scenario.project / ".mpspatch/shadow.git"
    assert git(shadow, "for-each-ref", "refs/heads", "refs/mpspatch").strip() == ""
    assert len(git(shadow, "worktree", "list", "--porcelain").strip().split("\n\n")) == 1
    assert sorted(p.name for p in (scenario.project / ".mpspatch").iterdir()) == ["shadow.git", "writer.lock"]
    again = run_cli(scenario, "rebase", "--abort")
    assert again.returncode == 2 and "no rebase in progress" in again.stderr


def test_abort_refuses_to_drop_a_patch_edited_while_stopped_and_force_keeps_the_edit(scenario: Scenario) -> None:
    assert run_cli(scenario, "lock").returncode == 0
    before = digests(scenario)
    state = scenario.project / ".mpspatch/rebase.json"
    previous = scenario.project / ".mpspatch/previous"
    patch = scenario.patches[0]
    kept_texts: list[bytes] = []
    for attempt in (1, 2):  # twice: the second kept edit must not overwrite the first
        code, _ = rebase_json(scenario, "--onto", "v1.3")
        assert code == 1
        edited = patch.read_bytes() + f"a note written while stopped, take {attempt}\n".encode()
        patch.write_bytes(edited)
        refused = run_cli(scenario, "rebase", "--abort")
        assert refused.returncode == 2, refused.stderr
        assert patch.name in refused.stderr and "--abort --force" in refused.stderr
        assert "Traceback" not in refused.stderr
        assert patch.read_bytes() == edited and state.exists()  # nothing was thrown away
        code, aborted = rebase_json(scenario, "--abort", "--force")
        assert code == 0 and aborted["status"] == "aborted"
        [item] = aborted["kept"]
        kept = Path(item["kept"])
        assert item["path"] == str(patch) and kept.parent == previous and kept.read_bytes() == edited
        kept_texts.append(edited)
        assert digests(scenario) == before and not state.exists()
        assert not (scenario.project / ".mpspatch/worktrees").exists()
    assert sorted(p.read_bytes() for p in previous.iterdir()) == sorted(kept_texts)
    text = run_cli(scenario, "rebase", "--onto", "v1.3")
    assert text.returncode == 1
    patch.write_bytes(patch.read_bytes() + b"third\n")
    shown = run_cli(scenario, "rebase", "--abort", "--force")
    assert shown.returncode == 0 and f"your edit of patches/{patch.name} is kept in .mpspatch/previous/" in shown.stderr
    assert run_cli(scenario, "rebase", "--force").returncode == 2  # --force belongs to --abort only


@pytest.mark.parametrize("damage", ["garbage", "folder"])
def test_abort_gets_out_of_an_unreadable_rebase_state(scenario: Scenario, damage: str) -> None:
    assert run_cli(scenario, "lock").returncode == 0
    before = digests(scenario)
    code, data = rebase_json(scenario, "--onto", "v1.3")
    assert code == 1
    worktree = Path(data["worktree"])
    patch = scenario.patches[1]
    edited = patch.read_bytes() + b"edited while stopped\n"
    patch.write_bytes(edited)
    state = scenario.project / ".mpspatch/rebase.json"
    state.unlink()
    if damage == "garbage":
        state.write_text("{ this is not json")
    else:
        state.mkdir()
    for args in (("rebase", "--abort"), ("rebase", "--continue"), ("rebase", "--onto", "v1.3")):
        refused = run_cli(scenario, *args)
        assert refused.returncode == 2, (args, refused.stderr)
        assert "rebase.json" in refused.stderr and "`mpspatch rebase --abort --force`" in refused.stderr
        assert "Traceback" not in refused.stderr and "internal error" not in refused.stderr
    code, aborted = rebase_json(scenario, "--abort", "--force")
    assert code == 0 and aborted["state_discarded"] is True
    assert digests(scenario) == before  # the backup put the patch back...
    [item] = aborted["kept"]
    assert Path(item["kept"]).read_bytes() == edited  # ...and the edit was kept, not lost
    assert not state.exists() and not worktree.exists()
    shadow = scenario.project / ".mpspatch/shadow.git"
    assert git(shadow, "for-each-ref", "refs/heads", "refs/mpspatch").strip() == ""
    assert len(git(shadow, "worktree", "list", "--porcelain").strip().split("\n\n")) == 1
    code, data = rebase_json(scenario, "--onto", "v1.3")  # and a new rebase starts
    assert code == 1, data


def test_commands_wait_for_a_stopped_rebase_or_say_it_is_stopped(scenario: Scenario) -> None:
    assert run_cli(scenario, "lock").returncode == 0
    before = digests(scenario)
    code, data = rebase_json(scenario, "--onto", "v1.3")
    assert code == 1
    conflicted = sorted(c["path"] for c in data["conflicts"])
    stack = scenario.project / "patches/stack"
    # Commands that read the series to write something from it, or write it, wait (exit 2) and say how.
    for args in (("split", "--max-lines", "40"), ("lock",), ("import", str(scenario.patches[0]), "--to",
                 str(scenario.patches[0])), ("regenerate",), ("verify",)):
        refused = run_cli(scenario, *args)
        assert refused.returncode == 2, (args, refused.stdout, refused.stderr)
        assert "rebase --continue" in refused.stderr and "--abort" in refused.stderr, (args, refused.stderr)
        assert "Traceback" not in refused.stderr
    assert not stack.exists() and digests(scenario) == before
    # Read-only commands go on, and say on stderr that a rebase is stopped.
    for args in (("stats",), ("drift", "--onto", "v1.3"), ("render-audit",), ("regenerate", "--check"),
                 ("status", "--json")):
        shown = run_cli(scenario, *args)
        assert shown.returncode in (0, 1), (args, shown.stderr)
        assert "a rebase of the series onto v1.3" in shown.stderr and "is stopped" in shown.stderr, (args, shown.stderr)
        assert "`mpspatch rebase --continue`" in shown.stderr
    status = json.loads(run_cli(scenario, "status", "--json").stdout)
    assert status["rebase"] == {
        "onto_ref": "v1.3", "onto": scenario.tags["v1.3"], "base": scenario.tags["v1.0"], "phase": "rebasing",
        "worktree": data["worktree"], "conflicted": conflicted,
    }
    assert status["ready"] is False
    gap = status["gaps"][0]
    assert gap["id"] == "rebase" and gap["blocking"] is True and "rebase --continue" in gap["fix"]
    text = run_cli(scenario, "status")
    first = text.stdout.splitlines()[0]
    assert first.startswith("REBASE STOPPED onto v1.3"), text.stdout
    assert all(p in text.stdout for p in conflicted) and "[rebase]" in text.stdout
    audit = run_cli(scenario, "render-audit", "--out", "audit.md")
    assert audit.returncode == 0 and "No rebase is stopped half-way" in (scenario.project / "audit.md").read_text()

    assert rebase_json(scenario, "--abort")[0] == 0
    status = json.loads(run_cli(scenario, "status", "--json").stdout)
    assert status["rebase"] is None and all(g["id"] != "rebase" for g in status["gaps"])
    assert "is stopped" not in run_cli(scenario, "stats").stderr
    assert run_cli(scenario, "split", "--max-lines", "40").returncode == 0 and stack.is_dir()


def test_rerere_reuses_a_resolution_on_the_next_rebase(scenario: Scenario) -> None:
    originals = {p: p.read_bytes() for p in scenario.patches}
    code, data = rebase_json(scenario, "--onto", "v1.3")
    while code == 1:
        for item in data["conflicts"]:
            resolve_keeping_both(Path(data["worktree"]) / item["path"])
        code, data = rebase_json(scenario, "--continue")
    assert code == 0
    resolved = {p: p.read_bytes() for p in scenario.patches}
    for path, text in originals.items():
        path.write_bytes(text)
    (scenario.project / "patches/series.lock").unlink()
    code, data = rebase_json(scenario, "--onto", "v1.3")
    assert code == 0, data
    assert sorted(data["reused_resolutions"]) == sorted([STREAM_MM, LINEAR_MM, TEST_MPS])
    assert {p: p.read_bytes() for p in scenario.patches} == resolved


# ------------------------------------------------------------------------------------------ refusals


def test_series_whose_second_patch_conflicts_with_its_first(tmp_path: Path) -> None:
    scenario = build_scenario(tmp_path, layout="inconsistent")
    before = digests(scenario)
    result = run_cli(scenario, "rebase", "--onto", "v1.1")
    assert result.returncode == 2
    assert "series inconsistent" in result.stderr
    assert "0002-python-and-tests.patch" in result.stderr and STREAM_MM in result.stderr
    assert "previous patch (0001-stream-pool.patch)" in result.stderr
    assert digests(scenario) == before
    assert not (scenario.project / ".mpspatch/rebase.json").exists()


def test_missing_ref_and_rebase_in_progress_exit_2(scenario: Scenario) -> None:
    missing = run_cli(scenario, "rebase", "--onto", "v1.4")
    assert missing.returncode == 2
    assert f"git -C {scenario.checkout} fetch origin tag v1.4" in missing.stderr
    assert run_cli(scenario, "rebase", "--continue").returncode == 2
    assert run_cli(scenario, "rebase", "--onto", "v1.3").returncode == 1
    busy = run_cli(scenario, "rebase", "--onto", "v1.3")
    assert busy.returncode == 2 and "--continue" in busy.stderr and "--abort" in busy.stderr
    both = run_cli(scenario, "rebase", "--continue", "--abort")
    assert both.returncode == 2


def test_branch_fetched_into_origin_is_found(scenario: Scenario) -> None:
    # `git fetch origin some/branch` leaves origin/some/branch; --onto some/branch must find it.
    git(scenario.upstream.path, "branch", "viable/strict", "v1.2")
    git(scenario.checkout, "fetch", "-q", "origin", "viable/strict")
    code, data = rebase_json(scenario, "--onto", "viable/strict")
    assert code == 0 and data["onto"] == scenario.tags["v1.2"] and data["onto_ref"] == "viable/strict"


# ------------------------------------------------------------------------------------------ interruption


@pytest.mark.parametrize("point", ["after-state", "before-rebase", "before-write", "mid-write", "after-write"])
def test_interrupted_run_can_be_aborted_or_continued(scenario: Scenario, point: str) -> None:
    before = digests(scenario)
    landed = scenario.project / "patches/landed.json"
    hook = {INTERRUPT_ENV: point}
    killed = run_cli(scenario, "rebase", "--onto", "v1.2", env=hook)
    assert killed.returncode == 130, killed.stderr
    assert (scenario.project / ".mpspatch/rebase.json").exists()
    code, aborted = rebase_json(scenario, "--abort")
    assert code == 0
    assert digests(scenario) == before
    assert bool(aborted["restored"]) == (point in ("mid-write", "after-write"))
    assert not landed.exists()  # an aborted rebase records nothing as landed

    assert run_cli(scenario, "rebase", "--onto", "v1.2", env=hook).returncode == 130
    code, data = rebase_json(scenario, "--continue")
    assert code == 0 and data["status"] == "rebased", data
    # Finishing twice records each dropped change once.
    assert len(json.loads(landed.read_text())["changes"]) == len(EXPECT["v1.2"].absorbed)
    assert tree_after_patches(scenario, "v1.2", list(scenario.patches)) == gits_own_rebase_tree(scenario, "v1.2")


def test_interrupted_while_stopped_on_conflicts_continues(scenario: Scenario) -> None:
    code, data = rebase_json(scenario, "--onto", "v1.3")
    assert code == 1
    worktree = Path(data["worktree"])
    for item in data["conflicts"]:
        resolve_keeping_both(worktree / item["path"])
    # A git killed mid-operation leaves its index.lock behind; --continue clears it.
    lock = Path(git(worktree, "rev-parse", "--path-format=absolute", "--git-path", "index.lock").strip())
    lock.write_text("")
    code, data = rebase_json(scenario, "--continue")
    assert code == 1 and data["stopped_at"] == scenario.patches[1].name


# ----------------------------------------------------------------------------------- the user's clone


def snapshot(repo: Path) -> dict[str, object]:
    index = repo / ".git" / "index"
    stat = index.stat()
    objects = sorted(str(p.relative_to(repo / ".git" / "objects")) for p in (repo / ".git/objects").rglob("*"))
    return {
        "index": (stat.st_mtime_ns, hashlib.sha256(index.read_bytes()).hexdigest()),
        "head": git(repo, "rev-parse", "HEAD"),
        "symbolic": git(repo, "symbolic-ref", "-q", "HEAD"),
        "refs": git(repo, "for-each-ref", "--format=%(refname) %(objectname)"),
        "status": git(repo, "--no-optional-locks", "status", "--porcelain=v2", "--untracked-files=all"),
        "worktrees": git(repo, "worktree", "list", "--porcelain"),
        "config": (repo / ".git/config").read_bytes(),
        "objects": objects,
        "files": {p.relative_to(repo).as_posix(): p.read_bytes() for p in repo.rglob("*")
                  if p.is_file() and ".git" not in p.relative_to(repo).parts},
    }


def test_dirty_user_checkout_stays_untouched(scenario: Scenario) -> None:
    clone = scenario.checkout
    (clone / STREAM_MM).write_text("work in progress\n")
    (clone / "notes.txt").write_text("untracked\n")
    (clone / TORCH_MPS).write_text("staged change\n")
    git(clone, "add", TORCH_MPS)
    git(clone, "checkout", "-q", "-b", "my-topic")
    before = snapshot(clone)
    code, data = rebase_json(scenario, "--onto", "v1.3")
    assert code == 1
    for item in data["conflicts"]:
        resolve_keeping_both(Path(data["worktree"]) / item["path"])
    assert rebase_json(scenario, "--continue")[0] == 1
    assert rebase_json(scenario, "--abort")[0] == 0
    assert rebase_json(scenario, "--onto", "v1.2")[0] == 0
    assert snapshot(clone) == before


def test_missing_checkout_is_cloned_partially_from_url(scenario: Scenario) -> None:
    git(scenario.upstream.path, "config", "uploadpack.allowFilter", "true")
    git(scenario.upstream.path, "config", "uploadpack.allowAnySHA1InWant", "true")
    config = scenario.config.read_text()
    config = config.replace('checkout = "../pytorch"', 'checkout = "../fresh-clone"')
    config = config.replace("https://example.invalid/upstream.git", scenario.upstream.path.as_uri())
    scenario.config.write_text(config)
    code, data = rebase_json(scenario, "--onto", "v1.2")
    assert code == 0, data
    fresh = scenario.root / "fresh-clone"
    assert git(fresh, "config", "--get", "remote.origin.promisor").strip() == "true"
    assert git(fresh, "config", "--get", "remote.origin.partialclonefilter").strip() == "blob:none"
    assert any("cloned" in note for note in data["notes"])
    assert git(fresh, "rev-parse", "v1.3").strip() == scenario.tags["v1.3"]  # a real clone with the tags,
    assert not (fresh / STREAM_MM).exists()  # but nothing checked out
    assert "fetched" in " ".join(data["notes"])  # the blobs it lacked went into the shadow, in one fetch


# ------------------------------------------------------------------------------------------ small parts


def test_first_marker_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_text("a\n=======\nb\n<<<<<<< HEAD\n")
    assert first_marker(path) == 4


def test_pull_request_trailer_and_fetch_hint(tmp_path: Path) -> None:
    message = "x\n\nPull Request resolved: https://github.com/pytorch/pytorch/pull/190375\nApproved by: y\n"
    assert pull_request_of(message) == 190375
    assert pull_request_of("no trailer") is None
    assert fetch_hint(tmp_path, "viable/strict").endswith("fetch origin viable/strict")
    assert fetch_hint(tmp_path, "v2.9.1").endswith("fetch origin tag v2.9.1")


def test_shadow_is_reused_and_borrows_objects(scenario: Scenario) -> None:
    assert rebase_json(scenario, "--onto", "v1.1")[0] == 0
    shadow = scenario.project / ".mpspatch/shadow.git"
    alternates = (shadow / "objects/info/alternates").read_text().strip()
    assert Path(alternates) == scenario.checkout / ".git/objects"
    shutil.rmtree(scenario.project / ".mpspatch/previous")
    assert rebase_json(scenario, "--onto", "v1.2")[0] == 0


def test_deleted_worktree_is_recreated_by_continue(scenario: Scenario) -> None:
    code, data = rebase_json(scenario, "--onto", "v1.3")
    assert code == 1
    shutil.rmtree(data["worktree"])  # a user cleaning up by hand: the shadow still has it registered
    code, again = rebase_json(scenario, "--continue")
    assert code == 1 and again["stopped_at"] == scenario.patches[0].name
    assert [c["path"] for c in again["conflicts"]] == [c["path"] for c in data["conflicts"]]
    shadow = scenario.project / ".mpspatch/shadow.git"
    assert git(shadow, "worktree", "list", "--porcelain").count("worktree ") == 2  # bare + one, no stale entry
    assert rebase_json(scenario, "--abort")[0] == 0


def test_crlf_lines_survive_the_rewrite(scenario: Scenario) -> None:
    content = b"// written on Windows\r\nint crlf_line = 1;\r\n"
    blob = subprocess.run(["git", "hash-object", "--stdin"], input=content, capture_output=True, check=True,
                          cwd=scenario.checkout).stdout.decode().strip()
    name = "aten/src/ATen/mps/WindowsNewlines.h"
    added = (f"diff --git a/{name} b/{name}\nnew file mode 100644\nindex {'0' * 40}..{blob}\n--- /dev/null\n"
             f"+++ b/{name}\n@@ -0,0 +1,2 @@\n").encode() + b"".join(b"+" + line for line in content.splitlines(True))
    scenario.patches[0].write_bytes(scenario.patches[0].read_bytes() + added)
    code, data = rebase_json(scenario, "--onto", "v1.1")
    assert code == 0, data
    assert b"+int crlf_line = 1;\r\n" in scenario.patches[0].read_bytes()


def _series_patch(repo: Repo, folder: Path, name: str, parent: str, edits: dict[str, str | None]) -> Path:
    """A real `git diff --full-index` of `edits` made on `parent` (a scratch commit that is then dropped)."""
    repo.git("checkout", "-q", "--detach", parent)
    for path, text in edits.items():
        if text is None:
            repo.git("rm", "-q", path)
        else:
            repo.write(path, text)
    repo.git("add", "-A")
    patch = folder / name
    patch.write_text(repo.git("diff", "--cached", "--full-index", parent))
    repo.commit(name)
    return patch


def test_a_later_patch_expecting_files_the_base_lacks_names_them(tmp_path: Path) -> None:
    """Files missing at the base are reported as such, unless an earlier patch of the series touched them."""
    made_on = Repo.create(tmp_path / "made-on")  # the tree the patches were written against
    made_on.write("keep.txt", "kept\n")
    made_on.write("gone.txt", "deleted by patch 1\n")
    made_on.write("expected.txt", "only in the right base\n")
    made_on.commit("the right base", tag="right")
    folder = tmp_path / "patches"
    folder.mkdir()
    first = _series_patch(made_on, folder, "0001.patch", "right", {"new.txt": "added\n", "gone.txt": None})
    second = _series_patch(made_on, folder, "0002.patch", "HEAD", {"expected.txt": "changed\n"})
    after_delete = _series_patch(made_on, folder, "0002-gone.patch", "right", {"gone.txt": "edited\n"})
    made_on.git("checkout", "-q", "--detach", "right")
    made_on.git("rm", "-q", "expected.txt")
    wrong = made_on.commit("a base without expected.txt")

    with pytest.raises(commits.MissingAtBaseError) as info:
        commits.build_series(made_on.path, commit_sha(wrong), [first, second])
    assert info.value.files == ("expected.txt",) and info.value.patch == second
    assert info.value.exit_code == 2
    assert f"{second}: 1 file the patch changes does not exist at the base {wrong[:12]}: expected.txt;" \
        in info.value.message
    # gone.txt is missing because patch 1 deletes it: a defect of the series, not of the base.
    with pytest.raises(commits.SeriesInconsistentError) as inconsistent:
        commits.build_series(made_on.path, commit_sha(made_on.git("rev-parse", "right").strip()),
                         [first, after_delete])
    assert not isinstance(inconsistent.value, commits.MissingAtBaseError)
    assert "series inconsistent" in inconsistent.value.message


# ------------------------------------------------------------------------------------------ range-diff


def test_continue_prints_a_range_diff_summary_and_keeps_the_whole_of_it_in_a_file(scenario: Scenario) -> None:
    code, data = rebase_json(scenario, "--onto", "v1.3")
    assert code == 1
    worktree = Path(data["worktree"])
    for item in data["conflicts"]:
        resolve_keeping_both(worktree / item["path"])
    assert rebase_json(scenario, "--continue")[0] == 1
    resolve_keeping_both(worktree / TEST_MPS)
    result = run_cli(scenario, "rebase", "--continue")
    assert result.returncode == 0, result.stderr
    kept = scenario.project / ".mpspatch/range-diff.txt"
    full = kept.read_text()
    # The whole range-diff, with the changed lines of each patch, is in the file, and only there.
    assert "@@" in full and full.count("\n") > 20
    assert "@@" not in result.stdout and not any(line.startswith("    ") for line in result.stdout.splitlines())
    # One summary line per patch, naming the patch and whether it changed, and a note naming the file.
    summary = [line for line in result.stdout.splitlines() if line.startswith("  patch ")]
    assert [line.split(":")[0].strip() for line in summary] == [f"patch {p.name}" for p in scenario.patches]
    assert summary[0].startswith(f"  patch {scenario.patches[0].name}: changed (+")
    # git pairs no commit with the second patch's old version: still one line for it.
    assert summary[1].startswith(f"  patch {scenario.patches[1].name}: replaced (too different")
    assert ".mpspatch/range-diff.txt" in result.stdout
    assert len(result.stdout.splitlines()) < 20


def test_rebase_json_keeps_the_range_diff_and_names_its_file(scenario: Scenario) -> None:
    code, data = rebase_json(scenario, "--onto", "v1.2")
    assert code == 0, data
    kept = scenario.project / ".mpspatch/range-diff.txt"
    assert data["range_diff"] and data["range_diff"] == kept.read_text()
    assert data["range_diff_file"] == str(kept)


def test_abort_prunes_the_unresolved_conflict_records_rerere_kept(scenario: Scenario) -> None:
    # Each aborted rebase left its conflicts' preimages in the shadow's rr-cache, which grew without end.
    assert run_cli(scenario, "lock").returncode == 0
    cache = scenario.project / ".mpspatch/shadow.git/rr-cache"
    for _ in range(2):
        code, _data = rebase_json(scenario, "--onto", "v1.3")
        assert code == 1
        assert any(cache.iterdir()), "the stopped rebase recorded its conflicts"
        code, _aborted = rebase_json(scenario, "--abort")
        assert code == 0
        assert [p.name for p in cache.iterdir() if not (p / "postimage").exists()] == []
