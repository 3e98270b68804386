#!/usr/bin/python3
"""The board's control channel and flash under clients that misbehave and
boards that die: limits, refusals and what health counts of them, and files
left behind by a write cut short.

Run by tests/interop/board_fixture.py (see board_client.py). Most tests start
boards of their own with board_fixture.Board (flags, kill -9, a restart on the
same flash image), with the fixture's PKI; each waits for outcomes with
bounded polls, never for timings.
"""

import contextlib
import itertools
import os
import pathlib
import signal
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time
import unittest

import grpc
from board_client import CONTROL_DEADLINE_S, BoardUnderTest, env, poll
from threadfleet.board.v1 import board_pb2 as pb

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "interop"))
import board_fixture  # noqa: E402  (after the path it lives on)

board = BoardUnderTest.from_env()
_board_numbers = itertools.count(1)


def pki():
    return {"ca": env("BOARD_CA"), "board_cert": env("BOARD_CERT"), "board_key": env("BOARD_KEY")}


def flash_path(name):
    return pathlib.Path(env("FIXTURE_DIR")) / f"{name}.lfs"


@contextlib.contextmanager
def own_board(*flags, flash=None):
    """A fleetboard of this test's own (fresh flash unless given), stopped (or killed) at the end.

    Yields (Board process, BoardUnderTest client).
    """
    name = f"own{next(_board_numbers)}"
    proc = board_fixture.Board(
        env("FLEETBOARD"), name, board_fixture.free_port(), flash or flash_path(name), pki(), flags
    )
    client = None
    try:
        proc.wait_serving(board_fixture.SERVING_TIMEOUT_S)
        client = BoardUnderTest(proc.addr, name, env("BOARD_CA"), env("CLIENT_CERT"), env("CLIENT_KEY"))
        yield proc, client
    finally:
        if client is not None:
            client.close()
        if proc.proc.poll() is None:
            proc.proc.kill()
        proc.proc.wait()


def write_requests(path, chunks, hold=None):
    """WriteFile's request stream: the header, the chunks, then (if given) a wait on `hold` before half-close."""
    yield pb.WriteFileRequest(header=pb.WriteFileHeader(path=path))
    for chunk in chunks:
        yield pb.WriteFileRequest(data=chunk)
    if hold is not None:
        hold.wait(30)


def entries(client, path="/"):
    return client.stub().ListFiles(pb.ListFilesRequest(path=path), timeout=CONTROL_DEADLINE_S).entries


def listing(client, path="/"):
    return sorted(e.name for e in entries(client, path))


def read_file(client, path):
    return b"".join(r.data for r in client.stub().ReadFile(pb.ReadFileRequest(path=path), timeout=CONTROL_DEADLINE_S))


def snapshot_channel(client):
    """The control channel's figures, from a fresh WatchHealth stream."""
    snap = client.snapshot()
    assert snap.HasField("channel"), "the snapshot has no channel figures"
    return snap.channel


def log_lines(proc, event):
    return [line for line in proc.lines() if f"event={event}" in line]


