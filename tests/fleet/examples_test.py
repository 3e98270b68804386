#!/usr/bin/python3
"""The real-board programs of examples/boards, pushed and run through fleetctl
on a lab of four boards that simulate an ESP32 (deploy/lab --profile esp32),
as a user would take them from their boards to the lab.

  b01  sensor_loop    asyncio + _thread + machine ADC/Pin/Timer/WDT, run until
                      killed; the lab sets the ADC, the loop reports it, and
                      once it stops feeding its watchdog the board resets
  b02  lib_driver     a driver in /lib imported by main.py: as the .py on b02,
  b04                 as the .mpy the build's mpy-cross made of it on b04
  b03  socket_client  a TCP client talking to a telemetry server this test
                      runs on 127.0.0.1 (the board reaches it as 10.0.2.2)

The .mpy comes from the build (target example_boards_mpy), found through
EXAMPLE_BOARDS_BUILD_DIR, which ctest sets.
"""

import json
import os
import pathlib
import re
import unittest

from fleet_lab import REPO, FleetLab, wait_for
from telemetry_server import TelemetryServer

LAB = None
EXAMPLES = REPO / "examples" / "boards"
PROFILE = "esp32"
# sensor_loop on an ESP32 samples GPIO34, ADC1 channel 6, and blinks GPIO2
# from hardware timer 0; its watchdog's timeout is 3 s.
SENSOR_ADC_CHANNEL = "6"
LED_PIN = 2
WDT_TIMEOUT_MS = 3000


def setUpModule():
    global LAB
    LAB = FleetLab.start(boards=4, extra=("--profile", PROFILE))
    LAB.wait_online()


def tearDownModule():
    if LAB is not None:
        LAB.stop()


def run_to_the_end(board, script, name, timeout=40):
    """`fleetctl run BOARD SCRIPT --follow`: the program's output; fails unless it finished."""
    proc = LAB.run_ctl("run", board, str(script), "--follow", "--name", name, output=None, timeout=timeout)
    if proc.returncode != 0:
        raise AssertionError(f"{name} on {board} exited {proc.returncode}:\n{proc.stdout}{proc.stderr}")
    return proc.stdout


def push(board, local, path):
    out = LAB.text("push", str(local), "-b", board, "--path", path, "--force")
    if not re.search(rf"(?m)^{board}\s+done\b", out):
        raise AssertionError(f"push {local} to {board}:{path}: {out}")


def reports(output):
    """The sensor loop's report lines: [(n, adc_avg_u16 or None, samples, blinks)]."""
    found = []
    for m in re.finditer(r"(?m)^report (\d+) adc_avg_u16 (\d+|None) samples (\d+) blinks (\d+)$", output):
        avg = None if m.group(2) == "None" else int(m.group(2))
        found.append((int(m.group(1)), avg, int(m.group(3)), int(m.group(4))))
    return found


class SensorLoop(unittest.TestCase):

    def test_the_loop_reports_the_adc_the_lab_sets_blinks_the_led_and_its_watchdog_resets_the_board_once_stopped(
            self):
        adc = LAB.ctl("adc", "b01", SENSOR_ADC_CHANNEL, "40000")
        self.assertEqual(adc.get("value_u16"), 40000)
        started = LAB.run_program(["-b", "b01", "--name", "sensor_loop"], EXAMPLES / "sensor_loop" / "main.py")
        program_id = str(started["b01"])

        def output():
            return LAB.text("logs", "b01", program_id)

        wait_for("a report of the 40000 the lab set",
                 lambda: any(avg == 40000 for _, avg, _, _ in reports(output())), 10, interval=0.5)
        self.assertIn(f"sensor loop on esp32 led {LED_PIN} timer 0", output())

        # The lab turns the input down: the sampler thread's ring fills with
        # the new value and the averaging task follows within a report or two.
        LAB.ctl("adc", "b01", SENSOR_ADC_CHANNEL, "1000")
        wait_for("a report of the 1000 the lab set next",
                 lambda: any(avg == 1000 for _, avg, _, _ in reports(output())), 10, interval=0.5)
        wait_for("the optional fleet.report metric at 1000 in b01's health", lambda: [
            m for m in (LAB.ctl("health", "-b", "b01")["boards"][0].get("snapshot") or {}).get("metrics", [])
            if m.get("key") == "adc_avg_u16" and m.get("value") == 1000], 10, interval=0.5)
        last = reports(output())[-1]
        self.assertGreater(last[2], 0, "the sampler thread took samples")
        self.assertGreater(last[3], 0, "the timer's callback blinked the LED")

        machine = LAB.ctl("machine", "b01")
        led = [p for p in machine.get("pins", []) if p.get("pin", 0) == LED_PIN]
        self.assertEqual([p.get("mode") for p in led], ["PIN_MODE_OUT"], f"GPIO{LED_PIN} is the LED output")
        timer = [t for t in machine.get("timers", []) if t.get("id", 0) == 0]
        self.assertEqual(len(timer), 1, f"hardware timer 0 listed: {machine.get('timers')}")
        self.assertEqual(timer[0].get("mode"), "TIMER_MODE_PERIODIC")
        self.assertGreater(int(timer[0].get("fired", 0)), 0)
        watchdog = machine.get("watchdog", {})
        self.assertTrue(watchdog.get("armed"), f"the program armed the watchdog: {watchdog}")
        self.assertEqual(watchdog.get("timeout_ms"), WDT_TIMEOUT_MS)

        killed = LAB.ctl("kill", "b01", "--program", program_id)
        self.assertEqual(killed["program"]["state"], "PROGRAM_STATE_KILLED")

        # As on a real board, a watchdog cannot be stopped: with its feeding
        # loop gone, it resets the board.
        def reset_by_watchdog():
            m = LAB.ctl("machine", "b01")
            return m if m.get("reset_cause") == "RESET_CAUSE_WATCHDOG" else None

        after = wait_for("b01 reset by its watchdog", reset_by_watchdog, WDT_TIMEOUT_MS / 1000 + 10, interval=0.5)
        self.assertGreaterEqual(after.get("watchdog", {}).get("resets", 0), 1)
        wait_for("a watchdog-reset event for b01 in fleetctl events",
                 lambda: [e for e in LAB.events("-b", "b01")
                          if (e.get("board_event") or {}).get("kind") == "EVENT_KIND_WATCHDOG_RESET"], 10,
                 interval=0.5)


