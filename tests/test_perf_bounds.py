"""Work that must not grow with the tree or the series: the series build's index reads, the CLI's start-up.

No stand-ins: real throwaway git repositories and the real CLI module in a subprocess.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from support import Repo, cpp_source

from mpspatch.foundation import proc
from mpspatch.foundation.ids import commit_sha
from mpspatch.git import commits as series_git
from mpspatch.git import verbs as git


def test_series_build_never_reads_the_whole_base_tree_and_makes_the_same_trees(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    repo = Repo.create(tmp_path / "upstream")
    names = [f"aten/src/ATen/mps/File{n}.mm" for n in range(5)]
    for name in names:
        repo.write(name, cpp_source(name, 6))
    for n in range(40):
        repo.write(f"c10/core/Other{n}.h", f"// other {n}\n")
    base = commit_sha(repo.commit("Initial release", tag="v1.0"))
    made, patches = [], []
    for number, name in enumerate(names):
        repo.write(name, cpp_source(name, 6).replace("// step 2", f"// step two {number}"))
        made.append(repo.commit(f"patch {number}"))
        patch = tmp_path / f"{number:02d}.patch"
        patch.write_text(repo.git("diff", "--full-index", f"{made[-1]}~1", made[-1]))
        patches.append(patch)
    reads = record_spawns(monkeypatch, "read-tree")
    built = series_git.build_series(repo.path, base, patches)
    assert reads == []  # an index of the patched paths only; never the whole base tree
    assert [git.tree_sha_of(repo.path, c) for c in built.commits] == [git.tree_sha_of(repo.path, c) for c in made]


@pytest.mark.parametrize("flag", ["--help", "--version"])
def test_help_and_version_import_no_views_json_rich_or_jinja(flag: str) -> None:
    code = (
        f"import sys\nimport mpspatch.cli as cli\ntry:\n    cli.main([{flag!r}])\nexcept SystemExit:\n    pass\n"
        "print(' '.join(sorted(m for m in sys.modules if m.startswith(('mpspatch.views', 'mpspatch.commands', "
        "'mpspatch.operations', 'mpspatch.git', 'json', 'rich', 'jinja2')))), file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stderr.strip() == ""


def test_commits_of_resolves_several_refs_in_one_git_call(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = Repo.create(tmp_path / "upstream")
    repo.write("c10/core/Device.h", "// device\n")
    first = repo.commit("Initial release", tag="v1.0")
    repo.write("c10/core/Device.h", "// device, later\n")
    second = repo.commit("Later", tag="v1.1")
    calls: list[list[str]] = []
    spawn = proc._spawn

    def counting(argv, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(list(argv))
        return spawn(argv, **kwargs)

    monkeypatch.setattr(proc, "_spawn", counting)
    assert git.commits_of(repo.path, ["v1.0", "v1.1"]) == (first, second)
    assert git.commits_of(repo.path, ["v1.0", "no-such-ref"]) is None
    assert len(calls) == 2


_RUN_AND_LIST = """
import sys
from mpspatch.foundation import proc
import mpspatch.cli as cli
spawned = []
spawn = proc._spawn
def counting(argv, **kwargs):
    spawned.append((str(kwargs.get("cwd")), tuple(argv), kwargs.get("input_bytes")))
    return spawn(argv, **kwargs)
proc._spawn = counting
try:
    cli.main(sys.argv[1:])
except SystemExit:
    pass
print("loaded:", *sorted(m for m in sys.modules if m.startswith(WATCHED)), file=sys.stderr)
print("git:", len(spawned), len(set(spawned)), file=sys.stderr)
if len(sys.argv) > 1 and sys.argv[1] == "--config":
    import pathlib
    clone = str((pathlib.Path(sys.argv[2]).parent / "../pytorch").resolve())
    print("clone:", sorted(argv[1] + " " + argv[2] for cwd, argv, _ in spawned if cwd == clone), file=sys.stderr)
    import re
    # Region blame walks base..onto once per conflicted file, by design, and `git rev-list` (which orders the
    # upstream log when it is read path by path) reads only the commit-graph; every other walk is counted.
    ranges = [a for _, argv, _ in spawned if "blame" not in argv and "rev-list" not in argv
              for a in argv if re.fullmatch(r"[0-9a-f]{40}\\.\\.[0-9a-f]{40}", a)]
    print("walks:", len(ranges), file=sys.stderr)
