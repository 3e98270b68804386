#!/usr/bin/python3
"""bench/board_snapshot: what a WatchHealth stream costs one real board.

Starts one `fleetboard serve` (fresh PKI and flash in a temporary directory),
runs bench/fleet_scale/ten_sleepers.py on it (10 sleeping MicroPython
threads), then alternates windows without a health watch (the baseline) and
with WatchHealth at each asked period, and prints the board's CPU in each
(% of one core, from the ns counters in /proc/PID/task/*/schedstat; the
tick-based utime+stime of /proc/PID/stat beside it) and the extra CPU per
snapshot received: (watched - baseline) / snapshots.

  PYTHONPATH=build/default/python /usr/bin/python3 bench/board_snapshot/board_cpu.py \
      --board build/release/bin/fleetboard [--periods 100,1000] [--window 10] [--rounds 2]
"""

import argparse
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

import grpc
from threadfleet.board.v1 import board_pb2, board_pb2_grpc

REPO = pathlib.Path(__file__).resolve().parents[2]
SLEEPERS = REPO / "bench" / "fleet_scale" / "ten_sleepers.py"
START_TIMEOUT_S = 20
RPC_TIMEOUT_S = 10


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def task_cpu_ns(pid):
    """CPU of every live task of pid, in ns (schedstat's first field)."""
    total = 0
    for task in pathlib.Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (FileNotFoundError, ProcessLookupError):
            pass  # a task ended while we looked
    return total


def stat_cpu_s(pid):
    fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Board:
    def __init__(self, binary, work):
        pki = work / "pki"
        for args in (["init", pki], ["issue", pki, "b01", "--server"], ["issue", pki, "bench", "--client"]):
            subprocess.run([REPO / "deploy" / "pki", *map(str, args)], check=True, stderr=subprocess.DEVNULL)
        port = free_port()
        self.log = open(work / "board.log", "w+b")
        self.proc = subprocess.Popen(
            [binary, "serve", "--name", "b01", "--listen", f"127.0.0.1:{port}", "--flash", work / "b01.lfs",
             "--cert", pki / "b01.pem", "--key", pki / "b01.key", "--ca", pki / "ca.pem"],
            stdout=subprocess.DEVNULL, stderr=self.log)
        deadline = time.monotonic() + START_TIMEOUT_S
        while b"fleetboard: serving" not in (work / "board.log").read_bytes():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the board did not start: " + (work / "board.log").read_text())
            time.sleep(0.02)
        creds = grpc.ssl_channel_credentials((pki / "ca.pem").read_bytes(), (pki / "bench.key").read_bytes(),
                                             (pki / "bench.pem").read_bytes())
        self.channel = grpc.secure_channel(f"127.0.0.1:{port}", creds)
        self.stub = board_pb2_grpc.BoardControlStub(self.channel)
        self.stub.GetInfo(board_pb2.GetInfoRequest(), timeout=RPC_TIMEOUT_S)

    def start_sleepers(self):
        self.stub.StartProgram(board_pb2.StartProgramRequest(source=SLEEPERS.read_text(), name="ten_sleepers.py"),
                               timeout=RPC_TIMEOUT_S)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            threads = self.stub.ListThreads(board_pb2.ListThreadsRequest(), timeout=RPC_TIMEOUT_S).threads
            if sum(t.state == board_pb2.THREAD_STATE_SLEEPING for t in threads) == 10:
                return
            time.sleep(0.05)
        raise RuntimeError("the 10 sleepers did not all sleep")

    def close(self):
        self.channel.close()
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


class Watch:
    """A WatchHealth stream consumed on a thread of its own; counts snapshots."""

    def __init__(self, stub, period_ms):
        self.snapshots = 0
        self.call = stub.WatchHealth(board_pb2.WatchHealthRequest(period_ms=period_ms))
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        try:
            for update in self.call:
                if update.HasField("snapshot"):
                    self.snapshots += 1
        except grpc.RpcError:
            pass  # cancelled

    def stop(self):
        self.call.cancel()
        self.thread.join(timeout=5)


def window(board, seconds, period_ms=None):
    """Board CPU (ns, stat seconds) over `seconds`, with a watch at period_ms if given; snapshots counted."""
    watch = Watch(board.stub, period_ms) if period_ms else None
    if watch:
        time.sleep(1.0)  # the stream's start (TLS stream, first snapshot) is not what we measure
    snaps0 = watch.snapshots if watch else 0
    ns0, st0, t0 = task_cpu_ns(board.proc.pid), stat_cpu_s(board.proc.pid), time.monotonic()
    time.sleep(seconds)
    ns1, st1, t1 = task_cpu_ns(board.proc.pid), stat_cpu_s(board.proc.pid), time.monotonic()
    snaps = (watch.snapshots if watch else 0) - snaps0
    if watch:
        watch.stop()
    return (ns1 - ns0) / 1e9 / (t1 - t0), (st1 - st0) / (t1 - t0), snaps / (t1 - t0)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--board", required=True, help="the fleetboard binary")
    ap.add_argument("--periods", default="100,1000", help="WatchHealth periods in ms, comma separated")
    ap.add_argument("--window", type=float, default=10.0, help="seconds per measuring window")
    ap.add_argument("--rounds", type=int, default=2, help="baseline/watched alternations per period")
    args = ap.parse_args()
    periods = [int(p) for p in args.periods.split(",")]
    work = pathlib.Path(tempfile.mkdtemp(prefix="board_cpu."))
    board = None
    try:
        board = Board(args.board, work)
        board.start_sleepers()
        time.sleep(1.0)
        print(f"{'period':>8} {'round':>5} {'base CPU':>9} {'watch CPU':>9} {'(stat)':>8} {'snap/s':>7} "
              f"{'ms CPU / snapshot':>17}")
        for period in periods:
            per_snapshot = []
            for r in range(args.rounds):
                base, base_st, _ = window(board, args.window)
                watched, watched_st, rate = window(board, args.window, period)
                ms = (watched - base) * 1000 / rate if rate else float("nan")
                per_snapshot.append(ms)
                print(f"{period:>6}ms {r + 1:>5} {100 * base:>8.3f}% {100 * watched:>8.3f}% "
                      f"{100 * (watched_st - base_st):>+7.2f}% {rate:>7.2f} {ms:>17.3f}", flush=True)
            per_snapshot.sort()
            print(f"{period:>6}ms median ms CPU / snapshot: {per_snapshot[len(per_snapshot) // 2]:.3f}")
    finally:
        if board:
            board.close()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
