#!/usr/bin/python3
"""bench/dashboard: the dashboard in a real browser against a lab of N boards
with 10 threads each, against the same pages on a small lab in the same run.

For each lab size (the baseline, default 4 boards, then each N, default 200)
it brings up a lab with `deploy/lab up` (256 KB heaps, health at 1 Hz, fleetd
serving web-ui/dist), starts 10 sleeping threads on every board (`fleetctl
run` of bench/fleet_scale/ten_sleepers.py) and waits until fleetd shows them,
then runs measure.mjs (Debian's chromium through playwright-core), which for
--rounds fresh signed-in browser contexts measures:

  - overview render: navigation start to every tile data-state="online";
  - board render: navigation start to the first board's thread table with 10
    live rows;
  - live-update cost of each page once rendered: the renderer main thread's
    task time (CDP Performance.getMetrics TaskDuration) over --window seconds
    of wall time, as % of that time, with DOM mutations a second beside it;
  - the host's busy share (/proc/stat, all cores) while the browser measured.

Prints medians for each size, the ratios N / baseline, and the figures
against the targets (first render < 1 s; live updates < 10 % of the main
thread). Asserts nothing about timings: exits 1 only when something does not
work (a lab does not come up, a page does not render, the page logs errors).
Every lab runs within --budget seconds and is torn down (`deploy/lab down`)
even when something fails.

usage: dashboard_bench.py --bin DIR [--boards 200] [--baseline-boards 4] [--rounds 3]
                          [--window 5] [--budget S] [--keep]
Needs web-ui/dist built (the CMake target web-ui) and its node_modules
(deploy/bootstrap), the Python stubs of proto/ on PYTHONPATH; runs with
Debian's /usr/bin/python3 (grpcio).
"""

import argparse
import json
import pathlib
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile

import grpc

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE.parent / "fleet_scale"))
from fleet_scale import (BenchError, Deadline, Fleet, Lab, host_busy_jiffies, start_sleepers,  # noqa: E402
                         wait_online)

MEASURE = HERE / "measure.mjs"
WEB_ROOT = REPO / "web-ui" / "dist"
THREADS_PER_BOARD = 10
TARGET_RENDER_S = 1.0
TARGET_BUSY_PERCENT = 10.0


def log(msg):
    print(f"dashboard_bench: {msg}", file=sys.stderr, flush=True)


def dashboard_url(lab):
    state = json.loads((lab.dir / "lab.json").read_text())
    return f"http://127.0.0.1:{state['http_port']}/"


def browse(lab, boards, args, deadline):
    """measure.mjs against this lab; its JSON result."""
    token = lab.fleetctl_settings()["token"]
    first = json.loads((lab.dir / "lab.json").read_text())["boards"][0]
    cmd = ["node", str(MEASURE), "--url", dashboard_url(lab), "--token", token, "--boards", str(boards),
           "--board", first, "--threads", str(THREADS_PER_BOARD), "--rounds", str(args.rounds),
           "--window", str(args.window)]
    try:
        proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=deadline.left("browser measurements"))
    except subprocess.TimeoutExpired as e:
        raise BenchError("measure.mjs did not finish within the time budget") from e
    if proc.returncode != 0:
        raise BenchError(f"measure.mjs exited {proc.returncode}: {proc.stderr.strip()[-800:]}")
    result = json.loads(proc.stdout)
    if result["console_errors"]:
        raise BenchError(f"the dashboard logged {len(result['console_errors'])} error(s), e.g. "
                         f"{result['console_errors'][0]!r}")
    return result


