#!/usr/bin/env python3
"""Bare-git baselines for mpspatch's rebase and drift targets, measured on the real-scale fixture.

Each scenario does, with plain git and nothing else, the work that an mpspatch command must do at least:

* ``full_worktree_rebase``: a full ``git worktree add`` at the base, ``git apply --3way`` of the slice patch,
  a commit, ``git rebase --onto`` the target, then ``rebase --abort`` and worktree removal;
* ``sparse_worktree_rebase``: the same in a worktree that holds only the patched paths
  (``--no-checkout``, ``sparse-checkout set --no-cone``, ``checkout``);
* ``merge_tree_forecast``: ``git merge-tree --write-tree`` of an already-made patched commit onto the
  target, no worktree at all;
* ``odb_forecast_from_patch``: the whole forecast from the patch text without a worktree: a temporary
  index at the base, ``apply --cached``, ``write-tree``, ``commit-tree``, ``merge-tree``, and a read of the
  conflicted blobs to count the conflict regions.

Every run checks its result against the fixture's designed conflicts, so a timing is never of a broken run.
``time_median`` and ``ratio`` are importable for the mpspatch benchmarks.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import shutil
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.fixtures import (
    DEFAULT_FILES,
    DEFAULT_ROOT,
    DEFAULT_SEED,
    FixtureSet,
    ensure_fixtures,
    identity_env,
    run_git,
)

DEFAULT_RUNS = 5
DEFAULT_OUT = Path(__file__).resolve().parent / "_work" / "baseline.json"
# Medians measured on a 12.8k-file tree of real PyTorch sources, for comparison only.
REFERENCE_S = {
    "full_worktree_rebase": 10.4,
    "sparse_worktree_rebase": 0.29,
    "merge_tree_forecast": 0.07,
}
_PINNED_TS = 1_760_000_000
_MESSAGE = "[MPS] Thread-safe MPS stream pool (downstream slice)"


# --------------------------------------------------------------------------------------------------
# Timing helpers (importable)
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Timing:
    name: str
    median_s: float
    min_s: float
    samples_s: tuple[float, ...]


def settle_disk() -> None:
    """Flush dirty pages, so a run does not pay for the writeback of the run before it.

    Without this, back-to-back full checkouts (90 MB each) grew from 2 s to 28 s within five runs here, as
    the kernel started throttling writers; the median then measured the loop, not one operation.
    """
    os.sync()


def time_median(
    fn: Callable[[], object],
    runs: int = DEFAULT_RUNS,
    *,
    warmup: int = 1,
    name: str = "",
    settle: Callable[[], None] | None = settle_disk,
) -> Timing:
    """Wall time of ``fn`` over ``runs`` calls after ``warmup`` untimed ones (warm page cache).

    ``settle`` runs, untimed, before every call. Use the same settings on both sides of a ratio.
    """
    if runs < 1:
        raise ValueError("runs must be at least 1")
    for _ in range(warmup):
        if settle is not None:
            settle()
        fn()
    samples: list[float] = []
    for _ in range(runs):
        if settle is not None:
            settle()
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return Timing(name, statistics.median(samples), min(samples), tuple(samples))


def ratio(numerator: Timing, denominator: Timing) -> float:
    """``numerator / denominator`` on medians; e.g. mpspatch rebase over bare sparse rebase."""
    return numerator.median_s / denominator.median_s


def load_baseline(path: Path = DEFAULT_OUT) -> dict[str, Timing]:
    """The timings a previous ``bench_git.py`` run wrote, by scenario name."""
    data = json.loads(path.read_text())
    return {
        r["name"]: Timing(r["name"], float(r["median_s"]), float(r["min_s"]), tuple(float(x) for x in r["samples_s"]))
        for r in data["results"]
    }


# --------------------------------------------------------------------------------------------------
# Scenarios
# --------------------------------------------------------------------------------------------------


class BaselineError(RuntimeError):
    """A scenario produced something other than the fixture's designed outcome."""


@dataclass(frozen=True)
class Bench:
    """Everything the scenarios share: the fixture and a scratch folder for worktrees and indexes."""

    fixture: FixtureSet
    scratch: Path

    @property
    def repo(self) -> Path:
        return self.fixture.upstream.repo

    @property
    def patch(self) -> Path:
        return self.fixture.slice_patch.path

    @property
    def expected_conflicts(self) -> tuple[str, ...]:
        return tuple(sorted(c.path for c in self.fixture.upstream.expected.conflicts))

    def git(self, args: Sequence[str], cwd: Path, *, ok: tuple[int, ...] = (0,), index: Path | None = None) -> str:
        env = identity_env(_PINNED_TS)  # pinned: every run writes the same objects, so the repo does not grow
        if index is not None:
            env["GIT_INDEX_FILE"] = str(index)
        proc = run_git(args, cwd, env=env, ok=ok)
        return (proc.stdout + proc.stderr).decode("utf-8", "replace")

    def check(self, scenario: str, conflicts: Sequence[str]) -> None:
        if tuple(sorted(conflicts)) != self.expected_conflicts:
            designed = list(self.expected_conflicts)
            raise BaselineError(f"{scenario}: conflicts {sorted(conflicts)} != designed {designed}")

    def remove_worktree(self, path: Path) -> None:
        self.git(["worktree", "remove", "--force", str(path)], self.repo)

    def reset_scratch(self) -> None:
        """Clear what an interrupted earlier run may have left: worktrees, their admin entries, indexes."""
        for leftover in ("full", "sparse"):
            if (self.scratch / leftover).exists():
                self.git(["worktree", "remove", "--force", str(self.scratch / leftover)], self.repo, ok=(0, 128))
        shutil.rmtree(self.scratch, ignore_errors=True)
        self.scratch.mkdir(parents=True)
        self.git(["worktree", "prune"], self.repo)


