"""Readiness and gaps: stage evidence (passed, failed, error, skipped, missing, stale) and computed checks.

Every test builds a real project (real upstream repo, real patch, real lock) and real evidence files.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from render_project import Project, edit_patch, failing_stages, make_project, passing_stages, stage

from mpspatch.foundation.ids import CommitSha, ContentSha256, TreePath, TreeSha
from mpspatch.model.stack import STACK, Part, Stack
from mpspatch.model.workspace import Workspace
from mpspatch.reporting.checks import STACK_FILE
from mpspatch.reporting.status import Gap, StatusReport, compute_status

RUN_1 = "20251216T120000Z-3f9a1c2e"
RUN_2 = "20251217T090000Z-77b0c1d4"
RUN_3 = "20251218T100000Z-0c6d2e9f"


def gaps(report: StatusReport) -> dict[str, Gap]:
    return {g.id: g for g in report.gaps}


def ready_project(tmp_path: Path) -> Project:
    project = make_project(tmp_path)
    project.write_evidence(RUN_1, passing_stages())
    return project


def test_fully_passing_evidence_is_ready_with_no_gaps(tmp_path: Path) -> None:
    report = compute_status(Workspace(ready_project(tmp_path).config()))
    assert report.ready, report.gaps
    assert report.gaps == ()
    assert all(s.state == "passed" and s.run_id == RUN_1 for s in report.stages)
    assert {c.name: c.state for c in report.checks} == dict.fromkeys(
        ["lock", "allowed-paths", "index-lines", "series-applies", "base-current", "pr-size", "issue-linked",
         "prose", "tests-included", "whitespace", "release-notes-label", "cc-line", "categories",
         "no-regressions"], "passed")
    # Human actions are listed, and never counted as passed.
    assert report.human_rows and all(r.status == "HUMAN ACTION" and not r.passed for r in report.human_rows)


def test_each_stage_gap_says_why(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    failing = failing_stages()
    failing.append(stage("stress", "command", "error", reason="timed out after 600s"))
    project.write_evidence(RUN_1, failing)
    found = gaps(compute_status(Workspace(project.config())))
    assert found["stage:lint"].reason == "failed: 3 lint messages (messages 3, errors 2, warnings 1)"
    assert found["stage:tsan"].reason == "failed: 2 data races (races 2, warnings 2)"
    assert found["stage:tests"].reason == "skipped: requires a working MPS device: the probe found none"
    assert found["stage:stress"].reason == "error: timed out after 600s"
    assert all(found[f"stage:{n}"].blocking for n in ("lint", "tsan", "tests", "stress"))
    assert found["stage:tsan"].fix == "`mpspatch verify --stage tsan`"
    assert "stage:build" not in found


def test_a_stage_never_run_is_missing(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    report = compute_status(Workspace(project.config()))
    assert report.latest is None
    assert {g.id: g.reason for g in report.gaps if g.id.startswith("stage:")} == {
        f"stage:{n}": "missing: never run; no evidence records this stage"
        for n in ("build", "lint", "tsan", "tests", "stress")}


def test_a_stage_the_checklist_names_but_the_config_lacks_is_missing_with_a_hint(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    path = project.root / "audit/requirements.toml"
    path.write_text(path.read_text().replace('stage = "stress"', 'stage = "stres"'))
    project.write_evidence(RUN_1, passing_stages())
    found = gaps(compute_status(Workspace(project.config())))
    assert found["stage:stres"].reason == (
        "missing: no [[stages]] named 'stres' in mpspatch.toml (did you mean 'stress'?)")
    assert found["stage:stres"].blocking
    assert "stage:stress" not in found  # the configured stage itself passed


def add_unnamed_stage(project: Project) -> None:
    """A [[stages]] entry the checklist does not name, like the shipped config's `lint-clang-format`."""
    with project.config_path.open("a") as out:
        out.write('\n[[stages]]\nname = "lint-clang-format"\nkind = "lint"\n'
                  'run = [["clang-format", "--dry-run", "--Werror", "{patched}"]]\n')


def run_cli(project: Project, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mpspatch.cli", *args], cwd=project.root,
                          capture_output=True, text=True, timeout=60, check=False)


