#!/usr/bin/env python3
"""`mpspatch rebase` on the real-scale fixture, against the bare-git rebases of bench_git.py.

One timed run is what a maintainer does when the slice patch meets v2.15.0: `mpspatch rebase --onto v2.15.0
--json` (a real CLI subprocess: interpreter start-up, shadow repository, series commit, sparse worktree,
git rebase, conflict report with upstream PRs, already-upstream check). `mpspatch rebase --abort` runs after
each one and is timed on its own; the ratio with it added is printed too. The bare-git baselines do the
rebase with nothing around it: worktree add, apply --3way, commit, rebase, abort, worktree remove. Each
mpspatch run is checked against the fixture's designed conflicts and regions.

Targets: at most 2x the sparse-worktree bare-git rebase, at most 0.1x the full-checkout one.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.bench_git import (
    DEFAULT_RUNS,
    BaselineError,
    Bench,
    Timing,
    full_worktree_rebase,
    ratio,
    sparse_worktree_rebase,
    time_median,
)
from benchmarks.fixtures import DEFAULT_FILES, DEFAULT_ROOT, DEFAULT_SEED, FixtureSet, ensure_fixtures

DEFAULT_OUT = Path(__file__).resolve().parent / "_work" / "rebase.json"
SPARSE_TARGET = 2.0
FULL_TARGET = 0.1


@dataclass(frozen=True)
class Project:
    """A throwaway mpspatch project whose [upstream].checkout is the fixture's upstream clone."""

    root: Path
    fixture: FixtureSet

    @classmethod
    def create(cls, folder: Path, fixture: FixtureSet) -> Project:
        up = fixture.upstream
        (folder / "patches").mkdir(parents=True, exist_ok=True)
        patch = folder / "patches" / fixture.slice_patch.path.name
        patch.write_bytes(fixture.slice_patch.path.read_bytes())
        (folder / "mpspatch.toml").write_text(
            "[upstream]\n"
            f'url = "https://github.com/pytorch/pytorch.git"\ncheckout = "{up.repo}"\n'
            f'base = "{up.base_tag}"\ntarget = "{up.target_tag}"\n\n'
            f'[series]\npatches = ["patches/{patch.name}"]\n'
        )
        return cls(folder, fixture)

    def cli(self, *args: str, ok: tuple[int, ...] = (0,)) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "MPSPATCH_"))}
        done = subprocess.run([sys.executable, "-m", "mpspatch.cli", *args], cwd=self.root, env=env,
                              capture_output=True, text=True, check=False, timeout=600)
        if done.returncode not in ok:
            raise BaselineError(f"mpspatch {' '.join(args)} exited {done.returncode}:\n{done.stderr[-2000:]}")
        return done

    def rebase(self) -> None:
        up = self.fixture.upstream
        done = self.cli("rebase", "--onto", up.target_tag, "--json", ok=(0, 1))
        data = json.loads(done.stdout)
        got = sorted((c["path"], c["regions"]) for c in data["conflicts"])
        want = sorted((c.path, c.regions) for c in up.expected.conflicts)
        if got != want:
            raise BaselineError(f"mpspatch rebase: conflicts {got} != designed {want}")

    def abort(self) -> None:
        self.cli("rebase", "--abort")


def time_pair(first: Callable[[], object], second: Callable[[], object], runs: int) -> tuple[Timing, Timing]:
    """Median wall time of `first` and of `second`, run alternately (one untimed warm-up pair)."""
    samples: tuple[list[float], list[float]] = ([], [])
    for number in range(runs + 1):
        for fn, out in ((first, samples[0]), (second, samples[1])):
            started = time.perf_counter()
            fn()
            if number:
                out.append(time.perf_counter() - started)
    return (Timing("mpspatch_rebase", statistics.median(samples[0]), min(samples[0]), tuple(samples[0])),
            Timing("mpspatch_rebase_abort", statistics.median(samples[1]), min(samples[1]), tuple(samples[1])))


