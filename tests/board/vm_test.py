#!/usr/bin/python3
"""The board's VM stays bounded and steerable whatever a program does
(issue #11): stacks are capped, a thread stuck in native code is reported and
Reset still brings the board back, the flash stays mounted, metrics slots are
freed, a second shorter kill is honoured, and an idle board's heap is clean.

Each test leaves the board with no live threads. Control calls that must
answer use a 2 s deadline (board_client.CONTROL_DEADLINE_S); the tests assert
outcomes, never timings.

Run by tests/interop/board_fixture.py (BOARD_* variables, see board_client.py)
against a board with the default limits (256 KiB heap, 16 threads, 256 KiB
stacks).
"""

import time
import unittest

import grpc
from board_client import CONTROL_DEADLINE_S, BoardUnderTest, poll
from threadfleet.board.v1 import board_pb2 as pb

DEFAULT_MAX_STACK_BYTES = 256 * 1024  # sup_config_t's default (--max-stack)
KILL_GRACE_MAX_MS = 10000  # SUP_KILL_GRACE_MAX_MS

# Backtracks for far longer than any test runs, inside one native call
# (re1.5) that holds the VM all along; only a hard reset ends it.
NATIVE_MATCH = """\
import re
print("matching")
re.match("(a|aa)*c", "a" * 46)
print("matched")
"""
NATIVE_BUSY_US = 250 * 1000  # SUP_NATIVE_BUSY_MS

STUBBORN_SLEEPER = """\
import time
while True:
    try:
        time.sleep(3600)
    except BaseException:
        print("swallowed")
"""

board = BoardUnderTest.from_env()


def start(source, name):
    return board.stub().StartProgram(pb.StartProgramRequest(source=source, name=name), timeout=CONTROL_DEADLINE_S)


class BoardTestCase(unittest.TestCase):
    def tearDown(self):
        board.reset()


class StackLimitTest(BoardTestCase):
    def test_getinfo_reports_the_stack_limit(self):
        self.assertEqual(board.get_info().max_stack_bytes, DEFAULT_MAX_STACK_BYTES)

    def test_thread_with_a_stack_over_the_limit_is_refused_with_oserror_naming_it(self):
        program, output = board.run_to_end(
            "import _thread\n"
            "_thread.stack_size(256 * 1024 * 1024)\n"
            "try:\n"
            "    _thread.start_new_thread(print, ('started',))\n"
            "except OSError as e:\n"
            "    print(e)\n"
        )
        self.assertEqual(program.state, pb.PROGRAM_STATE_FINISHED, program)
        self.assertIn(f"over the board's limit of {DEFAULT_MAX_STACK_BYTES} bytes".encode(), output)
        self.assertNotIn(b"started", output)


class MetricsTest(BoardTestCase):
    def test_metrics_of_ended_programs_free_their_slots_for_new_ones(self):
        for round_ in range(3):  # 3 x 32 keys: a board that never freed would drop all but the first 32
            program, _ = board.run_to_end(f"import fleet\nfleet.report(**{{'r{round_}_%d' % i: i for i in range(32)}})\n")
            self.assertEqual(program.state, pb.PROGRAM_STATE_FINISHED, program)
        started = start("import fleet, time\nfleet.report(temp=21.5)\ntime.sleep(3600)\n", "sensor")

        def reported():
            return [m for m in board.snapshot().metrics if m.key == "temp"]

        metric = poll("fleet.report(temp=21.5) in a snapshot", 5, reported)[0]
        self.assertEqual(metric.thread_id, started.main_thread_id)
        self.assertEqual(metric.value, 21.5)


