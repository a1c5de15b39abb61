"""The state store: every state file round-trips through one codec, and a bad file is one exit-2 line.

Each kind of state file is written and read back; then a bad id, a wrong version and a missing key are each
refused with a StateError (exit 2) that names the file, says what is wrong and gives that kind's fix.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import pytest
from support import write_config

from mpspatch.foundation.errors import ExitCode, StateError
from mpspatch.foundation.ids import CommitSha, ContentSha256, RunId, TreePath, TreeSha
from mpspatch.model.series import SERIES_LOCK, LockedPatch, SeriesLock, read_lock, write_lock
from mpspatch.model.series_cache import SERIES_BUILD, CachedBuild
from mpspatch.model.stack import STACK, Part, Stack, read_stack
from mpspatch.model.state import REBASE_STATE, RebaseState, SavedFile
from mpspatch.model.store import StateFile, StateFileError
from mpspatch.verify.evidence import EVIDENCE, EvidenceRun, SeriesPatchRef, read_run, write_run
from mpspatch.verify.patched_tree import VERIFY_TREE, TreeState
from mpspatch.verify.stages import StageResult

A, B = CommitSha("a" * 40), CommitSha("b" * 40)
DIGEST = ContentSha256("c" * 64)
RUN = RunId("20251216T120000Z-3f9a1c2e")

LOCK = SeriesLock(base=A, base_ref="v2.9.1", patches=(LockedPatch("patches/pool.patch", DIGEST),),
                  written_at="2025-12-16T12:00:00Z", written_by="mpspatch lock")
REBASE = RebaseState(
    phase="rebasing", base=A, base_ref="v1.0", onto=B, onto_ref="v1.3", series_tip=B, series=(A, B),
    patches=(SavedFile("patches/a.patch", DIGEST), SavedFile("patches/b.patch", None)),
    lock=SavedFile("patches/series.lock", DIGEST), worktree=".mpspatch/worktrees/rebase",
    paths=("aten/src/ATen/mps/MPSStream.mm",), conflicted=(), notes=("cloned into ../pytorch",),
    started_at="2025-12-16T12:00:00Z",
)
STACKED = Stack(
    parts=(
        Part(index=1, title="Core MPS", slug="core-mps", path="0001-core-mps.patch", lines=40, insertions=30,
             deletions=10, files=(TreePath("aten/src/ATen/mps/MPSStream.mm"),), oversized_hunk=False,
             depends_on=(), commit=A, tree=TreeSha("d" * 40)),
        Part(index=2, title="Tests", slug="tests", path="0002-tests.patch", lines=25, insertions=25, deletions=0,
             files=(TreePath("test/test_mps.py"),), oversized_hunk=True, depends_on=(1,), commit=B,
             tree=TreeSha("e" * 40)),
    ),
    max_lines=40, base=A, base_ref="v1.0", series_sha256=(DIGEST,), tree=TreeSha("e" * 40), insertions=55,
    deletions=10,
)
STAGE = StageResult(
    name="tests", kind="tests", status="passed", reason="", duration_s=1.25, counts=(("passed", 27), ("failed", 0)),
    log="logs/tests.log", log_sha256="f" * 64, commands=(("python", "-m", "pytest"), ("true",)),
    env=(("Z_LAST", "1"), ("A_FIRST", "2")), started_at="2025-12-16T12:00:00Z", finished_at="2025-12-16T12:00:01Z",
    cache_key="1" * 64, cached_from=None, details=("test_mps.py::test_pool",),
)
RUN_RECORD = EvidenceRun(run_id=RUN, created_at="2025-12-16T12:00:00Z", series=(SeriesPatchRef("patches/a", DIGEST),),
                         base=A, base_ref="v1.0", onto=None, tree=TreeSha("e" * 40),
                         tools=(("git", "2.39.5"), ("python", "3.11.2")), stages=(STAGE,))

# Every kind of state file with a value of its model.
CASES: list[tuple[StateFile[Any], object]] = [
    (SERIES_LOCK, LOCK),
    (REBASE_STATE, REBASE),
    (STACK, STACKED),
    (VERIFY_TREE, TreeState(checked_out=A)),
    (VERIFY_TREE, TreeState(checked_out=None)),
    (SERIES_BUILD, CachedBuild(key="9" * 64, commits=(A, B), notes=("b.patch: needed a 3-way merge",))),
    (EVIDENCE, RUN_RECORD),
]
IDS = ["lock", "rebase", "stack", "verify-tree", "verify-tree-empty", "series-cache", "evidence"]


@pytest.mark.parametrize(("kind", "value"), CASES, ids=IDS)
def test_each_state_file_round_trips(tmp_path: Path, kind: StateFile[Any], value: object) -> None:
    path = tmp_path / "sub" / "state.json"
    kind.write(path, value)
    assert kind.read(path) == value
    assert kind.dumps(kind.load(path)) == path.read_text(encoding="utf-8")  # stable bytes
    assert json.loads(path.read_text())["version"] == kind.version
    assert sorted(p.name for p in path.parent.iterdir()) == ["state.json"]  # atomic: no temporary file left


def test_missing_files_read_as_none_and_load_names_the_fix(tmp_path: Path) -> None:
    assert read_lock(tmp_path / "series.lock") is None
    with pytest.raises(StateError, match=r"stack.json: no stack here; run `mpspatch split`") as caught:
        read_stack(tmp_path / "stack.json")
    assert caught.value.exit_code == ExitCode.USAGE


def test_the_json_shapes_are_the_ones_on_disk(tmp_path: Path) -> None:
    write_lock(tmp_path / "series.lock", LOCK)
    assert (tmp_path / "series.lock").read_text() == (
        '{\n  "base": "' + A + '",\n  "base_ref": "v2.9.1",\n  "patches": [\n    {\n      "path": '
        '"patches/pool.patch",\n      "sha256": "' + DIGEST + '"\n    }\n  ],\n  "version": 1,\n'
        '  "written_at": "2025-12-16T12:00:00Z",\n  "written_by": "mpspatch lock"\n}\n'
    )
    # Evidence keeps field order, and pairs (counts, env, tools) are objects in their recorded order.
    body = json.loads(EVIDENCE.dumps(RUN_RECORD))
    assert list(body)[:3] == ["version", "run_id", "created_at"]
    assert body["tools"] == {"git": "2.39.5", "python": "3.11.2"}
    assert list(body["stages"][0]["env"]) == ["Z_LAST", "A_FIRST"]
    assert body["stages"][0]["commands"] == [["python", "-m", "pytest"], ["true"]]
    assert json.loads(REBASE_STATE.dumps(REBASE))["patches"][1] == {"path": "patches/b.patch", "sha256": None}


def test_evidence_durations_are_written_to_the_millisecond(tmp_path: Path) -> None:
    stage = StageResult(**{**STAGE.__dict__, "duration_s": 1.234567})
    run = EvidenceRun(**{**RUN_RECORD.__dict__, "stages": (stage,)})
    path = write_run(tmp_path, run)
    assert json.loads(path.read_text())["stages"][0]["duration_s"] == 1.235
    assert read_run(path).stages[0].duration_s == 1.235


def test_an_older_evidence_file_without_details_still_reads(tmp_path: Path) -> None:
    body = json.loads(EVIDENCE.dumps(RUN_RECORD))
    del body["stages"][0]["details"], body["stages"][0]["cached_from"]  # fields with defaults came later
    path = tmp_path / "evidence.json"
    path.write_text(json.dumps(body))
    assert read_run(path).stages[0].details == ()


# ------------------------------------------------------------------------------------------ bad files


def corrupt(tmp_path: Path, kind: StateFile[Any], value: object, edit: Any) -> Path:
    body = json.loads(kind.dumps(value))
    edit(body)
    path = tmp_path / "state.json"
    path.write_text(json.dumps(body))
    return path


RECORDS = [(SERIES_LOCK, LOCK, "delete it and run `mpspatch lock` to write a fresh one"),
           (REBASE_STATE, REBASE, "run `mpspatch rebase --abort --force` to discard it (and the rebase worktree)"),
           (STACK, STACKED, "run `mpspatch split` to write a fresh one"),
           (EVIDENCE, RUN_RECORD, "rerun `mpspatch verify`")]


def refused(kind: StateFile[Any], path: Path) -> StateFileError:
    with pytest.raises(StateError) as caught:
        kind.read(path)
    error = caught.value
    assert isinstance(error, StateFileError)
    assert error.exit_code == ExitCode.USAGE
    assert error.message.startswith(f"{path}: ") and "\n" not in error.message
    assert error.message.endswith(f"; {error.fix}")
    return error


@pytest.mark.parametrize(("kind", "value", "fix"), RECORDS, ids=["lock", "rebase", "stack", "evidence"])
def test_a_wrong_version_is_refused_with_the_kinds_fix(tmp_path: Path, kind: StateFile[Any], value: object,
                                                       fix: str) -> None:
    path = corrupt(tmp_path, kind, value, lambda body: body.update(version=99))
    error = refused(kind, path)
    assert error.problem == f"{kind.what} has version 99; this mpspatch reads version {kind.version}"
    assert error.fix == fix


@pytest.mark.parametrize(("kind", "value", "fix"), RECORDS, ids=["lock", "rebase", "stack", "evidence"])
def test_a_missing_key_is_refused(tmp_path: Path, kind: StateFile[Any], value: object, fix: str) -> None:
    path = corrupt(tmp_path, kind, value, lambda body: body.pop("base"))
    assert refused(kind, path).problem == f"{kind.what} is not valid: missing key `base`"


@pytest.mark.parametrize(
    ("kind", "value", "edit", "problem"),
    [
        (SERIES_LOCK, LOCK, lambda b: b.update(base="abc123"), "base: not a full commit SHA: 'abc123'"),
        (SERIES_LOCK, LOCK, lambda b: b["patches"][0].update(sha256="c" * 40),
         f"patches[0].sha256: not a sha256 (64 hex): '{'c' * 40}'"),
        (REBASE_STATE, REBASE, lambda b: b["series"].append("HEAD"), "series[2]: not a full commit SHA: 'HEAD'"),
        (STACK, STACKED, lambda b: b["parts"][1].update(tree="E" * 40), f"parts[1].tree: not a full tree SHA: "
                                                                        f"'{'E' * 40}'"),
        (EVIDENCE, RUN_RECORD, lambda b: b.update(run_id="latest"),
         "run_id: not a run id (YYYYMMDDTHHMMSSZ-8hex): 'latest'"),
    ],
    ids=["commit", "sha256", "series-commit", "tree", "run-id"],
)
def test_a_bad_id_is_refused_naming_where(tmp_path: Path, kind: StateFile[Any], value: object, edit: Any,
                                         problem: str) -> None:
    path = corrupt(tmp_path, kind, value, edit)
    assert refused(kind, path).problem == f"{kind.what} is not valid: {problem}"


@pytest.mark.parametrize(
    ("edit", "problem"),
    [
        (lambda b: b.update(max_lines="40"), "max_lines: expected an integer, found a string"),
        (lambda b: b.update(max_lines=True), "max_lines: expected an integer, found true or false"),
        (lambda b: b["parts"][0].update(oversized_hunk=1), "parts[0].oversized_hunk: expected true or false, "
                                                           "found an integer"),
        (lambda b: b.update(parts={}), "parts: expected a list, found an object"),
        (lambda b: b.update(colour="blue"), "unknown key `colour`"),
    ],
    ids=["string-for-int", "bool-for-int", "int-for-bool", "object-for-list", "unknown-key"],
)
def test_wrong_types_are_refused(tmp_path: Path, edit: Any, problem: str) -> None:
    path = corrupt(tmp_path, STACK, STACKED, edit)
    assert refused(STACK, path).problem == f"the stack is not valid: {problem}"


def test_not_json_and_not_an_object(tmp_path: Path) -> None:
    path = tmp_path / "series.lock"
    path.write_text("{not json")
    assert refused(SERIES_LOCK, path).problem.startswith("the series lock is not JSON (")
    path.write_text("[1, 2]")
    assert refused(SERIES_LOCK, path).problem == "the series lock is not a JSON object"
    path.write_bytes(b"\xff\xfe")
    assert refused(SERIES_LOCK, path).problem == "the series lock is not UTF-8 text"
    path.write_text("{}")
    assert refused(SERIES_LOCK, path).problem == "the series lock has no `version`"


def test_caches_that_cannot_be_read_read_as_absent(tmp_path: Path) -> None:
    path = tmp_path / "cache.json"
    for kind in (SERIES_BUILD, VERIFY_TREE):
        path.write_text('{"version": 0}')
        assert kind.read(path) is None


# --------------------------------------------------------------------------------- the codec's types


class Colour(StrEnum):
    RED = "red"
    BLUE = "blue"


@dataclass(frozen=True)
class Inner:
    where: Path
    colour: Colour


@dataclass(frozen=True)
class Outer:
    pair: tuple[int, str]
    inner: Inner | None
    items: tuple[Inner, ...] = ()
    ratio: float = 0.5


KIND = StateFile(what="the test state", model=Outer, version=3, fix="delete it")


def test_paths_enums_fixed_tuples_and_defaults(tmp_path: Path) -> None:
    value = Outer(pair=(1, "x"), inner=Inner(Path("a/b.txt"), Colour.BLUE),
                  items=(Inner(Path("c"), Colour.RED),), ratio=2.0)
    path = tmp_path / "test.json"
    KIND.write(path, value)
    assert json.loads(path.read_text())["inner"] == {"colour": "blue", "where": "a/b.txt"}
    assert KIND.read(path) == value
    path.write_text('{"version": 3, "pair": [1, "x"], "inner": null}')
    assert KIND.read(path) == Outer(pair=(1, "x"), inner=None)
    path.write_text('{"version": 3, "pair": [1, "x"], "inner": {"where": "a", "colour": "green"}}')
    assert refused(KIND, path).problem == "the test state is not valid: inner.colour: \"green\" is not one of " \
                                          "'red', 'blue'"
    path.write_text('{"version": 3, "pair": [1], "inner": null}')
    assert refused(KIND, path).problem == "the test state is not valid: pair: expected a list of 2, found 1 items"


def test_the_cli_reports_a_bad_lock_as_one_exit_2_line(tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / "patches").mkdir(parents=True)
    (project / "patches/pool.patch").write_text(
        "diff --git a/torch/mps/x.py b/torch/mps/x.py\n--- a/torch/mps/x.py\n+++ b/torch/mps/x.py\n"
        "@@ -1 +1 @@\n-a\n+b\n")
    write_config(project, patches=["patches/pool.patch"])
    lock = json.loads(SERIES_LOCK.dumps(LOCK))
    (project / "patches/series.lock").write_text(json.dumps({**lock, "base": "v2.9.1"}))
    result = subprocess.run([sys.executable, "-m", "mpspatch.cli", "status"], cwd=project, capture_output=True,
                            text=True, check=False, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"mpspatch: error: {project / 'patches/series.lock'}: the series lock is not valid: base: not a full "
        "commit SHA: 'v2.9.1'; delete it and run `mpspatch lock` to write a fresh one"]
