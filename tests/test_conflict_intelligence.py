"""Region blame and regions already upstream in place, for `drift` and `rebase` alike, through the real CLI.

The upstream (pinned identities and dates) and the downstream patch are PyTorch-shaped and our own:

- MPSStream.h: the patch changes `synchronize()`. PR 180001 edits a declaration far from it (merges cleanly),
  PR 180002 changes `synchronize()` too (the conflict): only 180002 is a cause, 180001 is merely `touched`.
- native_functions.yaml: the patch adds `MPS: record_stream_mps` to `record_stream`'s dispatch map; PR 180003
  adds the same line together with `XPU: record_stream_xpu` next to it. git conflicts; the change is upstream.
- MPSHooks.h: the patch declares `recordStream`; PR 180004 re-lands that declaration wrapped over two lines,
  with a comment and another declaration around it. git conflicts; the change is upstream.

v1.1 has PRs 180003 and 180004 only (the rebase must not stop at all); v1.2 adds 180001 and 180002.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from scenarios import PR_URL, stream_header
from support import Repo, write_config

from mpspatch.model import history

MPSPATCH = [sys.executable, "-m", "mpspatch.cli"]
STREAM_H = "aten/src/ATen/mps/MPSStream.h"
HOOKS_H = "aten/src/ATen/mps/MPSHooks.h"
YAML = "aten/src/ATen/native/native_functions.yaml"


def native_functions(dispatch: tuple[str, ...]) -> str:
    lines = ["- func: abs(Tensor self) -> Tensor", "  dispatch:", "    CPU: abs_cpu", "    MPS: abs_mps", "",
             "- func: record_stream(Tensor(a!) self, Stream s) -> ()", "  variants: method", "  dispatch:",
             "    CUDA: record_stream_cuda", *dispatch, "  autogen: record_stream.out", "",
             "- func: relu(Tensor self) -> Tensor", "  dispatch:", "    CPU: relu_cpu", "    MPS: relu_mps", ""]
    return "\n".join(lines) + "\n"


def hooks(middle: tuple[str, ...]) -> str:
    lines = ["#pragma once", "", "#include <ATen/detail/MPSHooksInterface.h>", "", "namespace at::mps {", "",
             "struct MPSHooks : public at::MPSHooksInterface {", "  MPSHooks(at::MPSHooksArgs) {}",
             "  void init() const override;", "  bool hasMPS() const override;", *middle,
             "  const Generator& getDefaultMPSGenerator() const override;", "};", "", "} // namespace at::mps"]
    return "\n".join(lines) + "\n"


def stream(synchronize: str = "  void synchronize();", default: str = "MPSStream* getDefaultMPSStream();") -> str:
    return stream_header().replace("  void synchronize();", synchronize).replace(
        "MPSStream* getDefaultMPSStream();", default)


PATCHED = {
    STREAM_H: stream("  void synchronize(bool wait_until_completed);"),
    YAML: native_functions(("    MPS: record_stream_mps",)),
    HOOKS_H: hooks(("  void recordStream(int64_t stream_id) const;",)),
}


def message(subject: str, pr: int) -> str:
    return f"{subject}\n\nSummary.\n\nPull Request resolved: {PR_URL}{pr}\n"


def build(root: Path) -> Path:
    upstream = Repo.create(root / "pytorch")
    upstream.write(STREAM_H, stream())
    upstream.write(YAML, native_functions(()))
    upstream.write(HOOKS_H, hooks(()))
    upstream.commit(message("Initial import", 100000), tag="v1.0")
    upstream.write(YAML, native_functions(("    MPS: record_stream_mps", "    XPU: record_stream_xpu")))
    upstream.commit(message("[MPS/XPU] Register record_stream for MPS and XPU", 180003))
    upstream.write(HOOKS_H, hooks(("  // Marks a tensor as used on a stream of the pool.", "  void recordStream(",
                                   "      int64_t   stream_id) const;", "  bool isOnMacOSorNewer() const override;")))
    upstream.commit(message("[MPS] Stream pool hooks", 180004), tag="v1.1")
    upstream.write(STREAM_H, stream(default="MPSStream* getDefaultMPSStream(bool create = true);"))
    upstream.commit(message("[MPS] Lazily create the default stream", 180001))
    upstream.write(STREAM_H, stream("  void synchronize(SyncType type);",
                                    "MPSStream* getDefaultMPSStream(bool create = true);"))
    upstream.commit(message("[MPS] Synchronize with a SyncType", 180002), tag="v1.2")
    # The patch: a real `git diff` of the patched files over v1.0.
    upstream.git("checkout", "-q", "--detach", "v1.0")
    for path, text in PATCHED.items():
        upstream.write(path, text)
    upstream.git("add", "-A")
    patch = upstream.git("diff", "--cached", "--full-index", "--no-color", "--no-renames", "v1.0")
    upstream.git("reset", "-q", "--hard", "v1.0")
    upstream.git("checkout", "-q", "main")
    project = root / "project"
    (project / "patches").mkdir(parents=True)
    (project / "patches" / "stream-pool.patch").write_text(patch)
    config = write_config(project, patches=["patches/stream-pool.patch"], checkout="../pytorch",
                          extra='\n[paths]\nstate = ".mpspatch"\n')
    config.write_text(config.read_text().replace(
        'allowed_paths = ["aten/src/ATen/mps/", ', f'allowed_paths = ["{YAML}", "aten/src/ATen/mps/", '))
    return project


def cli(project: Path, *args: str) -> tuple[int, dict[str, Any]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MPSPATCH_")}
    result = subprocess.run([*MPSPATCH, *args, "--json"], cwd=project, capture_output=True, text=True, check=False,
                            timeout=120, env=env)
    assert result.stdout.strip(), result.stderr
    return result.returncode, json.loads(result.stdout)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return build(tmp_path)


def prs(causes: list[dict[str, Any]]) -> list[int | None]:
    return [c["pull_request"] for c in causes]


def test_only_the_commit_that_wrote_the_conflicting_lines_is_a_cause(project: Path) -> None:
    code, drift = cli(project, "drift", "--onto", "v1.2")
    assert code == 1
    [conflict] = drift["conflicts"]
    assert conflict["path"] == STREAM_H and conflict["regions"] == 1
    [region] = conflict["blame"]
    assert prs(region["causes"]) == [180002]
    assert region["causes"][0]["subject"] == "[MPS] Synchronize with a SyncType"
    # The onto version's line of `synchronize(SyncType)`.
    onto_lines = subprocess.run(["git", "show", f"v1.2:{STREAM_H}"], cwd=project.parent / "pytorch",
                                capture_output=True, text=True, check=True).stdout.splitlines()
    start, end = region["lines"]
    assert onto_lines[start - 1 : end] == ["  void synchronize(SyncType type);"]
    assert prs(conflict["touched"]) == [180001]

    code, rebase = cli(project, "rebase", "--onto", "v1.2")
    assert code == 1
    [stopped] = rebase["conflicts"]
    # drift and rebase name the same causes for the same region.
    assert (stopped["path"], stopped["regions"], stopped["blame"], stopped["touched"]) == (
        conflict["path"], conflict["regions"], conflict["blame"], conflict["touched"])
    note = (Path(rebase["worktree"]) / (STREAM_H + ".mpspatch-conflict.txt")).read_text()
    assert f"lines {start}-{end}:" in note and "#180002 [MPS] Synchronize with a SyncType" in note
    assert "#180001" in note.split("without overlapping a region")[1]


def test_regions_already_upstream_in_place_are_absorbed_not_conflicts(project: Path) -> None:
    code, drift = cli(project, "drift", "--onto", "v1.2")
    outcomes = {f["path"]: f["outcome"] for f in drift["files"]}
    assert outcomes == {STREAM_H: "conflict", YAML: "absorbed", HOOKS_H: "absorbed"}
    absorbed = {a["path"]: a["pull_requests"] for a in drift["absorbed"]}
    assert absorbed == {YAML: [180003], HOOKS_H: [180004]}
    assert [c["path"] for c in drift["conflicts"]] == [STREAM_H]

    code, rebase = cli(project, "rebase", "--onto", "v1.2")
    assert code == 1 and [c["path"] for c in rebase["conflicts"]] == [STREAM_H]
    assert rebase["absorbed"] == []  # a stop reports its own conflicts; the check runs on the rebased result
    said = " ".join(rebase["notes"])
    # native_functions.yaml never conflicts in the rebase: its structured merge driver already takes the
    # dispatch line upstream has. The header's region is settled in place.
    assert YAML not in said
    assert f"{HOOKS_H}: 1 conflict region(s) resolved to upstream's side" in said
    worktree = Path(rebase["worktree"])
    file = worktree / STREAM_H
    file.write_bytes(history.take_patch_side(file.read_bytes()))
    code, done = cli(project, "rebase", "--continue")
    assert code == 0, done
    assert {a["path"]: a["pull_requests"] for a in done["absorbed"]} == absorbed
    text = (project / "patches" / "stream-pool.patch").read_text()
    assert "record_stream_mps" not in text and "recordStream" not in text
    assert "+  void synchronize(bool wait_until_completed);" in text
    assert not (worktree / (STREAM_H + ".mpspatch-conflict.txt")).exists()


def test_a_rebase_whose_only_conflicts_are_upstream_already_does_not_stop(project: Path) -> None:
    code, drift = cli(project, "drift", "--onto", "v1.1")
    assert code == 0 and drift["conflicts"] == []
    assert {f["path"]: f["outcome"] for f in drift["files"]}[YAML] == "absorbed"
    code, rebase = cli(project, "rebase", "--onto", "v1.1")
    assert code == 0, rebase
    assert rebase["status"] == "rebased"
    assert {a["path"]: a["pull_requests"] for a in rebase["absorbed"]} == {
        a["path"]: a["pull_requests"] for a in drift["absorbed"]}
    # The line merge conflicts here (drift's forecast without the driver would say so); the shadow's structured
    # merge of native_functions.yaml takes upstream's dispatch map, which already has the patch's line.
    text = (project / "patches" / "stream-pool.patch").read_text()
    assert "record_stream_mps" not in text and "recordStream" not in text and YAML not in text
    assert "+  void synchronize(bool wait_until_completed);" in text


# ------------------------------------------------------------------------------------------- pure parts


def test_regions_map_to_onto_lines_past_the_patchs_clean_hunks() -> None:
    from mpspatch.model.regions import onto_ranges, parse

    onto = b"a\nb\nc\nX\nY\nd\n"
    # The patch's clean hunk added `new` before the region: the merged text is one line longer than onto.
    merged = parse(b"a\nnew\nb\nc\n<<<<<<< HEAD\nX\nY\n||||||| base\nx\n=======\nZ\n>>>>>>> patch\nd\n")
    assert onto_ranges(merged, onto) == ((4, 5),)
    assert merged.resolve([0]) == b"a\nnew\nb\nc\nX\nY\nd\n"
    kept = b"<<<<<<< HEAD\nX\n=======\nZ\n>>>>>>> patch (label)\n"
    assert parse(kept + b"q\n" + kept).resolve([1]) == kept + b"q\nX\n"


@pytest.mark.parametrize(("upstream", "patch_adds", "absorbed"), [
    (("    MPS: record_stream_mps", "    XPU: record_stream_xpu"), "    MPS: record_stream_mps", True),
    (("  MPS:   record_stream_mps",), "    MPS: record_stream_mps", True),  # whitespace does not count in YAML
    (("    XPU: record_stream_xpu",), "    MPS: record_stream_mps", False),  # upstream lacks the patch's line
])
def test_absorbed_in_place_needs_every_added_line_upstream(upstream: tuple[str, ...], patch_adds: str,
                                                           absorbed: bool) -> None:
    from mpspatch.model.in_place import absorbed_regions
    from mpspatch.model.regions import parse

    base = native_functions(()).encode()
    merged = native_functions(("<<<<<<< ours", *upstream, "=======", patch_adds, ">>>>>>> theirs")).encode()
    found = absorbed_regions(YAML, parse(merged), base, native_functions((patch_adds,)).encode())
    assert bool(found) is absorbed


def test_a_line_the_patch_removes_but_upstream_keeps_is_no_absorption() -> None:
    from mpspatch.model.in_place import absorbed_regions
    from mpspatch.model.regions import parse

    base = hooks(("  void flush() const;",)).encode()
    patched = hooks(("  void recordStream(int64_t stream_id) const;",)).encode()  # replaces flush()
    merged = hooks(("<<<<<<< ours", "  void flush() const;", "  void recordStream(int64_t stream_id) const;",
                    "=======", "  void recordStream(int64_t stream_id) const;", ">>>>>>> theirs")).encode()
    assert absorbed_regions(HOOKS_H, parse(merged), base, patched) == ()


def test_line_matching_on_a_file_of_repeated_lines_rebuilds_the_other_side() -> None:
    # native_functions.yaml repeats `  dispatch:` thousands of times: the unique `func:` lines anchor the match.
    from mpspatch.model.regions import line_map, opcodes

    before = [line.encode() for n in range(3000)
              for line in (f"- func: op{n}(Tensor self) -> Tensor", "  dispatch:", f"    CPU: op{n}_cpu", "")]
    after = list(before)
    after.insert(4 * 1200 + 3, b"    MPS: op1200_mps")
    after[10] = b"  variants: function"
    del after[9000:9004]
    mapped = line_map(before, after)
    assert all(before[i] == after[j] for i, j in mapped.items()) and len(mapped) == len(before) - 5
    rebuilt: list[bytes] = []
    at = 0
    for _, i1, i2, j1, j2 in opcodes(before, after):
        rebuilt += [*before[at:i1], *after[j1:j2]]
        at = i2
    assert [*rebuilt, *before[at:]] == after
