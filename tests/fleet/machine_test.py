#!/usr/bin/python3
"""The simulated hardware through fleetd, as a lab uses it: real boards
(deploy/lab), real fleetd, the real fleetctl.

A program wires an LED (pin 2) to a button (pin 4) through the button's IRQ
handler; the lab presses the button with `fleetctl pin b01 4 1` and reads the
LED back with `fleetctl pin b01 2`; `fleetctl machine` shows both; an ADC
channel is set and read; a viewer may read but not drive a pin, every drive
is audited as "b01/pin 4"; bad input exits 2 before any call; a job drives
the button and expects the LED; a starved watchdog resets the VM and
`fleetctl events` shows it as a warning; `fleetctl reset` ends the board's
programs (KILLED at once in `fleetctl threads`), the board answers right
after with reset cause SOFT, and each reset is audited (viewers refused); a
main.py pushed to the board runs at each `fleetctl reset` and again after
its own machine.reset(), while `fleetctl threads` answers.
"""

import pathlib
import tempfile
import unittest

from fleet_lab import SCRIPTS, FleetLab, wait_for
from job_lab import board_results, run_job, write_job

LAB = None
TMP = None


def setUpModule():
    global LAB, TMP
    LAB = FleetLab.start(boards=2)
    LAB.wait_online()
    TMP = tempfile.TemporaryDirectory(prefix="threadfleet-machine-")


def tearDownModule():
    if TMP is not None:
        TMP.cleanup()
    if LAB is not None:
        LAB.stop()


def pin(board, number):
    """The pin as `fleetctl pin BOARD N -o json` shows it."""
    return LAB.ctl("pin", board, str(number))


def start_button_led(board):
    program_id = LAB.run_program(["-b", board], SCRIPTS / "button_led.py")[board]
    wait_for(f"button_led.py ready on {board}",
             lambda: "button-led ready" in LAB.text("logs", board, str(program_id)), 15, interval=0.3)
    return program_id


class DrivingPins(unittest.TestCase):

    def setUp(self):
        self.program_id = start_button_led("b01")

    def tearDown(self):
        LAB.run_ctl("pin", "b01", "4", "release")
        LAB.run_ctl("kill", "b01", "--program", str(self.program_id))

    def test_pressing_the_button_from_the_lab_lights_the_led_through_the_irq_handler(self):
        pressed = LAB.ctl("pin", "b01", "4", "1")
        self.assertEqual(pressed.get("value"), 1)
        self.assertTrue(pressed.get("lab_driven"), "the lab drives pin 4 now")

        led = wait_for("LED (pin 2) on", lambda: (lambda p: p if p.get("value") == 1 else None)(pin("b01", 2)), 5,
                       interval=0.1)
        self.assertEqual(led["mode"], "PIN_MODE_OUT")
        button = pin("b01", 4)
        self.assertTrue(button.get("irq"), "pin 4 has a handler")
        self.assertGreaterEqual(int(button.get("irq_count", 0)), 1, "the handler was scheduled")

        LAB.ctl("pin", "b01", "4", "0")
        wait_for("LED (pin 2) off", lambda: pin("b01", 2).get("value", 0) == 0, 5, interval=0.1)
        released = LAB.ctl("pin", "b01", "4", "release")
        self.assertFalse(released.get("lab_driven", False), "release hands the pin back to its pull")

    def test_machine_shows_pins_with_who_drives_them(self):
        LAB.ctl("pin", "b01", "4", "1")
        wait_for("LED (pin 2) on", lambda: pin("b01", 2).get("value") == 1, 5, interval=0.1)
        machine = LAB.ctl("machine", "b01")
        pins = {p["pin"]: p for p in machine.get("pins", [])}
        self.assertIn(2, pins)
        self.assertIn(4, pins)
        table = LAB.text("machine", "b01")
        self.assertRegex(table, r"(?m)^Reset cause:\s+\w+")
        self.assertRegex(table, r"(?m)^Watchdog:\s+off")
        self.assertRegex(table, r"(?m)^4\s+in\s+down\s+1\s+lab\s+\d+")
        self.assertRegex(table, r"(?m)^2\s+out\s+none\s+1\s+program\s+-")

    def test_driving_the_programs_output_is_refused_with_the_board_named(self):
        proc = LAB.run_ctl("pin", "b01", "2", "1")
        self.assertEqual(proc.returncode, 1, proc.stderr)
        self.assertIn("FAILED_PRECONDITION", proc.stderr)
        self.assertIn("board b01", proc.stderr)


class BoardProfile(unittest.TestCase):

    def test_board_ls_and_board_show_say_which_board_each_simulates(self):
        self.assertRegex(LAB.text("board", "ls"), r"(?m)^b01\s+\S+\s+online\s+\S+\s+generic\s")
        self.assertRegex(LAB.text("board", "show", "b01"), r"(?m)^Profile:\s+generic$")
        self.assertEqual(LAB.ctl("board", "get", "b02")["board"]["info"]["profile"], "generic")


