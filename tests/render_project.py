"""A throwaway mpspatch project for status and render tests: a real upstream repo, a real patch made by
`git diff`, a real lock, the shipped checklist, and evidence written with evidence.write_run.

Evidence here is real evidence in the real format (what `mpspatch verify` writes), made by hand because
the stages it describes need an Apple GPU. Every identity and date is pinned, so SHAs and run ids are stable
and golden files can hold them.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from support import Repo, cpp_source

from mpspatch.foundation.config import Config, load_config
from mpspatch.foundation.ids import CommitSha, RunId, TreeSha
from mpspatch.model.series import make_lock, parse_series, write_lock
from mpspatch.verify.evidence import EvidenceRun, SeriesPatchRef, write_run
from mpspatch.verify.stages import StageResult

REPO_ROOT = Path(__file__).resolve().parent.parent
SHIPPED_REQUIREMENTS = REPO_ROOT / "audit" / "requirements.toml"

PROSE = {
    "summary": "Adds a pool of MPS streams so that several threads can run inference at the same time.",
    "motivation": "Today every thread shares one stream, so parallel inference serialises on it.",
    "alternatives": "Running one process per worker avoids the shared stream but multiplies memory use.",
    "limitations": "The MPS tests need an Apple Silicon machine; hosted CI runners cannot run them.",
}

CONFIG = """\
[upstream]
url = "https://example.invalid/pytorch.git"
checkout = "../upstream"
base = "v1.0"
target = "main"

[series]
patches = ["patches/pool.patch"]
allowed_paths = ["aten/src/ATen/mps/", "aten/src/ATen/native/mps/", "torch/mps/", "test/test_mps.py"]

[categories]
"Core MPS" = ["aten/src/ATen/mps/**"]
"Operations" = ["aten/src/ATen/native/mps/**"]
"Python bindings" = ["torch/mps/**"]
"Tests" = ["test/test_mps.py"]

[[stages]]
name = "build"
kind = "build"
run = [["{python}", "-m", "pip", "install", "-e", ".", "-v", "--no-build-isolation"]]
env = { USE_CUDA = "0", BUILD_TEST = "0" }

[[stages]]
name = "lint"
kind = "lint"
run = [["lintrunner", "--force-color", "{patched}"]]

[[stages]]
name = "tsan"
kind = "tsan"
run = [["clang++", "-fsanitize=thread", "-g", "tsan_mps_test.mm", "-o", "tsan_mps_test"],
       ["./tsan_mps_test", "8", "50"], ["./tsan_mps_test", "31", "100"]]
describe = "Runs the stream-pool harness under ThreadSanitizer at 8 threads x 50 iterations and 31 x 100"
reproduce = ["clang++ -fsanitize=thread -g tsan_mps_test.mm -o tsan_mps_test", "./tsan_mps_test 8 50"]
requires = { os = "darwin", arch = "arm64", mps = true }

[[stages]]
name = "tests"
kind = "tests"
run = [["{python}", "test/test_mps.py", "-k", "TestMPSParallelInference"]]
describe = "Runs TestMPSParallelInference from test/test_mps.py"
reproduce = ["python test/test_mps.py -k TestMPSParallelInference"]
junit = "test-results.xml"
requires = { mps = true }

[[stages]]
name = "stress"
kind = "command"
run = [["{python}", "stress.py", "--rounds", "100"]]
requires = { mps = true }

[render]
title = "Add a stream pool for thread-safe parallel inference"
{issue}prose = "docs/prose"
labels = ["module: mps", "release notes: mps"]
maintainer_labels = ["ciflow/mps"]
cc = ["@kulinseth", "@malfet"]
reviewers = ["malfet"]

