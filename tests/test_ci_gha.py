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


# ------------------------------------------------------------------------------------- annotations


def _verify(tmp_path: Path, *stages: dict[str, object]) -> Path:
    return _write(tmp_path, "verify.json", {"run_id": "r", "evidence": "e", "stages": list(stages)})


def test_escaping_follows_githubs_rules() -> None:
    assert gha.escape_data("50% done\r\nnext: a,b") == "50%25 done%0D%0Anext: a,b"
    assert gha.escape_property("dir,x/a:b%\n.mm") == "dir%2Cx/a%3Ab%25%0A.mm"
    line = gha.workflow_command("error", "bad\nthing", title="lint: c,d", file="a,b.mm", line=3)
    assert line == "::error file=a%2Cb.mm,line=3,title=lint%3A c%2Cd::bad%0Athing"


def test_annotate_lint_findings_tsan_reports_and_failed_stages(tmp_path: Path) -> None:
    verify = _verify(
        tmp_path,
        {"name": "build", "kind": "build", "status": "passed", "details": []},
        {"name": "lint", "kind": "lint", "status": "failed", "reason": "2 messages", "details": [
            "torch/mps/__init__.py: 1 (SPACE x1)",
            "torch/mps/__init__.py:3: error SPACE/trailing: 100% wrong, really",
            "aten/src/ATen/mps/MPSStream.mm:12: warning CLANGFORMAT/format: reformat",
        ]},
        {"name": "tsan", "kind": "tsan", "status": "failed", "reason": "1 race", "details": [
            "SUMMARY: ThreadSanitizer: data race aten/src/ATen/mps/MPSStream.mm:120:5 in getStream",
        ]},
        {"name": "tests", "kind": "tests", "status": "error", "reason": "no JUnit XML found at x.xml",
         "log": "/runs/r/logs/tests.log", "details": []},
    )
    result = _cli("annotate", verify)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "::error file=torch/mps/__init__.py,line=3,title=lint::error SPACE/trailing: 100%25 wrong, really",
        "::warning file=aten/src/ATen/mps/MPSStream.mm,line=12,title=lint::warning CLANGFORMAT/format: reformat",
        "::error file=aten/src/ATen/mps/MPSStream.mm,line=120,title=tsan::"
        "SUMMARY: ThreadSanitizer: data race aten/src/ATen/mps/MPSStream.mm:120:5 in getStream",
        "::error title=tests::error: no JUnit XML found at x.xml (log /runs/r/logs/tests.log)",
    ]


def test_annotate_caps_each_stage_and_counts_the_rest(tmp_path: Path) -> None:
    details = [f"a.py:{n}: error E/e: m" for n in range(1, 61)]
    verify = _verify(tmp_path, {"name": "lint", "kind": "lint", "status": "failed", "details": details})
    lines = gha.annotation_lines(verify)
    assert len(lines) == 51
    assert lines[-1] == "::error title=lint::10 more finding(s); the stage log has them all"


def test_annotate_only_new_lint_findings_when_a_baseline_marks_them(tmp_path: Path) -> None:
    verify = _verify(tmp_path, {"name": "lint", "kind": "lint", "status": "failed", "details": [
        "a.py:1: error (new) E/e: added here",
        "a.py:9: error (preexisting) E/e: upstream's own",
    ]})
    assert gha.annotation_lines(verify) == ["::error file=a.py,line=1,title=lint::error (new) E/e: added here"]


def test_annotate_refuses_a_missing_file(tmp_path: Path) -> None:
    result = _cli("annotate", tmp_path / "verify.json")
    assert result.returncode == 2 and "verify.json: not found" in result.stderr


# ------------------------------------------------------------------------------------- drift history


def _drift(tmp_path: Path, onto: str, regions: list[int], absorbed_hunks: list[int], commits: int) -> Path:
    return _write(tmp_path, f"drift-{onto[:6]}.json", {
        "status": "conflict" if regions else "clean", "base": SHA_A, "base_ref": "v2.9.1", "onto": onto,
        "onto_ref": "viable/strict",
        "conflicts": [{"path": f"f{k}.mm", "regions": r} for k, r in enumerate(regions)],
        "absorbed": [{"path": f"g{k}.py", "hunks": h} for k, h in enumerate(absorbed_hunks)],
        "upstream_commits": [{"sha": SHA_B}] * commits,
        "files": [{"path": "f0.mm", "hunks": 5}, {"path": "g0.py", "hunks": 2}],
    })


