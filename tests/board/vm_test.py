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

import unittest

import grpc
from board_client import CONTROL_DEADLINE_S, BoardUnderTest, poll
from threadfleet.board.v1 import board_pb2 as pb

DEFAULT_MAX_STACK_BYTES = 256 * 1024  # sup_config_t's default (--max-stack)
KILL_GRACE_MAX_MS = 10000  # SUP_KILL_GRACE_MAX_MS

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


if __name__ == "__main__":
    try:
        unittest.main(verbosity=2)
    finally:
        board.close()
