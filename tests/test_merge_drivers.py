"""The shadow repository's merge drivers and conflict style, end to end through the CLI on real repositories:
the structured merge of native_functions.yaml, [rebase] conflict_style and [rebase] merge_drivers, in drift
(git merge-tree in the shadow) and in rebase (a sparse worktree of the shadow), which must agree."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from native_scenarios import COPY_MM, MPS, NATIVE_YAML, XPU, build_native_scenario
from support import git_env
from test_drift import drift_json, forecast_stops, run_cli


def _clone_state(checkout: Path) -> tuple[bytes, bool]:
    return (checkout / ".git" / "config").read_bytes(), (checkout / ".git" / "info" / "attributes").exists()


def test_upstream_xpu_and_patch_mps_in_one_dispatch_map_merge_cleanly(tmp_path: Path) -> None:
    scenario = build_native_scenario(tmp_path, "dispatch-keys")
    before = _clone_state(scenario.checkout)
    code, data = drift_json(scenario, "v1.1")
    assert (code, data["status"], data["conflicts"]) == (0, "clean", []), data
    result = run_cli(scenario, "rebase", "--onto", "v1.1", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout)["status"] == "rebased"
    patch = scenario.patches[0].read_text()
    # The rewritten patch still adds the MPS line, now next to upstream's XPU line, and applies to v1.1.
    assert "+" + MPS in patch and " " + XPU in patch, patch
    subprocess.run(["git", "apply", "--check", str(scenario.patches[0])], cwd=scenario.checkout, env=git_env(),
                   check=True, capture_output=True)
    # The driver lives in the shadow only: the user's clone has neither its config nor attributes.
    assert _clone_state(scenario.checkout) == before


def test_one_backend_given_two_kernels_is_a_conflict_naming_the_key(tmp_path: Path) -> None:
    scenario = build_native_scenario(tmp_path, "same-key")
    code, data = drift_json(scenario, "v1.1")
    assert code == 1 and [(c["path"], c["regions"]) for c in data["conflicts"]] == [(NATIVE_YAML, 1)]
    result = run_cli(scenario, "rebase", "--onto", "v1.1", "--json")
    assert result.returncode == 1, result.stderr
    stopped = json.loads(result.stdout)
    merged = (Path(stopped["worktree"]) / NATIVE_YAML).read_text()
    assert "<<<<<<< ours (record_stream / dispatch / MPS)\n    MPS: record_stream_mps_upstream\n=======\n" \
           + MPS + ">>>>>>> theirs (record_stream / dispatch / MPS)\n" in merged, merged
    assert [(c["path"], c["regions"]) for c in stopped["conflicts"]] == [(NATIVE_YAML, 1)]
    assert run_cli(scenario, "rebase", "--abort").returncode == 0


def test_two_new_entries_at_one_spot_merge_cleanly(tmp_path: Path) -> None:
    scenario = build_native_scenario(tmp_path, "new-entries")
    code, data = drift_json(scenario, "v1.1")
    assert (code, data["conflicts"]) == (0, [])
    result = run_cli(scenario, "rebase", "--onto", "v1.1", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "+- func: _mps_sync(Tensor self) -> Tensor" in scenario.patches[0].read_text()


def test_conflict_style_zdiff3_reaches_the_rebase_worktree_and_the_forecast(tmp_path: Path) -> None:
    scenario = build_native_scenario(tmp_path, "mm-conflict", '\n[rebase]\nconflict_style = "zdiff3"\n')
    code, data = drift_json(scenario, "v1.1")
    assert code == 1
    result = run_cli(scenario, "rebase", "--onto", "v1.1", "--json")
    assert result.returncode == 1
    merged = (Path(json.loads(result.stdout)["worktree"]) / COPY_MM).read_text()
    # zdiff3: the line both sides added first stands before the region, and the base is shown.
    assert "  // shared\n<<<<<<< " in merged and "\n||||||| " in merged and "  // step 2\n=======\n" in merged, merged
    assert forecast_stops(data) == [("0001-mps.patch", {COPY_MM: 1})]
    assert run_cli(scenario, "rebase", "--abort").returncode == 0


def test_a_user_merge_driver_is_called_by_drift_and_rebase(tmp_path: Path) -> None:
    calls = tmp_path / "calls.log"
    script = tmp_path / "take-theirs.py"
    script.write_text("import pathlib, sys\n"
                      f"pathlib.Path({str(calls)!r}).open('a').write(' '.join(sys.argv[4:]) + '\\n')\n"
                      "pathlib.Path(sys.argv[2]).write_bytes(pathlib.Path(sys.argv[3]).read_bytes())\n")
    extra = f'\n[rebase.merge_drivers]\n"*.mm" = "{sys.executable} {script} %O %A %B %L %P"\n'
    scenario = build_native_scenario(tmp_path / "s", "mm-conflict", extra)
    code, data = drift_json(scenario, "v1.1")
    assert (code, data["conflicts"]) == (0, []), data
    assert calls.read_text() == f"7 {COPY_MM}\n"
    result = run_cli(scenario, "rebase", "--onto", "v1.1", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    # The rebase calls it too (its own already-upstream check may merge the file once more in objects only).
    lines = calls.read_text().splitlines()
    assert len(lines) >= 2 and set(lines) == {f"7 {COPY_MM}"}
    assert "+  // patch step 2" in scenario.patches[0].read_text()


def test_a_bad_conflict_style_is_exit_2_naming_the_key(tmp_path: Path) -> None:
    scenario = build_native_scenario(tmp_path, "dispatch-keys", '\n[rebase]\nconflict_style = "diff4"\n')
    result = run_cli(scenario, "drift", "--onto", "v1.1")
    assert result.returncode == 2
    assert "[rebase].conflict_style is 'diff4', not one of 'merge', 'diff3', 'zdiff3'" in result.stderr


def test_the_merge_setup_is_rewritten_only_when_it_changes(tmp_path: Path) -> None:
    from mpspatch.git import shadow as shadow_repo
    from mpspatch.git import verbs

    shadow = tmp_path / "shadow.git"
    subprocess.run(["git", "init", "-q", "--bare", str(shadow)], env=git_env(), check=True)
    drivers = [shadow_repo.MergeDriverSpec("mpspatch-user-1", "*.mm", 'tool "a b" %A'),
               shadow_repo.MergeDriverSpec("builtin", "*.yaml", "builtin %A")]
    assert shadow_repo.configure_merges(shadow, "zdiff3", drivers)
    assert not shadow_repo.configure_merges(shadow, "zdiff3", drivers)
    # The shadow's own config reads the include, under mpspatch's isolated git environment.
    assert verbs.git(shadow, "config", "merge.conflictStyle").stdout.strip() == "zdiff3"
    assert verbs.git(shadow, "config", "merge.mpspatch-user-1.driver").stdout.strip() == 'tool "a b" %A'
    # The first listed driver is written last, so it wins where patterns overlap.
    assert (shadow / "info" / "attributes").read_text().splitlines()[1:] == ["*.yaml merge=builtin",
                                                                              "*.mm merge=mpspatch-user-1"]
    assert shadow_repo.configure_merges(shadow, "merge", drivers[1:])
    assert verbs.git(shadow, "config", "merge.conflictStyle").stdout.strip() == "merge"
    assert verbs.git(shadow, "config", "merge.mpspatch-user-1.driver", check=False).returncode == 1
