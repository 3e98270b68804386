#!/usr/bin/python3
"""The board boots as a real one does (issue #14): at every start and reset
it runs /boot.py, then /main.py once boot.py has ended, each as a program the
lab sees. machine.reset() in main.py restarts it while ListThreads answers;
a boot loop stops by itself; a safe boot (Reset with safe_boot) gets back a
board whose main.py holds the VM, through a hard reset too.

Run by tests/interop/board_fixture.py, twice: against a board that boots
(BootTest) and, with BOOT_OFF=1, against one started with --no-boot
(NoBootTest). Each test leaves no scripts on the flash and no program
running. Waits are bounded polls; nothing asserts a timing.
"""

import os
import pathlib
import unittest

import grpc
from board_client import CONTROL_DEADLINE_S, BoardUnderTest, Events, poll
from threadfleet.board.v1 import board_pb2 as pb

board = BoardUnderTest.from_env()
BOOT_OFF = os.environ.get("BOOT_OFF") == "1"
SCRIPTS = ("/boot.py", "/main.py", "/count", "/booted")
BOOT_LOOP_BOOTS = 5  # SUP_BOOT_LOOP_BOOTS
SCRIPT_MAX = 64 * 1024  # SUP_SCRIPT_MAX

# Counts its boots on the flash and resets the board itself until its third
# boot (shared with the fleet test of the same).
FLEET_SCRIPTS = pathlib.Path(__file__).resolve().parent.parent / "fleet" / "scripts"
BOOT_COUNTER = (FLEET_SCRIPTS / "boot_counter.py").read_bytes()

# Backtracks far longer than any test runs inside one native call: it holds
# the VM, so DeleteFile cannot reach the flash and only a hard reset ends it.
NATIVE_MATCH_MAIN = b"""\
import re
print('matching')
re.match('(a|aa)*c', 'a' * 46)
"""


def reset(safe_boot=False):
    return board.stub().Reset(pb.ResetRequest(safe_boot=safe_boot), timeout=10)


def programs(name=None):
    resp = board.stub().ListThreads(pb.ListThreadsRequest(include_finished=True), timeout=CONTROL_DEADLINE_S)
    return [p for p in resp.programs if name is None or p.name == name]


def running(name):
    found = [p for p in programs(name) if p.state == pb.PROGRAM_STATE_RUNNING]
    return found[0] if found else None


def started_event(path):
    return lambda e: e.message.startswith(f"boot: {path} started as program")