def test_drift_history_appends_a_night_and_charts_the_trend(tmp_path: Path) -> None:
    history = tmp_path / "cache" / "drift-history.jsonl"
    first = _cli("drift-history", "--drift", _drift(tmp_path, SHA_A, [], [1], 3), "--history", history,
                 "--date", "2026-11-27")
    assert first.returncode == 0, first.stderr
    _cli("drift-history", "--drift", _drift(tmp_path, SHA_B, [2, 3], [1, 2], 40), "--history", history,
         "--date", "2026-11-28")
    # A rerun the same night replaces that night's record instead of adding a second point.
    result = _cli("drift-history", "--drift", _drift(tmp_path, SHA_B, [2, 4], [1, 2], 41), "--history", history,
                  "--date", "2026-11-28")
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in history.read_text().splitlines()]
    assert records == [
        {"date": "2026-11-27", "onto": SHA_A, "onto_ref": "viable/strict", "conflicts": 0, "regions": 0,
         "absorbed": 1, "upstream_commits": 3, "patch_hunks": 7},
        {"date": "2026-11-28", "onto": SHA_B, "onto_ref": "viable/strict", "conflicts": 2, "regions": 6,
         "absorbed": 3, "upstream_commits": 41, "patch_hunks": 7},
    ]
    lines = result.stdout.splitlines()
    assert lines[0] == "### Drift over the last 2 night(s)"
    chart = lines[lines.index("```mermaid"):lines.index("```mermaid") + 7]
    assert chart == ["```mermaid", "xychart-beta", '    title "Conflict regions per night"',
                     '    x-axis ["11-27", "11-28"]', '    y-axis "regions" 0 --> 6', "    line [0, 6]", "```"]
    assert "| 2026-11-28 | `viable/strict` `1f0e2d3c4b5a` | 2 | 6 | 3 | 41 | 7 |" in lines
    assert lines.index("| 2026-11-28 | `viable/strict` `1f0e2d3c4b5a` | 2 | 6 | 3 | 41 | 7 |") < lines.index(
        "| 2026-11-27 | `viable/strict` `d38164a545b4` | 0 | 0 | 1 | 3 | 7 |"), "newest night first"


def test_drift_history_shows_only_the_last_n_nights_and_skips_torn_lines(tmp_path: Path) -> None:
    history = tmp_path / "h.jsonl"
    for day in range(1, 6):
        gha.record_night(history, gha.DriftNight(f"2026-11-0{day}", SHA_A, "main", 1, day, 0, 2))
    with history.open("a") as sink:
        sink.write('{"date": "2026-11-0\n')
    nights = gha.read_history(history)
    assert [n.date for n in nights] == [f"2026-11-0{d}" for d in range(1, 6)]
    text = gha.history_markdown(nights, 3)
    assert '    x-axis ["11-03", "11-04", "11-05"]' in text and "2026-11-02" not in text


def test_drift_history_refuses_what_is_not_drift_output(tmp_path: Path) -> None:
    result = _cli("drift-history", "--drift", _write(tmp_path, "d.json", {"status": "clean"}),
                  "--history", tmp_path / "h.jsonl")
    assert result.returncode == 2 and "'onto' is missing" in result.stderr
    assert not (tmp_path / "h.jsonl").exists()


def test_drift_history_is_the_packages_code_and_needs_no_installed_mpspatch(tmp_path: Path) -> None:
    # -I -S: no site-packages, no PYTHONPATH; the script must still find mpspatch/reporting/trend.py beside it.
    from mpspatch.reporting import trend

    assert gha.DriftNight is trend.DriftNight and gha.history_markdown is trend.history_markdown
    history = tmp_path / "h.jsonl"
    old = {"date": "2026-11-01", "onto": SHA_A, "onto_ref": "main", "conflicts": 1, "regions": 2, "absorbed": 0,
           "upstream_commits": 4}  # a record older than patch_hunks
    history.write_text(json.dumps(old) + "\n")
    result = subprocess.run(
        [sys.executable, "-I", "-S", SCRIPT, "drift-history", "--drift", _drift(tmp_path, SHA_B, [1], [], 2),
         "--history", history, "--date", "2026-11-02"], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert "    line [2, 1]" in result.stdout
    assert [n.patch_hunks for n in trend.read_history(history)] == [0, 7]
