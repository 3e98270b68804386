#!/usr/bin/python3
"""The control channel stays responsive while programs misbehave and clients
send what they should not.

Each test leaves the board reset (no live threads, fresh VM). Control calls
that must answer use a 2 s deadline (board_client.CONTROL_DEADLINE_S); the
tests assert outcomes, never timings.

Run by tests/interop/board_fixture.py (BOARD_* variables, see board_client.py)
against a board with the default limits (256 KiB heap, 16 threads).
"""

import threading
import unittest

import grpc
from board_client import CONTROL_DEADLINE_S, BoardUnderTest, poll
from threadfleet.board.v1 import board_pb2 as pb
from threadfleet.board.v1 import board_pb2_grpc

BUSY_LOOP = "while True:\n    pass\n"

THREAD_BOMB = """\
import _thread, time
def sleeper():
    time.sleep(3600)
started = 0
while True:
    try:
        _thread.start_new_thread(sleeper, ())
    except OSError:
        break
    started += 1
time.sleep(3600)
"""

HEAP_HOG = """\
import time
x = []
try:
    while True:
        x.append(bytearray(1024))
except MemoryError:
    pass
time.sleep(3600)
"""

HELLO = "print('hello after reset')\n"
HELLO_OUTPUT = b"hello after reset\n"

MAX_MESSAGE_BYTES = 64 * 1024  # the board's gRPC message limit (firmware/rpc/transport/call.h)
# The board serves at most 16 connections and refuses the rest
# (RPC_SERVER_MAX_CONNECTIONS); this leaves room for the suite's shared
# channel and for a connection of an earlier test still closing (ASan CI once
# saw the 17th refused and its 50 calls fail).
PARALLEL_CHANNELS = 14
CALLS_PER_CHANNEL = 50
CANCELLED_STREAMS = 10
RESET_RACE_ATTEMPTS = 5

board = BoardUnderTest.from_env()


def start(source, name):
    return board.stub().StartProgram(pb.StartProgramRequest(source=source, name=name), timeout=CONTROL_DEADLINE_S)


class BoardTestCase(unittest.TestCase):
    def tearDown(self):
        board.reset()

    def assertAnswers(self, calls=10):
        for _ in range(calls):
            self.assertEqual(board.get_info().name, board.name)

    def assertResetEndsEverything(self):
        """Reset answers OK, every thread ends, and a new program runs to its end."""
        board.reset()
        poll("no live threads after Reset", 5, lambda: not board.live_threads())
        program, output = board.run_to_end(HELLO)
        self.assertEqual(program.state, pb.PROGRAM_STATE_FINISHED, program)
        self.assertEqual(output, HELLO_OUTPUT)


