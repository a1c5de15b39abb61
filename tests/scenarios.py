"""Shared rebase/drift scenarios: a PyTorch-shaped upstream with releases, and a downstream series against v1.0.

The rebase tests and the drift tests build the same repositories from here and assert the same expectations
(EXPECT), so a drift forecast and the rebase it forecasts are checked against one truth.

Upstream history (linear `main`, every commit with pinned identity and date; most carry PyTorch's
`Pull Request resolved` trailer):

- v1.0  the base the series is written against.
- v1.1  clean drift: upstream edits patched files away from the patch's hunks, and unrelated files.
- v1.2  v1.1 plus PR 190375 landing part of the patch itself: the whole torch/mps/__init__.py change and the
        first hunk of MPSStream.mm, byte for byte (absorbed and partly absorbed).
- v1.3  v1.2 plus conflicting work: MPSStream.mm (2 regions), Linear.mm (1 region) and test/test_mps.py
        (1 region), one of them pushed without a trailer.
- v1.4  exists only in the upstream, not in the user's clone: the "fetch it first" case.

Series layouts (files under project/patches/):

- "two" (default): 0001-stream-pool.patch (C++/ObjC++/YAML, adds a header) then 0002-python-and-tests.patch
  (Python), the second made on top of the first. Onto v1.3 the rebase stops on 0001, then on 0002.
- "single": one cumulative patch with everything, like the real dropbox/dML file.
- "inconsistent": 0002 was made against v1.0 instead of on top of 0001 and edits the same lines, so the
  series cannot apply in order (the test-class clash the real series had).
"""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from support import Repo, git_env, write_config

STREAM_H = "aten/src/ATen/mps/MPSStream.h"
STREAM_MM = "aten/src/ATen/mps/MPSStream.mm"
POOL_H = "aten/src/ATen/mps/MPSStreamPool.h"
ALLOCATOR_MM = "aten/src/ATen/mps/MPSAllocator.mm"
LINEAR_MM = "aten/src/ATen/native/mps/operations/Linear.mm"
COPY_MM = "aten/src/ATen/native/mps/operations/Copy.mm"
NATIVE_YAML = "aten/src/ATen/native/native_functions.yaml"
TORCH_MPS = "torch/mps/__init__.py"
TEST_MPS = "test/test_mps.py"
UNRELATED = ("c10/core/Allocator.h", "torch/__init__.py", "README.md")

PR_URL = "https://github.com/pytorch/pytorch/pull/"
ABSORBING_PR = 190375  # upstream's own 32-stream pool with Python bindings


# ------------------------------------------------------------------------------------------- file bodies


def unit(stem: str, count: int, bodies: Mapping[int, tuple[str, ...]] | None = None,
         extra: tuple[str, ...] = (), header: str = "#include <ATen/mps/MPSStream.h>") -> str:
    """An ObjC++/C++ translation unit: `count` small functions; `bodies` replaces function i's two body lines;
    `extra` lines go just before the closing namespace (where both sides like to add code)."""
    bodies = bodies or {}
    lines = [f"//  {stem}", header, "", "namespace at::mps {", ""]
    for i in range(count):
        body = bodies.get(i, (f"  // {stem} step {i}", f"  return value * {i + 2} + {i};"))
        lines += [f"static int {stem.lower()}_step_{i}(int value) {{", *body, "}", ""]
    lines += list(extra)
    lines.append("} // namespace at::mps")
    return "\n".join(lines) + "\n"


def stream_header(methods: tuple[str, ...] = ()) -> str:
    lines = ["#pragma once", "", "#include <cstdint>", "", "namespace at::mps {", "", "class MPSStream {",
             " public:", "  explicit MPSStream(int64_t id);", "  ~MPSStream();", "  void synchronize();",
             "  int64_t id() const { return id_; }", *methods, "", " private:", "  int64_t id_;", "};", "",
             "MPSStream* getCurrentMPSStream();", "MPSStream* getDefaultMPSStream();", "",
             "} // namespace at::mps"]
    return "\n".join(lines) + "\n"


def native_yaml(extra: tuple[str, ...] = (), tail: tuple[str, ...] = ()) -> str:
    entries = []
    for name in ("abs", "add.Tensor", "addmm", "linear", "mm", "relu", "softmax.int", "sum"):
        entries += [f"- func: {name}(Tensor self) -> Tensor", "  dispatch:", f"    MPS: {name.split('.')[0]}_mps",
                    ""]
    return "\n".join([*extra, *entries, *tail]).rstrip("\n") + "\n"


