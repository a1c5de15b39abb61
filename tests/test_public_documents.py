"""The PR description and the issue for the shipped config are what gets pasted into GitHub, unedited.

A throwaway project carries the shipped mpspatch.toml, prose and checklist unchanged, with a real patch made by
`git diff` in a real upstream repository that touches every path the shipped prose names. The rendered bodies
must hold no placeholder, run id, mpspatch command, footer, gap or fix line; the title and labels come beside
the body through `render-pr --json` / `render-issue --json`.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from render_project import MAC, stage
from support import Repo, cpp_source

from mpspatch.foundation.config import load_config
from mpspatch.foundation.ids import CommitSha, RunId
from mpspatch.model.series import make_lock, parse_series, write_lock
from mpspatch.model.workspace import Workspace
from mpspatch.reporting.prose import named_paths, read_prose
from mpspatch.reporting.render import render_document
from mpspatch.reporting.status import compute_status
from mpspatch.verify.evidence import EvidenceRun, SeriesPatchRef, write_run

REPO_ROOT = Path(__file__).resolve().parent.parent
MPSPATCH = [sys.executable, "-m", "mpspatch.cli"]
RUN = "20261129T080334Z-1a2b3c4d"

# What may never reach GitHub: placeholders from stage argv, local run ids, tool commands, the old footer, the
# old labels section, submitter-only readiness and fixes.
FORBIDDEN = [
    re.compile(r"\{(?:python|jobs|tree|root)\}"),
    re.compile(r"\{patched"),
    re.compile(r"\b\d{8}T\d{6}Z-[0-9a-f]{6,}\b"),  # an evidence run id
    re.compile(r"\bmpspatch "),
    re.compile(r"Rendered by"),
    re.compile(r"<sub>"),
    re.compile(r"^## Labels", re.MULTILINE),
    re.compile(r"^\s*(?:- )?.*\bFix: ", re.MULTILINE),
    re.compile(r"NOT READY|READY FOR SUBMISSION|Implementation status|PROSE MISSING|\bgaps?\b"),
    re.compile(r"audit/runs|docs/prose|\.mpspatch"),
    re.compile(r"ISSUE_NUMBER|#\{|Fixes #\s*$", re.MULTILINE),  # a placeholder for the issue the PR fixes
]
_COMMENT = re.compile(r"<!--(.*?)-->", re.DOTALL)


def shipped_project(tmp_path: Path) -> Path:
    """The shipped config, prose and checklist over a real patch that touches every path the prose names."""
    root = tmp_path / "project"
    root.mkdir()
    shutil.copyfile(REPO_ROOT / "mpspatch.toml", root / "mpspatch.toml")
    shutil.copytree(REPO_ROOT / "docs/prose", root / "docs/prose")
    (root / "audit").mkdir()
    shutil.copyfile(REPO_ROOT / "audit/requirements.toml", root / "audit/requirements.toml")
    config = load_config(root / "mpspatch.toml")
    named = sorted({p for f in read_prose(config) for p, _ in named_paths(f.text or "")})
    files = [p + "MPSStreamPool.mm" if p.endswith("/") else p for p in named] + ["aten/src/ATen/mps/MPSStream.mm"]
    upstream = Repo.create(tmp_path / "pytorch")  # [upstream].checkout = "../pytorch"
    for path in files:
        upstream.write(path, cpp_source(Path(path).name, 3))
    upstream.commit("base", tag="v2.9.1")
    for path in files:
        upstream.write(path, cpp_source(Path(path).name, 4, variant=" pooled"))
    upstream.git("add", "-A")
    patch = root / "patches/cumulative-v2.9.1-to-mps-stream-pool.patch"
    patch.parent.mkdir()
    patch.write_text(upstream.git("diff", "--cached", "--full-index", "v2.9.1"))
    upstream.git("reset", "-q", "--hard")
    patches = parse_series(config.series.patches)
    base = CommitSha(upstream.git("rev-parse", "v2.9.1^{commit}").strip())
    write_lock(config.series.lock, make_lock(config, base, "v2.9.1", patches, "test"))
    return root


def write_evidence(root: Path, passing: bool) -> None:
    config = load_config(root / "mpspatch.toml")
    patches = parse_series(config.series.patches)
    lock_base = CommitSha(json.loads(config.series.lock.read_text())["base"])
    stages = [stage(s.name, str(s.kind)) for s in config.stages]
    stages = [
        stage("build", "build", commands=[["/usr/bin/python3", "-m", "pip", "install", "-e", "."]]),
        stage("lint", "lint", counts={"messages": 0}, commands=[["lintrunner", "--output", "json", "a.mm"]]),
        stage("lint-clang-format", "lint", counts={"messages": 0}),
        stage("tsan", "tsan", "passed" if passing else "failed", reason="" if passing else "2 data races",
              counts={"races": 0 if passing else 2}),
        stage("tests", "tests", counts={"passed": 12, "failed": 0, "skipped": 0, "errors": 0}),
        stage("stress", "command", counts={"rounds": 20, "crashes": 0}),
    ]
    write_run(config.evidence_dir, EvidenceRun(
        run_id=RunId(RUN), created_at="2026-11-29T08:03:34Z",
        series=tuple(SeriesPatchRef(p.path.relative_to(root).as_posix(), p.sha256) for p in patches),
        base=lock_base, base_ref="v2.9.1", onto=None, tree=None, tools=(("git", "2.39.5"),),
        stages=tuple(stages), machine=MAC,
    ))


def assert_pasteable(kind: str, body: str) -> None:
    comments = _COMMENT.findall(body)
    assert len(comments) == 1 and "series sha256" in comments[0], comments  # provenance, hidden on GitHub
    visible = _COMMENT.sub("", body)
    for pattern in FORBIDDEN:
        found = pattern.search(visible)
        assert found is None, f"{kind}: {pattern.pattern!r} matches {found.group(0)!r}" if found else ""
    assert not visible.lstrip().startswith("[MPS]")  # the title is a separate output


@pytest.mark.parametrize("passing", [True, False], ids=["ready-evidence", "failing-evidence"])
def test_the_shipped_pr_and_issue_can_be_pasted_unedited(tmp_path: Path, passing: bool) -> None:
    root = shipped_project(tmp_path)
    write_evidence(root, passing)
    report = compute_status(Workspace(load_config(root / "mpspatch.toml")))
    assert report.check("prose").state == "passed", report.check("prose")
    for kind in ("pr", "issue"):
        body = render_document(kind, report)
        assert_pasteable(kind, body)
        assert "\ncc " not in body  # the shipped config names nobody: an advisory gap, never a guessed handle
        assert "12 of 12 tests passed on macOS 15.1, arm64, Apple M2" in body
    cc = report.check("cc-line")
    assert cc.state == "failed" and "`module: mps`" in cc.fix
    assert not next(g for g in report.gaps if g.id == "check:cc-line").blocking
    pr = render_document("pr", report)
    for heading in ("Summary", "Motivation", "Design", "Backward compatibility", "Alternatives",
                    "Known limitations", "Related work", "Changes", "Test plan"):
        assert f"\n## {heading}\n" in "\n" + pr, heading
    assert "## Performance" not in pr  # optional, and not written
    assert "python -m pytest test/test_mps.py -k TestMPSParallelInference" in pr  # what a reviewer types


def test_render_json_gives_title_labels_and_cc_beside_a_body_only_file(tmp_path: Path) -> None:
    root = shipped_project(tmp_path)
    write_evidence(root, True)
    for kind in ("pr", "issue"):
        done = subprocess.run([*MPSPATCH, f"render-{kind}", "--json"], cwd=root, capture_output=True, text=True,
                              check=False)
        assert done.returncode == 0, done.stderr
        data = json.loads(done.stdout)
        assert data["title"] == "[MPS] Add a stream pool for thread-safe parallel inference"
        assert data["labels"] == ["module: mps", "release notes: mps"]
        assert "ciflow/mps" not in data["labels"] and data["maintainer_labels"] == ["ciflow/mps"]
        assert data["cc"] == [] and data["reviewers"] == []
        assert data["status"] in ("READY FOR SUBMISSION",) or data["status"].startswith("NOT READY")
        assert data["ready"] is (data["gaps"] == 0)
        body = (root / data["body_file"]).read_text()
        assert_pasteable(kind, body)
    audit = subprocess.run([*MPSPATCH, "render-audit"], cwd=root, capture_output=True, text=True, check=False)
    assert audit.returncode == 0, audit.stderr
    text = (root / "audit/submission_audit.md").read_text()
    assert "| Labels a maintainer applies (ask in a comment; never shown as applied) | `ciflow/mps` |" in text
    assert "performance (not written, optional: `docs/prose/performance.md`)" in text


def test_a_configured_cc_line_reaches_both_bodies_and_the_json(tmp_path: Path) -> None:
    root = shipped_project(tmp_path)
    write_evidence(root, True)
    config = root / "mpspatch.toml"
    config.write_text(config.read_text().replace("\ncc = []\n", '\ncc = ["@maintainer-one", "maintainer-two"]\n'
                                                 'reviewers = ["maintainer-one"]\n', 1))
    for kind in ("pr", "issue"):
        done = subprocess.run([*MPSPATCH, f"render-{kind}", "--json"], cwd=root, capture_output=True, text=True,
                              check=False)
        data = json.loads(done.stdout)
        assert data["cc"] == ["@maintainer-one", "@maintainer-two"] and data["reviewers"] == ["maintainer-one"]
        body = (root / data["body_file"]).read_text()
        assert "\ncc @maintainer-one @maintainer-two\n" in body
        assert_pasteable(kind, body)


def test_every_stacked_part_of_the_shipped_config_can_be_pasted_unedited(tmp_path: Path) -> None:
    """render-pr --part K for each part of a real split: the same rules as the whole PR, the issue number once
    the submitter has opened it, and no whole-series pass claimed for a part."""
    root = shipped_project(tmp_path)
    set_render_key(root, "issue = 190001")
    write_evidence(root, True)
    split = subprocess.run([*MPSPATCH, "split", "--max-lines", "40", "--json"], cwd=root, capture_output=True,
                           text=True, check=False)
    assert split.returncode == 0, split.stderr
    parts = json.loads(split.stdout)["parts"]
    assert len(parts) >= 2
    for k in range(1, len(parts) + 1):
        done = subprocess.run([*MPSPATCH, "render-pr", "--part", str(k), "--json"], cwd=root, capture_output=True,
                              text=True, check=False)
        assert done.returncode == 0, done.stderr
        data = json.loads(done.stdout)
        assert data["title"].startswith("[MPS] ") and data["title"].endswith(f"({k}/{len(parts)})")
        body = (root / data["body_file"]).read_text()
        assert_pasteable(f"part {k}", body)
        assert "ISSUE_NUMBER" not in body and "#190001" in body
        plan = body.split("## Test plan", 1)[1]
        if k < len(parts):  # the whole series' evidence is not this part's
            assert "passed" not in plan and "verified as part of the whole series" in plan
    whole = subprocess.run([*MPSPATCH, "render-pr", "--json"], cwd=root, capture_output=True, text=True, check=False)
    body = (root / json.loads(whole.stdout)["body_file"]).read_text()
    assert_pasteable("pr", body)
    assert body.startswith("Fixes #190001\n") and "ISSUE_NUMBER" not in body


def set_render_key(root: Path, lines: str) -> None:
    config = root / "mpspatch.toml"
    config.write_text(config.read_text().replace("[render]\n", f"[render]\n{lines}\n", 1))


def test_render_section_keys_are_checked(tmp_path: Path) -> None:
    root = shipped_project(tmp_path)
    config = root / "mpspatch.toml"
    text = config.read_text()
    config.write_text(text.replace('optional_sections = ["performance"]', 'optional_sections = ["benchmarks"]'))
    done = subprocess.run([*MPSPATCH, "render-pr"], cwd=root, capture_output=True, text=True, check=False)
    assert done.returncode == 2 and "[render].optional_sections has 'benchmarks'" in done.stderr
    config.write_text(text.replace('sections = ["summary",', 'sections = ["Summary!",'))
    done = subprocess.run([*MPSPATCH, "render-pr"], cwd=root, capture_output=True, text=True, check=False)
    assert done.returncode == 2 and "[render].sections has 'Summary!'" in done.stderr


def test_evidence_records_the_machine_and_documents_name_it() -> None:
    from mpspatch.reporting.document_data import machine_kind
    from mpspatch.verify.machine import Machine, describe_machine

    recorded = dict(describe_machine(REPO_ROOT))
    assert recorded["os"] == Machine.current().os and recorded["arch"] == Machine.current().arch
    assert machine_kind(MAC) == "macOS 15.1, arm64, Apple M2"
    assert machine_kind(()) == ""
