#!/usr/bin/python3
"""bench/jobs: a 4-step fleet test job on N real boards, against the same
steps issued by hand through the Fleet API, in the same run.

For each N (default 50, 200) it brings up a lab with `deploy/lab up` and
applies a job of four steps:

    push job_app.py, push job_app_copy.py (the same bytes under another name),
    run job_app.py (waits for its end), expect {output: "bench app ok",
    no_failed_threads: true}

then, alternating round by round so machine noise hits both alike:
  - job:  Fleet.RunJob(wait=true), wall time, and fleetd's CPU during it;
  - hand: what a script would do with the Fleet API for the same result:
    PushFile x2 (fan-out streams), RunProgram (fan-out), one StreamOutput
    (follow) per board in parallel until every program ended, the output
    checked against the same regex, ListThreads for failed threads.
Both paths push without force, so after the first round both find the
boards' files unchanged (the board still checks the SHA-256 each time).
Prints medians and the ratio job / hand (target <= 1.2) and fleetd's CPU
(% of one core) during each. Asserts nothing about timings: exits 1 only
when something does not work.

usage: jobs_bench.py --bin DIR [--boards 50,200] [--rounds 3] [--budget S] [--keep]
Needs the generated Python stubs of proto/ on PYTHONPATH; runs with
Debian's /usr/bin/python3 (grpcio).
"""

import argparse
import concurrent.futures
import pathlib
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

import grpc
from threadfleet.board.v1 import board_pb2
from threadfleet.fleet.v1 import fleet_pb2

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "fleet_scale"))
from fleet_scale import (BenchError, Deadline, Fleet, Lab, proc_cpu_seconds,  # noqa: E402
                         wait_online)

APP = HERE / "job_app.py"
EXPECT = "bench app ok"
RUN_TIMEOUT_S = 300
TARGET_RATIO = 1.2

SPEC = """\
name: bench-jobs
boards: {selector: "lab=local", count: all}
timeout: 5m
steps:
  - push: {file: job_app.py}
  - push: {file: job_app_copy.py}
  - run: {file: job_app.py, timeout: 2m}
  - expect: {output: "bench app ok", no_failed_threads: true}
"""


def log(msg):
    print(f"jobs_bench: {msg}", file=sys.stderr, flush=True)


def apply_job(fleet, work):
    job_dir = work / "job"
    job_dir.mkdir(parents=True, exist_ok=True)
    content = APP.read_bytes()
    request = fleet_pb2.ApplyJobRequest(spec_yaml=SPEC, spec_file="bench-jobs.yaml")
    for name in ("job_app.py", "job_app_copy.py"):
        request.files.add(path=name, content=content)
    fleet.call("ApplyJob", request)


def run_job(fleet):
    run = fleet.call("RunJob", fleet_pb2.RunJobRequest(name="bench-jobs", wait=True), timeout=RUN_TIMEOUT_S).run
    if run.state != fleet_pb2.RUN_STATE_PASSED:
        bad = [f"{r.board}: {r.message}" for r in run.results if r.state != fleet_pb2.RUN_STATE_PASSED][:3]
        raise BenchError(f"job run {run.id} ended {fleet_pb2.RunState.Name(run.state)}: {run.message} {bad}")


def push(fleet, path, content):
    request = fleet_pb2.PushFileRequest(selector=fleet_pb2.Selector(labels="lab=local"), path=path, content=content)
    failed = []
    for msg in fleet.stub.PushFile(request, metadata=fleet.metadata, timeout=RUN_TIMEOUT_S):
        if msg.stage == fleet_pb2.PUSH_STAGE_FAILED:
            failed.append(f"{msg.board}: {msg.error.message}")
    if failed:
        raise BenchError(f"push {path} failed on {len(failed)} boards, e.g. {failed[0]}")


def follow(fleet, board, program_id):
    out = []
    request = fleet_pb2.StreamOutputRequest(board=board, program_id=program_id, follow=True)
    for msg in fleet.stub.StreamOutput(request, metadata=fleet.metadata, timeout=RUN_TIMEOUT_S):
        out.append(msg.chunk.data)
    return board, b"".join(out).decode("utf-8", "replace")