class AdcChannels(unittest.TestCase):

    def test_the_lab_sets_an_adc_channel_and_reads_it_back(self):
        set_ = LAB.ctl("adc", "b02", "0", "40000")
        self.assertEqual(set_.get("value_u16"), 40000)
        self.assertTrue(set_.get("lab_set"))
        self.assertEqual(LAB.ctl("adc", "b02", "0").get("value_u16"), 40000)


class RolesAuditAndBadInput(unittest.TestCase):

    def test_a_viewer_reads_the_machine_but_driving_a_pin_is_refused_and_audited(self):
        secret = LAB.ctl("token", "create", "machine-viewer", "--role", "viewer")["secret"]
        self.assertEqual(LAB.run_ctl("machine", "b02", token=secret).returncode, 0, "a viewer may read")
        proc = LAB.run_ctl("pin", "b02", "4", "1", token=secret)
        self.assertEqual(proc.returncode, 1)
        self.assertIn("PERMISSION_DENIED", proc.stderr)
        LAB.ctl("pin", "b02", "5", "1")
        LAB.ctl("pin", "b02", "5", "release")
        entries = [(e.get("actor"), e.get("action"), e.get("target"), e.get("code", 0)) for e in LAB.audit()]
        self.assertIn(("machine-viewer", "Fleet.SetPin", "b02/pin 4", 7), entries)
        self.assertTrue(any(a == "Fleet.SetPin" and t == "b02/pin 5" and c == 0 for _, a, t, c in entries),
                        "an operator's drive is audited with its target")

    def test_bad_pins_levels_and_adc_values_exit_2_naming_the_limit(self):
        for args, words in ((("pin", "b01", "256", "1"), "0..255"),
                            (("pin", "b01", "4", "2"), "neither a level (0 or 1) nor release"),
                            (("pin", "b01", "x"), "PIN 'x' is not a number"),
                            (("adc", "b01", "0", "65536"), "the limit is 65535")):
            proc = LAB.run_ctl(*args)
            self.assertEqual(proc.returncode, 2, f"{args}: {proc.stderr}")
            self.assertIn(words, proc.stderr, args)


JOB = """\
name: button-led
boards: {names: [b02]}
timeout: 1m
steps:
  - push: {file: button_led.py}
  - run: {file: button_led.py, wait: false}
  - sleep: 1s
  - expect: {output: "button-led ready", pin: {pin: 2, value: 0}}
  - pin: {pin: 4, value: 1}
  - expect: {pin: {pin: 2, value: 1, within: 3s}}
  - pin: {pin: 4, value: 0}
  - expect: {pin: {pin: 2, value: 0, within: 3s}}
"""


class Jobs(unittest.TestCase):

    def test_a_job_drives_the_button_and_expects_the_led(self):
        spec = write_job(TMP.name, "button-led", JOB, {"button_led.py": SCRIPTS / "button_led.py"})
        LAB.ctl("job", "apply", str(spec))
        code, run, err = run_job(LAB, "button-led")
        self.assertEqual(code, 0, f"the run passed; stderr: {err}; run: {run}")
        steps = board_results(run)["b02"]["steps"]
        self.assertEqual([s["kind"] for s in steps],
                         ["push", "run", "sleep", "expect", "pin", "expect", "pin", "expect"])
        driven = [p["pin"] for p in LAB.ctl("machine", "b02").get("pins", []) if p.get("lab_driven")]
        self.assertNotIn(4, driven, "the run released the pin it drove")


class Reset(unittest.TestCase):

    def program(self, board, program_id):
        """The program's record as `fleetctl threads -a` shows it now."""
        programs = LAB.threads("-b", board, all_=True)[board].get("programs", [])
        return next((p for p in programs if p["id"] == program_id), None)

    def test_fleetctl_reset_ends_the_boards_programs_and_the_board_answers_at_once(self):
        program_id = LAB.run_program(["-b", "b01"], SCRIPTS / "sleeper.py", "60")["b01"]
        wait_for("sleeper.py ticking on b01", lambda: "tick" in LAB.text("logs", "b01", str(program_id)), 15,
                 interval=0.3)

        self.assertEqual(LAB.text("reset", "b01"), "b01: reset (fresh VM; /boot.py and /main.py run again)\n")

        # No wait: fleetd shows what the reset did before the board's next snapshot.
        self.assertEqual(self.program("b01", program_id)["state"], "PROGRAM_STATE_KILLED")
        live = LAB.threads("-b", "b01")["b01"].get("threads", [])
        self.assertEqual([t for t in live if t.get("program_id") == program_id], [], "no thread of it is alive")
        self.assertEqual(LAB.ctl("machine", "b01").get("reset_cause"), "RESET_CAUSE_SOFT")
        entries = [(e.get("action"), e.get("target"), e.get("code", 0), e.get("message")) for e in LAB.audit()]
        self.assertIn(("Fleet.ResetBoard", "b01", 0, "fresh VM"), entries)

    def test_a_safe_reset_says_the_boot_scripts_were_skipped_and_json_says_soft(self):
        self.assertEqual(LAB.text("reset", "b02", "--safe"),
                         "b02: reset (safe boot: /boot.py and /main.py skipped)\n")
        self.assertEqual(LAB.ctl("reset", "b02"), {"hard": False})
        targets = [(e.get("action"), e.get("target")) for e in LAB.audit() if e.get("code", 0) == 0]
        self.assertIn(("Fleet.ResetBoard", "b02 (safe boot)"), targets)
        self.assertEqual(LAB.run_ctl("threads", "-b", "b02").returncode, 0, "the board answers after it")

    def test_a_viewer_may_not_reset_and_an_unknown_board_is_not_found(self):
        secret = LAB.ctl("token", "create", "reset-viewer", "--role", "viewer")["secret"]
        proc = LAB.run_ctl("reset", "b02", token=secret, output=None)
        self.assertEqual(proc.returncode, 1, proc.stderr)
        self.assertIn("PERMISSION_DENIED", proc.stderr)
        self.assertEqual(proc.stdout, "")
        proc = LAB.run_ctl("reset", "b99", output=None)
        self.assertEqual(proc.returncode, 1, proc.stderr)
        self.assertTrue(proc.stderr.startswith("fleetctl: error: NOT_FOUND: "), proc.stderr)
        self.assertIn("b99", proc.stderr)