"""


def test_drift_json_loads_no_rich_no_downloads_and_no_rebase_machinery(tmp_path: Path) -> None:
    from scenarios import build_scenario

    scenario = build_scenario(tmp_path, "two")
    watched = ("rich", "jinja2", "wcmatch", "urllib.request", "http", "ssl", "mpspatch.operations.rebase",
               "mpspatch.operations.regenerate")
    code = f"WATCHED = {watched!r}\n" + _RUN_AND_LIST
    for _ in range(2):  # the first run makes the shadow; the second is the common case
        done = subprocess.run([sys.executable, "-c", code, "--config", str(scenario.config), "drift", "--json",
                               "--onto", "v1.3"], capture_output=True, text=True, check=True)
    loaded, counts, clone, walks = done.stderr.strip().splitlines()[-4:]
    assert loaded == "loaded:"
    total, distinct = map(int, counts.split()[1:])
    assert total == distinct  # no git command is asked the same question twice
    # The user's clone is asked three things: where it is, the two commits, whether it is a partial clone.
    assert clone == "clone: " + repr(["config --get-regexp", "rev-parse --end-of-options",
                                      "rev-parse --path-format=absolute"])
    # History is walked twice: upstream's log (base..onto) and the two series commits (base..series tip); the
    # already-upstream check diffs the commits that log found instead of walking base..onto again.
    assert walks == "walks: 2"


def test_a_rebase_after_drift_reuses_the_series_commits_drift_built(tmp_path: Path) -> None:
    from scenarios import build_scenario

    scenario = build_scenario(tmp_path, "two")
    code = "WATCHED = ()\n" + _RUN_AND_LIST + (
        "print('applies:', sum(1 for _, argv, _ in spawned if 'apply' in argv), file=sys.stderr)\n")
    runs = {}
    for command in (["drift", "--json", "--onto", "v1.3"], ["rebase", "--json", "--onto", "v1.3"]):
        done = subprocess.run([sys.executable, "-c", code, "--config", str(scenario.config), *command],
                              capture_output=True, text=True, check=True)
        runs[command[0]] = done.stderr.strip().splitlines()[-1]
    assert runs["drift"] != "applies: 0"  # drift applied the patches...
    assert runs["rebase"] == "applies: 0"  # ...and the rebase took the same commits from the cache


def test_drift_that_conflicts_leaves_a_commit_graph_so_its_blames_skip_commits_not_touching_the_file(
        tmp_path: Path) -> None:
    from scenarios import build_scenario

    scenario = build_scenario(tmp_path, "two")
    done = subprocess.run([sys.executable, "-m", "mpspatch.cli", "--config", str(scenario.config), "drift", "--json",
                           "--onto", "v1.3"], capture_output=True, text=True, check=False)
    assert done.returncode == 1, done.stderr  # the forecast stops on a conflict, so its regions are blamed
    shadow = scenario.project / ".mpspatch" / "shadow.git"
    # The blames ran over a commit-graph with changed-path filters that covers onto: a path-limited walk skips
    # the commits whose filter rules the file out instead of diffing each one.
    assert (shadow / "objects" / "info" / "commit-graphs" / "commit-graph-chain").is_file()
    onto = scenario.tags["v1.3"]
    graphs = (shadow / "objects" / "info" / "commit-graphs").glob("graph-*.graph")
    assert any(bytes.fromhex(onto) in g.read_bytes() for g in graphs)


def test_upstream_log_read_path_by_path_over_the_commit_graph_lists_what_the_single_log_lists(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mpspatch.git import objects
    from mpspatch.model import history

    repo = Repo.create(tmp_path / "upstream")
    paths = ["aten/src/ATen/mps/MPSStream.mm", "aten/src/ATen/mps/MPSStream.h", "c10/core/Device.h"]
    for path in paths:
        repo.write(path, f"// {path}\n")
    repo.write("README.md", "# upstream\n")
    base = repo.commit("Initial release", tag="v1.0")
    for n in range(130):  # most commits touch none of the paths; some touch one, a few touch two
        touched = [paths[n % 3]] if n % 4 == 0 else [paths[0], paths[2]] if n % 11 == 0 else ["README.md"]
        for path in touched:
            repo.write(path, f"// {path}, change {n}\n")
        repo.commit(f"[MPS] change {n} (#{1000 + n})\n\nPull Request resolved: "
                    f"https://github.com/pytorch/pytorch/pull/{1000 + n}\n")
    onto = repo.git("rev-parse", "HEAD").strip()
    assert objects.index_history(repo.path, [onto, base])
    single = history.upstream_commits(repo.path, base, onto, paths)
    logs = record_spawns(monkeypatch, "log")
    assert history.upstream_commits_indexed(repo.path, base, onto, paths, indexed=True) == single
    assert len(logs) == len(paths) and all(argv[-2] == "--" for argv in logs)  # one single-path log each
    logs.clear()
    # Without the graph's filters a single-path log is no cheaper: the one walk over every path.
    assert history.upstream_commits_indexed(repo.path, base, onto, paths, indexed=False) == single
    assert len(logs) == 1


def record_spawns(monkeypatch: pytest.MonkeyPatch, word: str) -> list[list[str]]:
    """The argv of every process started from now on whose argv holds `word` (the real process still runs)."""
    seen: list[list[str]] = []
    spawn = proc._spawn

    def recording(argv, **kwargs):  # type: ignore[no-untyped-def]
        if word in argv:
            seen.append(list(argv))
        return spawn(argv, **kwargs)

    monkeypatch.setattr(proc, "_spawn", recording)
    return seen