class MisbehavingProgramsTest(BoardTestCase):
    def test_busy_loop_leaves_control_calls_answering_and_reset_ends_it(self):
        started = start(BUSY_LOOP, "busy")
        poll("busy loop running", 5, lambda: board.live_threads(started.program_id))
        self.assertAnswers()
        self.assertResetEndsEverything()

    def test_thread_bomb_at_the_limit_leaves_control_calls_answering_and_its_threads_killable(self):
        max_threads = board.get_info().max_threads
        started = start(THREAD_BOMB, "bomb")

        def at_the_limit():
            threads = board.live_threads(started.program_id)
            return threads if len(threads) == max_threads else None

        threads = poll(f"thread bomb at the limit of {max_threads} threads", 5, at_the_limit)
        self.assertAnswers()
        with self.assertRaises(grpc.RpcError) as caught:
            board.stub().Exec(pb.ExecRequest(source="print(1)"), timeout=CONTROL_DEADLINE_S)
        self.assertEqual(caught.exception.code(), grpc.StatusCode.RESOURCE_EXHAUSTED)

        victim = next(t for t in threads if t.id != started.main_thread_id)
        killed = board.stub().KillThread(
            pb.KillThreadRequest(thread_id=victim.id, grace_ms=500), timeout=CONTROL_DEADLINE_S
        ).thread
        self.assertEqual(killed.state, pb.THREAD_STATE_KILLED, killed)
        self.assertFalse(killed.unkillable)
        self.assertResetEndsEverything()

    def test_heap_hog_holding_the_full_heap_leaves_control_calls_answering(self):
        started = start(HEAP_HOG, "heap-hog")
        poll(
            "heap hog asleep on a full heap",
            10,
            lambda: [t for t in board.live_threads(started.program_id) if t.state == pb.THREAD_STATE_SLEEPING],
        )
        heap = board.snapshot().heap
        self.assertLess(heap.free_bytes, heap.total_bytes // 20, heap)
        self.assertAnswers()
        self.assertResetEndsEverything()


class ResetTest(BoardTestCase):
    def test_program_started_once_getinfo_answers_after_reset_runs(self):
        # board.proto: "GetInfo answers again once the VM is back". A race, so
        # tried a few times.
        for attempt in range(RESET_RACE_ATTEMPTS):
            with self.subTest(attempt=attempt):
                start(BUSY_LOOP, "busy")
                board.stub().Reset(pb.ResetRequest(), timeout=CONTROL_DEADLINE_S)
                board.get_info()
                program, output = board.run_to_end(HELLO)
                self.assertEqual(program.state, pb.PROGRAM_STATE_FINISHED, program)
                self.assertEqual(output, HELLO_OUTPUT)
            board.reset()

    def test_program_ended_by_reset_is_killed_with_exit_code_1(self):
        started = start("import time\ntime.sleep(3600)\n", "sleeper")
        poll("sleeper asleep", 5, lambda: board.live_threads(started.program_id))
        board.reset()
        program = board.program(started.program_id)
        self.assertEqual(program.state, pb.PROGRAM_STATE_KILLED, program)
        self.assertEqual(program.exit_code, 1, f"board.proto: exit_code is 1 when KILLED; got {program}")


class OversizedAndUnknownRequestsTest(BoardTestCase):
    def test_writefile_chunk_over_64_kib_is_resource_exhausted(self):
        def requests():
            yield pb.WriteFileRequest(header=pb.WriteFileHeader(path="/big.bin"))
            yield pb.WriteFileRequest(data=bytes(MAX_MESSAGE_BYTES + 1))

        with self.assertRaises(grpc.RpcError) as caught:
            board.stub().WriteFile(requests(), timeout=CONTROL_DEADLINE_S)
        self.assertEqual(caught.exception.code(), grpc.StatusCode.RESOURCE_EXHAUSTED, caught.exception.details())
        self.assertAnswers(1)

    def test_exec_source_of_100_kb_is_resource_exhausted(self):
        with self.assertRaises(grpc.RpcError) as caught:
            board.stub().Exec(pb.ExecRequest(source="#" * 100_000), timeout=CONTROL_DEADLINE_S)
        self.assertEqual(caught.exception.code(), grpc.StatusCode.RESOURCE_EXHAUSTED, caught.exception.details())
        self.assertAnswers(1)

    def test_unknown_method_is_unimplemented(self):
        with board.new_channel() as channel:
            nope = channel.unary_unary("/threadfleet.board.v1.BoardControl/Nope")
            with self.assertRaises(grpc.RpcError) as caught:
                nope(b"", timeout=CONTROL_DEADLINE_S)
        self.assertEqual(caught.exception.code(), grpc.StatusCode.UNIMPLEMENTED, caught.exception.details())
        self.assertAnswers(1)

    def test_exec_past_its_deadline_is_deadline_exceeded_and_its_thread_killed(self):
        with self.assertRaises(grpc.RpcError) as caught:
            board.stub().Exec(pb.ExecRequest(source="while True: pass"), timeout=0.1)
        self.assertEqual(caught.exception.code(), grpc.StatusCode.DEADLINE_EXCEEDED, caught.exception.details())
        self.assertAnswers(1)
        poll("the snippet's thread killed", 5, lambda: not board.live_threads())


class ManyClientsTest(BoardTestCase):
    def test_parallel_channels_each_calling_getinfo_all_succeed(self):
        failures = []

        def client():
            with board.new_channel() as channel:
                stub = board_pb2_grpc.BoardControlStub(channel)
                for _ in range(CALLS_PER_CHANNEL):
                    try:
                        stub.GetInfo(pb.GetInfoRequest(), timeout=10)
                    except grpc.RpcError as e:
                        failures.append(f"{e.code()}: {e.details()}")

        clients = [threading.Thread(target=client) for _ in range(PARALLEL_CHANNELS)]
        for c in clients:
            c.start()
        for c in clients:
            c.join()
        self.assertEqual(failures, [], f"{len(failures)} of {PARALLEL_CHANNELS * CALLS_PER_CHANNEL} calls failed")
        self.assertAnswers(1)

    def test_watchhealth_cancelled_mid_stream_leaves_the_board_fine(self):
        for _ in range(CANCELLED_STREAMS):
            with board.new_channel() as channel:
                stream = board_pb2_grpc.BoardControlStub(channel).WatchHealth(
                    pb.WatchHealthRequest(period_ms=100), timeout=10
                )
                self.assertTrue(next(stream).HasField("snapshot"))
                next(stream)
                stream.cancel()
        self.assertAnswers()
        # Only the test's own connection remains once the cancelled ones are gone.
        poll("TLS sessions back to 1", 5, lambda: board.snapshot().tls_sessions == 1)


if __name__ == "__main__":
    try:
        unittest.main(verbosity=2)
    finally:
        board.close()
