"""The series build (git/commits.build_series) with an index of only the patched paths makes exactly the
commits the whole-tree build makes: same trees, same SHAs, same notes, same refusals."""

from __future__ import annotations

from pathlib import Path

import pytest
from support import Repo, cpp_source

from mpspatch.foundation.ids import commit_sha
from mpspatch.git import commits as series_git

STREAM = "aten/src/ATen/mps/MPSStream.mm"
GUARD = "aten/src/ATen/mps/MPSGuardImpl.h"
LINEAR = "aten/src/ATen/native/mps/operations/Linear.mm"
POOL = "aten/src/ATen/mps/MPSStreamPool.h"
SCRIPT = "tools/build_pytorch_libs.sh"


def _upstream(tmp_path: Path) -> tuple[Repo, str]:
    repo = Repo.create(tmp_path / "pytorch")
    repo.write(STREAM, cpp_source("MPSStream.mm", 8))
    repo.write(GUARD, cpp_source("MPSGuardImpl.h", 3))
    repo.write(LINEAR, cpp_source("Linear.mm", 4))
    repo.write(SCRIPT, "#!/bin/sh\necho build\n")
    for n in range(30):
        repo.write(f"c10/core/Other{n}.h", f"// other {n}\n")
    return repo, repo.commit("v1.0", tag="v1.0")


def _patch(repo: Repo, out: Path, edit: dict[str, str | None], *, chmod: str | None = None) -> Path:
    """A `git diff --full-index` patch of `edit` (None deletes) on top of HEAD, committed so the next builds on it."""
    for path, text in edit.items():
        if text is None:
            repo.git("rm", "-q", path)
        else:
            repo.write(path, text)
    if chmod:
        (repo.path / chmod).chmod(0o755)
    head = repo.head()
    repo.commit(out.name)
    out.write_text(repo.git("diff", "--full-index", head, "HEAD"))
    return out


def test_small_index_build_equals_the_whole_tree_build(tmp_path: Path) -> None:
    repo, base = _upstream(tmp_path)
    repo.git("checkout", "-q", "-b", "series")
    patches = [
        _patch(repo, tmp_path / "01-stream.patch",
               {STREAM: cpp_source("MPSStream.mm", 8).replace("// step 2", "// pool")}),
        _patch(repo, tmp_path / "02-pool.patch", {POOL: "#pragma once\nstruct MPSStreamPool {};\n"}),
        _patch(repo, tmp_path / "03-guard-gone.patch", {GUARD: None}, chmod=SCRIPT),
        _patch(repo, tmp_path / "04-linear-and-stream.patch", {
            LINEAR: cpp_source("Linear.mm", 4).replace("// step 1", "// pooled"),
            STREAM: cpp_source("MPSStream.mm", 8).replace("// step 2", "// pool").replace("// step 5", "// five"),
            "torch/csrc/mps/Pool.cpp": "// new folder\n"}),
    ]
    small = series_git.build_series(repo.path, commit_sha(base), patches)
    whole = series_git._build_full_index(repo.path, commit_sha(base), patches)
    assert small == whole
    assert repo.git("rev-parse", f"{small.commits[-1]}^{{tree}}") == repo.git("rev-parse", "series^{tree}")


def test_three_way_note_and_refusals_are_the_same(tmp_path: Path) -> None:
    repo, base = _upstream(tmp_path)
    repo.git("checkout", "-q", "-b", "other")
    # Made on a later upstream: applies at the base only with --3way (context moved, same blob known).
    repo.write(STREAM, "// a header line upstream added\n" + cpp_source("MPSStream.mm", 8))
    moved = repo.commit("upstream moved things")
    repo.write(STREAM, "// a header line upstream added\n" + cpp_source("MPSStream.mm", 8).replace("// step 7", "// 7"))
    later = repo.commit("the patch")
    three_way = tmp_path / "01-three-way.patch"
    three_way.write_text(repo.git("diff", "--full-index", moved, later))
    built = series_git.build_series(repo.path, commit_sha(base), [three_way])
    assert built == series_git._build_full_index(repo.path, commit_sha(base), [three_way])
    # A patch for a file the base lacks, and a patch that repeats the one before it.
    missing = tmp_path / "02-missing.patch"
    missing.write_text(repo.git("diff", "--full-index", base, later).replace(STREAM, "aten/src/ATen/mps/Gone.mm"))
    for bad in ([missing], [three_way, three_way]):
        with pytest.raises(series_git.SeriesInconsistentError) as small:
            series_git.build_series(repo.path, commit_sha(base), bad)
        with pytest.raises(series_git.SeriesInconsistentError) as whole:
            series_git._build_full_index(repo.path, commit_sha(base), bad)
        assert (type(small.value), small.value.message, small.value.files) == \
            (type(whole.value), whole.value.message, whole.value.files)