class KillTest(BoardTestCase):
    def sleeping_stubborn_thread(self):
        started = start(STUBBORN_SLEEPER, "stubborn")
        poll(
            "stubborn thread asleep",
            5,
            lambda: [t for t in board.live_threads(started.program_id) if t.state == pb.THREAD_STATE_SLEEPING],
        )
        return started.main_thread_id

    def test_second_kill_with_a_shorter_grace_is_honoured(self):
        thread_id = self.sleeping_stubborn_thread()
        # The first kill's answer comes before its call's deadline, while its
        # long grace still runs.
        first = board.stub().KillThread(
            pb.KillThreadRequest(thread_id=thread_id, grace_ms=KILL_GRACE_MAX_MS), timeout=0.5
        ).thread
        self.assertIn(first.state, (pb.THREAD_STATE_RUNNING, pb.THREAD_STATE_SLEEPING), first)
        second = board.stub().KillThread(
            pb.KillThreadRequest(thread_id=thread_id, grace_ms=100), timeout=CONTROL_DEADLINE_S
        ).thread
        self.assertEqual(second.state, pb.THREAD_STATE_KILLED, second)

    def test_kill_grace_over_the_limit_is_invalid_argument_naming_it(self):
        thread_id = self.sleeping_stubborn_thread()
        with self.assertRaises(grpc.RpcError) as caught:
            board.stub().KillThread(
                pb.KillThreadRequest(thread_id=thread_id, grace_ms=60000), timeout=CONTROL_DEADLINE_S
            )
        self.assertEqual(caught.exception.code(), grpc.StatusCode.INVALID_ARGUMENT, caught.exception.details())
        self.assertIn(f"grace_ms 60000 is over the board's limit of {KILL_GRACE_MAX_MS} ms", caught.exception.details())


class FlashTest(BoardTestCase):
    def test_program_cannot_unmount_the_flash_and_file_calls_keep_working(self):
        program, output = board.run_to_end(
            "import os\n"
            "try:\n"
            "    os.umount('/')\n"
            "    print('unmounted')\n"
            "except OSError as e:\n"
            "    print('OSError', e.errno)\n"
        )
        self.assertEqual(output, b"OSError 1\n", program)

        def requests():
            yield pb.WriteFileRequest(header=pb.WriteFileHeader(path="/after-umount.txt"))
            yield pb.WriteFileRequest(data=b"still here")

        written = board.stub().WriteFile(requests(), timeout=CONTROL_DEADLINE_S)
        self.assertEqual(written.size_bytes, len(b"still here"))
        listing = board.stub().ListFiles(pb.ListFilesRequest(path="/"), timeout=CONTROL_DEADLINE_S)
        self.assertIn("after-umount.txt", [e.name for e in listing.entries])


# fleetd marks a board with less free heap than this DEGRADED.
DEGRADED_HEAP_FREE_FRACTION = 0.10

FILL_HEAP = """\
data = []
try:
    while True:
        data.append(bytearray(1000))
except MemoryError:
    data.pop()
print("filled")
"""


class IdleHeapTest(BoardTestCase):
    """An idle board is not DEGRADED by garbage (issue #11 defect 14)."""

    def test_heap_of_a_program_that_filled_it_is_free_once_it_ended(self):
        program, output = board.run_to_end(FILL_HEAP)
        self.assertEqual(output, b"filled\n", program)

        def mostly_free():
            heap = board.snapshot().heap
            return heap if heap.free_bytes >= heap.total_bytes // 2 else None

        poll("the ended program's heap free", 5, mostly_free)

    def test_pushes_to_an_idle_board_never_show_its_heap_degraded(self):
        for i in range(30):  # each push leaves ~9 KB of garbage in a 256 KiB heap

            def requests():
                yield pb.WriteFileRequest(header=pb.WriteFileHeader(path=f"/pushed{i}.bin"))
                for _ in range(4):
                    yield pb.WriteFileRequest(data=bytes(4096))

            board.stub().WriteFile(requests(), timeout=CONTROL_DEADLINE_S)
            heap = board.snapshot().heap
            self.assertGreaterEqual(heap.free_bytes, heap.total_bytes * DEGRADED_HEAP_FREE_FRACTION, f"push {i}: {heap}")