def write_large_file(client, path, size):
    chunk = b"L" * 4096
    client.stub().WriteFile(write_requests(path, [chunk] * (size // len(chunk))), timeout=30)


# ---- A bare HTTP/2 client over mutual TLS, for what gRPC clients never do:
# stop reading their socket while asking for a lot.

H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
H2_DATA, H2_HEADERS, H2_SETTINGS, H2_WINDOW_UPDATE = 0, 1, 4, 8
H2_END_STREAM, H2_END_HEADERS = 0x1, 0x4
H2_MAX_WINDOW = 2**31 - 1


def h2_frame(kind, flags, stream, payload):
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


def hpack_literal(name, value):
    """A header field as an HPACK literal without indexing (names and values under 127 bytes)."""
    name, value = name.encode(), value.encode()
    return b"\x00" + bytes([len(name)]) + name + bytes([len(value)]) + value


def grpc_request(stream, method, message):
    headers = b"".join(
        hpack_literal(n, v)
        for n, v in [
            (":method", "POST"),
            (":scheme", "https"),
            (":path", f"/threadfleet.board.v1.BoardControl/{method}"),
            (":authority", "127.0.0.1"),
            ("content-type", "application/grpc"),
            ("te", "trailers"),
        ]
    )
    body = b"\x00" + struct.pack(">I", len(message)) + message
    return h2_frame(H2_HEADERS, H2_END_HEADERS, stream, headers) + h2_frame(H2_DATA, H2_END_STREAM, stream, body)


def tls_context():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(env("BOARD_CA"))
    ctx.load_cert_chain(env("CLIENT_CERT"), env("CLIENT_KEY"))
    ctx.set_alpn_protocols(["h2"])
    return ctx


def tls_connection(addr, rcvbuf=None):
    """A mutual-TLS connection to the board, its handshake done (so the board holds a slot for it)."""
    host, port = addr.rsplit(":", 1)
    raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    raw.settimeout(10)
    raw.connect((host, int(port)))
    return tls_context().wrap_socket(raw, server_hostname=host)


class StalledClient:
    """Connects over mutual TLS with a 4 KB receive buffer, announces the largest HTTP/2 windows,
    sends its requests and then never reads: a client that hung, or a peer that stopped reading."""

    def __init__(self, addr):
        self.sock = tls_connection(addr, rcvbuf=4096)
        settings = struct.pack(">HI", 0x4, H2_MAX_WINDOW)  # SETTINGS_INITIAL_WINDOW_SIZE
        window = struct.pack(">I", H2_MAX_WINDOW - 65535)
        self.sock.sendall(H2_PREFACE + h2_frame(H2_SETTINGS, 0, 0, settings) + h2_frame(H2_WINDOW_UPDATE, 0, 0, window))
        self._next_stream = 1

    def call(self, method, request):
        self.sock.sendall(grpc_request(self._next_stream, method, request.SerializeToString()))
        self._next_stream += 2

    def close(self):
        self.sock.close()


class ChannelLimitsTest(unittest.TestCase):
    def test_connections_beyond_the_limit_are_refused_counted_and_logged_at_a_bounded_rate(self):
        with own_board("--max-connections", "2") as (proc, client):
            holders = [tls_connection(proc.addr) for _ in range(2)]  # handshakes done: both slots taken
            host, port = proc.addr.rsplit(":", 1)
            refused = 0
            for _ in range(40):
                with socket.create_connection((host, int(port)), timeout=10) as s:
                    if s.recv(1) == b"":  # closed at once, without a byte
                        refused += 1
            self.assertEqual(refused, 40)
            for h in holders:
                h.close()

            # The board frees the two slots once it sees them closed: until
            # then the snapshot's own connection is refused (and counted) too.
            retries_refused, deadline = 0, time.monotonic() + 10
            while True:
                try:
                    channel = snapshot_channel(client)
                    break
                except grpc.RpcError:
                    if time.monotonic() > deadline:
                        raise
                    retries_refused += 1
                    # A channel whose connection was refused and whose calls
                    # fail fast reconnects only when gRPC's backup poller gets
                    # to it, up to ~15 s later, while a plain TLS connect gets
                    # through at once (reconnect_test.py); a fresh channel
                    # connects at once.
                    client.close()
                    time.sleep(0.2)
            self.assertEqual(channel.max_connections, 2)
            self.assertGreaterEqual(channel.refused_connections, 40)
            if not retries_refused:
                self.assertEqual(channel.refused_connections, 40)
            self.assertEqual(channel.failed_handshakes, 0)
            lines = log_lines(proc, "connection_refused")
            self.assertIn("reason=limit connections=2 max_connections=2", lines[0])
            self.assertLessEqual(len(lines), 20, "a flood is counted, not logged line by line")

    def test_a_connection_that_never_starts_tls_is_closed_after_the_handshake_timeout(self):
        with own_board("--handshake-timeout-ms", "300") as (proc, client):
            host, port = proc.addr.rsplit(":", 1)
            with socket.create_connection((host, int(port)), timeout=10) as silent:
                self.assertEqual(silent.recv(1), b"", "the board closed it")
            self.assertEqual(snapshot_channel(client).failed_handshakes, 1)
            self.assertIn("timed out after 300 ms", log_lines(proc, "tls_refused")[0])

    def test_an_idle_connection_is_closed_and_the_client_reconnects(self):
        with own_board("--idle-timeout-ms", "300") as (proc, client):
            self.assertEqual(client.get_info().name, client.name)
            poll("the idle connection closed", 10, lambda: log_lines(proc, "connection_closed reason=idle"))
            self.assertEqual(client.get_info().name, client.name, "the next call connects again")
            self.assertGreaterEqual(snapshot_channel(client).idle_closed, 1)

    def test_a_peer_that_stops_reading_is_dropped_after_the_send_timeout(self):
        with own_board("--send-timeout-ms", "500", "--flash-size", "4m") as (proc, client):
            write_large_file(client, "/large.bin", 3 * 1024 * 1024)
            stalled = StalledClient(proc.addr)
            for _ in range(4):
                stalled.call("ReadFile", pb.ReadFileRequest(path="/large.bin"))
            poll("the stalled peer dropped", 20, lambda: log_lines(proc, "connection_closed reason=send_timeout"))
            stalled.close()
            channel = snapshot_channel(client)
            self.assertEqual(channel.send_timeouts, 1)
            self.assertEqual(channel.buffered_bytes, 0, "what the dropped calls had queued is freed")

    def test_sigterm_stops_a_board_whose_peer_does_not_read(self):
        with own_board("--flash-size", "4m") as (proc, client):  # the default 10 s send timeout
            write_large_file(client, "/large.bin", 3 * 1024 * 1024)
            stalled = StalledClient(proc.addr)
            for _ in range(4):
                stalled.call("ReadFile", pb.ReadFileRequest(path="/large.bin"))
            time.sleep(1)  # the board's sends block
            problem = proc.stop()
            stalled.close()
            self.assertIsNone(problem)

    def test_calls_beyond_the_byte_budget_are_refused_naming_it(self):
        with own_board("--channel-budget", "64k") as (proc, client):
            # Each write in progress holds a 16 KB batch buffer of the budget.
            hold = threading.Event()
            calls = [
                client.stub().WriteFile.future(write_requests(f"/w{i}.bin", [b"w" * 4096], hold), timeout=30)
                for i in range(6)
            ]
            refused = poll(
                "a write refused",
                10,
                lambda: [c for c in calls if c.done() and c.exception() is not None],
            )
            hold.set()
            error = refused[0].exception()
            self.assertEqual(error.code(), grpc.StatusCode.RESOURCE_EXHAUSTED)
            self.assertIn("byte budget of 65536 bytes", error.details())
            for c in calls:
                with contextlib.suppress(grpc.RpcError):
                    c.result(timeout=10)
            channel = snapshot_channel(client)
            self.assertEqual(channel.budget_bytes, 65536)
            self.assertGreaterEqual(channel.refused_calls, 1)
            self.assertTrue(log_lines(proc, "call_refused reason=budget"))
            poll("every byte given back", 5, lambda: snapshot_channel(client).buffered_bytes == 0)
            client.stub().WriteFile(write_requests("/after.bin", [b"a" * 4096]), timeout=CONTROL_DEADLINE_S)

    def test_bad_limits_are_refused_naming_the_limit(self):
        for flag, value, message in [
            ("--max-connections", "0", "max connections must be 1..16 (got 0)"),
            ("--channel-budget", "1k", "byte budget must be 65536.."),
        ]:
            cmd = [env("FLEETBOARD"), "serve", "--name", "bad", "--listen", "127.0.0.1:1", "--flash", "unused.lfs"]
            cmd += ["--cert", env("BOARD_CERT"), "--key", env("BOARD_KEY"), "--ca", env("BOARD_CA"), flag, value]
            run = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=10)
            self.assertEqual(run.returncode, 2, run.stderr)
            self.assertIn(message, run.stderr)


class FlashTest(unittest.TestCase):
    def test_a_write_cut_short_by_kill_9_leaves_no_partial_file_after_a_restart(self):
        flash = flash_path("killed_mid_write")
        hold = threading.Event()
        with own_board(flash=flash) as (proc, client):
            client.stub().WriteFile(write_requests("/keep.py", [b"print('kept')\n"]), timeout=CONTROL_DEADLINE_S)
            used_before = client.get_info().flash_used_bytes
            # 64 KB: four of the board's 16 KB flash batches are on flash before the kill.
            call = client.stub().WriteFile.future(write_requests("/app.py", [b"x" * 4096] * 16, hold), timeout=30)
            poll(
                "the write in progress has 16 KB on flash",
                10,
                lambda: [e for e in entries(client) if e.name != "keep.py" and e.size_bytes >= 16384],
            )
            os.kill(proc.proc.pid, signal.SIGKILL)
            hold.set()
            with self.assertRaises(grpc.RpcError):
                call.result(timeout=10)

        with own_board(flash=flash) as (proc, client):
            self.assertEqual(listing(client), ["keep.py"], "only the complete file is left")
            self.assertEqual(read_file(client, "/keep.py"), b"print('kept')\n")
            self.assertLessEqual(client.get_info().flash_used_bytes, used_before)
            self.assertTrue(
                any("event=partial_files_removed count=1 bytes=" in line for line in proc.lines()), proc.lines()
            )

    def test_a_path_with_a_nul_is_refused_and_the_file_it_starts_with_stays(self):
        stub = board.stub()
        stub.WriteFile(write_requests("/app.py", [b"print('original')\n"]), timeout=CONTROL_DEADLINE_S)
        with self.assertRaises(grpc.RpcError) as refused:
            stub.WriteFile(write_requests("/app.py\0.bak", [b"print('replaced')\n"]), timeout=CONTROL_DEADLINE_S)
        self.assertEqual(refused.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn('"/app.py\\x00.bak"', refused.exception.details())
        self.assertEqual(read_file(board, "/app.py"), b"print('original')\n")
        stub.DeleteFile(pb.DeleteFileRequest(path="/app.py"), timeout=CONTROL_DEADLINE_S)


if __name__ == "__main__":
    unittest.main(verbosity=2)
