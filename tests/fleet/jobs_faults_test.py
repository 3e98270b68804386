#!/usr/bin/python3
"""Fleet test jobs when things break: a board killed -9 mid-run, a board
that keeps failing (quarantine), fleetd killed -9 mid-run (the run ends
"interrupted", its boards are free, the schedule fires again) — on a real
4-board lab through the real fleetctl. The cron test waits for real minute
boundaries, so this module takes about two minutes.
"""

import sys
import tempfile
import time
import unittest

from fleet_lab import SCRIPTS, FleetLab, wait_for
from job_lab import (board_results, get_run, run_job, run_program_ids, sleep_until_next_minute, start_job,
                     wait_run_state, write_job)

LAB = None
TMP = None


def setUpModule():
    global LAB, TMP
    LAB = FleetLab.start(boards=4)
    LAB.wait_online()
    TMP = tempfile.TemporaryDirectory(prefix="threadfleet-jobs-faults-")


def tearDownModule():
    if TMP is not None:
        TMP.cleanup()
    if LAB is not None:
        LAB.stop()


def apply(name, spec_text, files=None):
    spec = write_job(TMP.name, name, spec_text, files)
    LAB.ctl("job", "apply", str(spec))


SLEEPER_JOB = """\
name: {name}
boards: {{selector: "lab=local"}}
timeout: 2m
{extra}
steps:
  - push: {{file: sleeper.py}}
  - run: {{file: sleeper.py, args: ["{seconds}"], timeout: 90s, name: sleeper}}
"""


def running_on(run_id, boards, step=1):
    """The run's program ids once the run step has started on every board named."""
    programs = run_program_ids(get_run(LAB, run_id), step)
    return programs if all(b in programs for b in boards) else None


class BoardDies(unittest.TestCase):

    def test_board_killed_mid_run_ends_error_for_that_board_without_hanging_the_run(self):
        apply("board-dies", SLEEPER_JOB.format(name="board-dies", extra="", seconds=8),
              {"sleeper.py": SCRIPTS / "sleeper.py"})
        run_id = start_job(LAB, "board-dies")
        wait_for("the sleeper started on every board", lambda: running_on(run_id, LAB.boards), 30)
        LAB.kill9("b03")
        killed = time.monotonic()
        run = wait_run_state(LAB, run_id, {"RUN_STATE_ERROR", "RUN_STATE_FAILED", "RUN_STATE_PASSED"}, 40)
        print(f"run ended {time.monotonic() - killed:.1f} s after kill -9 of b03", file=sys.stderr)
        results = board_results(run)
        self.assertEqual(run["state"], "RUN_STATE_ERROR")
        self.assertEqual(results["b03"]["state"], "RUN_STATE_ERROR")
        self.assertTrue(results["b03"]["message"], "the board's result says why")
        for b in ("b01", "b02", "b04"):
            self.assertEqual(results[b]["state"], "RUN_STATE_PASSED", f"{b}: {results[b].get('message')}")
        LAB.up()
        LAB.wait_online()


PUSH_JOB = """\
name: needs-b04
boards: {names: [b04]}
timeout: 30s
steps:
  - push: {file: fails.py}
"""


class Quarantine(unittest.TestCase):

    def test_board_ending_error_in_three_runs_in_a_row_is_quarantined_until_released(self):
        apply("needs-b04", PUSH_JOB, {"fails.py": SCRIPTS / "fails.py"})
        LAB.kill9("b04")
        wait_for("b04 offline", lambda: LAB.board_states()["b04"] == "BOARD_STATE_OFFLINE", 10)
        for i in range(3):
            code, run, err = run_job(LAB, "needs-b04")
            self.assertEqual(code, 2, f"run {i + 1}: {err}")
            self.assertIsNotNone(run, f"run {i + 1} ran (and ended ERROR): {err}")
            self.assertEqual(board_results(run)["b04"]["state"], "RUN_STATE_ERROR")
        b04 = next(b for b in LAB.ctl("board", "ls")["boards"] if b["name"] == "b04")
        self.assertIn("quarantine", b04, "board ls shows b04 quarantined")
        self.assertIn("3 runs", b04["quarantine"]["reason"])
        table = LAB.text("board", "ls")
        self.assertIn("quarantined", table)

        code, _, err = run_job(LAB, "needs-b04")
        self.assertEqual(code, 2, "a job whose only board is quarantined cannot run")
        self.assertIn("quarantine", err.lower())

        LAB.up()
        LAB.wait_online()
        LAB.ctl("board", "release", "b04")
        b04 = next(b for b in LAB.ctl("board", "ls")["boards"] if b["name"] == "b04")
        self.assertNotIn("quarantine", b04)
        code, run, err = run_job(LAB, "needs-b04")
        self.assertEqual(code, 0, err)


class FleetdDies(unittest.TestCase):

    def test_cron_fires_then_fleetd_killed_mid_run_leaves_it_interrupted_and_the_schedule_catches_up(self):
        apply("every-minute", SLEEPER_JOB.format(name="every-minute", extra='schedule: "* * * * *"', seconds=40),
              {"sleeper.py": SCRIPTS / "sleeper.py"})

        def scheduled_run():
            runs = LAB.ctl("job", "runs", "every-minute").get("runs", [])
            return runs[0] if runs and runs[0]["trigger"].startswith("schedule") else None

        fired = wait_for("the 1-minute schedule fired", scheduled_run, 75, interval=1)
        run_id = str(fired["id"])
        wait_for("the scheduled run's sleeper started", lambda: running_on(run_id, LAB.boards), 30)

        LAB.kill9("fleetd")
        sleep_until_next_minute(margin=2)  # a fire time passes while fleetd is down
        LAB.up()
        LAB.wait_online()

        interrupted = get_run(LAB, run_id)
        self.assertEqual(interrupted["state"], "RUN_STATE_ERROR")
        self.assertIn("interrupted", interrupted["message"])

        def catch_up_run():
            runs = LAB.ctl("job", "runs", "every-minute").get("runs", [])
            return next((r for r in runs if int(r["id"]) > int(run_id)), None)

        catch_up = wait_for("the missed schedule fired once after the restart", catch_up_run, 20, interval=0.5)
        self.assertIn("catch-up", catch_up["trigger"])
        runs = LAB.ctl("job", "runs", "every-minute").get("runs", [])
        self.assertEqual(len([r for r in runs if int(r["id"]) > int(run_id)]), 1, "it fired once, not twice")

        LAB.ctl("job", "cancel", str(catch_up["id"]))
        LAB.ctl("job", "rm", "every-minute")
        boards = LAB.ctl("board", "ls")["boards"]
        self.assertEqual([b["name"] for b in boards if int(b.get("reserved_by_run", 0))], [], "every board free")


if __name__ == "__main__":
    unittest.main(verbosity=2)