def test_a_failing_stage_no_requirement_names_blocks(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    add_unnamed_stage(project)
    reason = "2 files need formatting"
    project.write_evidence(RUN_1, [*passing_stages(),
                                   stage("lint-clang-format", "lint", "failed", reason=reason, counts={"messages": 2})])
    report = compute_status(Workspace(project.config()))
    assert gaps(report)["stage:lint-clang-format"] == Gap(
        "stage:lint-clang-format", "Stage `lint-clang-format` passes (not named by the checklist)",
        f"failed: {reason} (messages 2)", True, "`mpspatch verify --stage lint-clang-format`")
    assert not report.ready

    data = json.loads(run_cli(project, "status", "--json").stdout)
    assert data["ready"] is False
    assert [g["id"] for g in data["gaps"] if g["blocking"]] == ["stage:lint-clang-format"]
    rendered = run_cli(project, "render-audit", "--out", "audit.md")
    assert rendered.returncode == 0, rendered.stderr
    audit = (project.root / "audit.md").read_text()
    assert "**Status**: NOT READY — 1 gap" in audit
    assert "**Status**: READY FOR SUBMISSION" not in audit


def test_an_unnamed_stage_that_errored_blocks_but_a_skipped_one_stays_advisory(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    add_unnamed_stage(project)
    project.write_evidence(RUN_1, [*passing_stages(), stage("lint-clang-format", "lint", "error",
                                                            reason="the tree has no .clang-format")])
    errored = compute_status(Workspace(project.config()))
    assert gaps(errored)["stage:lint-clang-format"].blocking and not errored.ready

    project.write_evidence(RUN_2, [stage("lint-clang-format", "lint", "skipped", reason="requires os darwin")])
    skipped = compute_status(Workspace(project.config()))
    gap = gaps(skipped)["stage:lint-clang-format"]
    assert (gap.reason, gap.blocking) == ("skipped: requires os darwin", False)
    assert skipped.ready


def test_evidence_goes_stale_when_the_patch_changes(tmp_path: Path) -> None:
    project = ready_project(tmp_path)
    before = compute_status(Workspace(project.config())).patches[0].sha256
    edit_patch(project)
    project.relock()
    report = compute_status(Workspace(project.config()))
    after = report.patches[0].sha256
    assert not report.ready
    for name in ("build", "lint", "tsan", "tests", "stress"):
        reason = gaps(report)[f"stage:{name}"].reason
        assert reason == (f"stale: run {RUN_1} was made for other series content "
                          f"(sha256 {before[:12]}; now {after[:12]})")
    # The stale result is still shown for what it was.
    tests = report.stage("tests")
    assert tests is not None and tests.result is not None and tests.result.count("passed") == 27


def test_evidence_goes_stale_when_the_base_changes(tmp_path: Path) -> None:
    project = ready_project(tmp_path)
    lock_path = project.root / "patches/series.lock"
    lock = json.loads(lock_path.read_text())
    old = lock["base"]
    lock["base"] = project.upstream.commit("upstream moves")  # the series was rebased onto a newer commit
    lock_path.write_text(json.dumps(lock, indent=2, sort_keys=True) + "\n")
    reason = gaps(compute_status(Workspace(project.config())))["stage:tsan"].reason
    assert reason == f"stale: run {RUN_1} was made at base {old[:12]}; the lock says {lock['base'][:12]}"


def test_without_a_lock_no_evidence_counts(tmp_path: Path) -> None:
    project = ready_project(tmp_path)
    (project.root / "patches/series.lock").unlink()
    found = gaps(compute_status(Workspace(project.config())))
    assert found["stage:build"].reason.startswith("stale: the series has no lock")
    assert found["check:lock"].blocking and "run `mpspatch lock`" in found["check:lock"].reason


def test_the_newest_run_holding_a_stage_decides(tmp_path: Path) -> None:
    project = ready_project(tmp_path)
    # `verify --stage lint` later fails: lint is failed, the other stages keep their earlier pass.
    project.write_evidence(RUN_2, [stage("lint", "lint", "failed", reason="1 lint message", counts={"messages": 1})])
    report = compute_status(Workspace(project.config()))
    assert [g.id for g in report.gaps] == ["stage:lint"]
    assert report.stage("tsan").run_id == RUN_1  # type: ignore[union-attr]
    assert report.latest is not None and report.latest.run_id == RUN_2
    # A newer passing lint closes it again; the older failure does not outvote it.
    project.write_evidence(RUN_3, [stage("lint", "lint", counts={"messages": 0})])
    assert compute_status(Workspace(project.config())).ready


def test_pr_size_over_the_limit_points_at_split_until_a_fitting_stack_exists(tmp_path: Path) -> None:
    project = make_project(tmp_path, max_lines=40)
    project.write_evidence(RUN_1, passing_stages())
    report = compute_status(Workspace(project.config()))
    changed = report.stats.changed_lines
    assert changed == 65
    gap = gaps(report)["check:pr-size"]
    assert gap.blocking
    assert gap.reason == "65 changed lines (insertions + deletions) exceed the 40-line limit"
    assert gap.fix == "`mpspatch split --max-lines 40`"

    stack = project.root / STACK_FILE
    series = tuple(p.sha256 for p in report.patches)
    write_stack(stack, [38, 27], series)
    report = compute_status(Workspace(project.config()))
    assert report.ready, report.gaps
    assert "the stack in patches/stack has 2 parts, each within it (largest 38)" in report.check("pr-size").detail

    write_stack(stack, [20, 45], series, oversized=2)
    gap = gaps(compute_status(Workspace(project.config())))["check:pr-size"]
    assert "stack part 2 of 2 has 45 lines (a single hunk larger than the limit)" in gap.reason
    assert gap.fix.endswith("and split the large hunk by hand")

    write_stack(stack, [30, 30], (ContentSha256("0" * 64),))  # left over from an older patch
    assert "made for other series content" in gaps(compute_status(Workspace(project.config())))["check:pr-size"].reason

    # A stack file split did not write (no version, no series hashes) is a gap naming the fix, not a crash.
    stack.write_text(json.dumps({"parts": [{"lines": 40}, {"lines": 25}]}))
    gap = gaps(compute_status(Workspace(project.config())))["check:pr-size"]
    assert f"{STACK_FILE}: the stack has no `version`; run `mpspatch split` again" in gap.reason

    write_stack(stack, [40, 25], series)
    assert compute_status(Workspace(project.config())).ready


def write_stack(path: Path, lines: list[int], series: tuple[ContentSha256, ...], oversized: int = 0) -> None:
    """A stack.json as `mpspatch split` writes it, with parts of the given sizes."""
    parts = tuple(
        Part(index=k, title=f"Part {k}", slug=f"part-{k}", path=f"{k:04d}-part-{k}.patch", lines=n, insertions=n,
             deletions=0, files=(TreePath("aten/src/ATen/mps/MPSStream.mm"),), oversized_hunk=k == oversized,
             depends_on=(k - 1,) if k > 1 else (), commit=CommitSha(f"{k:040x}"), tree=TreeSha(f"{k:040x}"))
        for k, n in enumerate(lines, start=1)
    )
    STACK.write(path, Stack(parts=parts, max_lines=40, base=CommitSha("a" * 40), base_ref="v1.0",
                            series_sha256=series, tree=TreeSha("b" * 40), insertions=sum(lines), deletions=0))


def test_messy_patch_checks(tmp_path: Path) -> None:
    project = make_project(tmp_path, messy=True, issue=None, prose=("summary", "motivation"))
    project.write_evidence(RUN_1, passing_stages())
    found = gaps(compute_status(Workspace(project.config())))
    assert found["check:allowed-paths"].reason == "1 file outside allowed_paths: `tools/mps_helper.py`"
    assert found["check:whitespace"].reason == (
        "1 added line with a tab or trailing whitespace, first at `tools/mps_helper.py:2`")
    assert found["check:issue-linked"].reason.startswith("human action: no issue number")
    assert found["check:prose"].reason == "missing: `docs/prose/alternatives.md`, `docs/prose/limitations.md`"
    assert not found["check:categories"].blocking  # the checklist marks grouping as advisory
    assert all(found[k].blocking for k in ("check:allowed-paths", "check:whitespace", "check:issue-linked",
                                           "check:prose"))


def test_labels_and_tests_included_checks(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    config_path = project.config_path
    config_path.write_text(config_path.read_text().replace(', "release notes: mps"', ""))
    report = compute_status(Workspace(project.config()))
    assert report.check("release-notes-label").state == "failed"
    assert report.check("tests-included").state == "passed"
    assert report.check("tests-included").detail == "1 file under test/ changed, e.g. `test/test_mps.py`"


def test_base_older_than_target_and_missing_target(tmp_path: Path) -> None:
    project = make_project(tmp_path, upstream_moved=True)
    project.write_evidence(RUN_1, passing_stages())
    report = compute_status(Workspace(project.config()))
    assert gaps(report)["check:base-current"].reason == f"the base {report.base[:12]} is older than main"  # type: ignore[index]
    project.config_path.write_text(project.config_path.read_text().replace('target = "main"',
                                                                         'target = "viable/strict"'))
    report = compute_status(Workspace(project.config()))
    check = report.check("base-current")
    assert (check.state, check.detail) == (
        "not checked", "not checked: the target 'viable/strict' is not in the checkout")
    assert not gaps(report)["check:base-current"].blocking
    assert report.ready


def test_without_a_checkout_history_checks_say_not_checked(tmp_path: Path) -> None:
    project = ready_project(tmp_path)
    project.config_path.write_text(project.config_path.read_text().replace("../upstream", "../gone"))
    report = compute_status(Workspace(project.config()))
    for name in ("series-applies", "base-current"):
        check = report.check(name)
        assert (check.state, check.detail) == ("not checked", "not checked: no checkout at ../gone")
        assert not gaps(report)[f"check:{name}"].blocking
    assert report.ready  # offline and clone-less, the evidence still decides


def test_a_series_whose_second_patch_conflicts_with_the_first(tmp_path: Path) -> None:
    project = ready_project(tmp_path)
    # The same patch twice: the second cannot apply on top of the first (like the dML test patch).
    (project.root / "patches/again.patch").write_bytes(project.patch().read_bytes())
    project.config_path.write_text(project.config_path.read_text().replace(
        'patches = ["patches/pool.patch"]', 'patches = ["patches/pool.patch", "patches/again.patch"]'))
    project.relock()
    objects_before = project.upstream.git("count-objects", "-v")
    status_before = project.upstream.git("status", "--porcelain")
    report = compute_status(Workspace(project.config()))
    gap = gaps(report)["check:series-applies"]
    assert gap.blocking
    assert gap.reason.startswith("`patches/again.patch` does not apply after the patches before it: ")
    assert "already exists in index" in gap.reason or "patch does not apply" in gap.reason
    # The user's clone gained no objects and its index and tree are untouched.
    assert project.upstream.git("count-objects", "-v") == objects_before
    assert project.upstream.git("status", "--porcelain") == status_before


def test_status_json_and_the_audit_share_one_gap_list(tmp_path: Path) -> None:
    from mpspatch.reporting.render import render_document

    project = make_project(tmp_path, issue=None, max_lines=40)
    project.write_evidence(RUN_1, failing_stages())
    result = subprocess.run([sys.executable, "-m", "mpspatch.cli", "status", "--json"], cwd=project.root,
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    report = compute_status(Workspace(project.config()))
    assert data["ready"] is False
    assert [g["id"] for g in data["gaps"]] == [g.id for g in report.gaps]
    audit = render_document("audit", report)
    blocking = [g for g in data["gaps"] if g["blocking"]]
    assert f"**Status**: NOT READY — {len(blocking)} gaps" in audit
    for gap in data["gaps"]:
        assert f"(`{gap['id']}`): {gap['reason']}" in audit


def test_one_vocabulary_for_stages_checks_and_rows() -> None:
    from mpspatch.reporting.checks import CheckState
    from mpspatch.reporting.status import Standing
    from mpspatch.verify.stages import StageStatus

    # Every stage status and check state is a standing of the same spelling, so nothing maps between them.
    assert {s.value for s in StageStatus} | {c.value for c in CheckState} <= {s.value for s in Standing}
    assert [s.word for s in Standing] == ["PASS", "FAIL", "ERROR", "SKIPPED", "MISSING", "STALE", "NOT CHECKED",
                                          "HUMAN ACTION"]


def test_status_check_exits_1_only_when_not_ready(tmp_path: Path) -> None:
    project = make_project(tmp_path / "ready")
    project.write_evidence(RUN_1, passing_stages())
    plain, checked = run_cli(project, "status"), run_cli(project, "status", "--check", "--json")
    assert (plain.returncode, checked.returncode) == (0, 0), checked.stderr
    assert json.loads(checked.stdout)["ready"] is True

    project = make_project(tmp_path / "not-ready")
    project.write_evidence(RUN_1, failing_stages())
    plain, checked = run_cli(project, "status", "--json"), run_cli(project, "status", "--check", "--json")
    assert plain.returncode == 0, plain.stderr  # without --check, NOT READY is a report, not a failure
    assert checked.returncode == 1, checked.stderr
    assert json.loads(checked.stdout)["ready"] is False
    assert json.loads(checked.stdout) == json.loads(plain.stdout)
    assert run_cli(project, "status", "--check").returncode == 1


def write_prose(project: Project, name: str, text: str) -> None:
    (project.root / "docs/prose" / f"{name}.md").write_text(text)


def test_prose_naming_files_the_series_does_not_touch_fails(tmp_path: Path) -> None:
    project = ready_project(tmp_path)
    write_prose(project, "summary", (
        "It touches `aten/src/ATen/mps/MPSStream.mm`, the operations under `aten/src/ATen/native/mps/` and\n"
        "the bindings in `torch/csrc/mps/Module.cpp` and torch/mps/__init__.py. It also rewrites\n"
        "aten/src/ATen/mps/MPSAllocator.mm. See https://github.com/pytorch/pytorch/blob/main/aten/src/x.cpp.\n\n"
        "- `aten/src/ATen/mps/MPSEvent.mm`: absorbed by the rebase, upstream has it now.\n"
        "- The profiler change in aten/src/ATen/mps/MPSProfiler.mm is already upstream.\n"))
    report = compute_status(Workspace(project.config()))
    gap = gaps(report)["check:prose"]
    assert gap.blocking and not report.ready
    assert gap.reason == ("2 paths the prose names are not in the series: `torch/csrc/mps/Module.cpp` "
                          "(docs/prose/summary.md), `aten/src/ATen/mps/MPSAllocator.mm` (docs/prose/summary.md)")
    assert "already upstream" in gap.fix

    write_prose(project, "summary", "It touches `aten/src/ATen/mps/MPSStream.mm` and `torch/mps/`.\n")
    fixed = compute_status(Workspace(project.config()))
    assert fixed.ready, fixed.gaps
    assert fixed.check("prose").detail == (
        "all 4 prose fragments are written; every repository path they name (2) is in the series")


def test_prose_naming_a_file_a_rebase_dropped_fails_until_it_says_so(tmp_path: Path) -> None:
    # The series stops touching the Python bindings (say a rebase found them upstream); the prose still
    # describes the change as part of the series.
    project = make_project(tmp_path)
    text = project.patch().read_text()
    start = text.index("diff --git a/torch/mps/__init__.py")
    end = text.find("diff --git", start + 1)
    project.patch().write_text(text[:start] + (text[end:] if end != -1 else ""))
    project.relock()
    project.write_evidence(RUN_1, passing_stages())
    write_prose(project, "summary", "Adds `stream_pool_size()` to torch/mps/__init__.py.\n")
    assert gaps(compute_status(Workspace(project.config())))["check:prose"].reason == (
        "1 path the prose names is not in the series: `torch/mps/__init__.py` (docs/prose/summary.md)")
    write_prose(project, "summary", "The `stream_pool_size()` change to torch/mps/__init__.py is already upstream.\n")
    report = compute_status(Workspace(project.config()))
    assert report.check("prose").state == "passed" and report.ready, report.gaps


def test_prose_check_fails_when_the_pr_description_lacks_a_section_the_checklist_names(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mpspatch.reporting import render

    project = ready_project(tmp_path)
    report = compute_status(Workspace(project.config()))
    assert report.ready, report.gaps
    pr = render.render_document("pr", report)
    assert "## Alternatives\n\n" + (project.root / "docs/prose/alternatives.md").read_text() in pr

    # A template without the Alternatives heading (as the shipped one was) fails the row that asks for it.
    old = tmp_path / "templates"
    shutil.copytree(render.templates_dir(), old)
    template = old / "pr_description.md.j2"
    text = template.read_text().replace('{{ m.sections(doc, skip=("summary",)) }}',
                                        '{{ m.sections(doc, skip=("summary", "alternatives")) }}')
    template.write_text(text)
    monkeypatch.setattr(render, "templates_dir", lambda: old)
    broken = compute_status(Workspace(project.config()))
    gap = gaps(broken)["check:prose"]
    assert gap.blocking and not broken.ready
    assert gap.reason == ("the rendered PR description has no `## Alternatives` section, which the checklist or "
                          "[render].sections asks for")
    assert gap.fix == ("list the section in [render].sections and write its file, or place it in "
                       "templates/pr_description.md.j2 (add `## Alternatives`)")

    # A row that asks only for the summary and motivation still fails while [render].sections (the default
    # list) names alternatives; without it in the list, that template satisfies the row.
    checklist = project.root / "audit/requirements.toml"
    checklist.write_text(checklist.read_text().replace(
        "states the summary, motivation, alternatives and known limitations", "states the summary and motivation"))
    assert not compute_status(Workspace(project.config())).ready
    config = project.config_path
    config.write_text(config.read_text().replace('[render]\n', '[render]\nsections = ["summary", "motivation", '
                                                 '"limitations"]\n'))
    assert compute_status(Workspace(project.config())).ready
