"""mpspatch split against real repositories: the stack applies in order, adds up to the series, stays within
the limit, honours pinned groups, is byte-identical when made twice, and is refused when it cannot be proven."""

from __future__ import annotations

import json
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest
from support import Repo, git_env, write_config

from mpspatch.foundation.config import Category, SplitGroup, load_config
from mpspatch.model.diff import unquote_path as tree_path
from mpspatch.model.series import parse_patch, parse_patch_bytes
from mpspatch.model.stack import load_current_stack, part_context, read_stack
from mpspatch.model.stack_plan import PlannedPart, plan_parts, subset_patch
from mpspatch.model.workspace import Workspace
from mpspatch.operations import split as split_module
from mpspatch.operations.split import SplitProofError, split_series

MPSPATCH = [sys.executable, "-m", "mpspatch.cli"]
LIMIT = 60
PINNED = '''
[split]
max_lines = 2000

[[split.groups]]
title = "Allocator changes"
paths = ["aten/src/ATen/mps/MPSAllocator*"]
'''


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*MPSPATCH, *args], cwd=cwd, capture_output=True, text=True, check=False, timeout=120,
                          env=git_env())


def source(name: str, functions: int, *, changed: frozenset[int] = frozenset(), grow: int = 0,
           extra: frozenset[int] = frozenset()) -> str:
    """A C++ body of small functions; `changed` ones get a new comment and `grow` more lines each."""
    lines = [f"// {name}", "#include <mutex>", "", "namespace at::mps {", ""]
    for i in range(functions):
        lines.append(f"int {name.split('.')[0].lower()}_step_{i}(int value) {{")
        lines.append(f"  // step {i}, pooled" if i in changed else f"  // step {i}")
        lines += [f"  value += lock_{i}_{j}();" for j in range(grow if i in changed else 0)]
        lines += [f"  value ^= {i};" for _ in range(2 if i in extra else 0)]
        lines += [f"  return value * {i + 2} + {i};", "}", ""]
    lines.append("}  // namespace at::mps")
    return "\n".join(lines) + "\n"


def build_project(root: Path) -> tuple[Path, Repo]:
    """An upstream at v1.0 plus a two-patch series: pinned-group, split-file, rename, delete, binary, oversized."""
    up = Repo.create(root / "upstream")
    up.write("aten/src/ATen/mps/MPSStream.mm", source("MPSStream.mm", 60))
    up.write("aten/src/ATen/mps/MPSAllocator.mm", source("MPSAllocator.mm", 12))
    up.write("aten/src/ATen/mps/OldEvent.h", source("OldEvent.h", 8))
    up.write("aten/src/ATen/mps/MPSGuard.h", source("MPSGuard.h", 2))
    up.write("aten/src/ATen/native/mps/operations/Linear.mm", source("Linear.mm", 20))
    up.write("aten/src/ATen/native/mps/OperationUtils.mm", source("OperationUtils.mm", 10))
    up.write("aten/src/ATen/native/mps/kernel.bin", bytes(range(256)))
    up.write("torch/mps/__init__.py", "def device_count():\n    return 1\n")
    up.write("test/test_mps.py", "import unittest\n\n\nclass TestMPS(unittest.TestCase):\n    pass\n")
    up.write("README", "upstream\n")
    up.commit("base", tag="v1.0")

    every_fifth = frozenset(range(0, 60, 5))
    up.write("aten/src/ATen/mps/MPSStream.mm", source("MPSStream.mm", 60, changed=every_fifth, grow=6))
    up.write("aten/src/ATen/mps/MPSAllocator.mm", source("MPSAllocator.mm", 12, changed=frozenset({1, 9}), grow=5))
    (up.path / "aten/src/ATen/mps/OldEvent.h").unlink()
    up.write("aten/src/ATen/mps/MPSEvent.h", source("OldEvent.h", 8, changed=frozenset({4})))
    (up.path / "aten/src/ATen/mps/MPSGuard.h").unlink()
    up.write("aten/src/ATen/mps/MPSStreamPool.h", source("MPSStreamPool.h", 4))
    up.write("aten/src/ATen/native/mps/operations/Linear.mm",
             source("Linear.mm", 20, changed=frozenset({2, 10, 18}), grow=2))
    up.write("aten/src/ATen/native/mps/OperationUtils.mm",
             source("OperationUtils.mm", 10, changed=frozenset({0, 8}), grow=3))
    up.write("aten/src/ATen/native/mps/kernel.bin", bytes(reversed(range(256))))
    up.write("torch/mps/__init__.py", "def device_count():\n    return 1\n\n\ndef stream_pool_size():\n    return 32\n")
    test_class = "".join(f"    def test_stream_{i}(self):\n        self.assertTrue(True)\n\n" for i in range(27))
    up.write("test/test_mps.py", "import unittest\n\n\nclass TestMPS(unittest.TestCase):\n    pass\n\n\n"
             f"class TestMPSParallelInference(unittest.TestCase):\n{test_class}")
    up.git("add", "-A")
    first = up.git("diff", "--cached", "--full-index", "--binary", "-M", "v1.0")
    # The second patch touches a file the first one already changed, as a follow-up fix would.
    up.write("aten/src/ATen/mps/MPSStream.mm",
             source("MPSStream.mm", 60, changed=every_fifth, grow=6, extra=frozenset({32})))
    second = up.git("diff", "--full-index")
    up.git("reset", "-q", "--hard")
    project = root / "project"
    (project / "patches").mkdir(parents=True)
    (project / "patches/0001-pool.patch").write_text(first)
    (project / "patches/0002-fix.patch").write_text(second)
    write_config(project, patches=["patches/0001-pool.patch", "patches/0002-fix.patch"], extra=PINNED)
    return project, up


