"""The three documents: golden files for three evidence sets, StrictUndefined, --check through the real CLI,
and every number traced back to the stats, the evidence or the config."""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from render_project import Project, edit_patch, failing_stages, make_project, passing_stages, stage

from mpspatch.model.workspace import Workspace
from mpspatch.reporting.document_data import document_data, tidy
from mpspatch.reporting.render import DOCUMENTS, TemplateError, render_document, templates_dir, unified_diff
from mpspatch.reporting.status import StatusReport, compute_status

GOLDEN = Path(__file__).parent / "golden"
RUN_1 = "20251216T120000Z-3f9a1c2e"
RUN_2 = "20251219T080000Z-5e1f0a7b"
MPSPATCH = [sys.executable, "-m", "mpspatch.cli"]


def ready_case(tmp_path: Path) -> Project:
    project = make_project(tmp_path)
    project.write_evidence(RUN_1, passing_stages())
    return project


def not_ready_case(tmp_path: Path) -> Project:
    project = make_project(tmp_path, issue=None, max_lines=40, messy=True, upstream_moved=True,
                           prose=("summary", "motivation", "alternatives"))
    project.write_evidence(RUN_1, failing_stages())
    return project


def stale_case(tmp_path: Path) -> Project:
    project = ready_case(tmp_path)
    edit_patch(project)
    project.relock()  # the patch was regenerated and re-locked, but nobody ran verify again
    return project


CASES = {"ready": ready_case, "not_ready": not_ready_case, "stale": stale_case}


_VERSION = re.compile(r"mpspatch \d+\.\d+\S*( -->)")


def unversioned(text: str) -> str:
    """The provenance comment names mpspatch's version; golden files hold a fixed word so a release does not
    rewrite them."""
    return _VERSION.sub(r"mpspatch VERSION\1", text)


