"""The clang-format PyTorch pins (tools/linter/adapters/s3_init_config.json) against the one a stage ran: the
real clang-format wheel on a real throwaway git repository whose base pins a version."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from test_findings import CLEAN_ADDITION, project_with_preexisting
from test_verify import Project, run_cli, stage_toml

from mpspatch.foundation.config import load_config
from mpspatch.verify.pins import S3_INIT_CONFIG, pinned_clang_format

BIN = Path(sys.executable).parent


def s3_config(version: str) -> str:
    base = "https://oss-clang-format.s3.us-east-2.amazonaws.com"
    return json.dumps({"clang-format": {
        "Darwin-arm": {"download_url": f"{base}/macos-arm/{version}/clang-format", "hash": "0" * 64},
        "Linux": {"download_url": f"{base}/linux64/{version}/clang-format", "hash": "0" * 64},
    }}, indent=4)


def wheel_version() -> str:
    out = subprocess.run([str(BIN / "clang-format"), "--version"], capture_output=True, text=True, check=True).stdout
    return out.split("clang-format version ", 1)[1].split()[0]


def pinned_project(tmp_path: Path, version: str) -> Project:
    project = project_with_preexisting(tmp_path)
    project.up.write(S3_INIT_CONFIG, s3_config(version))
    project.up.commit("pin clang-format")
    project.up.git("tag", "-f", "v1.0")
    project.set_patch({"aten/src/ATen/mps/MPSStream.mm": CLEAN_ADDITION})
    assert run_cli("lock", cwd=project.dir).returncode == 0
    return project


needs_wheel = pytest.mark.skipif(not (BIN / "clang-format").exists(), reason="the clang-format wheel is not installed")


@needs_wheel
def test_a_wheel_other_than_the_pinned_version_is_a_note_in_evidence_status_and_audit(tmp_path: Path) -> None:
    project = pinned_project(tmp_path, "19.1.4")
    in_use = wheel_version()
    assert in_use != "19.1.4"  # the venv's wheel is unpinned (>=18); the newest is installed
    result = project.verify().run.stages[0]
    assert result.status == "passed", result.reason  # the lint verdict itself is unchanged
    (pin,) = result.tool_pins
    assert (pin.tool, pin.pinned, pin.in_use, pin.matches) == ("clang-format", "19.1.4", in_use, False)
    assert result.details[0].startswith(f"note: clang-format {in_use} in use, but {S3_INIT_CONFIG} pins 19.1.4")

    data = json.loads(run_cli("status", "--json", cwd=project.dir).stdout)
    (stage,) = data["stages"]
    assert stage["state"] == "passed" and "pins 19.1.4" in stage["notes"][0]
    gap = next(g for g in data["gaps"] if g["id"] == "note:fmt:clang-format")
    assert gap["blocking"] is False and gap["fix"] == "`pip install clang-format==19.1.4`"
    assert "pins 19.1.4" in run_cli("status", cwd=project.dir).stdout
    audit = project.dir / "audit.md"
    run_cli("render-audit", "--out", str(audit), cwd=project.dir)
    assert f"clang-format {in_use} in use, but {S3_INIT_CONFIG} pins 19.1.4" in audit.read_text()


@needs_wheel
def test_the_pinned_version_in_use_is_recorded_without_a_note(tmp_path: Path) -> None:
    project = pinned_project(tmp_path, wheel_version())
    result = project.verify().run.stages[0]
    (pin,) = result.tool_pins
    assert pin.matches and not result.pin_notes
    assert not any(d.startswith("note:") for d in result.details)
    data = json.loads(run_cli("status", "--json", cwd=project.dir).stdout)
    assert data["stages"][0]["notes"] == []
    assert not [g for g in data["gaps"] if g["id"].startswith("note:")]


def test_the_pin_is_read_from_the_download_urls() -> None:
    assert pinned_clang_format(s3_config("19.1.4")) == "19.1.4"
    # An older layout names no version in its URLs: no pin can be read, and the note says so.
    old = {"clang-format": {"Linux": {"download_url": "https://x/linux64/clang-format-linux64", "hash": ""}}}
    assert pinned_clang_format(json.dumps(old)) is None
    assert pinned_clang_format("not json") is None


def test_the_shipped_stages_install_and_run_the_pinned_wheel(tmp_path: Path) -> None:
    """mpspatch.toml's clang-format-wheel and lint-clang-format stages, on a checkout that pins 19.1.4."""
    root = Path(__file__).resolve().parent.parent
    shipped = {s.name: s for s in load_config(root / "mpspatch.toml").stages}
    wheel, lint = shipped["clang-format-wheel"], shipped["lint-clang-format"]
    project = pinned_project(tmp_path, "19.1.4")
    (install,) = wheel.run
    (check,) = lint.run
    project.stages(stage_toml("clang-format-wheel", "command", [list(install)], full_tree=False)
                   + stage_toml("fmt", "lint", [[check[0], *check[1:3], "{patched:**/*.mm}"]], full_tree=False))
    assert run_cli("lock", cwd=project.dir).returncode == 0
    run = project.verify().run
    if run.stages[0].status != "passed":
        pytest.skip(f"the clang-format wheel cannot be installed here: {run.stages[0].reason}")
    fmt = run.stages[1]
    assert fmt.status == "passed", fmt.reason
    (pin,) = fmt.tool_pins
    assert (pin.pinned, pin.in_use, pin.matches) == ("19.1.4", "19.1.4", True)
    assert fmt.commands[0][0].endswith(".mpspatch/tools/clang-format-19.1.4/clang_format/data/bin/clang-format")
