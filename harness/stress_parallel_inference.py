"""Stress rounds for parallel MPS inference: each round is a fresh process, so a crash costs one round.

Every round starts THREADS threads that each run ITERATIONS forward passes of a small model on the MPS
device and compare them with the CPU. A round that dies (a signal, an abort inside Metal, a hang past the
time limit) counts as a crash; a result that differs from the CPU counts as a mismatch.

After each round it prints `mpspatch-counts: rounds=R crashes=C mismatches=M hangs=H`, the line mpspatch's
`command` parser reads (the last one wins), and it exits 1 when anything went wrong.

    python stress_parallel_inference.py --rounds 20 --threads 8 --iterations 50
"""

from __future__ import annotations

import argparse
import copy
import signal
import subprocess
import sys
import threading

ROUND_MARK = "round-result:"


def one_round(threads: int, iterations: int) -> int:
    import torch

    if not torch.backends.mps.is_available():
        print("MPS is not available", file=sys.stderr)
        return 3
    torch.manual_seed(0)
    model_cpu = torch.nn.Sequential(torch.nn.Linear(128, 256), torch.nn.ReLU(), torch.nn.Linear(256, 10)).eval()
    on_gpu = copy.deepcopy(model_cpu).to("mps")  # one model shared by every thread, as a server would
    mismatches = 0
    lock = threading.Lock()

    def work(index: int) -> None:
        nonlocal mismatches
        with torch.no_grad():
            for i in range(iterations):
                x = torch.full((4, 128), 0.01 * (index + 1) + 0.001 * i)
                want = model_cpu(x)
                got = on_gpu(x.to("mps")).cpu()
                if not torch.allclose(got, want, rtol=1e-3, atol=1e-3):
                    with lock:
                        mismatches += 1

    pool = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    torch.mps.synchronize()
    print(f"{ROUND_MARK} mismatches={mismatches}", flush=True)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--iterations", type=int, default=50)
    parser.add_argument("--round-timeout", type=float, default=600.0)
    parser.add_argument("--one-round", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one_round:
        return one_round(args.threads, args.iterations)

    crashes = mismatches = hangs = 0
    for number in range(1, args.rounds + 1):
        argv = [sys.executable, __file__, "--one-round", "--threads", str(args.threads),
                "--iterations", str(args.iterations)]
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=args.round_timeout, check=False)
        except subprocess.TimeoutExpired:
            hangs += 1
            print(f"round {number}: hung for more than {args.round_timeout:g}s", flush=True)
        else:
            found = [line for line in done.stdout.splitlines() if line.startswith(ROUND_MARK)]
            if done.returncode < 0:
                crashes += 1
                print(f"round {number}: crashed with {signal.Signals(-done.returncode).name}", flush=True)
            elif done.returncode != 0 or not found:
                crashes += 1
                print(f"round {number}: exited {done.returncode} without a result", flush=True)
            else:
                bad = int(found[-1].split("mismatches=")[1])
                mismatches += bad
                print(f"round {number}: ok, {bad} mismatches", flush=True)
            if done.returncode != 0:
                sys.stdout.write(done.stderr[-2000:])
        print(f"mpspatch-counts: rounds={number} crashes={crashes} mismatches={mismatches} hangs={hangs}",
              flush=True)
    return 1 if crashes or mismatches or hangs else 0


if __name__ == "__main__":
    sys.exit(main())
