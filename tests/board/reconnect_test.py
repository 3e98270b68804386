#!/usr/bin/python3
"""A gRPC channel that could not reach the board (down, restarting) works
again once the board serves, with calls that fail fast as well.

gRPC core clients (python-grpcio, C++, ...) connect again after a backoff; a
call that does not wait for the channel (no wait_for_ready) fails at once
while it reconnects, so nothing drives that reconnect but gRPC's backup
poller, one pass every 5 s: the client sends its ClientHello on one pass and
its certificate on the next. The board's handshake timeout leaves room for
that (docs/architecture.md, control channel limits); before, every such
reconnect timed out on the board ("TLS handshake: timed out after 5000 ms")
and the channel never answered again.

Run by tests/interop/board_fixture.py (see board_client.py) for its PKI; the
boards are the tests' own, on ports they choose, with the default limits.
Waits are bounded polls; no timings are asserted.
"""

import contextlib
import pathlib
import sys
import unittest

import grpc
from board_client import CONTROL_DEADLINE_S, BoardUnderTest, env, poll
from threadfleet.board.v1 import board_pb2 as pb

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "interop"))
import board_fixture  # noqa: E402  (after the path it lives on)

# A reconnect driven by the backup poller alone: backoff (1 s, then 1.6 s),
# then up to three 5 s passes (ClientHello, certificate, the board's Finished).
RECONNECT_TIMEOUT_S = 30


def start_board(name, port):
    pki = {"ca": env("BOARD_CA"), "board_cert": env("BOARD_CERT"), "board_key": env("BOARD_KEY")}
    flash = pathlib.Path(env("FIXTURE_DIR")) / f"{name}.lfs"
    proc = board_fixture.Board(env("FLEETBOARD"), name, port, flash, pki)
    proc.wait_serving(board_fixture.SERVING_TIMEOUT_S)
    return proc


@contextlib.contextmanager
def stopped_at_the_end(procs):
    try:
        yield
    finally:
        for proc in procs:
            if proc.proc.poll() is None:
                proc.proc.kill()
            proc.proc.wait()


def refused(client):
    """True when a call finds nothing listening (the channel's connect fails)."""
    try:
        client.get_info()
    except grpc.RpcError as e:
        return e.code() == grpc.StatusCode.UNAVAILABLE
    return False


def answers_fail_fast(client):
    """GetInfo without wait_for_ready: the board's name, or None while the channel is not ready."""
    try:
        return client.stub().GetInfo(pb.GetInfoRequest(), timeout=CONTROL_DEADLINE_S).info.name
    except grpc.RpcError:
        return None


def handshake_refusals(proc):
    return [line for line in proc.lines() if "event=tls_refused" in line]


class ReconnectTest(unittest.TestCase):
    def client(self, name, port):
        client = BoardUnderTest(f"127.0.0.1:{port}", name, env("BOARD_CA"), env("CLIENT_CERT"), env("CLIENT_KEY"))
        self.addCleanup(client.close)
        return client

    def test_a_channel_whose_connect_was_refused_answers_once_the_board_serves(self):
        port = board_fixture.free_port()
        client = self.client("late", port)
        self.assertTrue(refused(client), "nothing listens yet")
        procs = [start_board("late", port)]
        with stopped_at_the_end(procs):
            name = poll("a fail-fast call answered", RECONNECT_TIMEOUT_S, lambda: answers_fail_fast(client), 0.1)
            self.assertEqual(name, "late")
            self.assertEqual(handshake_refusals(procs[0]), [])

    def test_a_channel_kept_across_a_board_restart_on_the_same_port_answers_again(self):
        port = board_fixture.free_port()
        client = self.client("again", port)
        procs = [start_board("again", port)]
        with stopped_at_the_end(procs):
            self.assertEqual(client.get_info().name, "again")
            self.assertIsNone(procs[0].stop())
            self.assertTrue(refused(client), "the board is down")
            procs.append(start_board("again", port))
            name = poll("a fail-fast call answered", RECONNECT_TIMEOUT_S, lambda: answers_fail_fast(client), 0.1)
            self.assertEqual(name, "again")
            self.assertEqual(handshake_refusals(procs[1]), [])


if __name__ == "__main__":
    unittest.main(verbosity=2)
