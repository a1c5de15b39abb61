#!/usr/bin/env python3
"""`mpspatch drift --json` on the real-scale fixture, against bare `git merge-tree` plus interpreter start-up.

The target: a forecast costs at most twice `git merge-tree --write-tree`, plus the start-up of a Python that
imports typer, rich and jinja2 (the third-party imports the CLI really makes). Measured here, each as the median
of --runs:

* ``merge_tree``: bare `git merge-tree --write-tree` of the already-made patched commit onto the target
  (bench_git's merge_tree_forecast);
* ``odb_forecast_from_patch``: bare git doing the whole forecast from the patch text (temp index, apply,
  write-tree, commit-tree, merge-tree, read conflicted blobs) — the fair baseline for a cold run;
* ``startup``: `python -c "import typer, rich, jinja2"`;
* ``cli_startup``: `mpspatch drift --help`, our own CLI's start-up with nothing to do;
* ``drift_warm``: the real CLI in a subprocess, shadow repository and series commits already made;
* ``drift_cold``: the same with a fresh state folder each run (no shadow, no cached series commits);
* ``drift_in_process``: compute_drift() alone, without interpreter start-up or printing.

Every drift run is checked against the fixture's designed outcome (conflicted paths and regions, absorbed
and partly absorbed files, the absorbing PR), so a timing is never of a wrong answer.
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
from dataclasses import asdict, dataclass
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.bench_git import (
    Bench,
    Timing,
    merge_tree_forecast,
    odb_forecast_from_patch,
    patched_commit,
)
from benchmarks.fixtures import DEFAULT_FILES, DEFAULT_ROOT, DEFAULT_SEED, FixtureSet, ensure_fixtures

DEFAULT_RUNS = 7
DEFAULT_OUT = Path(__file__).resolve().parent / "_work" / "drift.json"


class DriftBenchError(RuntimeError):
    """mpspatch drift gave something other than the fixture's designed outcome."""


@dataclass(frozen=True)
class Project:
    folder: Path
    config: Path
    state: Path


def make_project(fixture: FixtureSet, folder: Path, state: str = ".mpspatch") -> Project:
    """A project folder whose series is the fixture's slice patch against the fixture upstream."""
    shutil.rmtree(folder, ignore_errors=True)
    (folder / "patches").mkdir(parents=True)
    shutil.copyfile(fixture.slice_patch.path, folder / "patches" / "slice.patch")
    up = fixture.upstream
    config = folder / "mpspatch.toml"
    config.write_text(
        "[upstream]\n"
        'url = "https://github.com/pytorch/pytorch.git"\n'
        f"checkout = {json.dumps(str(up.repo))}\n"
        f'base = "{up.base_tag}"\n'
        f'target = "{up.target_tag}"\n\n'
        "[series]\n"
        'patches = ["patches/slice.patch"]\n\n'
        "[paths]\n"
        f'state = "{state}"\n'
    )
    return Project(folder=folder, config=config, state=folder / state)


def cli() -> list[str]:
    script = Path(sys.executable).with_name("mpspatch")
    return [str(script)] if script.exists() else [sys.executable, "-m", "mpspatch.cli"]


def run_drift(project: Project, fixture: FixtureSet) -> None:
    proc = subprocess.run([*cli(), "drift", "--json"], cwd=project.folder, capture_output=True, text=True,
                          check=False)
    if proc.returncode != 1:  # the fixture is designed to conflict
        raise DriftBenchError(f"mpspatch drift exited {proc.returncode}: {proc.stderr.strip()}")
    check(json.loads(proc.stdout), fixture)