@pytest.fixture
def project(tmp_path: Path) -> tuple[Path, Repo]:
    return build_project(tmp_path)


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def apply_in_clone(up: Repo, clone: Path, patches: list[Path]) -> list[str]:
    """Apply `patches` one after another at v1.0 in a fresh clone; the tree after each, checking index lines."""
    subprocess.run(["git", "clone", "-q", str(up.path), str(clone)], check=True, env=git_env())
    verifier = Repo(clone)
    verifier.git("checkout", "-q", "--detach", "v1.0")
    trees = []
    for patch in patches:
        # Every `index OLD..NEW` line must name the blob the predecessor really has, so --3way can work.
        text = patch.read_bytes().decode("utf-8", errors="replace")
        found = re.findall(r"^index ([0-9a-f]{40})\.\.[0-9a-f]{40}.*\n--- (.+)$", text, re.MULTILINE)
        assert found or "new file mode" in text
        for old, name in found:
            if name == "/dev/null":
                continue
            path = tree_path(name.rstrip("\t")).removeprefix("a/")  # git ends a name with a space with a tab
            assert verifier.git("rev-parse", f":{path}").strip() == old, f"{patch.name}: stale index line for {path}"
        verifier.git("apply", "--index", str(patch))
        trees.append(verifier.git("write-tree").strip())
    return trees


# ----------------------------------------------------------------------------------------- planning


def test_plan_orders_pinned_groups_then_categories_and_flags_oversized_hunks(project: tuple[Path, Repo]) -> None:
    root, _ = project
    text = (root / "patches/0001-pool.patch").read_bytes()
    changes = parse_patch_bytes(Path("p"), text).files
    groups = (SplitGroup("Allocator changes", ("aten/src/ATen/mps/MPSAllocator*",)),)
    categories = (Category("Core MPS", ("aten/src/ATen/mps/**",)),
                  Category("Operations", ("aten/src/ATen/native/mps/**",)),
                  Category("Tests", ("test/test_mps.py",)))
    plan = plan_parts(changes, groups, categories, LIMIT)
    buckets = [p.bucket for p in plan]
    assert buckets[0] == "Allocator changes"
    order = ["Allocator changes", "Core MPS", "Operations", "Tests", "Other changes"]
    assert buckets == sorted(buckets, key=order.index), "buckets must keep config order"
    for part in plan:
        assert part.lines == sum(u.lines for u in part.units)
        assert part.lines <= LIMIT or (part.oversized_hunk and len(part.units) == 1)
    assert [p for p in plan if p.oversized_hunk] == [p for p in plan if p.bucket == "Tests"]
    # The pinned glob took the allocator out of Core MPS.
    paths = {b: {changes[u.file].path for p in plan if p.bucket == b for u in p.units} for b in set(buckets)}
    assert paths["Allocator changes"] == {"aten/src/ATen/mps/MPSAllocator.mm"}
    assert "aten/src/ATen/mps/MPSAllocator.mm" not in paths["Core MPS"]
    assert paths["Other changes"] == {"torch/mps/__init__.py"}  # no Python bindings category given here
    # Every hunk is placed once, in file order.
    placed = [(u.file, h) for p in plan for u in p.units for h in u.hunks]
    assert sorted(placed) == [(i, h) for i, c in enumerate(changes) for h in range(len(c.hunks))]
    for index in {f for f, _ in placed}:
        own = [h for f, h in placed if f == index]
        assert own == sorted(own)


def test_a_file_that_fits_keeps_its_hunks_together() -> None:
    one = "".join(f"line {i}\n" for i in range(100))
    two = one.replace("line 10\n", "line ten\n").replace("line 80\n", "line eighty\n")
    small = _diff_of({"a.txt": (one, two), "b.txt": (one, two), "c.txt": (one, two)})
    plan = plan_parts(small, (), (), 9)  # 4 lines a file; two files fit, a third does not
    assert [[u.file for u in p.units] for p in plan] == [[0, 0, 1, 1], [2, 2]]
    assert [p.title for p in plan] == ["Other changes, part 1 of 2", "Other changes, part 2 of 2"]
    assert [p.slug for p in plan] == ["other-changes-1", "other-changes-2"]