[split]
max_lines = {max_lines}
"""


# The machine the evidence says the stages ran on.
MAC = (("os", "darwin"), ("os_version", "15.1"), ("arch", "arm64"), ("model", "Apple M2"))


@dataclass(frozen=True)
class Project:
    root: Path
    upstream: Repo

    @property
    def config_path(self) -> Path:
        return self.root / "mpspatch.toml"

    def config(self) -> Config:
        return load_config(self.config_path)

    def patch(self) -> Path:
        return self.root / "patches" / "pool.patch"

    def relock(self) -> None:
        config = self.config()
        patches = parse_series(config.series.patches)
        base = CommitSha(self.upstream.git("rev-parse", "v1.0^{commit}").strip())
        write_lock(config.series.lock, make_lock(config, base, "v1.0", patches, "test"))

    def write_evidence(self, run_id: str, stages: list[StageResult], *, created_at: str | None = None,
                       machine: tuple[tuple[str, str], ...] = MAC, tree: str | None = None) -> None:
        config = self.config()
        patches = parse_series(config.series.patches)
        base = CommitSha(self.upstream.git("rev-parse", "v1.0^{commit}").strip())
        run = EvidenceRun(
            run_id=RunId(run_id),
            created_at=created_at or f"{run_id[0:4]}-{run_id[4:6]}-{run_id[6:8]}T{run_id[9:11]}:{run_id[11:13]}:00Z",
            series=tuple(SeriesPatchRef(p.path.relative_to(self.root).as_posix(), p.sha256) for p in patches),
            base=base,
            base_ref="v1.0",
            onto=None,
            tree=TreeSha(tree) if tree else None,
            tools=(("git", "2.39.5"), ("python", "3.11.2")),
            stages=tuple(stages),
            machine=machine,
        )
        write_run(config.evidence_dir, run)


def stage(name: str, kind: str, status: str = "passed", *, reason: str = "", counts: dict[str, int] | None = None,
          commands: list[list[str]] | None = None, details: tuple[str, ...] = ()) -> StageResult:
    return StageResult(
        name=name, kind=kind, status=status, reason=reason, duration_s=1.0,
        counts=tuple((counts or {}).items()), log=f"logs/{name}.log", log_sha256="0" * 64,
        commands=tuple(tuple(c) for c in (commands or [["true"]])), env=(), started_at="2025-12-16T12:00:00Z",
        finished_at="2025-12-16T12:00:01Z", cache_key="1" * 64, details=details,
    )


# The stage results of a fully passing run; the figures are chosen to be distinct so tests can trace them.
RUNNER_TREE = "/home/runner/.mpspatch/tree"


def passing_stages(*, tests_passed: int = 27, tsan_races: int = 0) -> list[StageResult]:
    return [
        stage("build", "build", commands=[["/usr/bin/python3", "-m", "pip", "install", "-e", ".", "-v",
                                           "--no-build-isolation"]]),
        stage("lint", "lint", counts={"messages": 0},
              commands=[["lintrunner", f"{RUNNER_TREE}/aten/src/ATen/mps/MPSStream.mm"]]),
        stage("tsan", "tsan", "passed" if tsan_races == 0 else "failed",
              reason="" if tsan_races == 0 else f"{tsan_races} data races",
              counts={"races": tsan_races, "warnings": tsan_races},
              commands=[["clang++", "-fsanitize=thread", "-g", "tsan_mps_test.mm", "-o", "tsan_mps_test"],
                        [f"{RUNNER_TREE}/tsan_mps_test", "8", "50"], [f"{RUNNER_TREE}/tsan_mps_test", "31", "100"]]),
        stage("tests", "tests", counts={"passed": tests_passed, "failed": 0, "skipped": 0, "errors": 0},
              commands=[["/usr/bin/python3", "test/test_mps.py", "-k", "TestMPSParallelInference"]]),
        stage("stress", "command", counts={"rounds": 100, "crashes": 0},
              commands=[["/usr/bin/python3", "stress.py", "--rounds", "100"]]),
    ]


def failing_stages() -> list[StageResult]:
    """build passes, lint fails, tsan fails with races, tests are skipped, stress never ran."""
    return [
        stage("build", "build"),
        stage("lint", "lint", "failed", reason="3 lint messages", counts={"messages": 3, "errors": 2, "warnings": 1},
              details=(f"CLANGFORMAT {RUNNER_TREE}/aten/src/ATen/mps/MPSStream.mm:12 format",)),
        stage("tsan", "tsan", "failed", reason="2 data races", counts={"races": 2, "warnings": 2},
              commands=[[f"{RUNNER_TREE}/tsan_mps_test", "8", "50"]],
              details=(
                  "SUMMARY: ThreadSanitizer: data race /Users/dev/pytorch/aten/src/ATen/mps/MPSStream.mm:14 in "
                  "at::mps::mpsstream_step_1",
                  "SUMMARY: ThreadSanitizer: data race /Users/dev/pytorch/aten/src/ATen/mps/MPSStream.mm:19 in "
                  "at::mps::mpsstream_step_2",
              )),
        stage("tests", "tests", "skipped", reason="requires a working MPS device: the probe found none"),
    ]


def make_project(tmp_path: Path, *, issue: int | None = 163_001, max_lines: int = 2000, messy: bool = False,
                 prose: tuple[str, ...] = tuple(PROSE), upstream_moved: bool = False) -> Project:
    """A project whose series applies at v1.0. `messy` adds a file outside allowed_paths with a tab and
    trailing blanks; `upstream_moved` puts a commit on main after v1.0, so the base is older than the target."""
    upstream = Repo.create(tmp_path / "upstream")
    upstream.write("aten/src/ATen/mps/MPSStream.mm", cpp_source("MPSStream.mm", 6))
    upstream.write("aten/src/ATen/native/mps/operations/Linear.mm", cpp_source("Linear.mm", 4))
    upstream.write("torch/mps/__init__.py", "def synchronize():\n    pass\n")
    upstream.write("test/test_mps.py", "import unittest\n\n\nclass TestMPS(unittest.TestCase):\n    pass\n")
    upstream.commit("base", tag="v1.0")
    upstream.write("aten/src/ATen/mps/MPSStream.mm", cpp_source("MPSStream.mm", 8, variant=" pooled"))
    upstream.write("aten/src/ATen/mps/MPSStreamPool.h", cpp_source("MPSStreamPool.h", 3))
    upstream.write("aten/src/ATen/native/mps/operations/Linear.mm", cpp_source("Linear.mm", 5, variant=" on a stream"))
    upstream.write("torch/mps/__init__.py", "def synchronize():\n    pass\n\n\ndef stream_pool_size():\n    return 4\n")
    upstream.write("test/test_mps.py", "import unittest\n\n\nclass TestMPS(unittest.TestCase):\n    pass\n\n\n"
                   "class TestMPSParallelInference(unittest.TestCase):\n    def test_pool(self):\n        pass\n")
    if messy:
        upstream.write("tools/mps_helper.py", "def helper():\n\treturn 1   \n")
    upstream.git("add", "-A")
    patch_text = upstream.git("diff", "--cached", "--full-index", "v1.0")
    upstream.git("reset", "-q", "--hard")
    if upstream_moved:
        upstream.write("README.md", "upstream moved on\n")
        upstream.commit("upstream work after v1.0")
    root = tmp_path / "project"
    (root / "patches").mkdir(parents=True)
    (root / "patches/pool.patch").write_text(patch_text)
    issue_line = f"issue = {issue}\n" if issue is not None else ""
    (root / "mpspatch.toml").write_text(CONFIG.replace("{issue}", issue_line).replace("{max_lines}", str(max_lines)))
    (root / "audit").mkdir()
    shutil.copyfile(SHIPPED_REQUIREMENTS, root / "audit/requirements.toml")
    (root / "docs/prose").mkdir(parents=True)
    for name in prose:
        (root / "docs/prose" / f"{name}.md").write_text(PROSE[name] + "\n")
    project = Project(root=root, upstream=upstream)
    project.relock()
    return project


def edit_patch(project: Project) -> None:
    """Change the patch content (one more added line in the Python bindings) without breaking it."""
    text = project.patch().read_text()
    old = "+def stream_pool_size():\n+    return 4\n"
    assert old in text
    header_old = "@@ -1,2 +1,6 @@"
    assert header_old in text
    project.patch().write_text(text.replace(old, old + "+# pool size is fixed for now\n")
                               .replace(header_old, "@@ -1,2 +1,7 @@"))


__all__ = ["Project", "edit_patch", "failing_stages", "make_project", "passing_stages", "stage"]