def _conflicts_from_rebase(output: str) -> list[str]:
    marker = "Merge conflict in "
    return [line.split(marker, 1)[1].strip() for line in output.splitlines() if marker in line]


def _apply_commit_rebase(bench: Bench, worktree: Path, scenario: str) -> None:
    fixture = bench.fixture.upstream
    bench.git(["apply", "--3way", str(bench.patch)], worktree)
    bench.git(["commit", "-q", "-m", _MESSAGE], worktree)
    out = bench.git(["rebase", "--onto", fixture.target_tag, fixture.base_tag], worktree, ok=(0, 1))
    conflicts = _conflicts_from_rebase(out)
    if conflicts:
        bench.git(["rebase", "--abort"], worktree)
    bench.check(scenario, conflicts)


def full_worktree_rebase(bench: Bench) -> None:
    worktree = bench.scratch / "full"
    try:
        bench.git(["worktree", "add", "-q", "--detach", str(worktree), bench.fixture.upstream.base_tag], bench.repo)
        _apply_commit_rebase(bench, worktree, "full_worktree_rebase")
    finally:
        bench.remove_worktree(worktree)


def sparse_worktree_rebase(bench: Bench) -> None:
    worktree = bench.scratch / "sparse"
    patterns = ["/" + path for path in bench.fixture.slice_patch.files]
    try:
        base = bench.fixture.upstream.base_tag
        bench.git(["worktree", "add", "-q", "--no-checkout", "--detach", str(worktree), base], bench.repo)
        bench.git(["sparse-checkout", "set", "--no-cone", *patterns], worktree)
        bench.git(["checkout", "-q"], worktree)
        _apply_commit_rebase(bench, worktree, "sparse_worktree_rebase")
    finally:
        bench.remove_worktree(worktree)


def patched_commit(bench: Bench) -> str:
    """The slice applied at the base, as a commit in the object database, made without a worktree."""
    upstream = bench.fixture.upstream
    index = bench.scratch / "forecast.index"
    index.unlink(missing_ok=True)
    try:
        bench.git(["read-tree", upstream.base_commit], bench.repo, index=index)
        bench.git(["apply", "--cached", str(bench.patch)], bench.repo, index=index)
        tree = bench.git(["write-tree"], bench.repo, index=index).strip()
        return bench.git(["commit-tree", tree, "-p", upstream.base_commit, "-m", _MESSAGE], bench.repo).strip()
    finally:
        index.unlink(missing_ok=True)


def _merge_tree(bench: Bench, commit: str) -> tuple[str, list[str]]:
    """(result tree, conflicted paths) of merging ``commit`` onto the target."""
    out = bench.git(
        ["merge-tree", "--write-tree", "--name-only", "--no-messages", bench.fixture.upstream.target_tag, commit],
        bench.repo,
        ok=(0, 1),
    )
    lines = [line for line in out.splitlines() if line.strip()]
    return lines[0], lines[1:]


def merge_tree_forecast(bench: Bench, commit: str) -> None:
    _, conflicts = _merge_tree(bench, commit)
    bench.check("merge_tree_forecast", conflicts)


def odb_forecast_from_patch(bench: Bench) -> None:
    tree, conflicts = _merge_tree(bench, patched_commit(bench))
    bench.check("odb_forecast_from_patch", conflicts)
    request = "".join(f"{tree}:{path}\n" for path in conflicts).encode()
    proc = run_git(["cat-file", "--batch"], bench.repo, stdin=request)
    regions = proc.stdout.count(b"\n<<<<<<< ")
    wanted = sum(c.regions for c in bench.fixture.upstream.expected.conflicts)
    if regions != wanted:
        raise BaselineError(f"odb_forecast_from_patch: {regions} conflict regions, designed {wanted}")


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    run: Callable[[Bench], None]


def durable(scenario: Callable[[Bench], None]) -> Callable[[Bench], None]:
    """The scenario plus the flush of what it wrote: the cost once the disk has really taken the files."""

    def run(bench: Bench) -> None:
        scenario(bench)
        settle_disk()

    return run