def check(data: dict[str, object], fixture: FixtureSet) -> None:
    expected = fixture.upstream.expected
    conflicts = {c["path"]: c["regions"] for c in data["conflicts"]}  # type: ignore[attr-defined, index]
    designed = {c.path: c.regions for c in expected.conflicts}
    outcomes = {f["path"]: f["outcome"] for f in data["files"]}  # type: ignore[attr-defined, index]
    problems = []
    if conflicts != designed:
        problems.append(f"conflicts {conflicts} != designed {designed}")
    for path in expected.absorbed:
        if outcomes.get(path) != "absorbed":
            problems.append(f"{path}: {outcomes.get(path)} instead of absorbed")
    for path in expected.partly_absorbed:
        if outcomes.get(path) != "partly-absorbed":
            problems.append(f"{path}: {outcomes.get(path)} instead of partly absorbed")
    for path in expected.clean:
        if outcomes.get(path) != "clean":
            problems.append(f"{path}: {outcomes.get(path)} instead of clean")
    prs = {n for a in data["absorbed"] for n in a["pull_requests"]}  # type: ignore[attr-defined, index]
    if prs != {expected.absorbing_pull_request}:
        problems.append(f"absorbed changes credited to {sorted(prs)}, designed {expected.absorbing_pull_request}")
    if problems:
        raise DriftBenchError("; ".join(problems))


def run_drift_cold(fixture: FixtureSet, folder: Path) -> None:
    project = make_project(fixture, folder)
    run_drift(project, fixture)


def in_process(project: Project, fixture: FixtureSet) -> None:
    from dataclasses import asdict

    from mpspatch.foundation.config import load_config
    from mpspatch.model.workspace import Workspace
    from mpspatch.operations.drift import compute_drift
    from mpspatch.views.drift import drift_json

    report = compute_drift(Workspace(load_config(project.config)))
    check(json.loads(json.dumps(asdict(drift_json(report)))), fixture)


def interleaved(scenarios: dict[str, Callable[[], object]], runs: int) -> tuple[Timing, ...]:
    """Median wall times, taking one sample of every scenario per round.

    Round-robin rather than one scenario after another: on a shared machine the load drifts, and ratios
    between scenarios are only fair when each saw the same conditions.
    """
    for fn in scenarios.values():
        fn()  # warm-up: page cache, shadow repository, .pyc files
    samples: dict[str, list[float]] = {name: [] for name in scenarios}
    for _ in range(runs):
        for name, fn in scenarios.items():
            started = time.perf_counter()
            fn()
            samples[name].append(time.perf_counter() - started)
    return tuple(Timing(name, statistics.median(s), min(s), tuple(s)) for name, s in samples.items())


def quiet(argv: Sequence[str], cwd: Path) -> None:
    subprocess.run(argv, cwd=cwd, capture_output=True, check=True)


@dataclass(frozen=True)
class Report:
    fixture_files: int
    slice_files: int
    slice_lines: int
    base: str
    onto: str
    git_version: str
    cpus: int
    runs: int
    results: tuple[Timing, ...]
    target_s: float  # 2 x merge_tree + startup
    warm_ratio_to_target: float
    warm_ratio_to_target_min: float  # the same on the fastest samples (least disturbed by other load)
    cold_target_s: float  # 2 x odb_forecast_from_patch + startup
    cold_ratio_to_target: float


def compile_package() -> None:
    """Byte-compile mpspatch, as `pip install` does for the baseline's packages.

    Without it, a PYTHONDONTWRITEBYTECODE environment (or a read-only checkout) makes every CLI run compile
    mpspatch from source again, a cost the `import typer, rich, jinja2` baseline never pays.
    """
    import compileall

    import mpspatch

    compileall.compile_dir(str(Path(mpspatch.__file__).parent), quiet=1)


