#!/usr/bin/python3
"""bench/runtime: threadfleet's board runtime vs the stock MicroPython unix port.

Both are built from the same MicroPython 1.25 source in the same build; each
configuration runs alternately ROUNDS times and the medians are compared, so
machine noise hits both sides alike. The stock port is built at fleetvm's
optimisation level (bench/stock-micropython/build.sh, STOCK_MICROPYTHON_OPT),
so the ratio compares the runtimes, not -Os against -O3. Each case runs for
seconds (a process starts in milliseconds), so start-up is not the figure.
Prints ratios (ours / stock) per case: wall time and CPU time for the
thread-heavy workload on all cores and pinned to one core, one thread, the
single-thread interpreter workload (compute.py), and the board's peak RSS
with 16 threads at a 256 KB heap.

usage: bench_runtime.py FLEETBOARD STOCK_MICROPYTHON [--rounds N] [--iterations N]
                        [--compute-rounds N]
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def run(cmd, pin_cpu=None):
    """Runs cmd; returns (stdout, wall seconds, cpu seconds)."""
    if pin_cpu is not None:
        cmd = ["taskset", "-c", str(pin_cpu)] + cmd
    start = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out = proc.stdout.read()
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - start
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"bench_runtime: {' '.join(cmd)} failed: {err.decode(errors='replace')}")
    return out.decode(), wall, usage.ru_utime + usage.ru_stime


def peak_rss_kib(cmd):
    """Peak RSS of cmd, measured by GNU time (a forked Python child would
    report the parent's RSS from before exec)."""
    with tempfile.NamedTemporaryFile("r") as out:
        subprocess.run(["/usr/bin/time", "-f", "%M", "-o", out.name] + cmd, check=True,
                       stdout=subprocess.DEVNULL)
        return int(out.read().strip().splitlines()[-1])


def compare(name, ours_cmd, stock_cmd, rounds, pin_cpu=None):
    results = {"ours": [], "stock": []}
    expected = None
    for _ in range(rounds):
        for side, cmd in (("stock", stock_cmd), ("ours", ours_cmd)):
            out, wall, cpu = run(cmd, pin_cpu)
            if expected is None:
                expected = out
            elif out != expected:
                sys.exit(f"bench_runtime: {side} printed {out!r}, expected {expected!r}")
            results[side].append((wall, cpu))
    med = {side: (statistics.median(w for w, _ in r), statistics.median(c for _, c in r))
           for side, r in results.items()}
    wall_ratio = med["ours"][0] / med["stock"][0]
    cpu_ratio = med["ours"][1] / med["stock"][1]
    print(f"{name}: wall ours={med['ours'][0]:.3f}s stock={med['stock'][0]:.3f}s ratio={wall_ratio:.3f} | "
          f"cpu ours={med['ours'][1]:.3f}s stock={med['stock'][1]:.3f}s ratio={cpu_ratio:.3f}")
    return wall_ratio, cpu_ratio


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("fleetboard")
    parser.add_argument("stock")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--iterations", type=int, default=1000000)
    parser.add_argument("--compute-rounds", type=int, default=1000)
    args = parser.parse_args()

    workload = os.path.join(HERE, "workload.py")
    params = ["4", str(args.iterations)]
    ours = [args.fleetboard, "run", "--heap", "2m", workload] + params
    stock = [args.stock, "-X", "heapsize=2m", workload] + params
    print(f"bench/runtime: 4 threads x {args.iterations} lock-protected counts, "
          f"{args.rounds} alternating rounds, medians")
    compare("4 threads, all cores", ours, stock, args.rounds)
    compare("4 threads, one core ", ours, stock, args.rounds, pin_cpu=0)
    ours1 = [args.fleetboard, "run", "--heap", "2m", workload, "1", str(args.iterations)]
    stock1 = [args.stock, "-X", "heapsize=2m", workload, "1", str(args.iterations)]
    compare("1 thread            ", ours1, stock1, args.rounds)
    compute = os.path.join(HERE, "compute.py")
    compare("compute, 1 thread   ", [args.fleetboard, "run", "--heap", "2m", compute, str(args.compute_rounds)],
            [args.stock, "-X", "heapsize=2m", compute, str(args.compute_rounds)], args.rounds)

    rss = peak_rss_kib([args.fleetboard, "run", "--heap", "256k", os.path.join(HERE, "idle_threads.py")])
    stock_rss = peak_rss_kib([args.stock, "-X", "heapsize=256k", os.path.join(HERE, "idle_threads.py")])
    print(f"board RSS with 16 threads at 256 KB heap: {rss / 1024:.1f} MB "
          f"(stock unix port, same script: {stock_rss / 1024:.1f} MB; ratio={rss / stock_rss:.2f}; "
          f"target < 16 MB)")


if __name__ == "__main__":
    main()
