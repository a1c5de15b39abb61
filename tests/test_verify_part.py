"""`verify --part K`: the stages run on the tree of stack parts 1..K (from `mpspatch split`), in a kept tree of
its own, on real throwaway git repositories with the real CLI."""

from __future__ import annotations

import json
from pathlib import Path

from test_verify import Project, run_cli, stage_toml

from mpspatch.verify.evidence import read_run

LIST = stage_toml("list", "command", [["{python}", "-c", "import sys; print('\\n'.join(sys.argv[1:]))", "{patched}"]])


def split_project(tmp_path: Path) -> tuple[Project, dict[str, object]]:
    project = Project(tmp_path)
    project.stages(LIST)
    done = run_cli("split", "--max-lines", "4", "--json", cwd=project.dir)
    assert done.returncode == 0, done.stderr
    return project, json.loads(done.stdout)


def test_part_one_runs_on_its_own_tree(tmp_path: Path) -> None:
    project, stack = split_project(tmp_path)
    parts = stack["parts"]
    assert isinstance(parts, list) and len(parts) >= 2
    first = run_cli("verify", "--part", "1", "--json", cwd=project.dir)
    assert first.returncode == 0, first.stderr
    data = json.loads(first.stdout)
    assert data["part"] == 1
    assert data["worktree"].endswith("worktrees/verify-part-1")
    log = Path(data["stages"][0]["log"]).read_text()
    for path in parts[0]["files"]:
        if (project.dir / ".mpspatch/worktrees/verify-part-1" / path).exists():
            assert path in log
    later = {f for p in parts[1:] for f in p["files"]} - set(parts[0]["files"])
    assert later and not any(f"\n{path}\n" in log for path in later)  # later parts' files are not in this tree
    recorded = read_run(Path(data["evidence"]))
    assert recorded.part == 1 and recorded.tree == data["tree"]

    # The last part's tree is the whole series' tree, and the plain verify tree is left as it is.
    whole = json.loads(run_cli("verify", "--json", cwd=project.dir).stdout)
    last = json.loads(run_cli("verify", "--part", str(len(parts)), "--json", cwd=project.dir).stdout)
    assert last["tree"] == whole["tree"] != data["tree"]
    assert whole["part"] is None and whole["worktree"].endswith("worktrees/verify")


def test_a_part_outside_the_stack_or_no_stack_is_bad_input(tmp_path: Path) -> None:
    project = Project(tmp_path)
    project.stages(LIST)
    none = run_cli("verify", "--part", "1", cwd=project.dir)
    assert none.returncode == 2 and "run `mpspatch split`" in none.stderr
    project, _ = split_project(tmp_path / "again")
    beyond = run_cli("verify", "--part", "9", cwd=project.dir)
    assert beyond.returncode == 2, beyond.stderr
    assert "--part 9: the stack has parts 1 to" in beyond.stderr


def test_render_pr_for_a_part_cites_its_own_evidence_and_never_a_whole_series_pass(tmp_path: Path) -> None:
    project, _ = split_project(tmp_path)
    assert run_cli("lock", cwd=project.dir).returncode == 0
    whole = json.loads(run_cli("verify", "--json", cwd=project.dir).stdout)
    body = project.dir / "pr-1.md"
    assert run_cli("render-pr", "--part", "1", "--out", str(body), cwd=project.dir).returncode in (0, 1)
    text = body.read_text()
    assert "verified as part of the whole series" in text and "verified on this part alone" not in text

    own = json.loads(run_cli("verify", "--part", "1", "--json", cwd=project.dir).stdout)
    assert own["stages"][0]["status"] == "passed"
    assert run_cli("render-pr", "--part", "1", "--out", str(body), cwd=project.dir).returncode in (0, 1)
    text = body.read_text()
    assert "verified on this part alone" in text and "verified as part of the whole series" not in text

    # The part's run never stands in for the whole series: status still cites the whole run.
    status = json.loads(run_cli("status", "--json", cwd=project.dir).stdout)
    assert status["stages"][0]["run_id"] == whole["run_id"] != own["run_id"]