def scenarios(bench: Bench, *, durable_too: bool = False) -> tuple[Scenario, ...]:
    commit = patched_commit(bench)  # made once, outside the timing, for the pure merge-tree case
    core = (
        Scenario(
            "full_worktree_rebase",
            "full worktree add + apply --3way + commit + rebase + abort",
            full_worktree_rebase,
        ),
        Scenario(
            "sparse_worktree_rebase",
            "the same in a sparse worktree of the patched paths",
            sparse_worktree_rebase,
        ),
        Scenario(
            "merge_tree_forecast",
            "git merge-tree --write-tree of the patched commit",
            lambda b: merge_tree_forecast(b, commit),
        ),
        Scenario(
            "odb_forecast_from_patch",
            "temp index + apply --cached + commit-tree + merge-tree + regions",
            odb_forecast_from_patch,
        ),
    )
    extra = (
        Scenario(
            "full_worktree_rebase_durable",
            "full_worktree_rebase, then sync: includes writing the files to disk",
            durable(full_worktree_rebase),
        ),
        Scenario(
            "sparse_worktree_rebase_durable",
            "sparse_worktree_rebase, then sync",
            durable(sparse_worktree_rebase),
        ),
    )
    return core + extra if durable_too else core


# --------------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Report:
    fixture_files: int
    fixture_bytes: int
    slice_files: int
    slice_lines: int
    base: str
    onto: str
    git_version: str
    python: str
    cpus: int
    load_before: tuple[float, float, float]  # os.getloadavg(): other work on the machine skews timings
    load_after: tuple[float, float, float]
    runs: int
    results: tuple[Timing, ...]
    reference_s: dict[str, float]


def run(
    fixture: FixtureSet,
    runs: int,
    only: Sequence[str] = (),
    *,
    warmup: int = 1,
    settle: Callable[[], None] | None = settle_disk,
    durable_too: bool = False,
) -> Report:
    bench = Bench(fixture, fixture.root / "scratch")
    bench.reset_scratch()
    load_before = os.getloadavg()
    results: list[Timing] = []
    for scenario in scenarios(bench, durable_too=durable_too):
        if only and scenario.name not in only:
            continue
        call = functools.partial(scenario.run, bench)
        results.append(time_median(call, runs, warmup=warmup, name=scenario.name, settle=settle))
    up = fixture.upstream
    return Report(
        fixture_files=up.files_at_base,
        fixture_bytes=up.bytes_at_base,
        slice_files=len(fixture.slice_patch.files),
        slice_lines=fixture.slice_patch.insertions + fixture.slice_patch.deletions,
        base=up.base_tag,
        onto=up.target_tag,
        git_version=run_git(["--version"], up.repo).stdout.decode().strip(),
        python=platform.python_version(),
        cpus=os.cpu_count() or 1,
        load_before=load_before,
        load_after=os.getloadavg(),
        runs=runs,
        results=tuple(results),
        reference_s=REFERENCE_S,
    )


def format_table(report: Report) -> str:
    head = f"{'scenario':<26} {'median':>9} {'min':>9} {'real':>9}"
    rows = [
        f"{t.name:<26} {t.median_s:>8.3f}s {t.min_s:>8.3f}s "
        + (f"{REFERENCE_S[t.name]:>8.2f}s" if t.name in REFERENCE_S else f"{'-':>9}")
        for t in report.results
    ]
    by_name = {t.name: t for t in report.results}
    notes = []
    for suffix in ("", "_durable"):
        full, sparse = by_name.get("full_worktree_rebase" + suffix), by_name.get("sparse_worktree_rebase" + suffix)
        if full is not None and sparse is not None:
            label = "with the flush" if suffix else "page cache only"
            notes.append(f"sparse is {ratio(full, sparse):.1f}x cheaper than full, {label} (real PyTorch tree: 36x)")
    title = (
        f"bare git on {report.fixture_files} files ({report.fixture_bytes / 1e6:.0f} MB), "
        f"{report.slice_files}-file {report.slice_lines}-line slice, {report.base} -> {report.onto}, "
        f"median of {report.runs}, {report.git_version}, {report.cpus} CPUs, "
        f"load {report.load_before[0]:.1f} -> {report.load_after[0]:.1f}"
    )
    return "\n".join([title, head, *rows, *notes])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Measure the bare-git baselines on the real-scale fixture.")
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT, help="fixture folder (built if missing)")
    parser.add_argument("--files", type=int, default=DEFAULT_FILES)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--runs", type=int, default=DEFAULT_RUNS)
    parser.add_argument("--only", action="append", default=[], help="run only this scenario (repeatable)")
    parser.add_argument("--durable", action="store_true", help="also time the worktree rebases with a disk flush")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON report (default: %(default)s)")
    args = parser.parse_args(argv)
    if args.runs < 1:
        print("bench_git.py: --runs must be at least 1", file=sys.stderr)
        return 2
    fixture = ensure_fixtures(args.root, n_files=args.files, seed=args.seed)
    report = run(fixture, args.runs, args.only, durable_too=args.durable)
    print(format_table(report))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(args.out.name + ".tmp")
    tmp.write_text(json.dumps(asdict(report), indent=2, sort_keys=True) + "\n")
    tmp.replace(args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
