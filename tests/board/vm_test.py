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


if __name__ == "__main__":
    try:
        unittest.main(verbosity=2)
    finally:
        board.close()