def _diff_of(files: dict[str, tuple[str, str]]) -> tuple[object, ...]:
    import difflib

    text = ""
    for name, (old, new) in files.items():
        text += f"diff --git a/{name} b/{name}\n"
        text += "".join(difflib.unified_diff(old.splitlines(True), new.splitlines(True), f"a/{name}", f"b/{name}"))
    return parse_patch_bytes(Path("d"), text.encode()).files


def test_subset_patch_recomputes_target_starts(tmp_path: Path) -> None:
    repo = Repo.create(tmp_path / "r")
    old = "".join(f"line {i}\n" for i in range(60))
    new = old.replace("line 5\n", "line 5\nadded a\nadded b\n").replace("line 30\n", "").replace(
        "line 50\n", "line fifty\n")
    repo.write("f.txt", old)
    repo.commit("base")
    repo.write("f.txt", new)
    change = parse_patch_bytes(Path("p"), repo.git("diff", "--full-index").encode()).files[0]
    assert len(change.hunks) == 3
    repo.git("checkout", "--", "f.txt")
    only_last = subset_patch(change, [0, 2])
    (tmp_path / "subset.patch").write_text(only_last)
    repo.git("apply", "--check", "-v", str(tmp_path / "subset.patch"))
    assert "@@ -48,7 +50,7 @@" in only_last  # shifted by the kept first hunk (+2) only, not by the dropped -1
    repo.git("apply", str(tmp_path / "subset.patch"))
    assert (repo.path / "f.txt").read_text() == old.replace("line 5\n", "line 5\nadded a\nadded b\n").replace(
        "line 50\n", "line fifty\n")


# -------------------------------------------------------------------------------------- the command


def test_split_applies_in_order_and_adds_up_to_the_series(project: tuple[Path, Repo], tmp_path: Path) -> None:
    root, up = project
    result = run_cli("split", "--max-lines", str(LIMIT), "--json", cwd=root)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    out = root / "patches/stack"
    parts = data["parts"]
    assert len(parts) >= 5
    assert [Path(p["path"]) for p in parts] == sorted(out.glob("*.patch"))
    for p in parts:
        assert {"path", "lines", "files"} <= p.keys()
        assert p["lines"] <= LIMIT or p["oversized_hunk"], p
        patch = parse_patch(Path(p["path"]))
        assert patch.insertions + patch.deletions == p["lines"]
        assert [c.path for c in patch.files] == p["files"]
    oversized = [p for p in parts if p["oversized_hunk"]]
    assert [p["files"] for p in oversized] == [["test/test_mps.py"]] and oversized[0]["lines"] > LIMIT
    # The file split by hunks spans parts; the pinned group comes first and alone.
    assert sum("aten/src/ATen/mps/MPSStream.mm" in p["files"] for p in parts) >= 2
    assert parts[0]["title"] == "pool: Allocator changes" and parts[0]["files"] == ["aten/src/ATen/mps/MPSAllocator.mm"]
    assert all("aten/src/ATen/mps/MPSAllocator.mm" not in p["files"] for p in parts[1:])

    trees = apply_in_clone(up, tmp_path / "check", [Path(p["path"]) for p in parts])
    series = apply_in_clone(up, tmp_path / "whole", sorted((root / "patches").glob("000*.patch")))
    assert trees[-1] == series[-1] == data["tree"]
    assert [p["index"] for p in parts] == list(range(1, len(parts) + 1))
    assert [p["depends_on"] for p in parts] == [[]] + [[k] for k in range(1, len(parts))]
    first = parse_patch(root / "patches/0001-pool.patch")
    assert sum(p["lines"] for p in parts) == first.insertions + first.deletions + 2  # the follow-up adds two


def test_patch_files_are_format_patch_mails(project: tuple[Path, Repo]) -> None:
    root, up = project
    assert run_cli("split", "--max-lines", str(LIMIT), cwd=root).returncode == 0
    stack = read_stack(root / "patches/stack/stack.json")
    n = len(stack.parts)
    for part in stack.parts:
        text = (root / "patches/stack" / part.path).read_text()
        lines = text.splitlines()
        assert lines[0] == f"From {part.commit} Mon Sep 17 00:00:00 2001"
        assert lines[1] == "From: mpspatch <mpspatch@localhost>"
        assert lines[2].startswith("Date: ")
        assert lines[3] == f"Subject: [PATCH {part.index}/{n}] [MPS] {part.title} ({part.index}/{n})"
        assert part.path == f"{part.index:04d}-{part.slug}.patch"
        body = text.split("\n---\n", 1)[0]
        assert all(f"  {f}" in body for f in part.files)
        assert "\ndiff --git " in text
    assert stack.base == up.git("rev-parse", "v1.0").strip()
    assert stack.base_ref == "v1.0"
    assert not stack.within_limit  # the oversized test hunk stays a gap for the audit


