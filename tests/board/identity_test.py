#!/usr/bin/python3
"""A board started with `--profile esp32` is an ESP32 to its programs and to
the lab (issue 14): GetInfo names the profile and its limits, programs see
sys.platform "esp32", libraries pushed to /lib (.py and .mpy from the
mpy-cross built from the same source) import, and a @micropython.native loop
that never yields is reported as native code and ended by a hard reset.

Run by tests/interop/board_fixture.py with --board-arg=--profile
--board-arg=esp32 (BOARD_* variables, see board_client.py); MPY_CROSS names
mpy-cross. Control calls that must answer use a 2 s deadline; the tests
assert outcomes, never timings.
"""

import os
import subprocess
import tempfile
import unittest
from pathlib import Path

from board_client import CONTROL_DEADLINE_S, BoardUnderTest, poll
from threadfleet.board.v1 import board_pb2 as pb

ESP32_HEAP_BYTES = 110 * 1024  # firmware/runtime/board_profile.c
ESP32_MAX_THREADS = 16
ESP32_MAX_STACK_BYTES = 256 * 1024
NATIVE_BUSY_US = 250 * 1000  # SUP_NATIVE_BUSY_MS

# Machine code has no branch where the VM could raise a kill in the thread.
NATIVE_SPIN = """\
import micropython
@micropython.native
def spin():
    print("spinning")
    while True:
        pass
spin()
"""

board = BoardUnderTest.from_env()


def write_file(path, data):
    def requests():
        yield pb.WriteFileRequest(header=pb.WriteFileHeader(path=path))
        yield pb.WriteFileRequest(data=data)

    board.stub().WriteFile(requests(), timeout=CONTROL_DEADLINE_S)


def compile_mpy(source):
    with tempfile.TemporaryDirectory() as tmp:
        py = Path(tmp) / "module.py"
        py.write_text(source)
        subprocess.run([os.environ["MPY_CROSS"], str(py)], check=True, timeout=30)
        return py.with_suffix(".mpy").read_bytes()


class ProfileTest(unittest.TestCase):
    def test_getinfo_names_the_profile_and_its_limits(self):
        info = board.get_info()
        self.assertEqual(info.profile, "esp32")
        self.assertEqual(info.heap_size_bytes, ESP32_HEAP_BYTES)
        self.assertEqual(info.max_threads, ESP32_MAX_THREADS)
        self.assertEqual(info.max_stack_bytes, ESP32_MAX_STACK_BYTES)

    def test_programs_see_the_esp32_platform(self):
        program, output = board.run_to_end("import sys, os\nprint(sys.platform, os.uname().machine, sys.path)\n")
        self.assertEqual(program.exit_code, 0, output)
        self.assertEqual(output, b"esp32 Generic ESP32 module with ESP32 ['', '.frozen', '/lib']\n")

    def test_the_vm_a_reset_starts_is_an_esp32_again(self):
        board.reset()
        program, output = board.run_to_end("import sys\nprint(sys.platform)\n")
        self.assertEqual(output, b"esp32\n")


class LibImportTest(unittest.TestCase):
    def test_py_and_mpy_drivers_pushed_to_lib_import(self):
        write_file("/lib/sensor.py", b"def read():\n    return 21\n")
        write_file("/lib/driver.mpy", compile_mpy("def name():\n    return 'bme280'\n"))
        program, output = board.run_to_end("import sensor, driver\nprint(sensor.read(), driver.name())\n")
        self.assertEqual(program.exit_code, 0, output)
        self.assertEqual(output, b"21 bme280\n")


class NativeLoopTest(unittest.TestCase):
    def test_a_native_loop_is_unkillable_reported_as_native_code_and_ended_by_a_hard_reset(self):
        started = board.stub().StartProgram(
            pb.StartProgramRequest(source=NATIVE_SPIN, name="spin"), timeout=CONTROL_DEADLINE_S
        )
        poll("the loop spinning", 5, lambda: b"spinning" in board.output(started.program_id))
        poll(
            "native code reported",
            5,
            lambda: board.live_threads(started.program_id)[0].native_time_us >= NATIVE_BUSY_US,
        )

        killed = board.stub().KillThread(
            pb.KillThreadRequest(thread_id=started.main_thread_id, grace_ms=200), timeout=CONTROL_DEADLINE_S
        ).thread
        self.assertTrue(killed.unkillable, killed)
        self.assertEqual(killed.state, pb.THREAD_STATE_RUNNING, killed)

        uptime_us = board.get_info().uptime_us
        self.assertTrue(board.stub().Reset(pb.ResetRequest(), timeout=5).hard)

        info = board.wait_for_restart(uptime_us)
        self.assertEqual(info.profile, "esp32", "the restarted board is still an ESP32")
        self.assertEqual(board.live_threads(), [])


if __name__ == "__main__":
    try:
        unittest.main(verbosity=2)
    finally:
        board.close()