def torch_mps(extra: tuple[str, ...] = ()) -> str:
    lines = ['"""MPS backend helpers."""', "", "import torch", "", "", "def synchronize() -> None:",
             "    torch._C._mps_deviceSynchronize()", "", "", "def device_count() -> int:",
             "    return int(torch._C._mps_is_available())", *extra]
    return "\n".join(lines) + "\n"


def test_file(classes: tuple[str, ...] = (), comment: str = "# Tests for the MPS backend.") -> str:
    lines = [comment, "import unittest", "", "import torch", "", "", "class TestMPSBasics(unittest.TestCase):",
             "    def test_add(self):", "        self.assertEqual(1 + 1, 2)", "", "    def test_mm(self):",
             "        self.assertEqual(2 * 3, 6)", "", *classes, "", 'if __name__ == "__main__":',
             "    unittest.main()"]
    return "\n".join(lines) + "\n"


POOL_TAIL = ("static int mpsstream_pool_size() {", "  return kStreamPoolSize;", "}", "")
UPSTREAM_TAIL = ("static int mpsstream_query_all() {", "  return synchronize_all_streams();", "}", "")
PATCH_STREAM_BODIES = {
    1: ("  // acquire a stream from the pool instead of the global one", "  return acquire_stream(value);"),
    6: ("  std::lock_guard<std::mutex> guard(pool_mutex());", "  return value * 8 + 6;"),
}
PARALLEL_CLASS = ("class TestMPSParallelInference(unittest.TestCase):", "    def test_threads(self):",
                  "        self.assertTrue(torch.mps.stream_pool_size() >= 1)", "")
UPSTREAM_TEST_CLASS = ("class TestMPSStreams(unittest.TestCase):", "    def test_stream_count(self):",
                       "        self.assertEqual(torch.mps.device_count(), 1)", "")
POOL_BINDING = ("", "", "def stream_pool_size() -> int:", '    """How many streams the MPS stream pool holds."""',
                "    return torch._C._mps_streamPoolSize()")


def v10_files() -> dict[str, str]:
    return {
        STREAM_H: stream_header(),
        STREAM_MM: unit("MPSStream", 10),
        ALLOCATOR_MM: unit("MPSAllocator", 6),
        LINEAR_MM: unit("Linear", 6, header="#include <ATen/native/mps/OperationUtils.h>"),
        COPY_MM: unit("Copy", 5, header="#include <ATen/native/mps/OperationUtils.h>"),
        NATIVE_YAML: native_yaml(),
        TORCH_MPS: torch_mps(),
        TEST_MPS: test_file(),
        "c10/core/Allocator.h": "#pragma once\n\nnamespace c10 {\nstruct Allocator {};\n} // namespace c10\n",
        "torch/__init__.py": '"""PyTorch."""\n\n__version__ = "1.0"\n',
        "README.md": "# A PyTorch-shaped upstream for tests\n",
    }


# What the downstream series changes, file by file (the "after" contents against v1.0).
def patch1_files() -> dict[str, str]:
    return {
        STREAM_H: stream_header(("  static int poolSize();",)),
        STREAM_MM: unit("MPSStream", 10, PATCH_STREAM_BODIES, POOL_TAIL),
        POOL_H: "#pragma once\n\nnamespace at::mps {\nconstexpr int kStreamPoolSize = 32;\n} // namespace at::mps\n",
        LINEAR_MM: unit("Linear", 6, {2: ("  auto* stream = getCurrentMPSStream();", "  return value * 4 + 2;")},
                        header="#include <ATen/native/mps/OperationUtils.h>"),
        NATIVE_YAML: native_yaml(tail=("- func: _mps_stream_pool_size() -> int", "  dispatch:",
                                       "    MPS: _mps_stream_pool_size")),
    }


def patch2_files() -> dict[str, str]:
    return {TORCH_MPS: torch_mps(POOL_BINDING), TEST_MPS: test_file(PARALLEL_CLASS)}


def inconsistent_patch2_files() -> dict[str, str]:
    # Edits MPSStream.mm's first patched function differently, as if written against v1.0 alone.
    return {STREAM_MM: unit("MPSStream", 10, {1: ("  // a second idea for the same line", "  return value;")})}


# ------------------------------------------------------------------------------------- upstream history

@dataclass(frozen=True)
class UpstreamCommit:
    subject: str
    pull_request: int | None
    files: Mapping[str, str]
    tag: str | None = None