def test_splitting_twice_is_byte_identical_and_leaves_the_clone_alone(project: tuple[Path, Repo]) -> None:
    root, up = project
    objects_before = up.git("count-objects", "-v")
    refs_before = up.git("for-each-ref")
    assert run_cli("split", "--max-lines", str(LIMIT), cwd=root).returncode == 0
    first = snapshot(root / "patches/stack")
    second_dir = root / "again"
    assert run_cli("split", "--max-lines", str(LIMIT), "--out", str(second_dir), cwd=root).returncode == 0
    assert snapshot(second_dir) == first
    assert run_cli("split", "--max-lines", str(LIMIT), cwd=root).returncode == 0  # replaces the old stack
    assert snapshot(root / "patches/stack") == first
    assert up.git("count-objects", "-v") == objects_before and up.git("for-each-ref") == refs_before
    assert not list((root / ".mpspatch" / "tmp").iterdir())  # the scratch repository is gone


def test_a_series_under_the_limit_is_one_part_and_stale_files_go(project: tuple[Path, Repo]) -> None:
    root, _ = project
    assert run_cli("split", "--max-lines", str(LIMIT), cwd=root).returncode == 0
    many = len(list((root / "patches/stack").glob("*.patch")))
    result = run_cli("split", "--json", cwd=root)  # [split].max_lines = 2000 from the config
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["max_lines"] == 2000 and data["within_limit"] is True
    # The whole series fits one PR: one part, named after the series, holding every file with its tests.
    titles = [p["title"] for p in data["parts"]]
    assert titles == [load_config(root / "mpspatch.toml").render.title]
    assert "test/test_mps.py" in data["parts"][0]["files"]
    assert len(list((root / "patches/stack").glob("*.patch"))) == len(titles) < many


def test_branches_form_a_chain_without_touching_head_or_worktree(project: tuple[Path, Repo]) -> None:
    root, up = project
    up.write("scratch.txt", "uncommitted work\n")
    up.git("add", "scratch.txt")
    up.write("README", "edited, not staged\n")
    head, status = up.git("rev-parse", "HEAD"), up.git("status", "--porcelain")
    index = up.git("ls-files", "-s")
    result = run_cli("split", "--max-lines", str(LIMIT), "--branches", "mps-stack", "--json", cwd=root)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    names = [b["name"] for b in data["branches"]]
    assert names == [f"mps-stack/{p['index']:02d}-{Path(p['path']).stem[5:]}" for p in data["parts"]]
    parent = up.git("rev-parse", "v1.0").strip()
    for branch in names:
        assert up.git("rev-parse", f"{branch}^").strip() == parent
        parent = up.git("rev-parse", branch).strip()
    assert up.git("rev-parse", f"{names[-1]}^{{tree}}").strip() == data["tree"]
    assert up.git("log", "-1", "--format=%s", names[0]).strip() == f"[MPS] pool: Allocator changes (1/{len(names)})"
    assert up.git("rev-parse", "HEAD") == head and up.git("status", "--porcelain") == status
    assert up.git("ls-files", "-s") == index and up.git("symbolic-ref", "HEAD").strip() == "refs/heads/main"

    again = run_cli("split", "--max-lines", str(LIMIT), "--branches", "mps-stack", cwd=root)
    assert again.returncode == 2 and "--force" in again.stderr
    assert again.stderr.count("\n") == 1
    forced = run_cli("split", "--max-lines", str(LIMIT), "--branches", "mps-stack", "--force", cwd=root)
    assert forced.returncode == 0, forced.stderr
    assert up.git("rev-parse", f"{names[-1]}^{{tree}}").strip() == data["tree"]
    up.git("worktree", "add", "-q", str(root.parent / "review"), names[1])
    busy = run_cli("split", "--max-lines", str(LIMIT), "--branches", "mps-stack", "--force", cwd=root)
    assert busy.returncode == 2 and "checked out" in busy.stderr


def test_a_bad_branch_prefix_is_refused_before_anything_is_written(project: tuple[Path, Repo]) -> None:
    root, up = project
    result = run_cli("split", "--max-lines", str(LIMIT), "--branches", "bad..name", cwd=root)
    assert result.returncode == 2 and "--branches" in result.stderr
    assert not (root / "patches/stack").exists()
    up.git("branch", "taken")
    result = run_cli("split", "--branches", "taken", cwd=root)
    assert result.returncode == 2 and "taken" in result.stderr


# ------------------------------------------------------------------------------------------ refusals


def test_a_split_that_loses_a_hunk_is_refused(project: tuple[Path, Repo], monkeypatch: pytest.MonkeyPatch) -> None:
    root, _ = project
    real = split_module.plan_parts

    def drop_one_hunk(*args: object, **kwargs: object) -> tuple[PlannedPart, ...]:
        plan = real(*args, **kwargs)  # type: ignore[arg-type]
        first = plan[1]
        return (plan[0], PlannedPart(first.title, first.slug, first.bucket, first.units[:-1],
                                     first.lines, first.oversized_hunk), *plan[2:])

    monkeypatch.setattr(split_module, "plan_parts", drop_one_hunk)
    with pytest.raises(SplitProofError, match="nothing was written") as caught:
        split_series(Workspace(load_config(root / "mpspatch.toml")), max_lines=LIMIT)
    assert caught.value.exit_code == 3
    assert not (root / "patches/stack").exists()


