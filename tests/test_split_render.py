"""render-pr --part K and the audit's PR-size check, fed by a real `mpspatch split` of a real project."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from render_project import make_project, passing_stages
from support import git_env

from mpspatch.model.stack import load_current_stack, part_context
from mpspatch.model.workspace import Workspace
from mpspatch.reporting.render import render_document
from mpspatch.reporting.status import compute_status

MPSPATCH = [sys.executable, "-m", "mpspatch.cli"]


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*MPSPATCH, *args], cwd=cwd, capture_output=True, text=True, check=False, timeout=120,
                          env=git_env())


def test_render_pr_part_states_place_dependencies_size_and_files(tmp_path: Path) -> None:
    project = make_project(tmp_path, max_lines=30)
    project.write_evidence("20251216T120000Z-aaaaaaaa", passing_stages())
    split = run_cli("split", "--json", cwd=project.root)
    assert split.returncode == 0, split.stderr
    parts = json.loads(split.stdout)["parts"]
    n = len(parts)
    assert n >= 3

    out = project.root / "audit/pr_description.part-02.md"
    result = run_cli("render-pr", "--part", "2", cwd=project.root)
    assert result.returncode == 0, result.stderr
    text = out.read_text()
    second = parts[1]
    as_json = json.loads(run_cli("render-pr", "--part", "2", "--json", cwd=project.root).stdout)
    assert as_json["title"] == f"[MPS] {second['title']} (2/{n})"  # the title is beside the body, not in it
    assert text.startswith("Part of #163001")
    assert "Part of #163001" in text and "Fixes #" not in text
    assert f"part **2 of {n}**" in text
    assert f"It depends on part 1 ({parts[0]['title']}), which must land first" in text
    assert f"Part 3 ({parts[2]['title']}) builds on this one." in text
    assert f"+{second['insertions']} -{second['deletions']}" in text
    assert f"{second['lines']} changed lines against a limit of 30" in text
    for path in second["files"]:
        assert f"- `{path}`" in text
    others = {f for p in parts if p is not second for f in p["files"]} - set(second["files"])
    assert not any(f"- `{path}`" in text for path in others)  # only this part's files are listed

    # The evidence was made for the whole series, not for this part's tree: said so, and never "passed".
    assert "Rendered by" not in text and "20251216T120000Z-aaaaaaaa" not in text
    plan = text.split("## Test plan", 1)[1]
    assert "passed" not in plan
    assert plan.count("verified as part of the whole series (series sha256 `") == 5
    assert "not on this part alone: 27 tests ran, 0 failed (measured on macOS 15.1, arm64, Apple M2)" in plan
    assert run_cli("render-pr", "--part", "2", "--check", cwd=project.root).returncode == 0
    last = run_cli("render-pr", "--part", str(n), "--out", "last.md", cwd=project.root)
    assert last.returncode == 0, last.stderr
    last_text = (project.root / "last.md").read_text()
    assert "Fixes #163001" in last_text and "It is the last part" in last_text

    first = render_document("pr", compute_status(Workspace(project.config())),
                            part=part_context(load_current_stack(project.config()), 1))
    assert "depends on no other part" in first and "applies directly on `v1.0`" in first

    assert run_cli("render-pr", "--part", str(n + 1), cwd=project.root).returncode == 2


def test_render_pr_part_without_a_fresh_stack_is_refused(tmp_path: Path) -> None:
    project = make_project(tmp_path, max_lines=30)
    missing = run_cli("render-pr", "--part", "1", cwd=project.root)
    assert missing.returncode == 2 and "mpspatch split" in missing.stderr
    assert run_cli("split", cwd=project.root).returncode == 0
    project.patch().write_text(project.patch().read_text() + "\n")
    stale = run_cli("render-pr", "--part", "1", cwd=project.root)
    assert stale.returncode == 2 and "changed since" in stale.stderr


def test_the_pr_size_check_passes_once_every_part_is_within_the_limit(tmp_path: Path) -> None:
    project = make_project(tmp_path, max_lines=30)
    assert compute_status(Workspace(project.config())).check("pr-size").state == "failed"
    assert run_cli("split", cwd=project.root).returncode == 0
    check = compute_status(Workspace(project.config())).check("pr-size")
    assert check.state == "passed", check.detail
    # A stack cut more loosely than the configured limit does not count.
    assert run_cli("split", "--max-lines", "1000", cwd=project.root).returncode == 0
    assert max(p.lines for p in load_current_stack(project.config()).parts) > 30
    assert compute_status(Workspace(project.config())).check("pr-size").state == "failed"
    assert run_cli("split", cwd=project.root).returncode == 0
    project.patch().write_text(project.patch().read_text() + "\n")  # the stack no longer matches the series
    assert compute_status(Workspace(project.config())).check("pr-size").state == "failed"
