"""The patch-series model against real git output: every format users have, and every bad input."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from support import Repo, cpp_source

from mpspatch.foundation.config import Category
from mpspatch.foundation.errors import PatchFormatError
from mpspatch.model.series import compute_stats, parse_patch, parse_patch_bytes

CATEGORIES = (
    Category("Core MPS", ("aten/src/ATen/mps/**",)),
    Category("Operations", ("aten/src/ATen/native/mps/**",)),
    Category("Tests", ("test/test_mps.py",)),
)
ALLOWED = ("aten/src/ATen/mps/", "aten/src/ATen/native/mps/", "test/test_mps.py")


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Repo:
    """base -> change: modify, add, delete, rename, mode change, binary, CRLF, and a file outside the allowlist."""
    repo = Repo.create(tmp_path_factory.mktemp("series") / "repo")
    repo.write("aten/src/ATen/mps/MPSStream.mm", cpp_source("MPSStream.mm", 12))
    repo.write("aten/src/ATen/mps/MPSStream.h", cpp_source("MPSStream.h", 3))
    repo.write("aten/src/ATen/mps/MPSEvent.mm", cpp_source("MPSEvent.mm", 4))
    repo.write("aten/src/ATen/mps/OldName.h", cpp_source("OldName.h", 6))
    repo.write("aten/src/ATen/native/mps/kernel.bin", bytes(range(256)))
    repo.write("test/test_mps.py", "import unittest\n\n\nclass TestMPS(unittest.TestCase):\n    pass\n")
    repo.commit("base", tag="v1.0")
    repo.write("aten/src/ATen/mps/MPSStream.mm", cpp_source("MPSStream.mm", 14, variant=" (pooled)"))
    repo.write("aten/src/ATen/mps/MPSStreamPool.h", cpp_source("MPSStreamPool.h", 5))
    (repo.path / "aten/src/ATen/mps/MPSEvent.mm").unlink()
    repo.git("mv", "aten/src/ATen/mps/OldName.h", "aten/src/ATen/mps/NewName.h")
    (repo.path / "aten/src/ATen/mps/MPSStream.h").chmod(0o755)
    repo.write("aten/src/ATen/native/mps/kernel.bin", bytes(reversed(range(256))))
    repo.write("aten/src/ATen/native/mps/windows.mm", "line one\r\nline two\r\n")
    repo.write("tools/outside.py", "print('not allowed')\n")
    repo.write("test/test_mps.py", "import unittest\n\n\nclass TestMPS(unittest.TestCase):\n    def test_x(self):\n"
               "        self.assertTrue(True)\n")
    repo.commit("Add a stream pool\n\nPull Request resolved: https://github.com/pytorch/pytorch/pull/4242")
    return repo


def numstat_totals(repo: Repo, patch: Path) -> tuple[int, int, int]:
    out = subprocess.run(["git", "apply", "--numstat", str(patch)], cwd=repo.path, capture_output=True,
                         text=True, check=True).stdout
    ins = dels = files = 0
    for line in out.splitlines():
        added, deleted, _ = line.split("\t", 2)
        files += 1
        ins += int(added) if added != "-" else 0
        dels += int(deleted) if deleted != "-" else 0
    return files, ins, dels


@pytest.mark.parametrize(
    "fmt",
    ["diff-full-index", "diff-short-index", "diff-binary", "format-patch", "no-index-lines", "crlf-file"],
)
def test_formats_match_git_numstat(history: Repo, tmp_path: Path, fmt: str) -> None:
    diff_args = ["diff", "-M", "v1.0", "HEAD"]
    text = {
        "diff-full-index": lambda: history.git(*diff_args, "--full-index"),
        "diff-short-index": lambda: history.git(*diff_args),
        "diff-binary": lambda: history.git(*diff_args, "--binary", "--full-index"),
        "format-patch": lambda: history.git("format-patch", "-M", "--stdout", "v1.0..HEAD"),
        "no-index-lines": lambda: "".join(
            line for line in history.git(*diff_args).splitlines(keepends=True) if not line.startswith("index ")
        ),
        "crlf-file": lambda: history.git(*diff_args).replace("\n", "\r\n"),
    }[fmt]()
    patch_file = tmp_path / "series.patch"
    patch_file.write_bytes(text.encode())  # bytes: CRLF must reach the parser untouched
    patch = parse_patch(patch_file)
    stats = compute_stats([patch], CATEGORIES, ALLOWED)
    # git's own count of the same change; git cannot read the no-index or CRLF variants, which is the point.
    reference = tmp_path / "reference.patch"
    reference.write_bytes(history.git(*diff_args, "--full-index").encode())
    assert (stats.files, stats.insertions, stats.deletions) == numstat_totals(history, reference)
    by_path = {f.path: f for f in patch.files}
    assert by_path["aten/src/ATen/mps/MPSStreamPool.h"].status == "added"
    assert by_path["aten/src/ATen/mps/MPSEvent.mm"].status == "deleted"
    renamed = by_path["aten/src/ATen/mps/NewName.h"]
    assert (renamed.status, renamed.old_path) == ("renamed", "aten/src/ATen/mps/OldName.h")
    assert by_path["aten/src/ATen/mps/MPSStream.h"].new_mode == "100755"
    assert by_path["aten/src/ATen/native/mps/kernel.bin"].binary
    assert patch.mail_header == (fmt == "format-patch")
    assert patch.has_index_lines == (fmt != "no-index-lines")


def test_stats_by_category_and_allowlist(history: Repo, tmp_path: Path) -> None:
    patch_file = tmp_path / "p.patch"
    patch_file.write_bytes(history.git("diff", "-M", "--full-index", "v1.0", "HEAD").encode())
    stats = compute_stats([parse_patch(patch_file)], CATEGORIES, ALLOWED)
    names = {c.name: c for c in stats.categories}
    assert names["Core MPS"].files == (
        "aten/src/ATen/mps/MPSEvent.mm", "aten/src/ATen/mps/MPSStream.h", "aten/src/ATen/mps/MPSStream.mm",
        "aten/src/ATen/mps/MPSStreamPool.h", "aten/src/ATen/mps/NewName.h",
    )
    assert names["Tests"].insertions == 2 and names["Tests"].deletions == 1
    assert stats.uncategorized == ("tools/outside.py",)
    assert stats.outside_allowed == ("tools/outside.py",)
    assert sum(c.insertions for c in stats.categories) + 1 == stats.insertions  # outside.py adds one line


def test_windows_file_keeps_its_crlf_lines(history: Repo, tmp_path: Path) -> None:
    patch_file = tmp_path / "p.patch"
    patch_file.write_bytes(history.git("diff", "v1.0", "HEAD", "--", "aten/src/ATen/native/mps/windows.mm").encode())
    (change,) = parse_patch(patch_file).files
    assert change.insertions == 2
    assert "\r" in change.hunks[0].text


def test_first_category_wins() -> None:
    patch = parse_patch_bytes(Path("x.patch"), b"""diff --git a/aten/src/ATen/mps/A.h b/aten/src/ATen/mps/A.h
