"""A rebase that stops computes only that stop's report; the already-upstream check waits for the finish.

Run in-process on scenarios.py's repositories, so the forecast and the absorbed check can be made to fail
if anything calls them, and git processes can be counted at mpspatch's one subprocess chokepoint.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from scenarios import EXPECT, STREAM_MM, Scenario, build_scenario
from support import git_env

from mpspatch.foundation import proc
from mpspatch.foundation.config import load_config
from mpspatch.model import absorbed, history
from mpspatch.model.workspace import Workspace
from mpspatch.operations import rebase
from mpspatch.operations.rebase import RebaseStatus


@pytest.fixture
def scenario(tmp_path: Path) -> Scenario:
    return build_scenario(tmp_path)


def _refuse(*_: object, **__: object) -> Any:
    raise AssertionError("a stop must not compute the whole forecast or the already-upstream check")


def _resolve_all(worktree: Path, paths: list[str]) -> None:
    for rel in paths:
        path = worktree / rel
        path.write_text("".join(line for line in path.read_text().splitlines(keepends=True)
                                if not line.startswith(("<<<<<<<", "=======", ">>>>>>>", "|||||||"))))
        subprocess.run(["git", "add", rel], cwd=worktree, env=git_env(), check=True)


def test_a_stop_reports_its_own_conflicts_and_the_finish_reports_absorbed(
    scenario: Scenario, monkeypatch: pytest.MonkeyPatch
) -> None:
    expect = EXPECT["v1.3"]
    with monkeypatch.context() as patched:
        patched.setattr(history, "merge_forecast", _refuse)
        patched.setattr(absorbed, "already_upstream", _refuse)
        result = rebase.start(Workspace(load_config(scenario.config)), "v1.3")
        assert result.status == RebaseStatus.CONFLICT
        assert [c.path for c in result.conflicts] == sorted(expect.conflicts_by_patch[0])
        by_path = {c.path: c for c in expect.conflicts}
        for conflict in result.conflicts:
            assert tuple(u.pull_request for u in conflict.upstream_commits) == by_path[conflict.path].pull_requests
        assert result.absorbed == ()
        assert result.worktree is not None
        _resolve_all(result.worktree, [c.path for c in result.conflicts])
        # --continue to the next stop: again only that stop's paths and their upstream commits.
        result = rebase.resume(Workspace(load_config(scenario.config)))
        assert result.status == RebaseStatus.CONFLICT
        assert [c.path for c in result.conflicts] == list(expect.conflicts_by_patch[1])
        assert [u.pull_request for u in result.conflicts[0].upstream_commits] == [None]
        assert result.worktree is not None
        _resolve_all(result.worktree, [c.path for c in result.conflicts])
    done = rebase.resume(Workspace(load_config(scenario.config)))
    assert done.status == RebaseStatus.REBASED
    assert {a.path for a in done.absorbed} == {a.path for a in expect.absorbed}


def _extra_history(count: int, stream: str) -> Iterator[str]:
    """`count` upstream commits on top of v1.3, each adding and then removing a comment in a patched file."""
    for number in range(count):
        message = f"Touch the stream ({number})\n\nPull Request resolved: https://github.com/pytorch/pytorch/pull/{number}\n"
        yield (f"commit refs/tags/long\ncommitter Bot <bot@example.com> {1_900_000_000 + number} +0000\n"
               f"data {len(message.encode())}\n{message}\n" + ("from refs/tags/v1.3^0\n" if number == 0 else ""))
        yield f"M 100644 inline {STREAM_MM}\n"
        content = (stream + (f"// note {number}\n" if number % 2 == 0 else "")).encode()
        yield f"data {len(content)}\n{content.decode()}\n"
    yield "done\n"


def _count_at_stop(scenario: Scenario, onto: str) -> int:
    calls = 0
    spawn = proc._spawn

    def counted(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        return spawn(*args, **kwargs)

    proc._spawn = counted  # type: ignore[assignment]
    try:
        result = rebase.start(Workspace(load_config(scenario.config)), onto)
    finally:
        proc._spawn = spawn  # type: ignore[assignment]
    assert result.status == RebaseStatus.CONFLICT
    rebase.abort(Workspace(load_config(scenario.config)))
    return calls


def test_git_processes_at_a_stop_do_not_grow_with_upstream_history(scenario: Scenario) -> None:
    stream = scenario.git(scenario.checkout, "show", f"v1.3:{STREAM_MM}")
    subprocess.run(["git", "fast-import", "--quiet", "--done"], cwd=scenario.checkout, env=git_env(),
                   input="".join(_extra_history(200, stream)).encode(), check=True)
    _count_at_stop(scenario, "v1.3")  # the first run also makes the shadow repository
    assert _count_at_stop(scenario, "v1.3") == _count_at_stop(scenario, "long")
