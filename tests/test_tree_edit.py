"""Trees edited path by path (git/trees.edit_tree, rewrite_tree) agree with git's own index, and never read
or write the whole tree."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest
from support import Repo, cpp_source, git_env

from mpspatch.foundation import proc
from mpspatch.foundation.ids import commit_sha, tree_sha
from mpspatch.git import trees

STREAM = "aten/src/ATen/mps/MPSStream.mm"
GUARD = "aten/src/ATen/mps/MPSGuardImpl.h"
LINEAR = "aten/src/ATen/native/mps/operations/Linear.mm"
SCRIPT = "tools/build_pytorch_libs.sh"
GITLINK = "third_party/pybind11"


def _blob(repo: Repo, text: str) -> str:
    return repo.git("hash-object", "-w", "--stdin", input_text=text).strip()


def _by_index(repo: Repo, tree: str, info: str) -> str:
    """The tree git itself makes: read-tree, update-index --index-info, write-tree in a throwaway index."""
    with tempfile.TemporaryDirectory() as tmp:
        env = {**git_env(), "GIT_INDEX_FILE": str(Path(tmp) / "index")}
        for args, stdin in ((["read-tree", tree], None), (["update-index", "-z", "--index-info"], info),
                            (["write-tree"], None)):
            done = subprocess.run(["git", *args], cwd=repo.path, env=env, check=True, capture_output=True,
                                  input=stdin.encode() if stdin is not None else None)
        return done.stdout.decode().strip()


@pytest.fixture
def upstream(tmp_path: Path) -> Repo:
    repo = Repo.create(tmp_path / "pytorch")
    repo.write(STREAM, cpp_source("MPSStream.mm", 4))
    repo.write(GUARD, cpp_source("MPSGuardImpl.h", 2))
    repo.write(LINEAR, cpp_source("Linear.mm", 3))
    repo.write("aten/src/ATen/native/mps/operations/Copy.mm", cpp_source("Copy.mm", 2))
    repo.write(SCRIPT, "#!/bin/sh\necho build\n")
    (repo.path / SCRIPT).chmod(0o755)
    repo.write("README.md", "# PyTorch\n")
    repo.git("add", "-A")
    # A submodule entry: a commit this repository does not have, as in PyTorch's third_party/.
    repo.git("update-index", "--add", "--cacheinfo", f"160000,{'1' * 40},{GITLINK}")
    repo.commit("Initial", tag="v1.0")
    return repo


def test_edits_match_gits_own_index(upstream: Repo) -> None:
    tree = upstream.git("rev-parse", "v1.0^{tree}").strip()
    new_stream, new_file = _blob(upstream, "// rewritten\n"), _blob(upstream, "#pragma once\n")
    changes: dict[str, tuple[str, str] | None] = {
        STREAM: ("100644", new_stream),  # changed
        "aten/src/ATen/mps/MPSStreamPool.h": ("100644", new_file),  # added next to it
        "torch/csrc/mps/Pool.cpp": ("100644", new_file),  # added in folders that do not exist yet
        LINEAR: None,  # removed; its folder keeps Copy.mm
        SCRIPT: None,  # removed; tools/ becomes empty and disappears
        "third_party/README": ("100644", new_file),  # next to a submodule
    }
    info = "".join(f"{e[0]} {e[1]}\t{p}\0" if e else f"0 {'0' * 40}\t{p}\0" for p, e in changes.items())
    assert trees.edit_tree(upstream.path, tree, changes) == _by_index(upstream, tree, info)


def test_rewrite_tree_takes_paths_from_a_commit_and_keeps_modes(upstream: Repo) -> None:
    upstream.git("checkout", "-q", "-b", "series")
    upstream.write(STREAM, cpp_source("MPSStream.mm", 4, variant="pool"))
    upstream.write(SCRIPT, "#!/bin/sh\necho pool\n")
    upstream.git("rm", "-q", GUARD)
    series = commit_sha(upstream.commit("series"))
    tree = tree_sha(upstream.git("rev-parse", "v1.0^{tree}").strip())
    got = trees.rewrite_tree(upstream.path, tree, source=series, from_source=[STREAM, GUARD],
                               contents={SCRIPT: b"#!/bin/sh\necho merged\n"})
    script = _blob(upstream, "#!/bin/sh\necho merged\n")
    stream = upstream.git("rev-parse", f"{series}:{STREAM}").strip()
    info = f"100644 {stream}\t{STREAM}\0" f"0 {'0' * 40}\t{GUARD}\0" f"100755 {script}\t{SCRIPT}\0"
    assert got == _by_index(upstream, tree, info)


def test_rewrite_tree_never_reads_or_writes_the_whole_tree(upstream: Repo, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[str, ...]] = []
    spawn = proc._spawn

    def logged(argv: Any, **kwargs: Any) -> Any:
        seen.append(tuple(argv))
        return spawn(argv, **kwargs)

    monkeypatch.setattr(proc, "_spawn", logged)
    tree = tree_sha(upstream.git("rev-parse", "v1.0^{tree}").strip())
    trees.rewrite_tree(upstream.path, tree, source=commit_sha(upstream.head()), from_source=[GUARD],
                         contents={STREAM: b"// merged\n"})
    verbs = [next(a for a in argv[1:] if not a.startswith("-")) for argv in seen]
    assert not {"read-tree", "ls-tree", "write-tree", "update-index"} & set(verbs), verbs
    assert len(seen) <= 4, verbs