--- a/aten/src/ATen/mps/A.h
+++ b/aten/src/ATen/mps/A.h
@@ -1 +1 @@
-old
+new
""")
    categories = (
        Category("Headers", ("**/*.h",)),
        Category("Core MPS", ("aten/src/ATen/mps/**",)),
        Category("Typo", ("aten/src/ATen/mpz/**",)),
    )
    stats = compute_stats([patch], categories, ())
    assert [len(c.files) for c in stats.categories] == [1, 0, 0]
    assert stats.unmatched_globs == ("aten/src/ATen/mpz/**",)


GOOD = """diff --git a/aten/src/ATen/mps/A.h b/aten/src/ATen/mps/A.h
index 1111111..2222222 100644
--- a/aten/src/ATen/mps/A.h
+++ b/aten/src/ATen/mps/A.h
@@ -1,3 +1,3 @@
 one
-two
+TWO
 three
"""


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("empty", "", "the patch is empty"),
        ("blank", "\n\n  \n", "the patch is empty"),
        ("not a patch", "Dear reviewer,\nplease merge.\n", "x.patch:1: no diff found"),
        ("truncated hunk", GOOD.rsplit(" three\n", 1)[0], "x.patch:5: hunk is truncated"),
        ("wrong count", GOOD.replace("@@ -1,3 +1,3 @@", "@@ -1,2 +1,2 @@"), "x.patch:9: line after the hunk at line 5"),
        ("undercount", GOOD.replace("@@ -1,3 +1,3 @@", "@@ -1,2 +1,3 @@"), "x.patch:5: hunk has more lines"),
        ("garbage inside", GOOD.replace("+TWO\n", "+TWO\n???\n"), "x.patch:9: hunk that starts at line 5 ends"),
    ],
)
def test_malformed_patches_name_file_and_line(name: str, content: str, expected: str) -> None:
    with pytest.raises(PatchFormatError) as info:
        parse_patch_bytes(Path("x.patch"), content.encode())
    assert expected in info.value.message, name
    assert info.value.exit_code == 2


def test_missing_patch_file(tmp_path: Path) -> None:
    with pytest.raises(PatchFormatError, match="patch file not found"):
        parse_patch(tmp_path / "nope.patch")


def test_good_patch_parses() -> None:
    patch = parse_patch_bytes(Path("x.patch"), GOOD.encode())
    assert (patch.insertions, patch.deletions, len(patch.files[0].hunks)) == (1, 1, 1)


def test_quoted_names_become_real_paths(tmp_path: Path) -> None:
    repo = Repo.create(tmp_path / "q")
    repo.write("aten/src/ATen/mps/plain.h", "one\n")
    repo.commit("base")
    repo.write("aten/src/ATen/mps/t\u00e4b.h", "umlaut\n")
    repo.write("aten/src/ATen/mps/tab\there.h", "tab\n")
    repo.git("add", "-A")
    patch = tmp_path / "q.patch"
    patch.write_bytes(repo.git("diff", "--cached", "--full-index").encode())
    assert '"b/aten/src/ATen/mps/t\\303\\244b.h"' in patch.read_text()  # git really quoted it
    paths = sorted(f.path for f in parse_patch(patch).files)
    assert paths == ["aten/src/ATen/mps/tab\there.h", "aten/src/ATen/mps/t\u00e4b.h"]
    stats = compute_stats([parse_patch(patch)], CATEGORIES, ALLOWED)
    assert stats.categories[0].files == tuple(paths) and not stats.outside_allowed