# What lib_driver/main.py prints after its first line, with the driver as .py
# or as .mpy alike (checked against stock MicroPython 1.25's unix port).
DRIVER_OUTPUT = """\
bench stand-in at 0x48
limits (30.0, 40.0)
temperature 25.0000 alert False
temperature -0.2500 alert False
temperature -25.0000 alert False
temperature 41.5000 alert True
temperature 35.0000 alert True
temperature 29.0000 alert False
temperature 127.9375 alert True
extended temperature 150.0000
temperature 22.0000
shut down, still reads 22.0000
after one-shot 20.5000
refused: low limit must be below high limit
"""


class LibDriver(unittest.TestCase):

    def test_main_imports_its_driver_from_lib_as_py_and_as_the_mpy_mpy_cross_built(self):
        build_dir = os.environ.get("EXAMPLE_BOARDS_BUILD_DIR")
        if not build_dir:
            self.fail("$EXAMPLE_BOARDS_BUILD_DIR must name examples/boards' build directory (ctest sets it)")
        mpy = pathlib.Path(build_dir) / "lib_driver" / "lib" / "tmp102.mpy"
        self.assertTrue(mpy.is_file(), f"{mpy} missing: build the example_boards_mpy target")
        main = EXAMPLES / "lib_driver" / "main.py"

        # Two boards: the programs of one board share its VM's sys.modules,
        # so a driver swapped on flash is imported again only after a reset.
        push("b02", EXAMPLES / "lib_driver" / "lib" / "tmp102.py", "/lib/tmp102.py")
        push("b04", mpy, "/lib/tmp102.mpy")
        for board, driver in (("b02", "/lib/tmp102.py"), ("b04", "/lib/tmp102.mpy")):
            out = run_to_the_end(board, main, "lib_driver")
            self.assertEqual(out, f"tmp102 driver from {driver} on {PROFILE}\n" + DRIVER_OUTPUT, board)


class SocketClient(unittest.TestCase):

    def test_the_client_sends_its_readings_to_a_server_on_the_host_and_checks_the_servers_sum(self):
        with TelemetryServer() as server:
            config = LAB.dir / "config.json"
            config.write_text(json.dumps({"host": "10.0.2.2", "port": server.port}))
            push("b03", config, "/config.json")
            out = run_to_the_end("b03", EXAMPLES / "socket_client" / "main.py", "socket_client")
            session = server.wait_session(timeout=10)

        self.assertEqual(out.splitlines(), [
            f"connected to 10.0.2.2:{server.port}",
            f"session s{session['id']}",
            "acked 5 readings",
            "server counted 5 readings, total 110",
            "closed by server",
        ])
        self.assertEqual(session["errors"], [])
        platform, board_id = session["hello"]
        self.assertEqual(platform, PROFILE)
        self.assertRegex(board_id, r"^[0-9a-f]{12}$", "an ESP32's unique_id is its 6-byte MAC")
        self.assertEqual(session["readings"], [(0, 12), (1, 17), (2, 22), (3, 27), (4, 32)])
        self.assertTrue(session["bye"])


if __name__ == "__main__":
    unittest.main(verbosity=2)