@dataclass(frozen=True)
class RebaseReport:
    files: int
    slice_files: int
    slice_lines: int
    runs: int
    mpspatch: Timing  # `mpspatch rebase` alone: the command the targets are about
    abort: Timing  # `mpspatch rebase --abort` afterwards (the bare baselines include their abort)
    startup: Timing  # `python -m mpspatch.cli --help`: interpreter and CLI import, for reading the numbers
    sparse: Timing
    full: Timing | None
    sparse_ratio: float
    full_ratio: float | None
    sparse_ratio_with_abort: float


def measure(fixture: FixtureSet, runs: int, full_runs: int) -> RebaseReport:
    bench = Bench(fixture, fixture.root / "scratch")
    bench.reset_scratch()
    with tempfile.TemporaryDirectory(prefix="mpspatch-bench-") as tmp:
        project = Project.create(Path(tmp) / "project", fixture)
        ours, abort = time_pair(project.rebase, project.abort, runs)
        startup = time_median(functools.partial(project.cli, "--help"), runs, name="cli_startup")
    sparse = time_median(functools.partial(sparse_worktree_rebase, bench), runs, name="sparse_worktree_rebase")
    full = (time_median(functools.partial(full_worktree_rebase, bench), full_runs, warmup=0,
                        name="full_worktree_rebase") if full_runs else None)
    return RebaseReport(
        files=fixture.upstream.files_at_base, slice_files=len(fixture.slice_patch.files),
        slice_lines=fixture.slice_patch.insertions + fixture.slice_patch.deletions, runs=runs, mpspatch=ours,
        abort=abort, startup=startup, sparse=sparse, full=full, sparse_ratio=ratio(ours, sparse),
        full_ratio=ratio(ours, full) if full else None,
        sparse_ratio_with_abort=(ours.median_s + abort.median_s) / sparse.median_s,
    )


def format_report(report: RebaseReport) -> str:
    def row(t: Timing) -> str:
        return f"{t.name:<28} {t.median_s:>8.3f}s {t.min_s:>8.3f}s"

    lines = [
        f"mpspatch rebase on {report.files} files, {report.slice_files}-file {report.slice_lines}-line slice, "
        f"median of {report.runs}",
        f"{'scenario':<28} {'median':>9} {'min':>9}",
        row(report.mpspatch), row(report.abort), row(report.startup), row(report.sparse),
    ]
    if report.full:
        lines.append(row(report.full))
    verdict = "PASS" if report.sparse_ratio <= SPARSE_TARGET else "MISS"
    lines.append(f"mpspatch / sparse bare-git rebase = {report.sparse_ratio:.2f}x (target <= {SPARSE_TARGET}x: "
                 f"{verdict})")
    lines.append(f"(mpspatch rebase + --abort) / sparse bare-git rebase = {report.sparse_ratio_with_abort:.2f}x")
    if report.full_ratio is not None:
        verdict = "PASS" if report.full_ratio <= FULL_TARGET else "MISS"
        lines.append(f"mpspatch / full-checkout bare-git rebase = {report.full_ratio:.3f}x (target <= "
                     f"{FULL_TARGET}x: {verdict})")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Time `mpspatch rebase` against bare-git rebases.")
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT, help="fixture folder (built if missing)")
    parser.add_argument("--files", type=int, default=DEFAULT_FILES)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--runs", type=int, default=DEFAULT_RUNS)
    parser.add_argument("--full-runs", type=int, default=3,
                        help="runs of the full-checkout baseline (about 10-25 s each; 0 skips it)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON report (default: %(default)s)")
    parser.add_argument("--check", "--strict", dest="check", action="store_true",
                        help="exit 1 when a target is missed")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.full_runs < 0:
        print("bench_rebase.py: --runs must be at least 1 and --full-runs at least 0", file=sys.stderr)
        return 2
    fixture = ensure_fixtures(args.root, n_files=args.files, seed=args.seed)
    report = measure(fixture, args.runs, args.full_runs)
    print(format_report(report))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(args.out.name + ".tmp")
    tmp.write_text(json.dumps(asdict(report), indent=2, sort_keys=True) + "\n")
    tmp.replace(args.out)
    print(f"wrote {args.out}")
    missed = report.sparse_ratio > SPARSE_TARGET or (report.full_ratio or 0) > FULL_TARGET
    return 1 if args.check and missed else 0


if __name__ == "__main__":
    sys.exit(main())