def measure(args, boards, work):
    result = {"boards": boards, "problems": []}
    deadline = Deadline(args.budget or 240 + 1.0 * boards)
    lab = Lab(work / f"lab-{boards}", args.bin, boards)
    fleet = None
    try:
        lab.up(deadline)
        fleet = Fleet(lab)
        wait_online(fleet, boards, deadline)
        start_sleepers(fleet, boards, deadline)
        log(f"N={boards}: every board online with {THREADS_PER_BOARD} threads; measuring in chromium")
        busy0, total0 = host_busy_jiffies()
        figures = browse(lab, boards, args, deadline)
        busy1, total1 = host_busy_jiffies()
        # The whole host's busy share while the browser measured: the boards, fleetd and
        # chromium share the cores, so a render is only as fast as the host is idle.
        result["host_busy"] = (busy1 - busy0) / max(1, total1 - total0)
        for key, values in figures.items():
            if key != "console_errors":
                result[key] = statistics.median(values)
        log(f"N={boards}: overview {result['overview_render_s']:.3f} s, board {result['board_render_s']:.3f} s, "
            f"busy {100 * result['overview_busy']:.1f} % / {100 * result['board_busy']:.1f} %")
    except (BenchError, grpc.RpcError, OSError, ValueError, subprocess.SubprocessError) as e:
        detail = f"{e.code().name}: {e.details()}" if isinstance(e, grpc.RpcError) else str(e)
        result["problems"].append(detail)
        log(f"N={boards}: FAILED: {detail}")
    finally:
        if fleet:
            fleet.close()
        problem = lab.down()
        if problem:
            result["problems"].append(problem)
    return result


def mark(ok):
    return "ok" if ok else "MISSED"


def report(results, args):
    print(f"bench/dashboard: the dashboard in Debian's chromium, labs of N boards with {THREADS_PER_BOARD} threads "
          f"each (medians of {args.rounds} rounds; live updates over {args.window} s)")
    print(f"{'boards':>7} {'overview render':>16} {'board render':>13} {'overview busy':>14} {'board busy':>11} "
          f"{'overview mut/s':>15} {'board mut/s':>12} {'host busy':>10}")
    ok = True
    for r in results:
        if r["problems"]:
            ok = False
            print(f"{r['boards']:>7}  FAILED: {'; '.join(r['problems'])}")
            continue
        print(f"{r['boards']:>7} {r['overview_render_s']:>14.3f} s {r['board_render_s']:>11.3f} s "
              f"{100 * r['overview_busy']:>12.1f} % {100 * r['board_busy']:>9.1f} % "
              f"{r['overview_mutations_per_s']:>15.0f} {r['board_mutations_per_s']:>12.0f} "
              f"{100 * r['host_busy']:>8.0f} %")
    base = results[0]
    for r in results[1:]:
        if r["problems"] or base["problems"]:
            continue

        def ratio(key):
            return r[key] / base[key] if base[key] > 0 else float("inf")

        print(f"{'ratio':>7} {ratio('overview_render_s'):>15.2f}x {ratio('board_render_s'):>12.2f}x "
              f"{ratio('overview_busy'):>13.2f}x {ratio('board_busy'):>10.2f}x   ({r['boards']} / {base['boards']} boards)")
    print(f"targets: first render < {TARGET_RENDER_S:.0f} s, live updates < {TARGET_BUSY_PERCENT:.0f} % of the main thread")
    for r in results[1:]:
        if r["problems"]:
            continue
        render = max(r["overview_render_s"], r["board_render_s"])
        busy = 100 * max(r["overview_busy"], r["board_busy"])
        print(f"  N={r['boards']}: slowest first render {render:.3f} s ({mark(render < TARGET_RENDER_S)}), "
              f"busiest page {busy:.1f} % ({mark(busy < TARGET_BUSY_PERCENT)})")
    return 0 if ok else 1


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bin", required=True, help="directory with fleetboard, fleetd and fleetctl")
    parser.add_argument("--boards", default="200", help="comma-separated lab sizes (default 200)")
    parser.add_argument("--baseline-boards", type=int, default=4, help="the same-run baseline's lab size")
    parser.add_argument("--rounds", type=int, default=3, help="browser rounds per lab (medians)")
    parser.add_argument("--window", type=float, default=5, help="seconds of live updates measured per page")
    parser.add_argument("--budget", type=float, help="seconds per lab (default 240 + 1 s per board)")
    parser.add_argument("--keep", action="store_true", help="keep the labs' directories")
    args = parser.parse_args()
    if not (WEB_ROOT / "index.html").is_file():
        print(f"dashboard_bench: no {WEB_ROOT}/index.html: build the target web-ui first", file=sys.stderr)
        return 1
    sizes = [args.baseline_boards] + [int(n) for n in args.boards.split(",")]
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    work = pathlib.Path(tempfile.mkdtemp(prefix="dashboard-bench-"))
    try:
        results = [measure(args, n, work) for n in sizes]
    finally:
        if args.keep:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return report(results, args)


if __name__ == "__main__":
    sys.exit(main())