def run(fixture: FixtureSet, runs: int) -> Report:
    compile_package()
    scratch = fixture.root / "scratch-drift"
    bench = Bench(fixture, scratch / "bench")
    bench.reset_scratch()
    commit = patched_commit(bench)
    project = make_project(fixture, scratch / "project")
    run_drift(project, fixture)  # builds the shadow and the series commits once, and checks the answer
    here = Path.cwd()
    timings = interleaved(
        {
            "merge_tree": lambda: merge_tree_forecast(bench, commit),
            "odb_forecast_from_patch": lambda: odb_forecast_from_patch(bench),
            "startup": lambda: quiet([sys.executable, "-c", "import typer, rich, jinja2"], here),
            "cli_startup": lambda: quiet([*cli(), "drift", "--help"], project.folder),
            "drift_warm": lambda: run_drift(project, fixture),
            "drift_cold": lambda: run_drift_cold(fixture, scratch / "cold"),
            "drift_in_process": lambda: in_process(project, fixture),
        },
        runs,
    )
    by = {t.name: t for t in timings}
    target = 2 * by["merge_tree"].median_s + by["startup"].median_s
    cold_target = 2 * by["odb_forecast_from_patch"].median_s + by["startup"].median_s
    up = fixture.upstream
    version = subprocess.run(["git", "--version"], capture_output=True, text=True, check=True).stdout.strip()
    return Report(
        fixture_files=up.files_at_base, slice_files=len(fixture.slice_patch.files),
        slice_lines=fixture.slice_patch.insertions + fixture.slice_patch.deletions, base=up.base_tag,
        onto=up.target_tag, git_version=version, cpus=os.cpu_count() or 1, runs=runs, results=timings,
        target_s=target, warm_ratio_to_target=by["drift_warm"].median_s / target,
        warm_ratio_to_target_min=by["drift_warm"].min_s / (2 * by["merge_tree"].min_s + by["startup"].min_s),
        cold_target_s=cold_target, cold_ratio_to_target=by["drift_cold"].median_s / cold_target,
    )


def format_table(report: Report) -> str:
    title = (f"mpspatch drift on {report.fixture_files} files, {report.slice_files}-file {report.slice_lines}-line "
             f"slice, {report.base} -> {report.onto}, median of {report.runs}, {report.git_version}, "
             f"{report.cpus} CPUs")
    rows = [f"{t.name:<26} {t.median_s * 1000:>8.1f} ms  (min {t.min_s * 1000:.1f} ms)" for t in report.results]
    return "\n".join([
        title, *rows,
        f"target (2 x merge_tree + startup)        {report.target_s * 1000:8.1f} ms; drift_warm / target = "
        f"{report.warm_ratio_to_target:.2f} (on minima {report.warm_ratio_to_target_min:.2f}): "
        f"{_verdict(report.warm_ratio_to_target)}",
        f"cold target (2 x odb_forecast + startup) {report.cold_target_s * 1000:8.1f} ms; drift_cold / target = "
        f"{report.cold_ratio_to_target:.2f}: {_verdict(report.cold_ratio_to_target)}",
    ])


def _verdict(ratio_to_target: float) -> str:
    return "PASS" if ratio_to_target <= 1.0 else "MISS"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Time `mpspatch drift --json` on the real-scale fixture.")
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT, help="fixture folder (built if missing)")
    parser.add_argument("--files", type=int, default=DEFAULT_FILES)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--runs", type=int, default=DEFAULT_RUNS)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON report (default: %(default)s)")
    parser.add_argument("--check", action="store_true", help="exit 1 when a ratio misses its target")
    args = parser.parse_args(argv)
    if args.runs < 1:
        print("bench_drift.py: --runs must be at least 1", file=sys.stderr)
        return 2
    report = run(ensure_fixtures(args.root, n_files=args.files, seed=args.seed), args.runs)
    print(format_table(report))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(args.out.name + ".tmp")
    tmp.write_text(json.dumps(asdict(report), indent=2, sort_keys=True) + "\n")
    tmp.replace(args.out)
    print(f"wrote {args.out}")
    missed = report.warm_ratio_to_target > 1.0 or report.cold_ratio_to_target > 1.0
    return 1 if args.check and missed else 0


if __name__ == "__main__":
    sys.exit(main())
