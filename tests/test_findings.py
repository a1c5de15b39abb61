"""Lint findings split into `new` (on lines the series adds or changes) and `preexisting`, with the real
clang-format wheel on real throwaway git repositories."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from test_verify import CLANG_FORMAT_STYLE, Project, stage_toml

from mpspatch.verify.findings import NEW, PREEXISTING, changed_lines_of, classify

BIN = Path(sys.executable).parent

# Upstream's file already breaks the checkout's style (Google) twice: the squeezed `if` body and `int  x`.
UPSTREAM_MM = (
    "namespace at::mps {\n"
    "int stream_count() {\n"
    "  int  n = 1;\n"
    "  return n;\n"
    "}\n"
    "}  // namespace at::mps\n"
)
# The series adds a clean function after upstream's.
CLEAN_ADDITION = UPSTREAM_MM.replace("}  // namespace", "int pool_size() { return 32; }\n}  // namespace")
# The series adds a badly spaced function.
BAD_ADDITION = UPSTREAM_MM.replace("}  // namespace", "int  pool_size( ){return 32;}\n}  // namespace")
# The series adds a line whose only fault is its indentation: clang-format reports it at the end of the line
# before, which is upstream's.
BAD_INDENT = UPSTREAM_MM.replace("  return n;\n", "  n += 1;\n        return n;\n")


def project_with_preexisting(tmp_path: Path) -> Project:
    project = Project(tmp_path)
    project.up.write(".clang-format", CLANG_FORMAT_STYLE)
    project.up.write("aten/src/ATen/mps/MPSStream.mm", UPSTREAM_MM)
    project.up.commit("upstream with a badly formatted file")
    project.up.git("tag", "-f", "v1.0")
    project.stages(stage_toml("fmt", "lint", [["clang-format", "--dry-run", "--Werror", "{patched:**/*.mm}"]],
                              full_tree=False))
    return project


needs_clang_format = pytest.mark.skipif(not (BIN / "clang-format").exists(),
                                        reason="the clang-format wheel is not installed in this venv")


@needs_clang_format
def test_preexisting_findings_do_not_fail_the_stage(tmp_path: Path) -> None:
    project = project_with_preexisting(tmp_path)
    project.set_patch({"aten/src/ATen/mps/MPSStream.mm": CLEAN_ADDITION})
    result = project.verify().run.stages[0]
    counts = dict(result.counts)
    assert result.status == "passed", result.reason
    assert counts["new"] == 0 and counts["preexisting"] == counts["messages"] > 0
    assert result.reason.startswith("no new lint message; ")
    assert "the stage fails only on new findings" in result.reason
    assert result.findings == ()
    assert any("(preexisting) CLANGFORMAT" in d for d in result.details)


@needs_clang_format
def test_new_findings_fail_and_are_told_apart(tmp_path: Path) -> None:
    project = project_with_preexisting(tmp_path)
    project.set_patch({"aten/src/ATen/mps/MPSStream.mm": BAD_ADDITION})
    result = project.verify().run.stages[0]
    counts = dict(result.counts)
    assert result.status == "failed"
    assert counts["new"] > 0 and counts["preexisting"] > 0
    assert counts["new"] + counts["preexisting"] == counts["messages"]
    assert result.reason.startswith(f"new: {counts['new']} lint message")
    assert f"{counts['preexisting']} pre-existing message" in result.reason
    assert "aten/src/ATen/mps/MPSStream.mm:6: error (new) CLANGFORMAT" in "\n".join(result.details)
    assert result.findings == ("aten/src/ATen/mps/MPSStream.mm: CLANGFORMAT: code should be clang-formatted",)


@needs_clang_format
def test_a_wrong_indent_reported_on_the_line_before_is_new(tmp_path: Path) -> None:
    project = project_with_preexisting(tmp_path)
    project.set_patch({"aten/src/ATen/mps/MPSStream.mm": BAD_INDENT})
    result = project.verify().run.stages[0]
    assert result.status == "failed", result.reason
    assert dict(result.counts)["new"] == 1
    # Reported at the end of line 4 (`n += 1;`, the series' own line) for the indent of line 5.
    assert any(d.startswith("aten/src/ATen/mps/MPSStream.mm:4: error (new)") for d in result.details)


def test_changed_lines_follow_the_hunks() -> None:
    diff = (
        "diff --git a/f.h b/f.h\n--- a/f.h\n+++ b/f.h\n"
        "@@ -1,4 +1,5 @@\n a\n-b\n+B\n+C\n c\n d\n"
        "@@ -10,2 +11,3 @@\n j\n+k\n l\n"
    )
    assert changed_lines_of(diff) == {"f.h": frozenset({2, 3, 12})}
    changed = {"f.h": frozenset({2, 3, 12})}
    assert classify("f.h", 2, changed) == NEW
    assert classify("f.h", 4, changed) == PREEXISTING
    assert classify("f.h", 11, changed, spans_next=True) == NEW
    assert classify("f.h", None, changed) == NEW  # a whole-file message on a file the series changes
    assert classify("g.h", None, changed) == PREEXISTING


@needs_clang_format
def test_status_and_the_audit_show_new_and_preexisting_per_lint_stage(tmp_path: Path) -> None:
    from test_verify import run_cli

    project = project_with_preexisting(tmp_path)
    project.set_patch({"aten/src/ATen/mps/MPSStream.mm": BAD_ADDITION})
    counts = dict(project.verify().run.stages[0].counts)
    done = run_cli("status", "--json", cwd=project.dir)
    (stage,) = json.loads(done.stdout)["stages"]
    assert stage["lint"] == {"new": counts["new"], "preexisting": counts["preexisting"]}
    assert stage["counts"]["messages"] == counts["messages"]
    text = run_cli("status", cwd=project.dir).stdout
    assert f"lint findings: {counts['new']} new, {counts['preexisting']} pre-existing" in text
    audit = project.dir / "audit.md"
    run_cli("render-audit", "--out", str(audit), cwd=project.dir)
    assert f"new {counts['new']}, preexisting {counts['preexisting']}" in audit.read_text()
