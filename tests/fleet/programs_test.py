#!/usr/bin/python3
"""Programs and threads across a 4-board lab, through fleetctl as a user runs it.

One lab (deploy/lab up --boards 4) for the whole module; each test picks the
boards it changes so the tests do not depend on one another's order.
"""

import time
import unittest

from fleet_lab import LIVE_THREAD_STATES, SCRIPTS, FleetLab, REPO, seed_scripts_dir, wait_for

LAB = None
SEEDS = ("thread_basic.py", "thread_exceptions.py", "thread_lock.py")


def setUpModule():
    global LAB
    LAB = FleetLab.start(boards=4)
    LAB.wait_online()


def tearDownModule():
    if LAB is not None:
        LAB.stop()


def live_threads(board_threads, program_id=None):
    return [t for t in board_threads.get("threads", [])
            if t["state"] in LIVE_THREAD_STATES and (program_id is None or t["program_id"] == program_id)]


def thread_named(board_threads, name):
    found = [t for t in board_threads.get("threads", []) if t["name"] == name]
    return found[-1] if found else None


class SeedScriptsOnEveryBoard(unittest.TestCase):

    def test_pushed_seed_scripts_run_on_all_four_boards_and_every_thread_is_listed(self):
        seeds = seed_scripts_dir()
        for seed in SEEDS:
            progress = LAB.ctl_all("push", str(seeds / seed))
            done = {p["board"] for p in progress if p["stage"] == "PUSH_STAGE_DONE"}
            self.assertEqual(done, set(LAB.boards), f"push {seed}: boards that reached DONE")

        started = {seed: LAB.run_program(["-l", "lab=local"], seeds / seed) for seed in SEEDS}
        for seed, per_board in started.items():
            self.assertEqual(set(per_board), set(LAB.boards), f"run {seed}: boards that started it")

        # Each seed script runs a main thread and one worker for about 5 s: both
        # threads of every program must show live in `fleetctl threads`.
        seen = {}  # (board, seed) -> ids of its threads seen live

        def all_threads_seen_live():
            threads = LAB.threads()
            for board in LAB.boards:
                for seed in SEEDS:
                    live = live_threads(threads[board], started[seed][board])
                    seen.setdefault((board, seed), set()).update(t["id"] for t in live)
            return all(len(ids) == 2 for ids in seen.values())

        wait_for("main and worker thread of all 3 seed programs live on all 4 boards", all_threads_seen_live, 8,
                 interval=0.1)

        def all_finished():
            threads = LAB.threads(all_=True)
            states = {(b, p["id"]): p["state"] for b in LAB.boards for p in threads[b].get("programs", [])}
            return all(states.get((b, started[s][b])) == "PROGRAM_STATE_FINISHED" for b in LAB.boards for s in SEEDS)

        wait_for("every seed program finished on every board", all_finished, 30, interval=0.5)

        for board in LAB.boards:
            out = LAB.text("logs", board, str(started["thread_basic.py"][board]))
            self.assertIn("Main thread is running:  2", out)
            self.assertIn("Thread is running:  4", out)
            out = LAB.text("logs", board, str(started["thread_lock.py"][board]))
            self.assertIn("Shared variable is  8", out, f"{board}: thread_lock.py counts to 8 under its lock")


class KillOneThread(unittest.TestCase):

    def test_killed_thread_shows_killed_on_its_board_while_every_other_thread_goes_on(self):
        station = REPO / "examples" / "lab_station.py"
        started = LAB.run_program(["-l", "lab=local"], station)  # runs 10 min; killed below
        names = {"temp", "humidity", "wind", "uplink"}

        def station_threads_live():
            threads = LAB.threads()
            return all({t["name"] for t in live_threads(threads[b], started[b])} >= names for b in LAB.boards)

        wait_for("the station's four named threads live on every board", station_threads_live, 10)
        victim = thread_named(LAB.threads("-b", "b02")["b02"], "wind")

        killed = LAB.ctl("kill", f"b02/{victim['id']}")["thread"]
        self.assertEqual(killed["state"], "THREAD_STATE_KILLED")
        self.assertFalse(killed["unkillable"])

        time.sleep(1.5)  # a few health periods: the others must still be at work
        threads = LAB.threads(all_=True)
        b02 = threads["b02"]
        self.assertEqual(next(t for t in b02["threads"] if t["id"] == victim["id"])["state"], "THREAD_STATE_KILLED")
        b02_live = {t["name"] for t in live_threads(b02, started["b02"])}
        self.assertTrue(b02_live >= {"temp", "humidity", "uplink"}, f"b02's other threads still live: {b02_live}")
        self.assertNotIn("wind", b02_live)
        for board in ("b01", "b03", "b04"):
            self.assertTrue({t["name"] for t in live_threads(threads[board], started[board])} >= names,
                            f"{board}: all four station threads still live")
        program = next(p for p in b02["programs"] if p["id"] == started["b02"])
        self.assertEqual(program["state"], "PROGRAM_STATE_RUNNING", "b02's program runs on without its wind thread")

        # The uplink notices the silent sensor in the program's own output.
        wait_for("b02's uplink reports wind quiet",
                 lambda: "(quiet: wind)" in LAB.text("logs", "b02", str(started["b02"])), 5, interval=0.5)

        for board, program_id in started.items():
            result = LAB.ctl("kill", board, "--program", str(program_id))
            self.assertEqual(result["program"]["state"], "PROGRAM_STATE_KILLED")
            self.assertEqual(result.get("unkillable_thread_ids", []), [])


