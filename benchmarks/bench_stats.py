"""`mpspatch stats --json` on a cumulative-sized patch against a bare import of the CLI's own stack.

The target: stats costs at most 1.5x `python -c "import typer, rich, jinja2"` (the third-party imports the CLI
really makes), i.e. parsing a 7,608-line, 50-file patch and categorising it must be cheap next to interpreter
start-up. The two commands run in turn, one of each per round, so a drift in the machine's load hits both.

    python benchmarks/bench_stats.py [--runs N]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.bench_drift import interleaved
from benchmarks.bench_git import ratio
from benchmarks.fixtures import build_cumulative_patch

TARGET = 1.5
CONFIG = """
[upstream]
checkout = "."
base = "v2.9.1"

[series]
patches = ["cumulative.patch"]
allowed_paths = ["aten/src/ATen/", "torch/", "test/test_mps.py"]

[categories]
"Core MPS" = ["aten/src/ATen/mps/**", "aten/src/ATen/detail/MPSHooksInterface.h"]
"Operations" = ["aten/src/ATen/native/mps/**", "aten/src/ATen/native/sparse/mps/**"]
"Python bindings" = ["torch/csrc/mps/**", "torch/mps/**", "aten/src/ATen/native/native_functions.yaml"]
"Tests" = ["test/test_mps.py"]
"""
BASELINE = "import typer, rich, jinja2"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--check", action="store_true", help="exit 1 when the ratio misses its target")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        fixture = build_cumulative_patch(work / "cumulative.patch")
        (work / "mpspatch.toml").write_text(CONFIG)
        # Byte-compile first: an installed package has .pyc files, and PYTHONDONTWRITEBYTECODE may be set here.
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(Path(__file__).parent.parent / "mpspatch")],
                       check=True)
        stats_argv = [sys.executable, "-m", "mpspatch.cli", "stats", "--json"]
        check = json.loads(subprocess.run(stats_argv, cwd=work, capture_output=True, text=True, check=True).stdout)
        numstat = subprocess.run(["git", "apply", "--numstat", "cumulative.patch"], cwd=work, capture_output=True,
                                 text=True, check=True).stdout.splitlines()
        git_ins = sum(int(line.split("\t")[0]) for line in numstat)
        git_del = sum(int(line.split("\t")[1]) for line in numstat)
        assert (check["files"], check["insertions"], check["deletions"]) == (len(numstat), git_ins, git_del), check
        bare, stats = interleaved({
            BASELINE: lambda: subprocess.run([sys.executable, "-c", BASELINE], check=True),
            "mpspatch stats --json": lambda: subprocess.run(stats_argv, cwd=work, check=True,
                                                            stdout=subprocess.DEVNULL),
        }, args.runs)
    print(f"patch: {fixture.lines} lines, {check['files']} files, +{check['insertions']} -{check['deletions']} "
          f"(equal to git apply --numstat)")
    for timing in (bare, stats):
        print(f"{timing.name:<36} median {timing.median_s * 1000:7.1f} ms   min {timing.min_s * 1000:7.1f} ms")
    measured = ratio(stats, bare)
    print(f"ratio stats / bare import: {measured:.2f} (target <= {TARGET}): {'PASS' if measured <= TARGET else 'MISS'}")
    return 1 if args.check and measured > TARGET else 0


if __name__ == "__main__":
    raise SystemExit(main())
