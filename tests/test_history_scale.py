"""The forecast's git work does not grow with upstream history, and the patch-id cache never changes an answer.

Upstream histories of 100 and 1,000 commits are written with one `git fast-import` each: about one commit in
ten adds or removes a trailing comment in a patched file (each one a patch-id candidate for a single-file
series patch), the rest edit other files, and one lands the second series patch verbatim. Git processes are
counted at mpspatch's one subprocess chokepoint (foundation/proc._spawn).
"""

from __future__ import annotations

import random
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import Repo, cpp_source, git_env

from mpspatch.foundation import proc
from mpspatch.foundation.ids import CommitSha, commit_sha
from mpspatch.git import objects
from mpspatch.model import absorbed, history
from mpspatch.model.workspace import resolve_ref

STREAM = "aten/src/ATen/mps/MPSStream.mm"
BINDINGS = "torch/mps/__init__.py"
PATHS = [STREAM, BINDINGS]
FILLER = [f"aten/src/ATen/native/cuda/Op{n}.cu" for n in range(20)]
LANDED = "def stream_pool_size() -> int:\n    return 16\n"


def _data(text: str) -> str:
    return f"data {len(text.encode())}\n{text}\n"


def _history(count: int) -> Iterator[str]:
    """`count` commits on main after v1.0 (fast-import commands), the series' second patch landed mid-way."""
    rng = random.Random(count)
    stream = cpp_source("MPSStream.mm", 12)
    noted = False
    for number in range(count):
        message = f"Commit {number}\n\nPull Request resolved: https://github.com/pytorch/pytorch/pull/{number}\n"
        yield (f"commit refs/heads/main\ncommitter Bot <bot@example.com> {1_000_000 + number} +0000\n"
               + _data(message) + ("from refs/tags/v1.0^0\n" if number == 0 else ""))
        if number == count // 2:
            yield "M 100644 inline " + BINDINGS + "\n" + _data(LANDED)
        elif noted or (rng.random() < 0.1 and number < count - 1):
            noted = not noted
            yield "M 100644 inline " + STREAM + "\n" + _data(stream + (f"// note {number}\n" if noted else ""))
        else:
            path = rng.choice(FILLER)
            yield "M 100644 inline " + path + "\n" + _data(f"// {path} rev {number}\n")
    yield "done\n"


def build(tmp_path: Path, count: int) -> tuple[Repo, CommitSha, CommitSha, list[CommitSha]]:
    repo = Repo.create(tmp_path / f"upstream-{count}")
    repo.write(STREAM, cpp_source("MPSStream.mm", 12))
    repo.write(BINDINGS, "def stream_pool_size() -> int:\n    return 1\n")
    for path in FILLER:
        repo.write(path, f"// {path}\n")
    repo.commit("Initial release", tag="v1.0")
    subprocess.run(["git", "fast-import", "--quiet", "--done", "--force"], cwd=repo.path, env=git_env(),
                   input="".join(_history(count)).encode(), check=True)
    repo.git("reset", "-q", "--hard", "main")
    base, onto = resolve_ref(repo.path, "v1.0"), resolve_ref(repo.path, "main")
    series = []
    repo.git("checkout", "-q", "-b", "series", "v1.0")
    repo.write(STREAM, cpp_source("MPSStream.mm", 12).replace("// step 3", "// step three"))
    series.append(commit_sha(repo.commit("series patch 1")))
    repo.write(BINDINGS, LANDED)
    series.append(commit_sha(repo.commit("series patch 2")))
    repo.git("checkout", "-q", "main")
    return repo, base, onto, series


def forecast(repo: Path, base: CommitSha, onto: CommitSha, series: list[CommitSha]) -> absorbed.AlreadyUpstream:
    """What drift computes: the upstream log, the merge forecast and the already-upstream check."""
    commits = history.upstream_commits(repo, base, onto, PATHS)
    result = history.merge_forecast(repo, base, series, onto)
    return absorbed.already_upstream(repo, base, series, onto, result.result_tree, commits)


def brute_force_patch_ids(repo: Path, base: CommitSha, onto: CommitSha, series: list[CommitSha]) -> set[tuple]:
    """Every upstream commit's and series commit's patch-id over the patched paths, with no filter or cache."""
    upstream = [c.sha for c in history.upstream_commits(repo, base, onto, PATHS)]
    ids = objects.patch_ids(repo, objects.show_patches(repo, [*upstream, *series], PATHS))
    newest: dict[str, CommitSha] = {}
    for sha in upstream:
        if sha in ids:
            newest.setdefault(ids[sha], sha)
    return {(i, s, newest[ids[s]]) for i, s in enumerate(series) if s in ids and ids[s] in newest}


def count_git(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    calls: list[list[str]] = []
    spawn = proc._spawn

    def counting(argv, **kwargs):  # type: ignore[no-untyped-def]
        if argv and Path(argv[0]).name == "git":
            calls.append(list(argv))
        return spawn(argv, **kwargs)

    monkeypatch.setattr(proc, "_spawn", counting)
    return calls


def cache_file(repo: Repo) -> Path:
    return repo.path / ".git" / absorbed.PATCH_ID_CACHE


def test_the_patch_id_cache_gives_the_same_answer_as_a_full_scan(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    repo, base, onto, series = build(tmp_path, 300)
    expected = brute_force_patch_ids(repo.path, base, onto, series)
    assert len(expected) == 1  # the second patch, landed verbatim
    cold = forecast(repo.path, base, onto, series)
    assert cache_file(repo).is_file()
    warm = forecast(repo.path, base, onto, series)
    monkeypatch.setattr(absorbed.PatchIdCache, "open",
                        classmethod(lambda cls, r, p: cls(r, p, None)))  # no cache at all
    uncached = forecast(repo.path, base, onto, series)
    assert cold == warm == uncached
    assert {(m.patch_index, m.commit, m.upstream) for m in cold.patch_ids} == expected


def test_a_damaged_cache_is_rebuilt_not_trusted(tmp_path: Path) -> None:
    repo, base, onto, series = build(tmp_path, 100)
    first = forecast(repo.path, base, onto, series)
    cache_file(repo).write_text("{ not json")
    assert forecast(repo.path, base, onto, series) == first
    assert absorbed.PATCH_ID_RECORDS.read(cache_file(repo)) is not None


def test_git_processes_do_not_grow_with_upstream_history(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = count_git(monkeypatch)
    counts = {}
    for size in (100, 1000):
        repo, base, onto, series = build(tmp_path, size)
        candidates = sum(1 for c in history.upstream_commits(repo.path, base, onto, PATHS) if c.paths == (STREAM,))
        assert candidates > size // 20  # the history really holds single-file candidates for patch 1
        calls.clear()
        found = forecast(repo.path, base, onto, series)
        assert len(found.patch_ids) == 1
        cold = len(calls)
        calls.clear()
        assert forecast(repo.path, base, onto, series) == found
        counts[size] = (cold, len(calls))
    assert counts[100] == counts[1000]
    cold, warm = counts[1000]
    assert warm <= cold - 3  # numstat, show and patch-id are not run again for commits already seen
