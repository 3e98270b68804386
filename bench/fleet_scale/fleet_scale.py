#!/usr/bin/python3
"""bench/fleet_scale: fleetd driving N real boards, against baselines run in
the same run.

For each N it brings up a lab with `deploy/lab up` (N `fleetboard serve`
processes at a 256 KB heap, health at 1 Hz, fleetd), starts 10 sleeping
threads on every board (`fleetctl run` of ten_sleepers.py) and measures:

  - fleetd's CPU (% of one core, from /proc/PID/stat over --cpu-window
    seconds) and RSS, per board too (target at 1000 boards: < 10 % of a core);
  - `fleetctl push` of a 64 KB script to all N boards, wall time, against the
    same push to ONE board (ratio N / 1; target at 1000 boards: < 3 s), with
    BoardControl.WriteFile of the same bytes straight to one board beside it;
  - kill round trip, p50/p99: `fleetctl kill` (CLI process included) and the
    same Fleet.KillThread from an in-process gRPC client, against
    BoardControl.KillThread sent straight to the board over mTLS (no fleetd);
    ratios fleetd / direct (target: CLI kill < 10 ms); beside them the TLS floor
    of any CLI: a process that only starts and finishes a TLS handshake with
    fleetd (bench_tls_connect_floor).
The three kill paths alternate round by round on the same boards, so machine
noise hits them alike. fleetd's CPU is also split out for its board-links
thread (every board's connection: health messages and board calls). When no N reaches 1000, a message-rate
run follows: --rate-boards boards (100) with health every --rate-period-ms
(100 ms), i.e. the 1000 messages a second of 1000 boards at 1 Hz; the fleetd
target is then projected as that run's board-links thread plus fleetd's
other threads' CPU per board at the largest N, times 1000. Every N runs within --budget seconds and its lab is
torn down (`deploy/lab down`) even when something fails.

Asserts nothing about timings: exits 1 only when something does not work (the
lab does not come up, a board stays offline, a push/run/kill fails); the table
then says at which N and why.

usage: fleet_scale.py --bin DIR [--boards 50,200,1000] [--cpu-window S]
                      [--kills N] [--push-rounds N] [--budget S] [--work-dir DIR] [--keep]
                      [--rate-boards M] [--rate-period-ms MS]
--bin holds fleetboard, fleetd, fleetctl and bench_tls_connect_floor; the generated Python stubs of
proto/ must be on PYTHONPATH. Runs with Debian's /usr/bin/python3 (grpcio).
"""

import argparse
import json
import os
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
from threadfleet.board.v1 import board_pb2_grpc
from threadfleet.fleet.v1 import fleet_pb2
from threadfleet.fleet.v1 import fleet_pb2_grpc

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parents[1]
LAB_SCRIPT = REPO / "deploy" / "lab"
PKI_SCRIPT = REPO / "deploy" / "pki"
SLEEPERS_SCRIPT = HERE / "ten_sleepers.py"
VICTIM_SCRIPT = HERE / "kill_victim.py"

HEAP_BYTES = 262144
HEALTH_PERIOD_MS = 1000
# fleetd's bounds of boards.health_period_ms (server/fleetd/config.h).
MIN_HEALTH_PERIOD_MS = 50
MAX_HEALTH_PERIOD_MS = 2500
# The name fleetd gives the thread of its board connections, which reads every
# board's health (server/fleetd/links/board_connections.cc).
HEALTH_THREAD = "board-links"
THREADS_PER_BOARD = 10
PUSH_BYTES = 64 * 1024
PUSH_PATH = "/fleet_scale_push64k.py"
VICTIM_PATH = "/kill_victim.py"
BENCH_CLIENT = "fleet-scale-bench"  # the client certificate for direct board calls
# The board's limit for one WriteFile data chunk (board.options), as fleetd sends.
BOARD_CHUNK_BYTES = 4096
# Kill victims rotate over at most this many boards (one mTLS channel each for
# the direct baseline), spread evenly over the lab.
KILL_BOARDS = 20
# A victim is started, then killed once it sleeps.
VICTIM_SETTLE_S = 0.03
RPC_TIMEOUT_S = 30
LAB_DOWN_TIMEOUT_S = 180
# How long deploy/lab may wait for the boards' serving lines and fleetd's ready
# line (its own default, 30 s + 0.1 s a board, is too short for 1000 boards on
# two cores: fleetd's ready line then took longer than 130 s).
LAB_READY_TIMEOUT_S = 60
LAB_READY_TIMEOUT_PER_BOARD_S = 0.6

TARGET_BOARDS = 1000
TARGET_FLEETD_CPU_PERCENT = 10.0
TARGET_PUSH_S = 3.0
TARGET_KILL_MS = 10.0