def _history() -> list[UpstreamCommit]:
    hook = ("  // MPSStream step 3, now with a profiler hook", "  return value * 5 + 3;")
    lock = ("  // upstream: serialize through the device lock", "  return value * 9;")
    v11_stream = unit("MPSStream", 10, {3: hook})
    v12_stream = unit("MPSStream", 10, {1: PATCH_STREAM_BODIES[1], 3: hook})
    v13_stream = unit("MPSStream", 10, {1: PATCH_STREAM_BODIES[1], 3: hook, 6: lock}, UPSTREAM_TAIL)
    return [
        UpstreamCommit("[MPS] Add a profiler hook to MPSStream", 170001, {STREAM_MM: v11_stream}),
        UpstreamCommit("[MPS] Register logsumexp", 170002,
                       {NATIVE_YAML: native_yaml(extra=("- func: logsumexp(Tensor self) -> Tensor", "  dispatch:",
                                                        "    MPS: logsumexp_mps", "")),
                        "c10/core/Allocator.h": "#pragma once\n\nnamespace c10 {\nstruct Allocator {\n  virtual "
                                                "~Allocator() = default;\n};\n} // namespace c10\n",
                        "torch/__init__.py": '"""PyTorch."""\n\n__version__ = "1.1"\n'},
                       tag="v1.1"),
        UpstreamCommit("[MPS] Add a 32-stream pool with Python bindings", ABSORBING_PR,
                       {STREAM_MM: v12_stream, TORCH_MPS: torch_mps(POOL_BINDING),
                        "torch/__init__.py": '"""PyTorch."""\n\n__version__ = "1.2"\n'}, tag="v1.2"),
        UpstreamCommit("[MPS] Serialize MPSStream through the device lock", 171000, {STREAM_MM: v13_stream}),
        UpstreamCommit("[MPS] Fuse the linear bias add", 171001,
                       {LINEAR_MM: unit("Linear", 6, {2: ("  // fused bias add", "  return value * 4 + 3;")},
                                        header="#include <ATen/native/mps/OperationUtils.h>")}),
        UpstreamCommit("Add stream tests for MPS", None,
                       {TEST_MPS: test_file(UPSTREAM_TEST_CLASS)}),
        UpstreamCommit("[MPS] Touch the allocator", 171003,
                       {ALLOCATOR_MM: unit("MPSAllocator", 6, {0: ("  // cached", "  return value + 1;")}),
                        "torch/__init__.py": '"""PyTorch."""\n\n__version__ = "1.3"\n'}, tag="v1.3"),
    ]


def commit_message(c: UpstreamCommit) -> str:
    body = f"{c.subject}\n\nSummary of the upstream change.\n"
    if c.pull_request is not None:
        body += f"\nPull Request resolved: {PR_URL}{c.pull_request}\nApproved by: https://github.com/reviewer\n"
    return body


# ---------------------------------------------------------------------------------------- expectations


@dataclass(frozen=True)
class Conflict:
    path: str
    regions: int
    pull_requests: tuple[int | None, ...]  # every upstream commit between base and onto touching the path


@dataclass(frozen=True)
class Absorbed:
    path: str
    pull_requests: tuple[int, ...]
    whole_file: bool  # False: only some hunks landed upstream ("partly absorbed")


@dataclass(frozen=True)
class Expect:
    conflicts: tuple[Conflict, ...] = ()
    absorbed: tuple[Absorbed, ...] = ()
    # For the "two" layout: the conflicts `rebase` stops on, patch by patch.
    conflicts_by_patch: tuple[tuple[str, ...], ...] = ()


_ABSORBED_AT_V12 = (Absorbed(STREAM_MM, (ABSORBING_PR,), whole_file=False),
                    Absorbed(TORCH_MPS, (ABSORBING_PR,), whole_file=True))

EXPECT: dict[str, Expect] = {
    "v1.1": Expect(),
    "v1.2": Expect(absorbed=_ABSORBED_AT_V12),
    "v1.3": Expect(
        conflicts=(
            Conflict(STREAM_MM, 2, (171000, ABSORBING_PR, 170001)),
            Conflict(LINEAR_MM, 1, (171001,)),
            Conflict(TEST_MPS, 1, (None,)),
        ),
        absorbed=_ABSORBED_AT_V12,
        conflicts_by_patch=((STREAM_MM, LINEAR_MM), (TEST_MPS,)),
    ),
}


# ------------------------------------------------------------------------------------------- building