class Watchdog(unittest.TestCase):

    def test_a_starved_watchdog_resets_the_vm_and_fleetctl_events_shows_a_warning(self):
        LAB.run_program(["-b", "b01"], SCRIPTS / "starved_watchdog.py")

        def reset_event():
            found = [e for e in LAB.events("-b", "b01")
                     if (e.get("board_event") or {}).get("kind") == "EVENT_KIND_WATCHDOG_RESET"]
            return found[0] if found else None

        event = wait_for("a WATCHDOG_RESET event of b01", reset_event, 15, interval=0.3)
        self.assertEqual(event["severity"], "SEVERITY_WARNING")
        self.assertIn("board b01", event["message"])
        table = LAB.text("events", "-b", "b01")
        self.assertRegex(table, r"watchdog_reset")
        machine = LAB.ctl("machine", "b01")
        self.assertEqual(machine.get("reset_cause"), "RESET_CAUSE_WATCHDOG")
        self.assertGreaterEqual(machine.get("watchdog", {}).get("resets", 0), 1)
        self.assertEqual(LAB.run_ctl("threads", "-b", "b01").returncode, 0, "the control channel stayed up")




class BootScripts(unittest.TestCase):

    def tearDown(self):
        LAB.run_ctl("reset", "b02", "--safe")
        for path in ("/main.py", "/count"):
            LAB.run_ctl("rm", "b02", path)
        LAB.run_ctl("reset", "b02")

    def test_main_py_restarts_after_its_machine_reset_while_fleetctl_threads_answers(self):
        LAB.text("push", str(SCRIPTS / "boot_counter.py"), "-b", "b02", "--path", "/main.py", "--force")
        self.assertIn("b02: reset", LAB.text("reset", "b02"))

        answers = []

        def third_boot_running():
            listed = LAB.threads("-b", "b02")["b02"]  # fails the test if fleetctl threads does not answer
            answers.append(listed)
            running = [p for p in listed.get("programs", [])
                       if p.get("name") == "main.py" and p.get("state") == "PROGRAM_STATE_RUNNING"]
            if running and "boot 3" in LAB.text("logs", "b02", str(running[0]["id"])):
                return running[0]
            return None

        main_program = wait_for("main.py's third boot running on b02", third_boot_running, 30, interval=0.2)
        self.assertEqual(LAB.text("logs", "b02", str(main_program["id"])), "boot 3 hard\n")
        self.assertGreater(len(answers), 2, "fleetctl threads answered all along")
        kinds = [(e.get("board_event") or {}).get("kind") for e in LAB.events("-b", "b02")]
        self.assertGreaterEqual(kinds.count("EVENT_KIND_MACHINE_RESET"), 2, "main.py reset the board twice")
        self.assertGreaterEqual(kinds.count("EVENT_KIND_BOOT"), 3, "each boot started main.py")
        self.assertEqual(LAB.ctl("machine", "b02").get("reset_cause"), "RESET_CAUSE_HARD")

    def test_a_safe_reset_skips_main_py_once(self):
        main = pathlib.Path(TMP.name) / "main.py"
        main.write_text("import time\nwhile True:\n    time.sleep_ms(100)\n")
        LAB.text("push", str(main), "-b", "b02", "--path", "/main.py", "--force")
        self.assertIn("safe boot", LAB.text("reset", "b02", "--safe"))
        running = lambda: [p for p in LAB.threads("-b", "b02")["b02"].get("programs", [])  # noqa: E731
                           if p.get("state") == "PROGRAM_STATE_RUNNING"]
        self.assertEqual(running(), [], "a safe boot runs no script")
        LAB.text("reset", "b02")
        self.assertEqual([p.get("name") for p in running()], ["main.py"], "the next reset boots main.py")


if __name__ == "__main__":
    unittest.main(verbosity=2)