def test_a_split_that_adds_and_removes_junk_is_refused(project: tuple[Path, Repo],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Intermediate states carrying lines the series never had still reach the right final tree; the
    net line count check (each part grows the files by exactly its hunks' net) is what catches that."""
    root, _ = project
    real = split_module.subset_patch

    def with_junk(change: object, hunks: object) -> str:
        text = real(change, hunks)  # type: ignore[arg-type]
        head = re.search(r"^@@ -(\d+),(\d+) \+(\d+),(\d+) @@", text, re.MULTILINE)
        assert head
        a, b, c, d = (int(x) for x in head.groups())
        before, after = text[: head.start()], text[head.end():]
        return before + f"@@ -{a},{b} +{c},{d + 1} @@" + after.replace("\n+", "\n+junk\n+", 1)

    monkeypatch.setattr(split_module, "subset_patch", with_junk)
    with pytest.raises(SplitProofError, match=r"part \d+ changes the line count by \+\d+, its hunks by [-+]\d+"):
        split_series(Workspace(load_config(root / "mpspatch.toml")), max_lines=LIMIT)
    assert not (root / "patches/stack").exists()


def test_a_series_that_does_not_apply_at_base_is_bad_input(project: tuple[Path, Repo]) -> None:
    root, _ = project
    (root / "patches/0002-fix.patch").write_text((root / "patches/0001-pool.patch").read_text())
    result = run_cli("split", "--max-lines", str(LIMIT), "--json", cwd=root)
    # Exit 2 like rebase, drift and verify on the same series; bad input prints no JSON, one line on stderr.
    assert result.returncode == 2, result.stderr
    assert result.stdout == "" and result.stderr.count("\n") == 1
    assert "0002-fix.patch" in result.stderr and "does not apply" in result.stderr
    assert not (root / "patches/stack").exists()


def test_an_out_folder_with_other_files_is_not_replaced(project: tuple[Path, Repo]) -> None:
    root, _ = project
    (root / "keep").mkdir()
    (root / "keep/notes.txt").write_text("mine\n")
    result = run_cli("split", "--out", "keep", cwd=root)
    assert result.returncode == 2 and "notes.txt" in result.stderr
    assert (root / "keep/notes.txt").read_text() == "mine\n"


# ----------------------------------------------------------------------------------- part context


def test_part_context_states_place_dependencies_and_size(project: tuple[Path, Repo]) -> None:
    root, _ = project
    assert run_cli("split", "--max-lines", str(LIMIT), cwd=root).returncode == 0
    stack = load_current_stack(load_config(root / "mpspatch.toml"))
    n = len(stack.parts)
    first, second = part_context(stack, 1), part_context(stack, 2)
    assert (first.index, first.total, first.depends_on) == (1, n, ())
    assert first.followed_by[0].index == 2
    assert second.depends_on[0].title == "pool: Allocator changes"
    assert second.subject == f"[MPS] {stack.parts[1].title} (2/{n})"
    assert second.lines == stack.parts[1].lines and second.files == stack.parts[1].files
    with pytest.raises(Exception, match="--part"):
        part_context(stack, n + 1)
    (root / "patches/0002-fix.patch").write_text((root / "patches/0002-fix.patch").read_text() + "\n")
    with pytest.raises(Exception, match="changed since"):
        load_current_stack(load_config(root / "mpspatch.toml"))


# ----------------------------------------------------------------------------------- awkward files


def test_awkward_files_split_and_prove(tmp_path: Path) -> None:
    """CRLF lines, a missing final newline, a mode change and a space in the name are split by hunks; bytes
    that are not UTF-8 and a path git must quote move as one piece. Every case still proves."""
    up = Repo.create(tmp_path / "upstream")
    body = [f"line {i}" for i in range(80)]
    files = {
        "aten/src/ATen/mps/crlf.mm": ("\r\n".join(body) + "\r\n").encode(),
        "aten/src/ATen/mps/no_eol.h": ("\n".join(body)).encode(),
        "aten/src/ATen/mps/with space.h": ("\n".join(body) + "\n").encode(),
        "aten/src/ATen/mps/latin1.h": ("\n".join(body) + "\n").encode(),
        "aten/src/ATen/mps/t\u00e4b.h": ("\n".join(body) + "\n").encode(),
        "aten/src/ATen/mps/tab\tname.h": ("\n".join(body) + "\n").encode(),
    }
    for name, data in files.items():
        up.write(name, data)
    up.commit("base", tag="v1.0")

    def edit(data: bytes, sep: bytes = b"\n", extra: bytes = b"") -> bytes:
        lines = data.split(sep)
        for i in (5, 30, 55, 79):
            lines[i] = lines[i] + b" changed" + extra
        return sep.join(lines)

    up.write("aten/src/ATen/mps/crlf.mm", edit(files["aten/src/ATen/mps/crlf.mm"], b"\r\n"))
    up.write("aten/src/ATen/mps/no_eol.h", edit(files["aten/src/ATen/mps/no_eol.h"]))
    up.write("aten/src/ATen/mps/with space.h", edit(files["aten/src/ATen/mps/with space.h"]))
    (up.path / "aten/src/ATen/mps/with space.h").chmod(0o755)
    up.write("aten/src/ATen/mps/latin1.h", edit(files["aten/src/ATen/mps/latin1.h"], extra="\u00e9".encode("latin-1")))
    up.write("aten/src/ATen/mps/t\u00e4b.h", edit(files["aten/src/ATen/mps/t\u00e4b.h"]))
    up.write("aten/src/ATen/mps/tab\tname.h", edit(files["aten/src/ATen/mps/tab\tname.h"]))
    up.git("add", "-A")
    patch = subprocess.run(["git", "diff", "--cached", "--full-index", "--binary", "v1.0"], cwd=up.path,
                           capture_output=True, check=True, env=git_env()).stdout
    up.git("reset", "-q", "--hard")
    root = tmp_path / "project"
    (root / "patches").mkdir(parents=True)
    (root / "patches/awkward.patch").write_bytes(patch)
    write_config(root, patches=["patches/awkward.patch"])
    result = run_cli("split", "--max-lines", "4", "--json", cwd=root)
    assert result.returncode == 0, result.stderr
    parts = json.loads(result.stdout)["parts"]
    spans = {}
    for p in parts:
        for f in p["files"]:
            spans[f] = spans.get(f, 0) + 1
    assert spans["aten/src/ATen/mps/crlf.mm"] == 2  # four 2-line hunks, two per part
    assert spans["aten/src/ATen/mps/no_eol.h"] == 2
    assert spans["aten/src/ATen/mps/with space.h"] == 2
    assert spans["aten/src/ATen/mps/t\u00e4b.h"] == 2
    assert spans["aten/src/ATen/mps/latin1.h"] == 1 and spans["aten/src/ATen/mps/tab\tname.h"] == 1
    whole = [p for p in parts if p["oversized_hunk"]]
    assert sorted(f for p in whole for f in p["files"]) == [
        "aten/src/ATen/mps/latin1.h", "aten/src/ATen/mps/tab\tname.h"]
    assert {p["title"].split(",")[0] for p in parts} == {"Core MPS"}
    trees = apply_in_clone(up, tmp_path / "check", [Path(p["path"]) for p in parts])
    series = apply_in_clone(up, tmp_path / "whole", [root / "patches/awkward.patch"])
    assert trees[-1] == series[-1]
    assert Repo(tmp_path / "check").git("ls-files", "-s", "aten/src/ATen/mps/with space.h").startswith("100755")


def realistic_sources(seed: int) -> tuple[dict[str, str], dict[str, str]]:
    """Base and series text of C++-like files: many close hunks, blocks rewritten around a lone `}` or blank
    line (lines so frequent that git's diff sets them aside or not depending on the rest of the file),
    hunks fewer than 6 lines apart, and a file without a final newline on either side."""
    rnd = random.Random(seed)
    base: dict[str, str] = {}
    series: dict[str, str] = {}
    for k in range(4):
        old: list[str] = []
        new: list[str] = []
        for i in range(70):
            function = [f"void op{k}_{i}(Tensor& t) {{", "  auto& s = stream();", "  if (!s) {", "    return;",
                        "  }", "}", ""]
            old += function
            new += function
            roll = rnd.random()
            if roll < 0.25:  # a rewritten block with a frequent line in the middle
                size = rnd.randrange(2, 7)
                old += [f"  legacy_{k}_{i}_{j}(t);" for j in range(size)] + [rnd.choice(["}", ""])]
                old += [f"  legacy_tail_{k}_{i}_{j}(t);" for j in range(size)]
                new += [f"  pooled_{k}_{i}_{j}(t);" for j in range(size + rnd.randrange(-1, 2))] + ["}"]
                new += [f"  pooled_tail_{k}_{i}_{j}(t);" for j in range(size)]
            elif roll < 0.45:  # two small edits 2 to 5 lines apart: one hunk in git's eyes, or two close ones
                gap = [f"  keep_{k}_{i}_{j}();" for j in range(rnd.randrange(2, 6))]
                old += [f"  a_{k}_{i}();", *gap, f"  b_{k}_{i}();"]
                new += [f"  a_{k}_{i}(s);", *gap, f"  b_{k}_{i}(s);", "  sync();"]
        path = f"aten/src/ATen/mps/Pool{k}.mm"
        last = "" if k == 3 else "\n"  # the last file ends without a newline, before and after
        base[path] = "\n".join(old) + last
        series[path] = "\n".join([*new, "// stream pool"]) + last
    return base, series


@pytest.mark.parametrize("seed", [11])
def test_every_limit_splits_a_realistic_patch_without_a_proof_failure(tmp_path: Path, seed: int) -> None:
    """git's diff of a part is not always the part's hunks: the split must measure it, keep parts under the
    limit, and never stop with exit 3."""
    up = Repo.create(tmp_path / "upstream")
    base, series = realistic_sources(seed)
    for path, text in base.items():
        up.write(path, text)
    up.commit("base", tag="v1.0")
    for path, text in series.items():
        up.write(path, text)
    up.git("add", "-A")
    patch = up.git("diff", "--cached", "--full-index", "v1.0")
    up.git("reset", "-q", "--hard")
    assert patch.count("\n@@ ") > 60 and "\\ No newline at end of file" in patch
    root = tmp_path / "project"
    (root / "patches").mkdir(parents=True)
    (root / "patches/pool.patch").write_text(patch)
    write_config(root, patches=["patches/pool.patch"])
    whole = parse_patch(root / "patches/pool.patch")
    for limit in (2000, 1500, 1000, 700, 500, 300, 200, 150, 100, 80, 60, 40, 30, 20):
        result = run_cli("split", "--max-lines", str(limit), "--json", cwd=root)
        assert result.returncode == 0, f"--max-lines {limit}: {result.stderr}"
        data = json.loads(result.stdout)
        for p in data["parts"]:
            assert p["lines"] <= limit or p["oversized_hunk"], (limit, p)
            written = parse_patch(Path(p["path"]))
            assert written.insertions + written.deletions == p["lines"]
        net = sum(p["insertions"] - p["deletions"] for p in data["parts"])
        assert net == whole.insertions - whole.deletions
        if limit >= whole.insertions + whole.deletions:
            assert len(data["parts"]) == 1


def test_a_blobless_clone_is_enough_and_gains_nothing(project: tuple[Path, Repo], tmp_path: Path) -> None:
    root, up = project
    up.git("config", "uploadpack.allowFilter", "true")
    partial = tmp_path / "partial"
    subprocess.run(["git", "clone", "-q", "--filter=blob:none", "--no-checkout", f"file://{up.path}", str(partial)],
                   check=True, env=git_env())
    clone = Repo(partial)
    clone.git("fetch", "-q", "--tags")
    before = clone.git("count-objects", "-v")
    text = (root / "mpspatch.toml").read_text().replace('checkout = "../upstream"', f'checkout = "{partial}"')
    (root / "mpspatch.toml").write_text(text)
    result = run_cli("split", "--max-lines", str(LIMIT), "--json", cwd=root)
    assert result.returncode == 0, result.stderr
    assert len(json.loads(result.stdout)["parts"]) >= 5
    assert clone.git("count-objects", "-v") == before  # the blobs went to the shadow repository


# ------------------------------------------------------------------------------ a stack reviewers want


def build_four_patch_project(root: Path, extra: str = "") -> tuple[Path, Repo, list[str]]:
    """An upstream at v1.0 and a 4-patch `git format-patch` series; each patch changes code in two categories
    and the tests of that code. Returns the project, the upstream and the tree after each patch."""
    up = Repo.create(root / "upstream")
    up.write("aten/src/ATen/mps/MPSStream.mm", source("MPSStream.mm", 24))
    up.write("aten/src/ATen/native/mps/operations/Linear.mm", source("Linear.mm", 24))
    up.write("test/test_mps.py", "import unittest\n\n\nclass TestMPS(unittest.TestCase):\n    pass\n")
    up.commit("base", tag="v1.0")
    subjects = ["Add the stream pool", "Use the pool in Linear", "Pool events", "Document the pool"]
    trees = []
    for n, subject in enumerate(subjects):
        up.write("aten/src/ATen/mps/MPSStream.mm",
                 source("MPSStream.mm", 24, changed=frozenset(i for k in range(n + 1) for i in range(k * 6, k * 6 + 3)),
                        grow=3))
        up.write("aten/src/ATen/native/mps/operations/Linear.mm",
                 source("Linear.mm", 24, changed=frozenset(i for k in range(n + 1) for i in range(k * 6, k * 6 + 2)),
                        grow=2))
        tests = "".join(f"    def test_{k}(self):\n        self.assertTrue({k})\n\n" for k in range(4 * (n + 1)))
        up.write("test/test_mps.py", f"import unittest\n\n\nclass TestMPS(unittest.TestCase):\n{tests}")
        up.commit(subject)
        trees.append(up.git("rev-parse", "HEAD^{tree}").strip())
    project = root / "project"
    (project / "patches").mkdir(parents=True)
    up.git("format-patch", "-q", "v1.0", "-o", str(project / "patches"))
    names = sorted(p.name for p in (project / "patches").glob("*.patch"))
    up.git("reset", "-q", "--hard", "v1.0")
    write_config(project, patches=[f"patches/{n}" for n in names], extra=extra)
    return project, up, trees


def test_a_four_patch_series_keeps_its_patch_boundaries(tmp_path: Path) -> None:
    root, _, after = build_four_patch_project(tmp_path)
    patches = sorted((root / "patches").glob("*.patch"))
    sizes = [parse_patch(p).insertions + parse_patch(p).deletions for p in patches]
    limit = max(sizes) + 1  # every patch fits alone, no two fit together
    assert sum(sorted(sizes)[:2]) > limit
    result = run_cli("split", "--max-lines", str(limit), "--json", cwd=root)
    assert result.returncode == 0, result.stderr
    parts = json.loads(result.stdout)["parts"]
    trees = [p.tree for p in read_stack(root / "patches/stack/stack.json").parts]
    # One part per patch, each ending exactly where its patch ends, titled by the patch's subject; each part
    # carries the tests its patch added instead of all tests going into a last part of their own.
    assert trees == after
    assert [p["title"] for p in parts] == ["Add the stream pool", "Use the pool in Linear", "Pool events",
                                           "Document the pool"]
    assert all("test/test_mps.py" in p["files"] for p in parts)


def test_small_whole_patches_are_packed_together(tmp_path: Path) -> None:
    root, _, after = build_four_patch_project(tmp_path)
    patches = sorted((root / "patches").glob("*.patch"))
    sizes = [parse_patch(p).insertions + parse_patch(p).deletions for p in patches]
    limit = sizes[0] + sizes[1]  # the first two fit together; the whole series does not
    result = run_cli("split", "--max-lines", str(limit), "--json", cwd=root)
    assert result.returncode == 0, result.stderr
    parts = json.loads(result.stdout)["parts"]
    trees = [p.tree for p in read_stack(root / "patches/stack/stack.json").parts]
    # Every part ends at a patch boundary: packing joins whole patches, it never cuts one.
    assert set(trees) <= set(after) and trees[-1] == after[-1] and len(parts) < 4
    assert trees[0] == after[1] and parts[0]["title"] == "Add the stream pool; Use the pool in Linear"


def test_tests_travel_with_their_group(tmp_path: Path) -> None:
    """A one-patch series over the limit: the group's `tests` go with the group's code, not into a last part."""
    pinned = '''
[[split.groups]]
title = "Stream pool core"
paths = ["aten/src/ATen/mps/MPSAllocator.mm", "aten/src/ATen/mps/MPSStream.mm"]
tests = ["test/test_mps.py"]
'''
    root, up = build_project(tmp_path)
    write_config(root, patches=["patches/0001-pool.patch"], extra=pinned)
    result = run_cli("split", "--max-lines", "100", "--json", cwd=root)
    assert result.returncode == 0, result.stderr
    parts = json.loads(result.stdout)["parts"]
    assert len(parts) > 1
    with_tests = [p for p in parts if "test/test_mps.py" in p["files"]]
    assert len(with_tests) == 1 and with_tests[0]["title"].startswith("Stream pool core")
    assert "aten/src/ATen/mps/MPSStream.mm" in with_tests[0]["files"]
    assert with_tests[0]["index"] < len(parts)  # not a tests-only last part
    # The proof still holds: the parts add up to the series in a plain clone.
    stack = sorted((root / "patches/stack").glob("*.patch"))
    assert apply_in_clone(up, tmp_path / "verify", stack)[-1] == json.loads(result.stdout)["tree"]


def test_a_tests_only_part_takes_the_code_before_it_when_it_fits(project: tuple[Path, Repo]) -> None:
    root, _ = project
    changes = parse_patch_bytes(Path("p"), (root / "patches/0001-pool.patch").read_bytes()).files
    group = SplitGroup("Stream pool core", ("aten/src/ATen/mps/MPSAllocator.mm", "aten/src/ATen/mps/MPSStream.mm"),
                       ("test/test_mps.py",))
    plan = [p for p in plan_parts(changes, (group,), (), 100) if p.bucket == "Stream pool core"]
    # Allocator (14 lines) and MPSStream.mm (96) do not fit together; the tests (84) alone would be a part with
    # no code, so the last hunks of MPSStream.mm move in with them.
    last = plan[-1]
    paths = [changes[u.file].path for u in last.units]
    assert paths[-1] == "test/test_mps.py" and "aten/src/ATen/mps/MPSStream.mm" in paths
    assert all(p.lines <= 100 for p in plan)
    covered = [(u.file, h) for p in plan for u in p.units for h in u.hunks]
    assert len(covered) == len(set(covered)) == sum(len(changes[i].hunks) for i in {f for f, _ in covered})


def test_a_group_with_a_bad_tests_key_is_refused(tmp_path: Path) -> None:
    root, _ = build_project(tmp_path)
    write_config(root, patches=["patches/0001-pool.patch"],
                 extra='[[split.groups]]\ntitle = "Core"\npaths = ["aten/**"]\ntests = "test/test_mps.py"\n')
    result = run_cli("split", cwd=root)
    assert result.returncode == 2 and "tests" in result.stderr and "Traceback" not in result.stderr