@dataclass
class Scenario:
    root: Path
    upstream: Repo  # where the user's clone came from (has v1.4, which the clone lacks)
    checkout: Path  # the user's clone: [upstream].checkout
    project: Path  # holds mpspatch.toml and patches/
    config: Path
    patches: tuple[Path, ...]
    layout: str
    tags: dict[str, str] = field(default_factory=dict)  # tag -> commit SHA

    def git(self, repo: Path, *args: str, check: bool = True) -> str:
        result = subprocess.run(["git", *args], cwd=repo, env=git_env(), capture_output=True, check=False)
        if check and result.returncode != 0:
            raise AssertionError(f"git {' '.join(args)} failed in {repo}:\n{result.stderr.decode()}")
        return result.stdout.decode("utf-8", errors="replace")

    def tree_of(self, ref: str) -> str:
        return self.git(self.checkout, "rev-parse", f"{ref}^{{tree}}").strip()

    def file_at(self, ref: str, path: str) -> str:
        return self.git(self.checkout, "show", f"{ref}:{path}")


def diff_against(repo: Repo, base: str, files: Mapping[str, str]) -> str:
    """A real `git diff --full-index` of `files` written over `base`, made in a scratch branch."""
    repo.git("checkout", "-q", "--detach", base)
    for path, text in files.items():
        repo.write(path, text)
    repo.git("add", "-A")
    patch = repo.git("diff", "--cached", "--full-index", "--no-color", "--no-renames", base)
    repo.git("reset", "-q", "--hard", base)
    return patch


def build_upstream(path: Path) -> tuple[Repo, dict[str, str]]:
    upstream = Repo.create(path)
    for rel, text in v10_files().items():
        upstream.write(rel, text)
    tags = {"v1.0": upstream.commit("Initial import\n\nPull Request resolved: " + PR_URL + "100000\n", tag="v1.0")}
    for commit in _history():
        for rel, text in commit.files.items():
            upstream.write(rel, text)
        sha = upstream.commit(commit_message(commit), tag=commit.tag)
        if commit.tag:
            tags[commit.tag] = sha
    return upstream, tags


def build_scenario(root: Path, layout: str = "two") -> Scenario:
    """Upstream, the user's clone of it (tags v1.0..v1.3), and a project whose series targets v1.0."""
    upstream, tags = build_upstream(root / "upstream-origin")
    checkout = root / "pytorch"
    subprocess.run(["git", "clone", "-q", str(upstream.path), str(checkout)], env=git_env(), check=True,
                   capture_output=True)
    # v1.4 arrives upstream after the user cloned: the clone does not have it until a fetch.
    upstream.write("README.md", "# A PyTorch-shaped upstream for tests, 1.4\n")
    tags["v1.4"] = upstream.commit(commit_message(UpstreamCommit("Bump README", 172000, {})), tag="v1.4")

    project = root / "project"
    (project / "patches").mkdir(parents=True)
    scratch = Repo(checkout)
    names: list[str]
    if layout == "single":
        names = ["cumulative-v1.0-to-mps-stream-pool.patch"]
        (project / "patches" / names[0]).write_text(
            diff_against(scratch, "v1.0", {**patch1_files(), **patch2_files()}))
    elif layout in ("two", "inconsistent"):
        names = ["0001-stream-pool.patch", "0002-python-and-tests.patch"]
        first = diff_against(scratch, "v1.0", patch1_files())
        if layout == "two":
            second = diff_against(scratch, "v1.0", {**patch1_files(), **patch2_files()})
            second = _only_files(second, set(patch2_files()))
        else:
            second = diff_against(scratch, "v1.0", inconsistent_patch2_files())
        (project / "patches" / names[0]).write_text(first)
        (project / "patches" / names[1]).write_text(second)
    else:
        raise ValueError(f"unknown layout {layout!r}")
    scratch.git("checkout", "-q", "main")
    config = write_config(project, patches=[f"patches/{n}" for n in names], checkout="../pytorch",
                          extra='\n[paths]\nstate = ".mpspatch"\n')
    text = config.read_text().replace(
        'allowed_paths = ["aten/src/ATen/mps/", ',
        'allowed_paths = ["aten/src/ATen/native/native_functions.yaml", "aten/src/ATen/mps/", ')
    config.write_text(text)
    return Scenario(root=root, upstream=upstream, checkout=checkout, project=project, config=config,
                    patches=tuple(project / "patches" / n for n in names), layout=layout, tags=tags)


def _only_files(patch: str, keep: set[str]) -> str:
    """The sections of a multi-file `git diff` that touch `keep` (the second patch of a stacked series)."""
    sections = patch.split("diff --git ")
    kept = [s for s in sections[1:] if s.split(" ", 1)[0][2:] in keep]
    return "".join("diff --git " + s for s in kept)