def accepting(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--accept-golden")) or os.environ.get("MPSPATCH_ACCEPT_GOLDEN") == "1"


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden_documents(case: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    report = compute_status(Workspace(CASES[case](tmp_path).config()))
    problems = []
    for kind, (_, name) in DOCUMENTS.items():
        text = unversioned(render_document(kind, report))
        assert str(tmp_path) not in text and "/home/" not in text and "/Users/" not in text
        golden = GOLDEN / case / name
        if accepting(request):
            golden.parent.mkdir(parents=True, exist_ok=True)
            golden.write_text(text, encoding="utf-8")
            continue
        if not golden.exists():
            problems.append(f"{golden.relative_to(GOLDEN.parent)} is missing; run pytest --accept-golden")
            continue
        expected = golden.read_text(encoding="utf-8")
        if text != expected:
            diff = "".join(difflib.unified_diff(expected.splitlines(True), text.splitlines(True), "golden", "now"))
            problems.append(f"{golden.relative_to(GOLDEN.parent)} differs (accept with --accept-golden):\n{diff}")
    assert not problems, "\n".join(problems)


def test_the_three_cases_say_what_they_should(tmp_path: Path) -> None:
    ready = compute_status(Workspace(ready_case(tmp_path / "a").config()))
    audit = render_document("audit", ready)
    assert "**Status**: READY FOR SUBMISSION" in audit and "NOT READY" not in audit

    failing = compute_status(Workspace(not_ready_case(tmp_path / "b").config()))
    audit = render_document("audit", failing)
    assert f"**Status**: NOT READY — {len(failing.blocking_gaps)} gaps" in audit
    assert "READY FOR SUBMISSION" not in audit.split("\n", 3)[2]
    for needle in ("(`stage:lint`): failed: 3 lint messages", "(`stage:tsan`): failed: 2 data races",
                   "(`stage:tests`): skipped: requires a working MPS device", "(`stage:stress`): missing: never run",
                   "(`check:pr-size`): 67 changed lines (insertions + deletions) exceed the 40-line limit. "
                   "Fix: `mpspatch split --max-lines 40`",
                   "(`check:issue-linked`): human action: no issue number",
                   "(`check:prose`): missing: `docs/prose/limitations.md`",
                   "(`check:allowed-paths`)", "(`check:base-current`)", "(`check:whitespace`)"):
        assert needle in audit, needle
    pr = render_document("pr", failing)
    assert "Fixes #" not in pr and "ISSUE_NUMBER" not in pr  # no placeholder in a public document
    # A section not written yet is left out of the public body; the audit names it as a gap.
    assert "## Known limitations" not in pr and "PROSE MISSING" not in pr and "docs/prose" not in pr
    assert "limitations (not written: `docs/prose/limitations.md`)" in audit

    stale = compute_status(Workspace(stale_case(tmp_path / "c").config()))
    audit = render_document("audit", stale)
    assert f"**Status**: NOT READY — {len(stale.blocking_gaps)} gaps" in audit
    assert audit.count(f"stale: run {RUN_1} was made for other series content") >= 5


def test_human_actions_are_never_checked_off(tmp_path: Path) -> None:
    report = compute_status(Workspace(ready_case(tmp_path).config()))
    audit = render_document("audit", report)
    checklist = audit.split("## Pre-submission checklist", 1)[1].split("## Files to submit", 1)[0]
    for row in report.rows:
        line = next(line for line in checklist.splitlines() if row.requirement.title in line)
        assert line.startswith("- [x]") == (row.status == "PASS"), line
        if row.requirement.kind == "human":
            assert line.startswith("- [ ]") and "HUMAN ACTION" in line


def test_a_misspelled_template_variable_is_bad_input_naming_the_template_and_line(tmp_path: Path) -> None:
    report = compute_status(Workspace(ready_case(tmp_path).config()))
    folder = tmp_path / "templates"
    shutil.copytree(templates_dir(), folder)
    audit = folder / "submission_audit.md.j2"
    line = next(i for i, text in enumerate(audit.read_text().splitlines(), 1) if "{{ s.insertions | num }}" in text)
    audit.write_text(audit.read_text().replace("{{ s.insertions | num }}", "{{ s.insertoins | num }}", 1))
    with pytest.raises(TemplateError, match=rf"submission_audit\.md\.j2, line {line}: .*insertoins") as caught:
        render_document("audit", report, templates=folder)
    assert caught.value.exit_code == 2
    pr = folder / "pr_description.md.j2"
    pr.write_text(pr.read_text().replace("Fixes #{{ doc.issue }}", "Fixes #{{ doc.isue }}", 1))
    with pytest.raises(TemplateError, match=r"pr_description\.md\.j2, line .*isue"):
        render_document("pr", report, templates=folder)
    issue = folder / "github_issue.md.j2"
    issue.write_text(issue.read_text().replace("{% set r = doc.report %}", "{% set r = doc.report %\n}", 1))
    with pytest.raises(TemplateError, match=r"github_issue\.md\.j2, line 5: template syntax error"):
        render_document("issue", report, templates=folder)


def test_rendering_is_a_pure_function_of_the_data(tmp_path: Path) -> None:
    project = ready_case(tmp_path)
    first = {k: render_document(k, compute_status(Workspace(project.config()))) for k in DOCUMENTS}
    (project.root / "unrelated.txt").write_text("time passes\n")
    second = {k: render_document(k, compute_status(Workspace(project.config()))) for k in DOCUMENTS}
    assert first == second


# ------------------------------------------------------------------------------- every number is traced

_NUMBER = re.compile(r"(?<![\w.])\d[\d,]*(?![\w])")


def numbers_in(text: str) -> set[int]:
    return {int(m.group(0).rstrip(",").replace(",", "")) for m in _NUMBER.finditer(text)}


def harvest(value: object, seen: set[int] | None = None) -> set[int]:
    """Every number held by the data: ints, numbers inside strings, tuple lengths and computed properties.

    Paths are left out (they hold machine-specific digits) and so is the raw patch text, which is source code.
    """
    found: set[int] = set() if seen is None else seen
    if isinstance(value, bool) or value is None or isinstance(value, Path):
        return found
    if isinstance(value, int):
        found.add(value)
    elif isinstance(value, str):
        found |= numbers_in(value)
    elif isinstance(value, tuple | list):
        found.add(len(value))
        for item in value:
            harvest(item, found)
    elif isinstance(value, dict):
        for item in value.values():
            harvest(item, found)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for field in dataclasses.fields(value):
            if field.name not in ("patches", "hunks", "header", "text"):
                harvest(getattr(value, field.name), found)
        for name, attr in vars(type(value)).items():
            if isinstance(attr, property):
                harvest(getattr(value, name), found)
    return found


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_number_in_the_documents_comes_from_the_data(case: str, tmp_path: Path) -> None:
    report = compute_status(Workspace(CASES[case](tmp_path).config()))
    known = harvest(document_data(report))
    for kind in DOCUMENTS:
        text = render_document(kind, report)
        assert numbers_in(text), kind
        unexplained = numbers_in(text) - known
        assert not unexplained, f"{kind}: numbers not found in the data: {sorted(unexplained)}"


def test_templates_hold_no_figures_of_their_own() -> None:
    # The Markdown documents; the HTML report's CSS sizes and colours are presentation (its chart's numbers are data).
    for path in sorted(templates_dir().glob("*.md.j2")):
        # The SHA abbreviation length and singular-vs-plural tests are presentation, not figures.
        text = re.sub(r"\[:12\]|!= 1\b", "", path.read_text())
        assert not numbers_in(text), f"{path.name} has a literal number"


def test_changing_the_evidence_and_the_patch_changes_the_documents(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    project.write_evidence(RUN_1, passing_stages(tests_passed=27, tsan_races=0))
    before = {k: render_document(k, compute_status(Workspace(project.config()))) for k in DOCUMENTS}
    project.write_evidence(RUN_2, passing_stages(tests_passed=731, tsan_races=5))
    report = compute_status(Workspace(project.config()))
    after = {k: render_document(k, report) for k in DOCUMENTS}
    assert "27 of 27 passed" in before["audit"] and "731 of 731 passed" in after["audit"]
    assert "0 data races reported" in before["audit"] and "5 data races reported" in after["audit"]
    assert RUN_2 in after["audit"]
    for kind in ("pr", "issue"):  # the public documents: the figures with the machine, never the run id
        assert "27 of 27 tests passed on macOS 15.1, arm64, Apple M2" in before[kind]
        assert "731 of 731 tests passed on macOS 15.1, arm64, Apple M2" in after[kind]
        assert "passed, 0 data races reported on macOS" in before[kind]
        assert "failed: 5 data races on macOS 15.1, arm64, Apple M2" in after[kind]
        assert RUN_2 not in after[kind] and RUN_1 not in before[kind]
    assert "| `tsan` | tsan | failed: 5 data races (races 5, warnings 5) | races 5, warnings 5 |" in after["audit"]

    stats = report.stats
    for kind in ("pr", "issue"):
        assert f"{stats.files} files changed, {stats.insertions} insertions(+), {stats.deletions} deletions(-)." \
            in after[kind]
    for c in stats.categories:
        assert f"| {c.name} | {len(c.files)} | {c.insertions} | {c.deletions} |" in after["audit"]
        assert f"**{c.name} ({len(c.files)} file" in after["audit"]
    assert f"| Patch lines | {stats.lines} |" in after["audit"]
    table = f"| Files changed | {stats.files} |\n| Insertions | {stats.insertions} |\n| Deletions | {stats.deletions} |"
    assert table in after["audit"]
    assert f"| Changed lines (insertions + deletions) | {stats.changed_lines} |" in after["audit"]

    edit_patch(project)
    project.relock()
    edited = compute_status(Workspace(project.config()))
    assert edited.stats.insertions == stats.insertions + 1
    pr = render_document("pr", edited)
    assert f"{stats.insertions + 1} insertions(+)" in pr
    assert "### Python bindings (1 file, +5 -0)" in pr and "### Python bindings (1 file, +4 -0)" in after["pr"]


def test_large_figures_get_thousands_separators(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    project.write_evidence(RUN_1, [*passing_stages()[:3], stage("tests", "tests", counts={
        "passed": 12_345, "failed": 1, "skipped": 2, "errors": 0})])
    report = compute_status(Workspace(project.config()))
    assert "12,345 of 12,348 passed (failed 1, skipped 2, errors 0)" in render_document("audit", report)
    assert "12,345 of 12,348 tests passed (2 skipped)" in render_document("pr", report)


def test_machine_paths_are_cut_from_evidence_text() -> None:
    known = ["aten/src/ATen/mps/MPSStream.mm"]
    assert tidy("race /Users/dev/pt/aten/src/ATen/mps/MPSStream.mm:14 in f", known) == (
        "race aten/src/ATen/mps/MPSStream.mm:14 in f")
    assert tidy("/home/runner/.mpspatch/tree/tsan_mps_test 8 50", known) == "tsan_mps_test 8 50"
    assert tidy("relative/path stays", known) == "relative/path stays"


def test_document_status_line_matches_readiness(tmp_path: Path) -> None:
    report: StatusReport = compute_status(Workspace(ready_case(tmp_path).config()))
    assert document_data(report).status_line == "READY FOR SUBMISSION"


# ---------------------------------------------------------------------------------------------- the CLI


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*MPSPATCH, *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False)


def test_render_then_check_then_edit_through_the_cli(tmp_path: Path) -> None:
    project = ready_case(tmp_path)
    for kind, (_, name) in DOCUMENTS.items():
        command = f"render-{kind}"
        missing = cli(command, "--check", cwd=project.root)
        assert missing.returncode == 1 and "does not exist" in missing.stderr
        written = cli(command, cwd=project.root)
        assert written.returncode == 0, written.stderr
        out = project.root / "audit" / name
        assert out.read_text() == render_document(kind, compute_status(Workspace(project.config())))
        current = cli(command, "--check", cwd=project.root)
        assert (current.returncode, current.stdout) == (0, ""), current.stderr
        out.write_text(out.read_text().replace("\n\n", "\n\nEdited by hand\n\n", 1))
        stale = cli(command, "--check", cwd=project.root)
        assert stale.returncode == 1
        assert stale.stdout.startswith(f"--- audit/{name} (on disk)\n+++ audit/{name} (fresh render)\n")
        assert "\n-Edited by hand\n" in stale.stdout
        assert "is stale; run `mpspatch render-" in stale.stderr


def test_check_fails_when_the_evidence_moves_on(tmp_path: Path) -> None:
    project = ready_case(tmp_path)
    assert cli("render-audit", cwd=project.root).returncode == 0
    project.write_evidence(RUN_2, [stage("tsan", "tsan", "failed", reason="1 data race", counts={"races": 1})])
    stale = cli("render-audit", "--check", cwd=project.root)
    assert stale.returncode == 1
    assert "-**Status**: READY FOR SUBMISSION\n+**Status**: NOT READY — 1 gap\n" in stale.stdout


def test_out_option_writes_where_asked(tmp_path: Path) -> None:
    project = ready_case(tmp_path)
    target = tmp_path / "elsewhere" / "pr.md"
    assert cli("render-pr", "--out", str(target), cwd=project.root).returncode == 0
    assert target.read_text().startswith("Fixes #163001\n")  # the body only: the title is a separate output
    assert cli("render-pr", "--out", str(target), "--check", cwd=project.root).returncode == 0
    assert not (project.root / "audit/pr_description.md").exists()


def test_unified_diff_is_empty_when_equal() -> None:
    assert unified_diff("a\n", "a\n", "x.md") == ""
    assert unified_diff("a", "b", "x.md").endswith("\\ No newline at end of file\n")


# ------------------------------------------------------------------------ stacked part and custom template


def _golden(request: pytest.FixtureRequest, name: str, text: str) -> None:
    text = unversioned(text)
    golden = GOLDEN / name
    if accepting(request):
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(text, encoding="utf-8")
        return
    assert golden.exists(), f"{name} is missing; run pytest --accept-golden"
    expected = golden.read_text(encoding="utf-8")
    diff = "".join(difflib.unified_diff(expected.splitlines(True), text.splitlines(True), "golden", "now"))
    assert text == expected, f"{name} differs (accept with --accept-golden):\n{diff}"


def test_golden_stacked_part(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    from mpspatch.model.stack import load_current_stack, part_context

    project = make_project(tmp_path, max_lines=30)
    project.write_evidence(RUN_1, passing_stages())
    assert cli("split", cwd=project.root).returncode == 0
    config = project.config()
    stack = load_current_stack(config)
    report = compute_status(Workspace(config))
    second = render_document("pr", report, part=part_context(stack, 2))
    assert "passed" not in second.split("## Test plan", 1)[1]
    _golden(request, "part/pr_description.part-02.md", second)
    # Evidence made on the last part's tree (the whole series' tree) is that part's own: it may say passed.
    project.write_evidence(RUN_2, passing_stages(), tree=stack.parts[-1].tree)
    last = render_document("pr", compute_status(Workspace(config)), part=part_context(stack, len(stack.parts)))
    assert "27 of 27 tests passed on macOS 15.1, arm64, Apple M2" in last


def test_golden_custom_template_and_sections(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    project = ready_case(tmp_path)
    (project.root / "docs/prose/design.md").write_text("It mirrors the CUDA stream pool.\n")
    own = project.root / "doc-templates"
    own.mkdir()
    (own / "pr_description.md.j2").write_text(
        '{% import "_macros.md.j2" as m %}\n'
        "Fixes #{{ doc.issue }}\n\n"
        "{{ m.sections(doc) }}\n"
        "## How to test\n\n{{ m.test_plan(doc) }}\n\n{{ m.cc_line(doc) }}\n"
    )
    config = project.config_path
    config.write_text(config.read_text().replace(
        "[render]\n", '[render]\ntemplates = "doc-templates"\n'
        'sections = ["summary", "design", "motivation", "alternatives", "limitations", "performance"]\n'
        'optional_sections = ["performance"]\n'))
    report = compute_status(Workspace(project.config()))
    assert report.ready, report.gaps
    pr = render_document("pr", report)
    assert pr.index("## Design") < pr.index("## Motivation") and "## Performance" not in pr
    _golden(request, "custom/pr_description.md", pr)
    assert render_document("issue", report).startswith("### 🚀")  # not overridden: the shipped template

    # Leaving out a written section is a gap; a template error is exit 2 naming the template and line.
    (own / "pr_description.md.j2").write_text('Fixes #{{ doc.issue }}\n\n{{ doc.nothing }}\n')
    done = cli("render-pr", cwd=project.root)
    assert done.returncode == 2
    assert "doc-templates/pr_description.md.j2, line 3:" in done.stderr and "nothing" in done.stderr
    assert "Traceback" not in done.stderr
    (own / "pr_description.md.j2").write_text('Fixes #{{ doc.issue }}\n')
    gap = {g.id: g for g in compute_status(Workspace(project.config())).gaps}["check:prose"]
    assert "`## Summary`" in gap.reason and gap.blocking