LIVE_STATES = (board_pb2.THREAD_STATE_RUNNING, board_pb2.THREAD_STATE_SLEEPING,
               board_pb2.THREAD_STATE_WAITING_LOCK)


class BenchError(Exception):
    """Something did not work at this N; the message says what."""


def log(msg):
    print(f"fleet_scale: {msg}", file=sys.stderr, flush=True)


class Deadline:
    """The time budget of one N: every wait and every child process is bounded by it."""

    def __init__(self, seconds):
        self.end = time.monotonic() + seconds
        self.seconds = seconds

    def left(self, what):
        left = self.end - time.monotonic()
        if left <= 0:
            raise BenchError(f"time budget of {self.seconds:.0f} s used up ({what})")
        return left


def percentile(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


# ---------------------------------------------------------------------------
# /proc readings


def proc_cpu_seconds(pid):
    """utime + stime of a process, in seconds."""
    fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_status_kib(pid, key):
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise BenchError(f"no {key} in /proc/{pid}/status")


def host_busy_jiffies():
    """(busy, total) jiffies of all cores from /proc/stat."""
    values = [int(v) for v in pathlib.Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


def thread_cpu_seconds(pid, comm):
    """utime+stime of the threads of `pid` named `comm`, in seconds."""
    total = 0
    for task in pathlib.Path(f"/proc/{pid}/task").iterdir():
        try:
            if (task / "comm").read_text().strip() != comm:
                continue
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the thread ended
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def sum_cpu_seconds(pids):
    total = 0.0
    for pid in pids:
        try:
            total += proc_cpu_seconds(pid)
        except (OSError, IndexError, ValueError):
            pass  # a board that died shows up as offline in fleetd's view
    return total


# ---------------------------------------------------------------------------
# The lab (deploy/lab owns every process; this only asks it)


class Lab:
    def __init__(self, directory, bin_dir, boards, health_period_ms=HEALTH_PERIOD_MS):
        self.dir = pathlib.Path(directory)
        self.bin = pathlib.Path(bin_dir)
        self.boards = boards
        self.health_period_ms = health_period_ms
        self.config = self.dir / "fleetctl.yaml"
        self.up_seconds = None

    def up(self, deadline):
        cmd = [str(LAB_SCRIPT), "up", "--boards", str(self.boards), "--dir", str(self.dir),
               "--bin", str(self.bin), "--heap", str(HEAP_BYTES), "--health-period-ms", str(self.health_period_ms),
               "--timeout", f"{LAB_READY_TIMEOUT_S + LAB_READY_TIMEOUT_PER_BOARD_S * self.boards:.0f}"]
        log(" ".join(cmd))
        start = time.monotonic()
        try:
            proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  text=True, timeout=deadline.left("deploy/lab up"))
        except subprocess.TimeoutExpired as e:
            raise BenchError("deploy/lab up did not finish within the time budget") from e
        self.up_seconds = time.monotonic() - start
        if proc.returncode != 0:
            tail = "\n".join(proc.stdout.strip().splitlines()[-12:])
            raise BenchError(f"deploy/lab up exited {proc.returncode}:\n{tail}")

    def down(self):
        cmd = [str(LAB_SCRIPT), "down", "--dir", str(self.dir)]
        try:
            proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  text=True, timeout=LAB_DOWN_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            return f"deploy/lab down did not finish within {LAB_DOWN_TIMEOUT_S} s"
        if proc.returncode != 0:
            return f"deploy/lab down exited {proc.returncode}: {proc.stdout.strip()}"
        return None

    def pid(self, name):
        return int((self.dir / "run" / f"{name}.pid").read_text().split()[0])

    def board_pids(self):
        pids = []
        for path in (self.dir / "run").glob("*.pid"):
            if path.stem != "fleetd":
                pids.append(int(path.read_text().split()[0]))
        return pids

    def fleetctl_settings(self):
        """server, ca and token from the fleetctl.yaml the lab wrote (one `key: value` a line)."""
        settings = {}
        for line in self.config.read_text().splitlines():
            m = re.match(r"^(\w+):\s*(\S+)\s*$", line)
            if m:
                settings[m.group(1)] = m.group(2)
        for key in ("server", "ca", "token"):
            if key not in settings:
                raise BenchError(f"{self.config} has no {key}")
        return settings

    def issue_bench_client_cert(self):
        pki = self.dir / "pki"
        subprocess.run([str(PKI_SCRIPT), "issue", str(pki), BENCH_CLIENT, "--client"], check=True,
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)
        return {k: (pki / f).read_bytes() for k, f in
                (("ca", "ca.pem"), ("cert", f"{BENCH_CLIENT}.pem"), ("key", f"{BENCH_CLIENT}.key"))}


class Fleet:
    """An in-process Fleet API client (TLS + bearer token), and the CLI beside it."""

    def __init__(self, lab):
        s = lab.fleetctl_settings()
        creds = grpc.ssl_channel_credentials(root_certificates=pathlib.Path(s["ca"]).read_bytes())
        self.channel = grpc.secure_channel(s["server"], creds, options=[("grpc.max_receive_message_length", 64 << 20)])
        self.stub = fleet_pb2_grpc.FleetStub(self.channel)
        self.metadata = (("authorization", f"Bearer {s['token']}"),)
        self.cli = [str(lab.bin / "fleetctl"), "--config", str(lab.config)]
        self.tls_floor = [str(lab.bin / "bench_tls_connect_floor"), s["ca"], s["server"]]

    def call(self, method, request, timeout=RPC_TIMEOUT_S):
        return getattr(self.stub, method)(request, metadata=self.metadata, timeout=timeout)

    def fleetctl(self, args, deadline, what, board_failures_ok=False):
        """Runs fleetctl; returns (stdout, wall seconds). Raises unless it exits 0 (or, with
        board_failures_ok, 1: some board of a fan-out failed and the output tells which)."""
        start = time.monotonic()
        try:
            proc = subprocess.run(self.cli + args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True, timeout=deadline.left(what))
        except subprocess.TimeoutExpired as e:
            raise BenchError(f"{what}: fleetctl did not finish within the time budget") from e
        wall = time.monotonic() - start
        if proc.returncode != 0 and not (board_failures_ok and proc.returncode == 1):
            raise BenchError(f"{what}: fleetctl {' '.join(args)} exited {proc.returncode}: {proc.stderr.strip()[-800:]}")
        return proc.stdout, wall

    def tls_connect(self, deadline):
        """One bench_tls_connect_floor process: start, OpenSSL set up, TCP + TLS to fleetd, exit."""
        try:
            proc = subprocess.run(self.tls_floor, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE, text=True, timeout=deadline.left("TLS connect floor"))
        except subprocess.TimeoutExpired as e:
            raise BenchError("bench_tls_connect_floor did not finish within the time budget") from e
        if proc.returncode != 0:
            raise BenchError(f"bench_tls_connect_floor exited {proc.returncode}: {proc.stderr.strip()[-400:]}")

    def close(self):
        self.channel.close()


# ---------------------------------------------------------------------------
# Measurements


def wait_online(fleet, boards, deadline):
    """Waits until fleetd reports every board ONLINE; returns the boards (name -> address)."""
    while True:
        resp = fleet.call("ListBoards", fleet_pb2.ListBoardsRequest())
        online = [b for b in resp.boards if b.state == fleet_pb2.BOARD_STATE_ONLINE]
        if len(resp.boards) == boards and len(online) == boards:
            return {b.name: b.address for b in resp.boards}
        if time.monotonic() + 0.5 > deadline.end:
            raise BenchError(f"only {len(online)} of {boards} boards online in fleetd "
                             f"({len(resp.boards)} in its inventory) within the time budget")
        time.sleep(0.5)


def live_threads_per_board(fleet):
    resp = fleet.call("ListThreads", fleet_pb2.ListThreadsRequest())
    return {b.board: sum(1 for t in b.threads if t.state in LIVE_STATES) for b in resp.boards}


def start_sleepers(fleet, boards, deadline):
    """`fleetctl run` of ten_sleepers.py on every board; waits until fleetd's view shows the threads."""
    _, wall = fleet.fleetctl(["run", "-l", "lab=local", str(SLEEPERS_SCRIPT)], deadline, "start 10 threads")
    while True:
        counts = live_threads_per_board(fleet)
        short = [b for b, n in counts.items() if n < THREADS_PER_BOARD]
        if len(counts) == boards and not short:
            return wall
        if time.monotonic() + 0.5 > deadline.end:
            raise BenchError(f"{len(short)} board(s) show fewer than {THREADS_PER_BOARD} live threads in fleetd "
                             f"(e.g. {sorted(short)[:3]}) within the time budget")
        time.sleep(0.5)


def measure_cpu(lab, fleet, window_s, deadline):
    """fleetd's CPU (% of one core) and RSS over the window, with the boards' and the host's CPU beside it."""
    deadline.left("fleetd CPU window")
    if deadline.end - time.monotonic() < window_s:
        raise BenchError("time budget too short for the CPU window")
    fleetd = lab.pid("fleetd")
    boards = lab.board_pids()
    f0, b0, h0, t0 = proc_cpu_seconds(fleetd), sum_cpu_seconds(boards), host_busy_jiffies(), time.monotonic()
    s0 = thread_cpu_seconds(fleetd, HEALTH_THREAD)
    time.sleep(window_s)
    f1, b1, h1, t1 = proc_cpu_seconds(fleetd), sum_cpu_seconds(boards), host_busy_jiffies(), time.monotonic()
    s1 = thread_cpu_seconds(fleetd, HEALTH_THREAD)
    resp = fleet.call("ListBoards", fleet_pb2.ListBoardsRequest())
    wall = t1 - t0
    return {
        "fleetd_cpu": 100 * (f1 - f0) / wall,
        "health_thread_cpu": 100 * (s1 - s0) / wall,
        "boards_cpu": 100 * (b1 - b0) / wall,
        "host_busy": 100 * (h1[0] - h0[0]) / max(1, h1[1] - h0[1]),
        "fleetd_rss_mb": proc_status_kib(fleetd, "VmRSS") / 1024,
        "fleetd_threads": proc_status_kib(fleetd, "Threads"),
        "online_after": sum(1 for b in resp.boards if b.state == fleet_pb2.BOARD_STATE_ONLINE),
    }


def push_script_text(size):
    """A valid Python script of exactly `size` bytes (size >= 100)."""
    lines, total = [], 0
    while total < size - 80:
        line = f"X{len(lines):05d} = 'abcdefghijklmnopqrstuvwxyz0123456789'\n"
        lines.append(line)
        total += len(line)
    return "".join(lines) + "# " + "p" * (size - total - 3) + "\n"


def push(fleet, path, selector_args, boards, deadline, what):
    """One `fleetctl push --force` (every round writes, though the content is the same: boards would
    otherwise report it unchanged); returns (wall seconds, {board: error} of the boards that did not
    report DONE)."""
    out, wall = fleet.fleetctl(["-o", "json", "push", "--force", str(path), "--path", PUSH_PATH] + selector_args,
                               deadline, what, board_failures_ok=True)
    done, failed = set(), {}
    for line in out.splitlines():
        try:
            message = json.loads(line)
        except ValueError as e:
            raise BenchError(f"{what}: fleetctl -o json printed a line that is not JSON: {line[:200]!r}") from e
        if message.get("stage") == "PUSH_STAGE_DONE":
            done.add(message.get("board"))
        elif message.get("stage") == "PUSH_STAGE_FAILED":
            failed[message.get("board")] = message.get("error", {}).get("message", "?")
    if len(done) + len(failed) != boards:
        raise BenchError(f"{what}: {len(done)} DONE and {len(failed)} FAILED of {boards} board(s)")
    return wall, failed


def measure_push(lab, fleet, direct, work, boards, rounds, deadline, problems):
    """Medians of a direct WriteFile to one board, of pushes to one board and to all, alternating,
    and of fleetd's CPU per board during the push to all (ms); a board that failed is listed in
    problems (that round's time still counts)."""
    path = work / "push64k.py"
    path.write_text(push_script_text(PUSH_BYTES))
    content = path.read_bytes()
    first_board = direct.names[0]
    fleetd = lab.pid("fleetd")
    one, all_, raw, fleetd_ms = [], [], [], []
    for r in range(rounds):
        raw.append(direct.write_seconds(content, deadline))
        for times, args, n in ((one, ["-b", first_board], 1), (all_, ["-l", "lab=local"], boards)):
            cpu0 = proc_cpu_seconds(fleetd)
            wall, failed = push(fleet, path, args, n, deadline, f"push to {n} board(s)")
            if n == boards:
                fleetd_ms.append(1000 * (proc_cpu_seconds(fleetd) - cpu0) / boards)
            times.append(wall)
            if failed:
                board, error = sorted(failed.items())[0]
                problems.append(f"push {r + 1} to {n} board(s): {len(failed)} failed (e.g. {board}: {error})")
    return {"write1_s": statistics.median(raw), "push1_s": statistics.median(one),
            "pushN_s": statistics.median(all_), "push_fleetd_ms": statistics.median(fleetd_ms)}


class DirectBoards:
    """mTLS channels straight to a few boards (no fleetd), spread evenly over the lab: the baselines."""

    def __init__(self, lab, addresses):
        names = sorted(addresses)
        step = max(1, len(names) // KILL_BOARDS)
        self.names = names[::step][:KILL_BOARDS]
        pem = lab.issue_bench_client_cert()
        creds = grpc.ssl_channel_credentials(pem["ca"], pem["key"], pem["cert"])
        self.channels, self.stubs = [], {}
        for name in self.names:
            channel = grpc.secure_channel(addresses[name], creds)
            self.channels.append(channel)
            self.stubs[name] = board_pb2_grpc.BoardControlStub(channel)
            self.stubs[name].GetInfo(board_pb2.GetInfoRequest(), timeout=RPC_TIMEOUT_S)  # handshake, untimed

    def write_seconds(self, content, deadline):
        """One BoardControl.WriteFile of content to the first board, in the board's chunk size."""
        deadline.left("direct WriteFile")

        def requests():
            yield board_pb2.WriteFileRequest(header=board_pb2.WriteFileHeader(
                path=PUSH_PATH, expected_size_bytes=len(content)))
            for i in range(0, len(content), BOARD_CHUNK_BYTES):
                yield board_pb2.WriteFileRequest(data=content[i:i + BOARD_CHUNK_BYTES])

        start = time.monotonic()
        resp = self.stubs[self.names[0]].WriteFile(requests(), timeout=RPC_TIMEOUT_S)
        wall = time.monotonic() - start
        if resp.size_bytes != len(content):
            raise BenchError(f"direct WriteFile wrote {resp.size_bytes} of {len(content)} bytes")
        return wall

    def close(self):
        for channel in self.channels:
            channel.close()


class KillBench:
    """Kill round trips on the same boards by three paths, alternating round by round; beside them, in the
    same rounds, the floor of any CLI process: start + TLS connect to fleetd (bench_tls_connect_floor)."""

    def __init__(self, fleet, direct, deadline):
        self.fleet = fleet
        self.deadline = deadline
        self.boards = direct.names
        self.direct = direct.stubs
        fleet.fleetctl(["push", str(VICTIM_SCRIPT), "--path", VICTIM_PATH, "-b", ",".join(self.boards)], deadline,
                       "push the kill victim")
        self.times = {"direct": [], "fleetd_grpc": [], "fleetctl": []}
        self.floor = []

    def victim(self, board):
        """Starts kill_victim.py on the board through fleetd; returns its thread id."""
        for _ in range(50):
            resp = self.fleet.call("RunProgram", fleet_pb2.RunProgramRequest(
                selector=fleet_pb2.Selector(boards=[board]), path=VICTIM_PATH))
            r = resp.results[0]
            if r.error.code == 0:
                return r.main_thread_id
            if r.error.code != grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]:
                raise BenchError(f"start of a kill victim on {board} failed: {r.error.code} {r.error.message}")
            time.sleep(0.02)  # the last victim's slot is not freed yet
        raise BenchError(f"start of a kill victim on {board}: still RESOURCE_EXHAUSTED after 1 s")

    def kill(self, path, board, thread_id):
        start = time.monotonic()
        if path == "direct":
            resp = self.direct[board].KillThread(board_pb2.KillThreadRequest(thread_id=thread_id),
                                                    timeout=RPC_TIMEOUT_S)
            state = resp.thread.state
        elif path == "fleetd_grpc":
            resp = self.fleet.call("KillThread", fleet_pb2.KillThreadRequest(board=board, thread_id=thread_id))
            state = resp.thread.state
        else:
            self.fleet.fleetctl(["kill", f"{board}/{thread_id}"], self.deadline, "fleetctl kill")
            state = board_pb2.THREAD_STATE_KILLED  # exit 0: the kill succeeded
        elapsed = time.monotonic() - start
        if state != board_pb2.THREAD_STATE_KILLED:
            raise BenchError(f"{path} kill of {board}/{thread_id} left it {board_pb2.ThreadState.Name(state)}")
        self.times[path].append(elapsed * 1000)

    def run(self, rounds):
        paths = list(self.times)
        for r in range(rounds):
            self.deadline.left("kill rounds")
            board = self.boards[r % len(self.boards)]
            victims = {p: self.victim(board) for p in paths}
            time.sleep(VICTIM_SETTLE_S)
            order = paths[r % 3:] + paths[:r % 3]
            for p in order:
                self.kill(p, board, victims[p])
            start = time.monotonic()
            self.fleet.tls_connect(self.deadline)
            self.floor.append((time.monotonic() - start) * 1000)
        times = dict(self.times, tls_floor=self.floor)
        return {p: (statistics.median(t), percentile(t, 99)) for p, t in times.items()}


# ---------------------------------------------------------------------------
# One N, and the report


def run_lab(args, boards, period_ms, name, label, work, measure_more=None):
    """Brings up a lab of `boards` boards (health every `period_ms`), starts the sleepers, measures fleetd's CPU,
    then runs `measure_more(lab, fleet, addresses, deadline, result, opened)` if given (it appends what it opens
    to `opened`, closed here); tears the lab down whatever happens. Problems go to result["problems"]."""
    result = {"boards": boards, "period_ms": period_ms, "problems": []}
    deadline = Deadline(args.budget if args.budget else 300 + 0.8 * boards)
    lab = Lab(work / name, args.bin, boards, health_period_ms=period_ms)
    opened = []
    try:
        lab.up(deadline)
        result["lab_up_s"] = lab.up_seconds
        log(f"{label}: lab up in {lab.up_seconds:.1f} s")
        fleet = Fleet(lab)
        opened.append(fleet)
        addresses = wait_online(fleet, boards, deadline)
        result["start_threads_s"] = start_sleepers(fleet, boards, deadline)
        log(f"{label}: {THREADS_PER_BOARD} threads on every board; measuring fleetd for {args.cpu_window:.0f} s")
        result.update(measure_cpu(lab, fleet, args.cpu_window, deadline))
        if measure_more:
            measure_more(lab, fleet, addresses, deadline, result, opened)
    except (BenchError, grpc.RpcError, OSError, subprocess.SubprocessError) as e:
        detail = f"{e.code().name}: {e.details()}" if isinstance(e, grpc.RpcError) else str(e)
        result["problems"].append(detail)
        log(f"{label}: FAILED: {detail}")
    finally:
        for client in reversed(opened):
            client.close()
        problem = lab.down()
        if problem:
            result["problems"].append(problem)
            log(f"{label}: {problem}")
    return result


def run_one(args, boards, work):
    """One N of the table: CPU, then push and kill."""
    def push_and_kill(lab, fleet, addresses, deadline, result, opened):
        direct = DirectBoards(lab, addresses)
        opened.append(direct)
        result.update(measure_push(lab, fleet, direct, work, boards, args.push_rounds, deadline,
                                   result["problems"]))
        log(f"N={boards}: push done; {args.kills} kill rounds")
        result["kill"] = KillBench(fleet, direct, deadline).run(args.kills)

    return run_lab(args, boards, HEALTH_PERIOD_MS, f"lab-{boards}", f"N={boards}", work, push_and_kill)


def run_rate(args, boards, period_ms, work):
    """fleetd's CPU with `boards` boards sending health every `period_ms`: with 100 boards every 100 ms,
    1000 messages a second, what 1000 boards at 1 Hz send, from a lab this machine can run."""
    return run_lab(args, boards, period_ms, f"rate-{boards}", f"rate run ({boards} boards every {period_ms} ms)",
                   work)


def cell(result, key, spec, unit="", width=8):
    """A table cell: the value with its unit, or '-' when it was not measured."""
    value = key(result) if callable(key) else result.get(key)
    return ("-" if value is None else format(value, spec) + unit).rjust(width)


def kill_cell(result, path):
    k = result.get("kill")
    return ("-" if not k else f"{k[path][0]:.2f} / {k[path][1]:.2f}").rjust(15)


def kill_ratio(result, path):
    k = result.get("kill")
    return ("-" if not k else f"{k[path][0] / k['direct'][0]:.1f}x").rjust(6)


def report_rate(rate, results):
    """The message-rate run's row and the fleetd CPU projection it allows: the board-links thread at the
    rate of 1000 boards, plus fleetd's other threads' CPU per board from the largest N run, times 1000."""
    if rate is None:
        return None
    if "fleetd_cpu" not in rate:
        for problem in rate["problems"]:
            print(f"\nrate run: {problem}")
        return None
    messages = rate["boards"] * 1000 // rate["period_ms"]
    print(f"\nhealth message rate run: {rate['boards']} boards every {rate['period_ms']} ms "
          f"({messages} messages/s, {rate['online_after']} online after): "
          f"fleetd {rate['fleetd_cpu']:.2f} % of a core, its board-links thread {rate['health_thread_cpu']:.2f} %; "
          f"boards {rate['boards_cpu']:.0f} %, host {rate['host_busy']:.0f} % busy")
    measured = [r for r in results if "health_thread_cpu" in r]
    if not measured or messages != TARGET_BOARDS:
        return None
    r = max(measured, key=lambda r: r["boards"])
    rest = (r["fleetd_cpu"] - r["health_thread_cpu"]) / r["boards"]
    value = rate["health_thread_cpu"] + rest * TARGET_BOARDS
    return (f"; projected: board-links thread at {TARGET_BOARDS} messages/s {rate['health_thread_cpu']:.2f} % "
            f"+ the other threads' {rest:.4f} % a board at N={r['boards']} x {TARGET_BOARDS} = {value:.2f} % "
            f"-> {'would be met' if value < TARGET_FLEETD_CPU_PERCENT else 'would be MISSED'}")


def report(results, args, rate=None):
    print(f"\nbench/fleet_scale: fleetd with N boards (fleetboard serve, heap {HEAP_BYTES // 1024} KB, "
          f"{THREADS_PER_BOARD} sleeping threads each, health every {HEALTH_PERIOD_MS} ms); "
          f"{os.cpu_count()} cores; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print(f"CPU over {args.cpu_window:g} s (% of one core); push of {PUSH_BYTES // 1024} KB, median of "
          f"{args.push_rounds}; kills: {args.kills} rounds, each path once per round on the same board")
    print("run 10: `fleetctl run` of ten_sleepers.py on all boards; online: boards online in fleetd after the CPU "
          "window;\nwrite 1: WriteFile straight to one board; push 1 / push N: `fleetctl push` to one / all boards\n")
    print(f"{'N':>5} {'lab up':>8} {'run 10':>8} {'online':>6} {'fleetd CPU':>10} {'health':>7} {'per board':>9} "
          f"{'RSS':>8} "
          f"{'boards CPU':>10} {'host busy':>9} {'write 1':>8} {'push 1':>8} {'push N':>8} {'N / 1':>6} "
          f"{'fleetd/push':>11}")
    for r in results:
        print(f"{r['boards']:>5} {cell(r, 'lab_up_s', '.1f', 's')} {cell(r, 'start_threads_s', '.2f', 's')} "
              f"{cell(r, 'online_after', 'd', '', 6)} "
              f"{cell(r, 'fleetd_cpu', '.2f', '%', 10)} {cell(r, 'health_thread_cpu', '.2f', '%', 7)} "
              f"{cell(r, lambda r: r.get('fleetd_cpu', 0) / r['boards'] if 'fleetd_cpu' in r else None, '.3f', '%', 9)} "
              f"{cell(r, 'fleetd_rss_mb', '.1f', 'MB')} {cell(r, 'boards_cpu', '.1f', '%', 10)} "
              f"{cell(r, 'host_busy', '.0f', '%', 9)} {cell(r, 'write1_s', '.3f', 's')} {cell(r, 'push1_s', '.3f', 's')} {cell(r, 'pushN_s', '.3f', 's')} "
              f"{cell(r, lambda r: r['pushN_s'] / r['push1_s'] if 'pushN_s' in r else None, '.1f', 'x', 6)} "
              f"{cell(r, 'push_fleetd_ms', '.2f', 'ms', 11)}")
    print(f"\n{'N':>5} {'direct board':>15} {'fleetd gRPC':>15} {'ratio':>6} {'fleetctl kill':>15} {'ratio':>6}"
          f" {'TLS floor':>15}   kill round trip p50 / p99 in ms; ratio = p50 / direct p50")
    for r in results:
        print(f"{r['boards']:>5} {kill_cell(r, 'direct')} {kill_cell(r, 'fleetd_grpc')} {kill_ratio(r, 'fleetd_grpc')} "
              f"{kill_cell(r, 'fleetctl')} {kill_ratio(r, 'fleetctl')} {kill_cell(r, 'tls_floor')}")
    print("TLS floor: a process that only starts, sets up OpenSSL with the lab CA, connects to fleetd and finishes "
          "the TLS handshake\n(bench_tls_connect_floor): no CLI that talks TLS to fleetd can send its kill sooner")
    for r in results:
        for problem in r["problems"]:
            print(f"\nN={r['boards']}: {problem}")
    rate_projection = report_rate(rate, results)
    print()
    verdict = lambda ok: "met" if ok else "MISSED"
    big = [r for r in results if r["boards"] >= TARGET_BOARDS]
    cpu = next((r for r in big if "fleetd_cpu" in r), None)
    pushed = next((r for r in big if "pushN_s" in r), None)
    if cpu:
        print(f"target fleetd CPU < {TARGET_FLEETD_CPU_PERCENT:g} % of a core at {cpu['boards']} boards: "
              f"{cpu['fleetd_cpu']:.2f} % -> {verdict(cpu['fleetd_cpu'] < TARGET_FLEETD_CPU_PERCENT)}")
    else:
        print(f"target fleetd CPU < {TARGET_FLEETD_CPU_PERCENT:g} % of a core at {TARGET_BOARDS} boards: not measured"
              + (rate_projection or projection(results, "fleetd_cpu",
                                               lambda r: r["fleetd_cpu"] / r["boards"] * TARGET_BOARDS, "%",
                                               TARGET_FLEETD_CPU_PERCENT)))
    if pushed:
        print(f"target push to {pushed['boards']} boards < {TARGET_PUSH_S:g} s: {pushed['pushN_s']:.2f} s -> "
              f"{verdict(pushed['pushN_s'] < TARGET_PUSH_S)}")
    else:
        # With each board on its own hardware (a real lab), a push to all is
        # bound by fleetd's CPU per board spread over the host's cores.
        print(f"target push to {TARGET_BOARDS} boards < {TARGET_PUSH_S:g} s: not measured"
              + projection(results, "push_fleetd_ms",
                           lambda r: r["push_fleetd_ms"] * TARGET_BOARDS / 1000 / os.cpu_count(), " s",
                           TARGET_PUSH_S, " of fleetd CPU over all cores, boards on their own hardware"))
    for r in results:
        if "kill" in r:
            p50 = r["kill"]["fleetctl"][0]
            api, floor = r["kill"]["fleetd_grpc"][0], r["kill"]["tls_floor"][0]
            print(f"target fleetctl kill round trip < {TARGET_KILL_MS:g} ms at N={r['boards']}: p50 {p50:.2f} ms "
                  f"-> {verdict(p50 < TARGET_KILL_MS)} (Fleet API kill {api:.2f} ms -> {verdict(api < TARGET_KILL_MS)}; "
                  f"TLS floor {floor:.2f} + API kill = {floor + api:.2f} ms)")
    return 1 if any(r["problems"] for r in results + ([rate] if rate else [])) else 0


def projection(results, key, project, unit, target, how=""):
    """'; projected from the largest N measured: ...' for a target no run reached, or ''."""
    measured = [r for r in results if key in r]
    if not measured:
        return ""
    r = max(measured, key=lambda r: r["boards"])
    value = project(r)
    verdict = "would be met" if value < target else "would be MISSED"
    return f"; projected from N={r['boards']}: {value:.2f}{unit}{how} -> {verdict}"


def stop_on_signal(signum, frame):
    """SIGTERM (e.g. ctest's timeout) unwinds like an error, so the lab is torn down;
    a second one must not interrupt that teardown."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    sys.exit(128 + signum)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bin", required=True, help="directory with fleetboard, fleetd, fleetctl and bench_tls_connect_floor")
    parser.add_argument("--boards", default="50,200,1000", help="comma-separated lab sizes (default 50,200,1000)")
    parser.add_argument("--cpu-window", type=float, default=20, help="seconds of fleetd CPU measurement")
    parser.add_argument("--kills", type=int, default=200, help="kill rounds (each: one kill per path)")
    parser.add_argument("--push-rounds", type=int, default=3, help="pushes to 1 and to N boards (medians)")
    parser.add_argument("--budget", type=float, help="seconds per N (default 300 + 0.8 s per board)")
    parser.add_argument("--work-dir", help="where the labs go (default: a fresh temporary directory)")
    parser.add_argument("--keep", action="store_true", help="keep the labs' directories (logs, databases)")
    parser.add_argument("--rate-boards", type=int, default=100,
                        help="boards of the message-rate run (0: no such run; default 100)")
    parser.add_argument("--rate-period-ms", type=int,
                        help=f"their health period (default RATE_BOARDS ms: {TARGET_BOARDS} messages a second)")
    args = parser.parse_args()
    try:
        sizes = [int(n) for n in args.boards.split(",")]
    except ValueError:
        parser.error("--boards wants numbers like 50,200,1000")
    if any(n < 1 for n in sizes) or args.kills < 1 or args.push_rounds < 1 or args.cpu_window <= 0:
        parser.error("--boards, --kills, --push-rounds and --cpu-window must be positive")
    rate_period_ms = args.rate_period_ms or args.rate_boards
    if args.rate_boards < 0 or (args.rate_boards and not MIN_HEALTH_PERIOD_MS <= rate_period_ms <= MAX_HEALTH_PERIOD_MS):
        parser.error(f"the rate run's health period must be {MIN_HEALTH_PERIOD_MS} to {MAX_HEALTH_PERIOD_MS} ms")
    for name in ("fleetboard", "fleetd", "fleetctl", "bench_tls_connect_floor"):
        if not os.access(pathlib.Path(args.bin) / name, os.X_OK):
            parser.error(f"no executable {name} in {args.bin}")

    signal.signal(signal.SIGTERM, stop_on_signal)
    work = pathlib.Path(args.work_dir or tempfile.mkdtemp(prefix="fleet-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    results = []
    rate = None
    finished = False
    try:
        for n in sizes:
            results.append(run_one(args, n, work))
            if "kill" not in results[-1]:
                break  # it stopped before the end; a larger lab would stop there too
        if args.rate_boards and max(sizes) < TARGET_BOARDS:
            rate = run_rate(args, args.rate_boards, rate_period_ms, work)
        finished = True
    finally:
        if args.keep or not finished or any(r["problems"] for r in results + ([rate] if rate else [])):
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return report(results, args, rate)


if __name__ == "__main__":
    sys.exit(main())
