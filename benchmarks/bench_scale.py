#!/usr/bin/env python3
"""drift and rebase against bare git doing the same work, with long upstream histories and split series.

For each case (N extra upstream commits, a series of P patches; see fixtures.ensure_scaled):

* ``drift``: `mpspatch drift --json` (warm shadow) against bare `git merge-tree --write-tree` of the series
  tip onto the target plus `git log base..onto` over the patched paths. Target: at most 1.5x.
* ``rebase``: `mpspatch rebase --onto TARGET --json`, which stops on the designed conflicts, against a bare
  sparse-worktree rebase of the already-made series commits that stops on the same patch. Neither side's abort
  or worktree removal is timed. Target: at most 2.0x.

Each round takes one sample of every scenario in turn (interleaved), after one untimed warm-up; the table
gives medians and ranges. With --check the script exits 1 when any ratio misses its target.

    python benchmarks/bench_scale.py [--commits 0 3000 10000] [--series 1 13 50] [--runs 5] [--check]

Without --commits and --series it runs DEFAULT_CASES; with either, every pair of the two lists (defaults
0 and 10,000 commits, 13 patches).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.fixtures import DEFAULT_ROOT, FixtureSet, ScaledFixture, ensure_fixtures, ensure_scaled

TARGETS = {"drift": 1.5, "rebase": 2.0}
# The goals: one patch with no extra commits, a 13-patch split stack at 3,000 and 10,000 upstream
# commits, and a 50-patch series at 10,000.
DEFAULT_CASES = ((0, 1), (3_000, 13), (10_000, 13), (10_000, 50))


class ScaleBenchError(RuntimeError):
    pass


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "MPSPATCH_"))}


def _git(args: Sequence[str], cwd: Path, ok: tuple[int, ...] = (0,), env: dict[str, str] | None = None) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False,
                          env={**_env(), **(env or {})})
    if done.returncode not in ok:
        raise ScaleBenchError(f"git {' '.join(args)} exited {done.returncode}: {done.stderr[-800:]}")
    return done.stdout


def cli() -> list[str]:
    return [sys.executable, "-m", "mpspatch.cli"]


@dataclass
class Case:
    fixture: FixtureSet
    scaled: ScaledFixture
    patches: tuple[Path, ...]
    folder: Path

    @property
    def label(self) -> str:
        return f"{len(self.patches)} patches, {self.scaled.commits} commits"

    def setup(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
        (self.folder / "patches").mkdir(parents=True)
        names = []
        for patch in self.patches:
            shutil.copyfile(patch, self.folder / "patches" / patch.name)
            names.append(f"patches/{patch.name}")
        (self.folder / "mpspatch.toml").write_text(
            "[upstream]\n"
            'url = "https://github.com/pytorch/pytorch.git"\n'
            f"checkout = {json.dumps(str(self.scaled.repo))}\n"
            f'base = "{self.scaled.base_tag}"\ntarget = "{self.scaled.onto}"\n\n'
            f"[series]\npatches = {json.dumps(names)}\n")
        # The bare side works in its own shared clone, so its sparse-checkout config never reaches mpspatch's.
        self.bare = self.folder.parent / f"bare-{self.scaled.commits}-{len(self.patches)}"
        shutil.rmtree(self.bare, ignore_errors=True)
        _git(["clone", "-q", "--shared", "--no-checkout", str(self.scaled.repo), str(self.bare)], self.folder.parent)
        self.tip = self._series_commits()
        self.paths = sorted({line.split("\t")[2] for p in self.patches
                             for line in _git(["apply", "--numstat", str(p)], self.bare).splitlines()})

    def _series_commits(self) -> str:
        index = self.bare / "series.index"
        env = {"GIT_INDEX_FILE": str(index)}
        parent = _git(["rev-parse", f"{self.scaled.base_tag}^{{commit}}"], self.bare).strip()
        for patch in self.patches:
            _git(["read-tree", parent], self.bare, env=env)
            _git(["apply", "--cached", "--3way", str(patch)], self.bare, env=env)
            tree = _git(["write-tree"], self.bare, env=env).strip()
            parent = _git(["commit-tree", tree, "-p", parent, "-m", patch.name], self.bare).strip()
        index.unlink(missing_ok=True)
        return parent

    # ------------------------------------------------------------------------------------------- drift

    def drift(self) -> None:
        done = subprocess.run([*cli(), "drift", "--json"], cwd=self.folder, capture_output=True, text=True,
                              check=False, env=_env())
        if done.returncode != 1:
            raise ScaleBenchError(f"mpspatch drift exited {done.returncode}: {done.stderr[-1500:]}")
        self._check({c["path"] for c in json.loads(done.stdout)["conflicts"]}, "drift")

    def bare_drift(self) -> None:
        out = _git(["merge-tree", "--write-tree", "--name-only", "--no-messages", self.scaled.onto, self.tip],
                   self.bare, ok=(0, 1))
        _git(["log", "--format=%H %s%n%b", "--name-only", f"{self.scaled.base_tag}..{self.scaled.onto}", "--",
              *self.paths], self.bare)
        self._check({line for line in out.splitlines()[1:] if line}, "bare drift")

    # ------------------------------------------------------------------------------------------ rebase

    def rebase(self) -> None:
        done = subprocess.run([*cli(), "rebase", "--onto", self.scaled.onto, "--json"], cwd=self.folder,
                              capture_output=True, text=True, check=False, env=_env())
        if done.returncode not in (0, 1):
            raise ScaleBenchError(f"mpspatch rebase exited {done.returncode}: {done.stderr[-1500:]}")
        data = json.loads(done.stdout)
        if not data["conflicts"]:
            raise ScaleBenchError("mpspatch rebase did not stop on a conflict")

    def rebase_cleanup(self) -> None:
        subprocess.run([*cli(), "rebase", "--abort"], cwd=self.folder, capture_output=True, check=False, env=_env())

    def bare_rebase(self) -> None:
        work = self.bare.parent / (self.bare.name + "-wt")
        _git(["worktree", "add", "-q", "--no-checkout", "--detach", str(work), self.tip], self.bare)
        _git(["sparse-checkout", "set", "--no-cone", *("/" + p for p in self.paths)], work)
        _git(["checkout", "-q"], work)
        _git(["rebase", "-q", "--onto", self.scaled.onto, self.scaled.base_tag], work, ok=(1,))

    def bare_rebase_cleanup(self) -> None:
        work = self.bare.parent / (self.bare.name + "-wt")
        _git(["rebase", "--abort"], work, ok=(0, 128))
        _git(["worktree", "remove", "--force", str(work)], self.bare)

    def _check(self, conflicted: set[str], who: str) -> None:
        designed = {c.path for c in self.fixture.upstream.expected.conflicts}
        if not conflicted or not conflicted <= designed:
            raise ScaleBenchError(f"{who}: conflicts {sorted(conflicted)}, designed {sorted(designed)}")


@dataclass(frozen=True)
class Sample:
    name: str
    times: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.times)


def interleaved(steps: dict[str, tuple[Callable[[], object], Callable[[], object]]], runs: int) -> dict[str, Sample]:
    """Median wall time of each step (timed part, untimed cleanup), one sample of each per round."""
    got: dict[str, list[float]] = {name: [] for name in steps}
    for number in range(runs + 1):
        for name, (timed, cleanup) in steps.items():
            started = time.perf_counter()
            timed()
            spent = time.perf_counter() - started
            cleanup()
            if number:  # round 0 is the warm-up
                got[name].append(spent)
    return {name: Sample(name, tuple(t)) for name, t in got.items()}


def _nothing() -> None:
    return None


def measure(case: Case, runs: int) -> list[tuple[str, Sample, Sample]]:
    case.setup()
    samples = interleaved({
        "drift": (case.drift, _nothing),
        "bare drift": (case.bare_drift, _nothing),
        "rebase": (case.rebase, case.rebase_cleanup),
        "bare rebase": (case.bare_rebase, case.bare_rebase_cleanup),
    }, runs)
    return [("drift", samples["drift"], samples["bare drift"]),
            ("rebase", samples["rebase"], samples["bare rebase"])]


def format_row(label: str, kind: str, ours: Sample, bare: Sample) -> tuple[str, bool]:
    ratio = ours.median / bare.median
    lo, hi = min(ours.times) / max(bare.times), max(ours.times) / min(bare.times)
    ok = ratio <= TARGETS[kind]
    return (f"| {kind}, {label} | {ours.median:.2f} s ({min(ours.times):.2f}-{max(ours.times):.2f}) | "
            f"{bare.median:.2f} s ({min(bare.times):.2f}-{max(bare.times):.2f}) | {ratio:.1f}x "
            f"({lo:.1f}-{hi:.1f}) | <= {TARGETS[kind]}x | {'PASS' if ok else 'MISS'} |"), ok


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="drift and rebase vs bare git at long histories.")
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT)
    parser.add_argument("--commits", type=int, nargs="+", help="extra upstream commits (with --series: every pair)")
    parser.add_argument("--series", type=int, nargs="+", choices=[1, 13, 50], help="patches in the series")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--check", action="store_true", help="exit 1 when a ratio misses its target")
    args = parser.parse_args(argv)
    fixture = ensure_fixtures(args.root)
    lines = ["| case | mpspatch median (range) | bare git median (range) | ratio (range) | target | verdict |",
             "| --- | --- | --- | --- | --- | --- |"]
    passed = True
    if args.commits is None and args.series is None:
        cases = list(DEFAULT_CASES)
    else:
        cases = [(c, n) for c in (args.commits or [0, 10_000]) for n in (args.series or [13])]
    for commits, size in cases:
        scaled = ensure_scaled(fixture, commits)
        case = Case(fixture, scaled, scaled.series[size], fixture.root / "scratch-scale" / "project")
        for kind, ours, bare in measure(case, args.runs):
            line, ok = format_row(case.label, kind, ours, bare)
            passed &= ok
            lines.append(line)
            print(line, flush=True)
    print("\n".join(lines))
    return 1 if args.check and not passed else 0


if __name__ == "__main__":
    sys.exit(main())
