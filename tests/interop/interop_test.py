#!/usr/bin/python3
"""The interop scenario with python3-grpcio (Debian's) as the client.

Run by board_fixture.py, which provides the board and these variables:
BOARD_ADDR, BOARD_CA, CLIENT_CERT, CLIENT_KEY, BOARD_NAME; plus SEED_SCRIPT
(path of thread_basic.py) and the generated stubs on PYTHONPATH.

Run with /usr/bin/python3: it needs Debian's python3-grpcio/python3-protobuf.
"""

import hashlib
import os
import queue
import sys
import threading
import time

import grpc
from threadfleet.board.v1 import board_pb2 as pb
from threadfleet.board.v1 import board_pb2_grpc

RPC_TIMEOUT_S = 10
REMOTE_PATH = "/thread_basic.py"
EXPECTED_OUTPUT = b"Main thread is running:  0"
LIVE = (pb.THREAD_STATE_RUNNING, pb.THREAD_STATE_SLEEPING, pb.THREAD_STATE_WAITING_LOCK)


class Failure(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise Failure(msg)


def step(name):
    print(f"interop_python: {name}", flush=True)


def env(name):
    value = os.environ.get(name)
    if not value:
        raise Failure(f"{name} is not set (run through tests/interop/board_fixture.py)")
    return value


def write_file(stub, path, content):
    """WriteFile in three data chunks after the header."""
    n = len(content)
    size = max(1, -(-n // 3))
    chunks = [content[i : i + size] for i in range(0, n, size)]
    check(len(chunks) >= 2, f"seed script too small to send in 2+ chunks ({n} bytes)")

    def requests():
        yield pb.WriteFileRequest(header=pb.WriteFileHeader(path=path, expected_size_bytes=n))
        for c in chunks:
            yield pb.WriteFileRequest(data=c)

    return stub.WriteFile(requests(), timeout=RPC_TIMEOUT_S), len(chunks)


def poll(what, timeout_s, fn):
    """Calls fn every 50 ms until it returns something truthy; returns that."""
    deadline = time.monotonic() + timeout_s
    last = None
    while True:
        last = fn()
        if last:
            return last
        if time.monotonic() > deadline:
            raise Failure(f"{what}: not within {timeout_s} s")
        time.sleep(0.05)


def scenario(stub, board_name, seed_path):
    step("GetInfo")
    info = stub.GetInfo(pb.GetInfoRequest(), timeout=RPC_TIMEOUT_S).info
    check(info.name == board_name, f"GetInfo name {info.name!r}, expected {board_name!r}")

    step("WriteFile")
    content = open(seed_path, "rb").read()
    local_sha = hashlib.sha256(content).hexdigest()
    resp, nchunks = write_file(stub, REMOTE_PATH, content)
    check(resp.sha256_hex == local_sha, f"WriteFile sha256 {resp.sha256_hex!r}, expected {local_sha!r}")
    check(resp.size_bytes == len(content), f"WriteFile size {resp.size_bytes}, expected {len(content)}")
    print(f"  {len(content)} bytes in {nchunks} chunks, sha256 {local_sha}", flush=True)

    step("ListFiles")
    entries = stub.ListFiles(pb.ListFilesRequest(path="/"), timeout=RPC_TIMEOUT_S).entries
    names = {e.name: e for e in entries}
    check("thread_basic.py" in names, f"ListFiles / lacks thread_basic.py: {sorted(names)}")
    e = names["thread_basic.py"]
    check(not e.is_dir and e.size_bytes == len(content), f"ListFiles entry {e}")

    step("StartProgram")
    started = stub.StartProgram(pb.StartProgramRequest(path=REMOTE_PATH), timeout=RPC_TIMEOUT_S)
    pid, main_tid = started.program_id, started.main_thread_id
    check(pid != 0 and main_tid != 0, f"StartProgram returned {started}")

    step("ListThreads: 2+ threads of the program")

    def program_threads():
        resp = stub.ListThreads(pb.ListThreadsRequest(program_id=pid), timeout=RPC_TIMEOUT_S)
        threads = [t for t in resp.threads if t.program_id == pid]
        return threads if len(threads) >= 2 else None

    threads = poll("2+ threads of the program", 2, program_threads)
    others = [t for t in threads if t.id != main_tid]
    check(others, f"no thread besides the main thread {main_tid}: {threads}")
    victim = others[0]
    check(victim.state in LIVE, f"thread {victim.id} not alive before the kill: {victim}")

    step("WatchHealth (opened before the kill, to see its event)")
    watch = stub.WatchHealth(pb.WatchHealthRequest(period_ms=100), timeout=60)
    updates = queue.Queue()

    def pump():
        try:
            for u in watch:
                updates.put(u)
        except grpc.RpcError as e:
            updates.put(e)
        updates.put(None)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    snapshots = 0
    killed_event = None

    def take(timeout_s):
        nonlocal snapshots, killed_event
        try:
            u = updates.get(timeout=timeout_s)
        except queue.Empty:
            return
        if u is None:
            raise Failure("WatchHealth ended by itself")
        if isinstance(u, grpc.RpcError):
            raise Failure(f"WatchHealth failed: {u.code()} {u.details()}")
        if u.HasField("snapshot"):
            snapshots += 1
            check(u.snapshot.board_name == board_name, f"snapshot board_name {u.snapshot.board_name!r}")
        elif u.HasField("event") and u.event.kind == pb.EVENT_KIND_THREAD_KILLED:
            if u.event.thread_id == victim.id:
                killed_event = u.event

    first_deadline = time.monotonic() + 5
    while snapshots == 0:
        check(time.monotonic() < first_deadline, "WatchHealth: no snapshot within 5 s")
        take(0.2)

    step(f"KillThread {victim.id} (grace 200 ms)")
    killed = stub.KillThread(pb.KillThreadRequest(thread_id=victim.id, grace_ms=200), timeout=RPC_TIMEOUT_S)
    check(killed.thread.id == victim.id, f"KillThread returned thread {killed.thread.id}")
    check(not killed.thread.unkillable, f"thread {victim.id} reported unkillable")

    def victim_killed():
        resp = stub.ListThreads(
            pb.ListThreadsRequest(program_id=pid, include_finished=True), timeout=RPC_TIMEOUT_S
        )
        t = [t for t in resp.threads if t.id == victim.id]
        check(t, f"thread {victim.id} missing from ListThreads(include_finished)")
        check(t[0].state in LIVE + (pb.THREAD_STATE_KILLED,), f"thread {victim.id} ended as {t[0]}")
        return t[0].state == pb.THREAD_STATE_KILLED

    poll(f"thread {victim.id} KILLED in ListThreads", 2, victim_killed)

    step("WatchHealth: 2+ snapshots and the THREAD_KILLED event")
    deadline = time.monotonic() + 5
    while snapshots < 2 or killed_event is None:
        check(
            time.monotonic() < deadline,
            f"WatchHealth within 5 s: {snapshots} snapshots, THREAD_KILLED event "
            f"{'seen' if killed_event else 'not seen'}",
        )
        take(0.2)
    print(f"  {snapshots} snapshots; event: {killed_event.message!r}", flush=True)
    watch.cancel()
    reader.join(5)
    check(not reader.is_alive(), "WatchHealth stream did not end after cancel")

    step("StreamOutput")
    out = b"".join(
        r.chunk.data
        for r in stub.StreamOutput(
            pb.StreamOutputRequest(program_id=pid, from_offset=0, follow=False), timeout=RPC_TIMEOUT_S
        )
    )
    check(EXPECTED_OUTPUT in out, f"StreamOutput lacks {EXPECTED_OUTPUT!r}; got {out!r}")


def main():
    try:
        with open(env("BOARD_CA"), "rb") as f:
            ca = f.read()
        with open(env("CLIENT_KEY"), "rb") as f:
            key = f.read()
        with open(env("CLIENT_CERT"), "rb") as f:
            cert = f.read()
        creds = grpc.ssl_channel_credentials(root_certificates=ca, private_key=key, certificate_chain=cert)
        with grpc.secure_channel(env("BOARD_ADDR"), creds) as channel:
            grpc.channel_ready_future(channel).result(timeout=RPC_TIMEOUT_S)
            scenario(board_pb2_grpc.BoardControlStub(channel), env("BOARD_NAME"), env("SEED_SCRIPT"))
    except Failure as e:
        print(f"interop_python: FAIL: {e}", file=sys.stderr, flush=True)
        return 1
    except grpc.FutureTimeoutError:
        print(f"interop_python: FAIL: no TLS/HTTP2 connection to {os.environ['BOARD_ADDR']}", file=sys.stderr)
        return 1
    except grpc.RpcError as e:
        print(f"interop_python: FAIL: RPC error {e.code()}: {e.details()}", file=sys.stderr, flush=True)
        return 1
    print("interop_python: PASS", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
