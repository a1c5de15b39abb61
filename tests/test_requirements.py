"""The checklist as data: the shipped audit/requirements.toml, and exit-2 errors for every kind of typo."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from render_project import SHIPPED_REQUIREMENTS, make_project

from mpspatch.foundation.errors import ConfigError, ExitCode
from mpspatch.model.workspace import Workspace
from mpspatch.reporting import status
from mpspatch.reporting.checks import CHECKS
from mpspatch.reporting.requirements import CHECK, HUMAN, STAGE, load_requirements


def test_shipped_checklist_covers_every_section_of_the_hand_written_audit() -> None:
    reqs = load_requirements(SHIPPED_REQUIREMENTS)
    assert reqs is not None
    # The sections of the user's audit, plus the computed series checks.
    assert reqs.areas == ("CLA", "License", "Code style", "Testing", "Documentation", "PR format", "Linting",
                          "Build", "Series", "Verification")
    verification = " ".join(r.title.lower() for r in reqs.in_area("Verification"))
    for topic in ("thread safety", "correctness", "tsan", "formal verification", "stress"):
        assert topic in verification
    kinds = {r.kind for r in reqs.items}
    assert kinds == {STAGE, CHECK, HUMAN}
    assert any(r.kind == HUMAN and "CLA" in r.target for r in reqs.in_area("CLA"))
    assert {r.target for r in reqs.items if r.kind == CHECK} >= {"pr-size", "allowed-paths", "series-applies",
                                                                  "lock", "base-current", "issue-linked"}


def test_the_checklist_comment_names_every_check() -> None:
    header = SHIPPED_REQUIREMENTS.read_text().split("version = ", 1)[0]
    named = set(re.findall(r"[a-z]+(?:-[a-z]+)+|lock|prose|whitespace|categories", header))
    assert set(CHECKS) <= named


def test_every_check_in_the_registry_is_one_object_with_its_title_and_function() -> None:
    assert all(name == check.name and check.title and callable(check.run) for name, check in CHECKS.items())
    assert len({c.title for c in CHECKS.values()}) == len(CHECKS)


def write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "requirements.toml"
    path.write_text('version = 1\nareas = ["CLA", "Testing"]\n' + body)
    return path


GOOD_ROW = """
[[requirement]]
id = "tests-pass"
area = "Testing"
title = "Tests pass"
satisfied_by = { stage = "tests" }
blocking = true
"""


CLA_ROW = GOOD_ROW.replace("tests-pass", "cla").replace('"Testing"', '"CLA"').replace('stage = "tests"',
                                                                                     'human = "sign it"')


def test_a_minimal_checklist_loads_into_frozen_rows(tmp_path: Path) -> None:
    reqs = load_requirements(write(tmp_path, GOOD_ROW + CLA_ROW))
    assert reqs is not None
    assert [(r.id, r.area, r.kind, r.target, r.blocking) for r in reqs.items] == [
        ("tests-pass", "Testing", STAGE, "tests", True), ("cla", "CLA", HUMAN, "sign it", True)]
    assert reqs.stage_names() == ("tests",)
    with pytest.raises(AttributeError):
        reqs.items[0].blocking = False  # type: ignore[misc]


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (("blocking = true", "blockng = true"), "unknown key 'blockng'; did you mean 'blocking'?"),
        (('stage = "tests"', 'check = "pr-sise"'), "unknown check 'pr-sise'; did you mean 'pr-size'?"),
        (('area = "Testing"', 'area = "Tesing"'), "area 'Tesing' is not in `areas`; did you mean 'Testing'?"),
        (('{ stage = "tests" }', '{ stage = "tests", human = "x" }'), "must name exactly one of stage, check or human"),
        (('{ stage = "tests" }', '{ stag = "tests" }'), "unknown key 'stag'; did you mean 'stage'?"),
        (("blocking = true", 'blocking = "yes"'), "blocking must be true or false, not a string"),
        (('id = "tests-pass"', 'id = "Tests Pass"'), "is not lower-case words joined by '-'"),
        (('title = "Tests pass"\n', ""), "[requirement.tests-pass].title is missing"),
    ],
)
def test_typos_are_input_errors_naming_the_file_and_the_fix(tmp_path: Path, edit: tuple[str, str],
                                                             message: str) -> None:
    body = GOOD_ROW.replace(*edit) + CLA_ROW
    path = write(tmp_path, body)
    with pytest.raises(ConfigError) as caught:
        load_requirements(path)
    assert message in caught.value.message
    assert caught.value.message.startswith(str(path))
    assert caught.value.exit_code == ExitCode.USAGE


def test_duplicate_ids_and_unused_areas_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="id 'tests-pass' is used twice"):
        load_requirements(write(tmp_path, GOOD_ROW + GOOD_ROW))
    with pytest.raises(ConfigError, match="names 'CLA', which no requirement uses"):
        load_requirements(write(tmp_path, GOOD_ROW))


def test_a_missing_checklist_is_a_blocking_gap_not_a_crash(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    (project.root / "audit/requirements.toml").unlink()
    report = status.compute_status(Workspace(project.config()))
    gap = next(g for g in report.gaps if g.id == "requirements")
    assert gap.blocking and gap.reason.startswith("missing: audit/requirements.toml not found")
    assert not report.ready


def test_a_typo_in_the_checklist_exits_2_through_the_cli(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    path = project.root / "audit/requirements.toml"
    path.write_text(path.read_text().replace('check = "pr-size"', 'check = "prsize"'))
    for command in (["status", "--json"], ["render-audit"]):
        result = subprocess.run([sys.executable, "-m", "mpspatch.cli", *command], cwd=project.root,
                                capture_output=True, text=True, timeout=60, check=False)
        assert result.returncode == 2, result.stderr
        assert result.stdout == ""
        assert result.stderr.strip().count("\n") == 0
        assert "unknown check 'prsize'; did you mean 'pr-size'?" in result.stderr


def test_the_shipped_prose_is_complete_for_the_real_job() -> None:
    from mpspatch.foundation.config import load_config
    from mpspatch.reporting.prose import read_prose

    config = load_config(SHIPPED_REQUIREMENTS.parent.parent / "mpspatch.toml")
    fragments = read_prose(config)
    assert [f.name for f in fragments] == list(config.render.sections)
    assert {"summary", "motivation", "alternatives", "limitations"} <= set(config.render.required_sections)
    required = [f for f in fragments if f.required]
    assert all(f.present and f.path.startswith("docs/prose/") for f in required), fragments