@unittest.skipIf(BOOT_OFF, "the board was started with --no-boot")
class BootTest(unittest.TestCase):
    def tearDown(self):
        # A safe boot first: whatever main.py a test left cannot hold the VM.
        uptime_us = board.get_info().uptime_us
        if reset(safe_boot=True).hard:
            board.wait_for_restart(uptime_us)
        for path in SCRIPTS:
            board.delete_file(path)
        board.reset()

    def test_machine_reset_in_main_py_runs_it_again_while_listthreads_answers(self):
        board.delete_file("/count")
        board.write_file("/main.py", BOOT_COUNTER)
        answers = []

        def list_threads():
            answers.append(programs())

        with Events(board) as events:
            reset()
            started = [events.wait_for(pb.EVENT_KIND_BOOT, match=started_event("/main.py"),
                                       while_waiting=list_threads) for _ in range(3)]
        main = poll("main.py's third boot running", 5, lambda: running("main.py"))
        self.assertEqual(main.id, started[-1].program_id, "the program the last boot started runs")
        poll("main.py's output", 5, lambda: board.output(main.id) == b"boot 3 hard\n")
        # Every ListThreads during the resets answered (a failure would have raised).
        self.assertGreater(len(answers), 3)
        first = board.program(started[0].program_id)
        self.assertEqual(first.state, pb.PROGRAM_STATE_KILLED, "the first boot's main.py ended by its reset")
        self.assertEqual(board.output(first.id), b"boot 1 soft\n")

    def test_boot_py_runs_before_main_py_starts(self):
        board.write_file("/boot.py", b"import time\ntime.sleep_ms(300)\nopen('/booted', 'w').write('yes')\n")
        board.write_file("/main.py", b"import os\nprint('after boot.py' if 'booted' in os.listdir('/') else 'early')\n")
        with Events(board) as events:
            reset()
            boot_py = events.wait_for(pb.EVENT_KIND_BOOT, match=started_event("/boot.py"))
            main_py = events.wait_for(pb.EVENT_KIND_BOOT, match=started_event("/main.py"))
        main = poll("main.py ended", 5, lambda: (p := board.program(main_py.program_id)) and
                    p.state != pb.PROGRAM_STATE_RUNNING and p)
        self.assertEqual(board.output(main.id), b"after boot.py\n")
        self.assertEqual(main.name, "main.py")
        boot = board.program(boot_py.program_id)
        self.assertEqual((boot.name, boot.state), ("boot.py", pb.PROGRAM_STATE_FINISHED))

    def test_a_boot_loop_stops_and_the_board_stays_steerable_until_the_lab_resets_it(self):
        board.write_file("/main.py", b"import machine\nmachine.reset()\n")
        with Events(board) as events:
            reset()
            loop = events.wait_for(pb.EVENT_KIND_BOOT, match=lambda e: e.message.startswith("boot loop:"))
        self.assertIn(f"{BOOT_LOOP_BOOTS + 1} boots in", loop.message)
        self.assertIn("until the lab resets the board", loop.message)
        self.assertIsNone(running("main.py"))
        # Steerable: the flash and the VM answer; the lab fixes main.py.
        board.write_file("/main.py", b"print('fixed')\n")
        out = board.stub().Exec(pb.ExecRequest(source="print(1 + 1)"), timeout=CONTROL_DEADLINE_S)
        self.assertEqual(out.output, b"2\n")
        # The lab's reset boots main.py again.
        with Events(board) as events:
            reset()
            fixed = events.wait_for(pb.EVENT_KIND_BOOT, match=started_event("/main.py"))
        poll("the fixed main.py's output", 5, lambda: board.output(fixed.program_id) == b"fixed\n")

    def test_a_safe_boot_gets_back_a_board_whose_main_py_holds_the_vm(self):
        board.write_file("/main.py", NATIVE_MATCH_MAIN)
        reset()
        main = poll("main.py matching", 5, lambda: running("main.py"))
        poll("main.py inside its match", 5, lambda: board.output(main.id) == b"matching\n")
        # The VM is held: the flash cannot be reached to remove main.py.
        with self.assertRaises(grpc.RpcError) as caught:
            poll("the VM reported busy", 5, lambda: board.live_threads(main.id)[0].native_time_us > 250_000)
            board.stub().DeleteFile(pb.DeleteFileRequest(path="/main.py"), timeout=CONTROL_DEADLINE_S)
        self.assertEqual(caught.exception.code(), grpc.StatusCode.UNAVAILABLE, caught.exception.details())

        # Only a hard reset ends the match; the safe boot is carried through it.
        uptime_us = board.get_info().uptime_us
        self.assertTrue(reset(safe_boot=True).hard)
        board.wait_for_restart(uptime_us)
        self.assertEqual(programs(), [], "a safe boot runs no script")
        board.delete_file("/main.py")
        reset()
        self.assertEqual(programs(), [])

    def test_a_main_py_over_the_script_limit_is_not_run_and_the_board_says_why(self):
        board.write_file("/main.py", b"print('too big')\n" + b"#" * SCRIPT_MAX)
        with Events(board) as events:
            reset()
            refused = events.wait_for(pb.EVENT_KIND_BOOT)
        self.assertEqual(refused.message, "boot: /main.py not run: larger than the board's script limit")
        self.assertIsNone(running("main.py"))

    def test_a_safe_boot_skips_the_scripts_once(self):
        board.write_file("/main.py", b"import time\nwhile True:\n    time.sleep_ms(50)\n")
        with Events(board) as events:
            reset(safe_boot=True)
            safe = events.wait_for(pb.EVENT_KIND_BOOT)
        self.assertEqual(safe.message, "boot: safe boot, /boot.py and /main.py not run")
        self.assertIsNone(running("main.py"))
        reset()
        self.assertIsNotNone(running("main.py"), "the next reset boots main.py again")


@unittest.skipUnless(BOOT_OFF, "the board boots its scripts")
class NoBootTest(unittest.TestCase):
    def test_no_script_runs_at_a_reset(self):
        board.write_file("/main.py", b"print('booted')\n")
        try:
            reset()
            # Reset answers once the board has booted: a main.py it ran would be listed.
            self.assertEqual(programs(), [])
        finally:
            board.delete_file("/main.py")


if __name__ == "__main__":
    unittest.main()