def run_by_hand(fleet, pool, boards):
    content = APP.read_bytes()
    push(fleet, "/job_app.py", content)
    push(fleet, "/job_app_copy.py", content)
    started = fleet.call("RunProgram", fleet_pb2.RunProgramRequest(
        selector=fleet_pb2.Selector(labels="lab=local"), path="/job_app.py"), timeout=RUN_TIMEOUT_S)
    programs = {}
    for r in started.results:
        if r.error.code:
            raise BenchError(f"run on {r.board}: {r.error.message}")
        programs[r.board] = r.program_id
    if len(programs) != boards:
        raise BenchError(f"RunProgram started {len(programs)} of {boards} boards")
    pattern = re.compile(EXPECT)
    for board, output in pool.map(lambda item: follow(fleet, *item), programs.items()):
        if not pattern.search(output):
            raise BenchError(f"{board}: the output lacks {EXPECT!r}")
    threads = fleet.call("ListThreads", fleet_pb2.ListThreadsRequest(
        selector=fleet_pb2.Selector(labels="lab=local"), include_finished=True))
    for bt in threads.boards:
        pid = programs[bt.board]
        if any(t.program_id == pid and t.state == board_pb2.THREAD_STATE_FAILED for t in bt.threads):
            raise BenchError(f"{bt.board}: a thread failed")


def timed(lab, fn):
    pid = lab.pid("fleetd")
    cpu0, t0 = proc_cpu_seconds(pid), time.monotonic()
    fn()
    wall = time.monotonic() - t0
    return wall, 100 * (proc_cpu_seconds(pid) - cpu0) / wall


def measure(args, boards, work):
    result = {"boards": boards, "problems": []}
    deadline = Deadline(args.budget or 300 + 1.0 * boards)
    lab = Lab(work / f"lab-{boards}", args.bin, boards)
    fleet = None
    try:
        lab.up(deadline)
        fleet = Fleet(lab)
        wait_online(fleet, boards, deadline)
        apply_job(fleet, work)
        job, hand = [], []
        with concurrent.futures.ThreadPoolExecutor(max_workers=min(boards, 64)) as pool:
            run_by_hand(fleet, pool, boards)  # warm-up: every board has the files, both paths find them unchanged
            for i in range(args.rounds):
                deadline.left(f"round {i + 1}")
                job.append(timed(lab, lambda: run_job(fleet)))
                hand.append(timed(lab, lambda: run_by_hand(fleet, pool, boards)))
                log(f"N={boards} round {i + 1}: job {job[-1][0]:.2f} s, by hand {hand[-1][0]:.2f} s")
        result["job_s"] = statistics.median(w for w, _ in job)
        result["hand_s"] = statistics.median(w for w, _ in hand)
        result["job_cpu"] = statistics.median(c for _, c in job)
        result["hand_cpu"] = statistics.median(c for _, c in hand)
    except (BenchError, grpc.RpcError, OSError, subprocess.SubprocessError) as e:
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


def report(results):
    print(f"bench/jobs: a 4-step job (push, push, run, expect) vs the same steps by hand through the Fleet API")
    print(f"{'boards':>7} {'job s':>8} {'hand s':>8} {'ratio':>7} {'fleetd CPU job':>15} {'by hand':>8}")
    ok = True
    for r in results:
        if r["problems"]:
            ok = False
            print(f"{r['boards']:>7}  FAILED: {'; '.join(r['problems'])}")
            continue
        ratio = r["job_s"] / r["hand_s"]
        print(f"{r['boards']:>7} {r['job_s']:>8.2f} {r['hand_s']:>8.2f} {ratio:>6.2f}x {r['job_cpu']:>14.1f}% "
              f"{r['hand_cpu']:>7.1f}%")
    print(f"target: ratio <= {TARGET_RATIO}x (fleetd CPU: % of one core while the run lasts)")
    return 0 if ok else 1


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bin", required=True, help="directory with fleetboard, fleetd and fleetctl")
    parser.add_argument("--boards", default="50,200", help="comma-separated lab sizes (default 50,200)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per N (medians)")
    parser.add_argument("--budget", type=float, help="seconds per N (default 300 + 1 s per board)")
    parser.add_argument("--keep", action="store_true", help="keep the labs' directories")
    args = parser.parse_args()
    sizes = [int(n) for n in args.boards.split(",")]
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    work = pathlib.Path(tempfile.mkdtemp(prefix="jobs-bench-"))
    try:
        results = [measure(args, n, work) for n in sizes]
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    return report(results)


if __name__ == "__main__":
    sys.exit(main())
