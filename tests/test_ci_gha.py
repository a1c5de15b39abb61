""".ci/gha.py: step outputs and job summaries made from mpspatch's --json contract (design.md)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / ".ci" / "gha.py"
SHA_A = "d38164a545b4a4e4e0cf73ce67173f70574890b6"
SHA_B = "1f0e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c"
DIGEST = "ab" * 32


def _module() -> ModuleType:
    # .ci/ is not a package; load the script the way the workflow runs it, from its path.
    spec = importlib.util.spec_from_file_location("ci_gha", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look the module up while the class is created
    spec.loader.exec_module(module)
    return module


gha = _module()


def _cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, SCRIPT, *map(str, args)], capture_output=True, text=True, timeout=60, check=False
    )


def _write(tmp_path: Path, name: str, data: object) -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_outputs_prints_base_and_series_hash_for_github_output(tmp_path: Path) -> None:
    status = _write(
        tmp_path, "status.json", {"base": SHA_A, "series_sha256": DIGEST, "ready": False, "gaps": []}
    )
    result = _cli("outputs", status)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"base={SHA_A}\nseries-sha256={DIGEST}\n"


def test_outputs_accepts_a_tag_as_base(tmp_path: Path) -> None:
    status = _write(tmp_path, "status.json", {"base": "v2.9.1", "series_sha256": DIGEST})
    assert gha.status_outputs(status) == gha.StatusOutputs(base="v2.9.1", series_sha256=DIGEST)


@pytest.mark.parametrize(
    ("data", "complaint"),
    [
        ({"series_sha256": DIGEST}, "'base' is missing"),
        ({"base": "v1\nseries-sha256=evil", "series_sha256": DIGEST}, "'base' is missing or not a ref"),
        ({"base": "-x", "series_sha256": DIGEST}, "'base' is missing or not a ref"),
        ({"base": SHA_A, "series_sha256": "short"}, "'series_sha256' is missing"),
        ([1, 2], "expected a JSON object"),
    ],
)
def test_outputs_refuses_what_would_corrupt_a_cache_key(tmp_path: Path, data: object, complaint: str) -> None:
    result = _cli("outputs", _write(tmp_path, "status.json", data))
    assert result.returncode == 2
    assert complaint in result.stderr
    assert result.stderr.count("\n") == 1, "bad input is one line"
    assert result.stdout == ""


def test_outputs_names_a_missing_or_broken_file(tmp_path: Path) -> None:
    missing = _cli("outputs", tmp_path / "nope.json")
    assert missing.returncode == 2 and "nope.json: not found" in missing.stderr
    broken = tmp_path / "broken.json"
    broken.write_text("{not json", encoding="utf-8")
    result = _cli("outputs", broken)
    assert result.returncode == 2 and "broken.json: not readable JSON" in result.stderr


def test_summary_of_a_conflicting_rebase(tmp_path: Path) -> None:
    rebase = _write(
        tmp_path,
        "rebase.json",
        {
            "status": "conflict",
            "base": SHA_A,
            "onto": SHA_B,
            "conflicts": [{"path": "aten/src/ATen/mps/MPSStream.mm", "regions": [[10, 20], [40, 44]]}],
            "absorbed": [{"path": "torch/mps/__init__.py", "pull_requests": [190375]}],
            "worktree": "/somewhere",
            "patches": [],
        },
    )
    text = gha.summary_markdown("build-lint onto viable/strict", rebase, None)
    assert text.startswith("## build-lint onto viable/strict\n")
    assert "**Rebase:** `conflict`, base `d38164a545b4` → onto `1f0e2d3c4b5a`" in text
    assert "| `aten/src/ATen/mps/MPSStream.mm` | 2 |" in text
    assert "- `torch/mps/__init__.py` ([#190375](https://github.com/pytorch/pytorch/pull/190375))" in text


def test_summary_of_verify_is_a_stage_table(tmp_path: Path) -> None:
    verify = _write(
        tmp_path,
        "verify.json",
        {
            "run_id": "20251112-100000-abc",
            "evidence": "audit/runs/20251112-100000-abc/evidence.json",
            "stages": [
                {
                    "name": "build",
                    "kind": "build",
                    "status": "passed",
                    "reason": None,
                    "duration_s": 3725.4,
                    "counts": {},
                    "log": "logs/build.log",
                },
                {
                    "name": "lint",
                    "kind": "lint",
                    "status": "failed",
                    "reason": "2 messages | CLANGFORMAT",
                    "duration_s": 41,
                    "counts": {"messages": 2},
                    "log": "logs/lint.log",
                },
            ],
        },
    )
    text = gha.summary_markdown("t", None, verify)
    lines = text.splitlines()
    assert (
        "**Verify:** run `20251112-100000-abc`, evidence `audit/runs/20251112-100000-abc/evidence.json`"
        in lines
    )
    assert "| build | build | ✅ passed | 3725 |  |  |" in lines
    # A pipe inside a reason must not open a new table column.
    assert "| lint | lint | ❌ failed | 41 | messages 2 | 2 messages \\| CLANGFORMAT |" in lines


def test_summary_says_when_a_step_left_no_json(tmp_path: Path) -> None:
    result = _cli(
        "summary", "--title", "mps", "--rebase", tmp_path / "r.json", "--verify", tmp_path / "v.json"
    )
    assert result.returncode == 0, result.stderr
    assert "**Rebase:** no result" in result.stdout and "r.json: not found" in result.stdout
    assert "**Verify:** no result" in result.stdout