class NativeCodeTest(unittest.TestCase):
    """A thread inside one long native operation (issue #11 defect 5)."""

    def setUp(self):
        self.started = start(NATIVE_MATCH, "match")
        self.thread_id = self.started.main_thread_id
        poll("the match running", 5, lambda: b"matching" in board.output(self.started.program_id))

    def tearDown(self):
        # Only a hard reset ends the match.
        uptime_us = board.get_info().uptime_us
        self.assertTrue(board.stub().Reset(pb.ResetRequest(), timeout=5).hard)
        board.wait_for_restart(uptime_us)

    def thread(self, snapshot):
        return next(t for t in snapshot.threads if t.id == self.thread_id)

    def test_health_keeps_streaming_and_shows_the_thread_in_native_code(self):
        stream = board.stub().WatchHealth(pb.WatchHealthRequest(period_ms=100), timeout=10)
        try:
            for update in stream:
                if update.HasField("snapshot") and self.thread(update.snapshot).native_time_us >= 1_000_000:
                    thread = self.thread(update.snapshot)
                    break
        finally:
            stream.cancel()
        self.assertEqual(thread.state, pb.THREAD_STATE_RUNNING, thread)
        listed = board.live_threads(self.started.program_id)
        self.assertEqual([t.id for t in listed], [self.thread_id])
        self.assertGreaterEqual(listed[0].native_time_us, thread.native_time_us)
        self.assertEqual(board.get_info().name, board.name)

    def test_calls_that_need_the_vm_are_unavailable_naming_the_thread(self):
        poll("native code reported", 5, lambda: board.live_threads()[0].native_time_us >= NATIVE_BUSY_US)
        busy = f"the VM is busy: thread {self.thread_id} (main) has been in native code for "

        def write():
            yield pb.WriteFileRequest(header=pb.WriteFileHeader(path="/during-match.txt"))
            yield pb.WriteFileRequest(data=b"x")

        calls = {
            "WriteFile": lambda: board.stub().WriteFile(write(), timeout=CONTROL_DEADLINE_S),
            "ListFiles": lambda: board.stub().ListFiles(pb.ListFilesRequest(path="/"), timeout=CONTROL_DEADLINE_S),
            "StartProgram": lambda: start("print('hello')", "hello"),
            "Exec": lambda: board.stub().Exec(pb.ExecRequest(source="print(1)"), timeout=CONTROL_DEADLINE_S),
        }
        for name, call in calls.items():
            with self.subTest(call=name):
                with self.assertRaises(grpc.RpcError) as caught:
                    call()
                self.assertEqual(caught.exception.code(), grpc.StatusCode.UNAVAILABLE, caught.exception.details())
                self.assertIn(busy, caught.exception.details())

    def test_kill_answers_with_the_thread_unkillable_in_native_code(self):
        killed = board.stub().KillThread(
            pb.KillThreadRequest(thread_id=self.thread_id, grace_ms=200), timeout=CONTROL_DEADLINE_S
        ).thread
        self.assertTrue(killed.unkillable, killed)
        self.assertEqual(killed.state, pb.THREAD_STATE_RUNNING, killed)
        self.assertGreater(killed.native_time_us, 0, killed)


class HardResetTest(unittest.TestCase):
    def test_reset_with_a_thread_stuck_in_native_code_restarts_the_board_clean(self):
        def requests():
            yield pb.WriteFileRequest(header=pb.WriteFileHeader(path="/kept.txt"))
            yield pb.WriteFileRequest(data=b"kept")

        board.stub().WriteFile(requests(), timeout=CONTROL_DEADLINE_S)
        started = start(NATIVE_MATCH, "match")
        poll("the match running", 5, lambda: b"matching" in board.output(started.program_id))
        uptime_us = board.get_info().uptime_us

        asked = time.monotonic()
        self.assertTrue(board.stub().Reset(pb.ResetRequest(), timeout=5).hard)
        info = board.wait_for_restart(uptime_us)
        print(f"hard reset: Reset to the board answering again {time.monotonic() - asked:.2f} s", flush=True)

        self.assertEqual(info.name, board.name)
        self.assertEqual(board.live_threads(), [])
        program, output = board.run_to_end("print(open('/kept.txt').read())\n")
        self.assertEqual(output, b"kept\n")
        self.assertEqual(program.id, 1, "program ids start again after a restart")


if __name__ == "__main__":
    try:
        unittest.main(verbosity=2)
    finally:
        board.close()
