"""history.py against real repositories: upstream commits, the merge forecast, and changes already upstream.

The forecast is checked against git's own rebase run in a throwaway clone: same stop, same conflicted
paths, same number of conflict regions per path.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from support import Repo, cpp_source, git_env

from mpspatch.foundation.errors import ExitCode, ToolMissingError
from mpspatch.foundation.ids import CommitSha, commit_sha
from mpspatch.git import objects
from mpspatch.git import verbs as git
from mpspatch.model import absorbed, history
from mpspatch.model.diff import Hunk
from mpspatch.model.workspace import resolve_ref

STREAM = "aten/src/ATen/mps/MPSStream.mm"
ALLOC = "aten/src/ATen/mps/MPSAllocator.mm"
BINDINGS = "torch/mps/__init__.py"
TOOL = "tools/gen.py"
PR_TRAILER = "Pull Request resolved: https://github.com/pytorch/pytorch/pull/{}\nApproved by: https://github.com/x"


def edit_function(text: str, step: int, new_body: str) -> str:
    """Replace the return line of function `step` in a cpp_source() body."""
    pattern = re.compile(rf"(_step_{step}\(int value\) \{{\n  // step {step}[^\n]*\n)  return [^\n]*\n")
    result, count = pattern.subn(lambda m: m.group(1) + f"  {new_body}\n", text)
    assert count == 1
    return result


def bindings(pool: int, extra: str = "") -> str:
    return f"def stream_pool_size() -> int:\n    return {pool}\n{extra}"


@pytest.fixture
def up(tmp_path: Path) -> Repo:
    repo = Repo.create(tmp_path / "upstream")
    repo.write(STREAM, cpp_source("MPSStream.mm", 12))
    repo.write(ALLOC, cpp_source("MPSAllocator.mm", 12))
    repo.write(BINDINGS, bindings(1))
    repo.write(TOOL, "print('gen')\n")
    repo.commit("Initial release", tag="v1.0")
    return repo


def make_series(repo: Repo, base: str, patches: list[dict[str, str]], branch: str = "series") -> list[CommitSha]:
    """One commit per patch on a branch from `base`; returns the commits, oldest first. Leaves main checked out."""
    repo.git("checkout", "-q", "-b", branch, base)
    commits = []
    for number, files in enumerate(patches, start=1):
        for path, content in files.items():
            repo.write(path, content)
        commits.append(commit_sha(repo.commit(f"series patch {number}")))
    repo.git("checkout", "-q", "main")
    return commits


def read(repo: Repo, rev: str, path: str) -> str:
    return repo.git("show", f"{rev}:{path}")


def rebase_stops(repo: Path, tmp_path: Path, tip: str, base: str, onto: str) -> list[tuple[int, dict[str, int]]]:
    """Run git's own rebase in a clone of `repo`; at each stop resolve to the patch's version and continue.

    Returns, per stop, the index of the patch it stopped on and {conflicted path: conflict regions}.
    """
    clone = tmp_path / "rebase-clone"
    subprocess.run(["git", "clone", "-q", str(repo), str(clone)], check=True, env=git_env())

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["git", *args], cwd=clone, env=git_env(50), capture_output=True, text=True)

    run("checkout", "-q", tip)
    result = run("rebase", "--onto", onto, base)
    stops = []
    while result.returncode != 0:
        applied = int((clone / ".git/rebase-merge/msgnum").read_text())
        paths = [p for p in run("diff", "--name-only", "--diff-filter=U").stdout.splitlines() if p]
        assert paths, result.stderr
        stops.append((applied - 1, {p: max(history.count_regions((clone / p).read_bytes()), 1) for p in paths}))
        for path in paths:  # as a person taking the patch's side of each region, keeping the rest
            (clone / path).write_bytes(history.take_patch_side((clone / path).read_bytes()))
        run("add", "-A")
        result = run("-c", "core.editor=true", "rebase", "--continue")
    return stops


def forecast_stops(forecast: history.MergeForecast) -> list[tuple[int, dict[str, int]]]:
    return [(s.patch_index, {c.path: c.regions for c in s.conflicts}) for s in forecast.steps if s.conflicts]


# ------------------------------------------------------------------------------------- upstream commits


def test_pull_request_trailer() -> None:
    message = "[MPS] Add a stream pool\n\nBody.\n\n" + PR_TRAILER.format(190375) + "\n"
    assert history.pull_request_of(message) == 190375
    assert history.pull_request_of("Fix (#12)\n\nSee https://github.com/pytorch/pytorch/pull/7 for context") is None
    assert history.pull_request_of("x\n\nPull Request resolved: https://github.com/pytorch/pytorch/pull/5/\n") == 5


def test_upstream_commits_newest_first_with_prs_and_patched_paths(up: Repo) -> None:
    series = make_series(up, "v1.0", [{STREAM: cpp_source("MPSStream.mm", 12, variant=" pooled")}])
    up.write(STREAM, edit_function(read(up, "main", STREAM), 3, "return value + 1;"))
    up.write(TOOL, "print('gen2')\n")
    first = up.commit("[MPS] Touch the stream and a tool\n\n" + PR_TRAILER.format(101))
    up.write(TOOL, "print('gen3')\n")
    up.commit("Only a tool")
    up.write(BINDINGS, bindings(32))
    third = up.commit("No trailer here")
    commits = history.upstream_commits(up.path, "v1.0", "main", [STREAM, BINDINGS])
    assert [c.sha for c in commits] == [third, first]
    assert commits[1].pull_request == 101 and commits[0].pull_request is None
    assert commits[1].paths == (STREAM,) and commits[0].paths == (BINDINGS,)
    assert commits[1].subject == "[MPS] Touch the stream and a tool"
    assert series  # the series branch does not leak into base..main
    assert history.upstream_commits(up.path, "v1.0", "main", []) == ()


def test_odd_path_names_survive_the_nul_parsing(up: Repo) -> None:
    odd = "aten/src/ATen/mps/we ird\tname.h"
    up.write(odd, "// x\n")
    sha = up.commit("Add an oddly named header")
    commits = history.upstream_commits(up.path, "v1.0", "main", [odd, STREAM])
    assert [(c.sha, c.paths) for c in commits] == [(sha, (odd,))]


# --------------------------------------------------------------------------------------- merge forecast


def test_clean_drift_forecast_is_clean_like_git_rebase(up: Repo, tmp_path: Path) -> None:
    series = make_series(up, "v1.0", [{STREAM: edit_function(read(up, "v1.0", STREAM), 1, "return 0;")}])
    up.write(STREAM, edit_function(read(up, "main", STREAM), 10, "return 10;"))
    up.commit("Upstream edits a distant function")
    onto = resolve_ref(up.path, "main")
    forecast = history.merge_forecast(up.path, resolve_ref(up.path, "v1.0"), series, onto)
    assert forecast.clean and forecast.stopped_at is None and len(forecast.steps) == 1
    assert forecast_stops(forecast) == rebase_stops(up.path, tmp_path, series[-1], "v1.0", "main") == []
    merged = up.git("show", f"{forecast.result_tree}:{STREAM}")
    assert "return 0;" in merged and "return 10;" in merged


def test_conflicting_drift_in_several_files_matches_git_rebase(up: Repo, tmp_path: Path) -> None:
    stream = read(up, "v1.0", STREAM)
    alloc = read(up, "v1.0", ALLOC)
    series = make_series(up, "v1.0", [{
        STREAM: edit_function(edit_function(stream, 2, "return -2;"), 9, "return -9;"),
        ALLOC: edit_function(alloc, 5, "return -5;"),
        BINDINGS: bindings(8),
    }])
    up.write(STREAM, edit_function(edit_function(stream, 2, "return 2000;"), 9, "return 9000;"))
    up.write(ALLOC, edit_function(alloc, 5, "return 5000;"))
    up.commit("[MPS] Upstream rewrites the same lines\n\n" + PR_TRAILER.format(4242))
    base, onto = resolve_ref(up.path, "v1.0"), resolve_ref(up.path, "main")
    forecast = history.merge_forecast(up.path, base, series, onto)
    assert forecast_stops(forecast) == [(0, {STREAM: 2, ALLOC: 1})]
    assert forecast_stops(forecast) == rebase_stops(up.path, tmp_path, series[-1], "v1.0", "main")
    assert all(c.kinds == ("contents",) for c in forecast.conflicts)


def test_second_patch_conflict_stops_where_git_rebase_stops(up: Repo, tmp_path: Path) -> None:
    stream = read(up, "v1.0", STREAM)
    one = edit_function(stream, 1, "return -1;")
    series = make_series(up, "v1.0", [{STREAM: one}, {STREAM: edit_function(one, 7, "return -7;")}])
    up.write(STREAM, edit_function(stream, 7, "return 7000;"))
    up.commit("Upstream edits function 7")
    forecast = history.merge_forecast(up.path, resolve_ref(up.path, "v1.0"), series,
                                      resolve_ref(up.path, "main"))
    assert forecast_stops(forecast) == [(1, {STREAM: 1})]
    assert forecast_stops(forecast) == rebase_stops(up.path, tmp_path, series[-1], "v1.0", "main")
    assert forecast.stops == (1,)


def test_base_off_the_onto_line_uses_the_patch_parent_as_merge_base(up: Repo, tmp_path: Path) -> None:
    # A release tag on its own branch: base is not an ancestor of onto, as v2.9.1 is not on PyTorch main.
    stream = read(up, "v1.0", STREAM)
    up.git("checkout", "-q", "-b", "release", "v1.0")
    up.write(STREAM, edit_function(stream, 4, "return 4;  // release fix"))
    up.commit("Release-only fix", tag="v1.0.1")
    up.git("checkout", "-q", "main")
    up.write(STREAM, edit_function(stream, 4, "return 4;  // main fix"))
    up.commit("The same fix, written differently on main")
    series = make_series(up, "v1.0.1", [{STREAM: edit_function(read(up, "v1.0.1", STREAM), 11, "return -11;")}])
    forecast = history.merge_forecast(up.path, resolve_ref(up.path, "v1.0.1"), series,
                                      resolve_ref(up.path, "main"))
    # Cherry-pick semantics: only the patch's own change moves, so the release fix does not conflict.
    assert forecast.stopped_at is None
    assert forecast_stops(forecast) == rebase_stops(up.path, tmp_path, series[-1], "v1.0.1", "main") == []


def test_every_stop_is_forecast_and_a_file_conflicting_twice_is_marked_assumed(up: Repo, tmp_path: Path) -> None:
    stream, alloc = read(up, "v1.0", STREAM), read(up, "v1.0", ALLOC)
    one = {STREAM: edit_function(stream, 1, "return -1;"), ALLOC: edit_function(alloc, 2, "return -2;")}
    two = {STREAM: edit_function(one[STREAM], 8, "return -8;"), BINDINGS: bindings(4)}
    three = {ALLOC: edit_function(one[ALLOC], 9, "return -9;")}
    series = make_series(up, "v1.0", [one, two, three])
    up.write(STREAM, edit_function(edit_function(stream, 1, "return 1000;"), 8, "return 8000;"))
    up.write(BINDINGS, bindings(64))
    up.write(ALLOC, edit_function(alloc, 9, "return 9000;"))
    up.commit("Upstream moves under every patch")
    forecast = history.merge_forecast(up.path, resolve_ref(up.path, "v1.0"), series,
                                      resolve_ref(up.path, "main"))
    expected = [(0, {STREAM: 1}), (1, {STREAM: 1, BINDINGS: 1}), (2, {ALLOC: 1})]
    assert forecast_stops(forecast) == expected
    assert forecast_stops(forecast) == rebase_stops(up.path, tmp_path, series[-1], "v1.0", "main")
    assert forecast.stops == (0, 1, 2) and forecast.stopped_at == 0
    assert [s.assumed for s in forecast.steps] == [(), (STREAM,), ()]


def test_old_git_is_refused_with_the_version_needed(up: Repo, monkeypatch: pytest.MonkeyPatch) -> None:
    series = make_series(up, "v1.0", [{BINDINGS: bindings(2)}])
    monkeypatch.setattr(git, "version", lambda: (2, 37, 4))
    sha = resolve_ref(up.path, "v1.0")
    with pytest.raises(ToolMissingError) as info:
        history.merge_forecast(up.path, sha, series, sha)
    assert info.value.exit_code == ExitCode.USAGE
    assert "git 2.37.4 is too old" in info.value.message and "2.38" in info.value.message


def test_read_blobs_keeps_bytes_and_reports_missing(up: Repo) -> None:
    raw = b"\xff\xfe not utf-8 \x00 with a NUL\n<<<<<<< ours\n"
    up.write("aten/src/ATen/mps/blob.bin", raw)
    up.write("aten/src/ATen/mps/empty.h", b"")
    up.commit("binary")
    blobs = objects.read_blobs(up.path, ["main:aten/src/ATen/mps/blob.bin", "main:nope",
                                         "main:aten/src/ATen/mps/empty.h", f"main:{BINDINGS}"])
    assert blobs == (raw, None, b"", bindings(1).encode())


# ------------------------------------------------------------------------------------- already upstream


def test_absorbed_and_partly_absorbed_changes_name_their_prs(up: Repo) -> None:
    stream = read(up, "v1.0", STREAM)
    alloc = read(up, "v1.0", ALLOC)
    series = make_series(up, "v1.0", [{
        BINDINGS: bindings(32, "\ndef synchronize_all() -> None:\n    pass\n"),
        ALLOC: edit_function(edit_function(alloc, 1, "return value << 1;"), 10, "return value << 10;"),
        STREAM: edit_function(stream, 6, "return -6;"),
    }])
    up.write(BINDINGS, bindings(32, "\ndef synchronize_all() -> None:\n    pass\n"))
    landed_bindings = up.commit("[MPS] 32-stream pool with Python bindings\n\n" + PR_TRAILER.format(190375))
    up.write(ALLOC, edit_function(alloc, 1, "return value << 1;"))
    landed_alloc = up.commit("[MPS] Shift in the allocator\n\n" + PR_TRAILER.format(190400))
    up.write(STREAM, edit_function(read(up, "main", STREAM), 11, "return 11;"))
    up.commit("Unrelated stream edit\n\n" + PR_TRAILER.format(190500))
    base, onto = resolve_ref(up.path, "v1.0"), resolve_ref(up.path, "main")
    forecast = history.merge_forecast(up.path, base, series, onto)
    assert forecast.clean
    commits = history.upstream_commits(up.path, base, onto, [STREAM, ALLOC, BINDINGS])
    found = absorbed.already_upstream(up.path, base, forecast.series, onto, forecast.result_tree, commits)
    by_path = {f.path: f for f in found.files}
    assert set(by_path) == {BINDINGS, ALLOC}
    assert by_path[BINDINGS].whole and by_path[BINDINGS].landed_by == (landed_bindings,)
    assert (by_path[ALLOC].partly, by_path[ALLOC].absorbed_hunks, by_path[ALLOC].hunks) == (True, 1, 2)
    assert by_path[ALLOC].landed_by == (landed_alloc,)
    named = [c.pull_request for c in commits if c.sha in found.landed_by]
    assert sorted(n for n in named if n) == [190375, 190400]
    assert found.patch_ids == ()  # no upstream commit is the whole patch


def test_patch_landed_verbatim_is_found_by_patch_id(up: Repo) -> None:
    change = {BINDINGS: bindings(16)}
    series = make_series(up, "v1.0", [change, {STREAM: edit_function(read(up, "v1.0", STREAM), 3, "return 3;")}])
    up.write(TOOL, "print('unrelated')\n")
    up.commit("Unrelated")
    up.write(BINDINGS, bindings(16))
    landed = up.commit("[MPS] Pool of 16\n\n" + PR_TRAILER.format(77))
    base, onto = resolve_ref(up.path, "v1.0"), resolve_ref(up.path, "main")
    forecast = history.merge_forecast(up.path, base, series, onto)
    commits = history.upstream_commits(up.path, base, onto, [STREAM, BINDINGS])
    found = absorbed.already_upstream(up.path, base, forecast.series, onto, forecast.result_tree, commits)
    assert found.patch_ids == (absorbed.PatchIdMatch(patch_index=0, commit=series[0], upstream=landed),)
    assert [f.path for f in found.files] == [BINDINGS]


def body(*lines: str) -> Hunk:
    """A hunk made of these body lines (the header's numbers do not matter to what is tested here)."""
    return Hunk(source_start=1, source_length=0, target_start=1, target_length=0,
                insertions=sum(line.startswith("+") for line in lines),
                deletions=sum(line.startswith("-") for line in lines),
                text="@@ -1 +1 @@\n" + "".join(f"{line}\n" for line in lines))


def test_hunk_in_needs_the_post_image_and_not_the_pre_image() -> None:
    hunk = body(" a", " b", "+X", " c")
    assert absorbed.hunk_in(["a", "b", "X", "c"], hunk)
    assert not absorbed.hunk_in(["a", "b", "c"], hunk)
    assert not absorbed.hunk_in(["a", "b", "X", "c", "a", "b", "c"], hunk)  # old text still there too
    deletion = body(" a", "-gone", " b")
    assert absorbed.hunk_in(["a", "b"], deletion) and not absorbed.hunk_in(["a", "gone", "b"], deletion)


def test_take_patch_side_keeps_the_text_around_each_region() -> None:
    merged = (b"keep 1\n<<<<<<< ours\nupstream\n||||||| base\nold\n=======\npatch\n>>>>>>> theirs\nkeep 2\r\n"
              b"<<<<<<< ours\nu2\n=======\n>>>>>>> theirs\nend\n")
    assert history.take_patch_side(merged) == b"keep 1\npatch\nkeep 2\r\nend\n"
    assert history.count_regions(merged) == 2


def test_the_commit_that_adds_every_line_is_credited_over_a_lookalike() -> None:
    from mpspatch.foundation.ids import CommitSha
    from mpspatch.model.absorbed import _CommitLines, _landed_by

    path = "aten/src/ATen/native/mps/Ops.cpp"
    guard, throw = "if (a.size() != b.size()) {", 'throw std::invalid_argument("vector_add: sizes differ");'
    ours = [body(" std::vector<float> out;", f"+{guard}", f"+{throw}", "+}")]
    sibling = _CommitLines(CommitSha("1" * 40), {path: frozenset({guard, "vector_mul(a, b)"})}, {path: frozenset()})
    landed = _CommitLines(CommitSha("2" * 40), {path: frozenset({guard, throw})}, {path: frozenset()})
    assert _landed_by(path, ours, [sibling, landed], []) == (CommitSha("2" * 40),)
    # Without a commit that has them all, any overlap still names the candidates.
    assert _landed_by(path, ours, [sibling], []) == (CommitSha("1" * 40),)
