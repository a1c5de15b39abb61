#!/usr/bin/env python3
"""What the structured merge of native_functions.yaml costs, against git's own line merge of the same file.

A PyTorch-sized file (2,500 entries, about 16k lines, like PyTorch's) is merged three ways, upstream adding
an XPU kernel and the patch an MPS kernel to one `dispatch:` map (the record_stream case), by:

* ``driver``: the driver process git starts in the shadow (`python -P -m mpspatch.commands.merge_driver`);
* ``git merge-file``: git's line merge of the same three files (which conflicts here).

The driver runs once per merge of the file in which both sides changed it: once per such patch in a
forecast, and once per such pick in a rebase. Medians of interleaved runs.

    python benchmarks/bench_merge_driver.py [--runs 11]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def native_yaml(entries: int) -> str:
    lines = ["# See README.md in this directory for more guidance\n", "\n"]
    for i in range(entries):
        lines += [f"- func: op_{i}.Tensor(Tensor self, Tensor other, *, Scalar alpha=1) -> Tensor\n",
                  "  device_check: NoCheck   # TensorIterator\n", "  variants: function, method\n",
                  "  dispatch:\n", f"    CPU, CUDA: op_{i}_out\n", f"    SparseCPU, SparseCUDA: op_{i}_sparse\n",
                  "  tags: [core, pointwise]\n", "\n"]
    return "".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=11)
    args = parser.parse_args(argv)
    base = native_yaml(2500)
    anchor = "    CPU, CUDA: op_1250_out\n"
    ours = base.replace(anchor, anchor + "    XPU: op_1250_xpu\n")
    theirs = base.replace(anchor, anchor + "    MPS: op_1250_mps\n")
    times: dict[str, list[float]] = {"driver": [], "git merge-file": []}
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        o, b = work / "O", work / "B"
        o.write_text(base)
        b.write_text(theirs)
        commands = {
            "driver": [sys.executable, "-P", "-m", "mpspatch.commands.merge_driver", "--style", "merge"],
            "git merge-file": ["git", "merge-file"],
        }
        for _ in range(args.runs + 1):  # the first round warms the caches and is dropped
            for name, argv_ in commands.items():
                a = work / "A"
                a.write_text(ours)
                files = [str(o), str(a), str(b), "7", "native_functions.yaml"] if name == "driver" \
                    else [str(a), str(o), str(b)]
                start = time.perf_counter()
                done = subprocess.run([*argv_, *files], capture_output=True, check=False, cwd=work)
                times[name].append(time.perf_counter() - start)
                if name == "driver" and (done.returncode != 0 or "op_1250_mps" not in a.read_text()):
                    print(f"the driver did not merge cleanly: {done.stderr.decode()[-400:]}", file=sys.stderr)
                    return 1
    print(f"{'merge of a 20k-line native_functions.yaml':<44} {'median':>8} {'range':>18}")
    for name, samples in times.items():
        kept = samples[1:]
        print(f"{name:<44} {statistics.median(kept):>7.3f}s {min(kept):>8.3f}-{max(kept):.3f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
