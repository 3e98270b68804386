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
import sys
import threading
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