class FailingThread(unittest.TestCase):

    def test_failed_thread_shows_its_traceback_in_threads_logs_and_events(self):
        started = LAB.run_program(["-b", "b01"], SCRIPTS / "fails.py")
        program_id = started["b01"]

        def failed_checker():
            t = thread_named(LAB.threads("-b", "b01", all_=True)["b01"], "checker")
            return t if t and t["state"] == "THREAD_STATE_FAILED" else None

        checker = wait_for("thread 'checker' failed on b01", failed_checker, 10)
        self.assertEqual(checker["program_id"], program_id)
        self.assertEqual(checker["exception"]["type"], "ValueError")
        self.assertIn("not-a-number", checker["exception"]["message"])
        traceback = checker["exception"]["traceback"]
        self.assertIn("in checker", traceback)
        self.assertIn("in parse_reading", traceback)

        output = wait_for("b01's program output ends with the main thread's line",
                          lambda: (lambda o: o if "main thread still fine" in o else None)(
                              LAB.text("logs", "b01", str(program_id))), 10, interval=0.5)
        self.assertRegex(output, r"Traceback \(most recent call last\):")
        self.assertIn("ValueError: invalid syntax for integer with base 10: 'not-a-number'", output)

        def failed_event():
            return [e for e in LAB.events("-b", "b01")
                    if e["thread_id"] == checker["id"] and e["program_id"] in (program_id, 0)
                    and e["severity"] in ("SEVERITY_WARNING", "SEVERITY_ERROR")
                    and ((e.get("board_event") or {}).get("kind") == "EVENT_KIND_THREAD_FAILED" or "fail" in e["message"])]

        events = wait_for("a stored event for the failed thread", failed_event, 10, interval=0.5)
        self.assertIn("ValueError", " ".join(e["message"] for e in events))


class Deadlock(unittest.TestCase):

    def test_two_threads_waiting_on_each_others_lock_raise_a_deadlock_anomaly(self):
        started = LAB.run_program(["-b", "b03"], SCRIPTS / "deadlock.py")
        program_id = started["b03"]

        def both_waiting():
            threads = LAB.threads("-b", "b03")["b03"]
            waiting = {t["name"]: t for t in live_threads(threads, program_id) if t["state"] == "THREAD_STATE_WAITING_LOCK"}
            return waiting if set(waiting) == {"left", "right"} else None

        waiting = wait_for("threads left and right both waiting on a lock on b03", both_waiting, 10)
        cycle = {waiting["left"]["id"], waiting["right"]["id"]}

        def deadlock_events():
            return [e for e in LAB.events("-b", "b03", "--min-severity", "error")
                    if e["board"] == "b03" and e["severity"] == "SEVERITY_ERROR"
                    and ((e.get("board_event") or {}).get("kind") == "EVENT_KIND_DEADLOCK" or "deadlock" in e["message"].lower())]

        events = wait_for("a deadlock event for b03", deadlock_events, 10, interval=0.5)
        board_event = events[0].get("board_event") or {}
        self.assertEqual(set(board_event.get("cycle_thread_ids", [])), cycle, "the event names the cycle's threads")
        health = LAB.ctl("health", "-b", "b03")["boards"][0]
        self.assertTrue(any("deadlock" in a["message"].lower() or
                            (a.get("board_event") or {}).get("kind") == "EVENT_KIND_DEADLOCK"
                            for a in health.get("anomalies", [])),
                        f"b03's open anomalies name the deadlock: {health.get('anomalies')}")

        result = LAB.ctl("kill", "b03", "--program", str(program_id))
        self.assertEqual(result["program"]["state"], "PROGRAM_STATE_KILLED", "a kill frees deadlocked threads")


if __name__ == "__main__":
    unittest.main(verbosity=2)
