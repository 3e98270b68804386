#!/usr/bin/python3
"""Fleet test jobs end to end: a 4-board lab (deploy/lab), real fleetd, real
boards, every step through the real fleetctl (`job apply/run/show/cancel/
junit/report`), as a lab's CI would use them.
"""

import http.server
import json
import pathlib
import queue
import subprocess
import sys
import tempfile
import threading
import time
import unittest

from fleet_lab import SCRIPTS, FleetLab, seed_scripts_dir, wait_for
from job_lab import (board_results, get_run, live_threads_of, run_job, run_program_ids, start_job, ts,
                     wait_run_state, write_job)

LAB = None
TMP = None


def setUpModule():
    global LAB, TMP
    LAB = FleetLab.start(boards=4)
    LAB.wait_online()
    TMP = tempfile.TemporaryDirectory(prefix="threadfleet-jobs-")


def tearDownModule():
    if TMP is not None:
        TMP.cleanup()
    if LAB is not None:
        LAB.stop()


def apply(name, spec_text, files=None):
    spec = write_job(TMP.name, name, spec_text, files)
    LAB.ctl("job", "apply", str(spec))
    return spec


SEED_JOB = """\
name: seed-smoke
boards: {selector: "lab=local", count: all}
timeout: 2m
steps:
  - push: {file: thread_basic.py}
  - push: {file: thread_exceptions.py}
  - push: {file: thread_lock.py}
  - run: {file: thread_basic.py, timeout: 30s}
  - expect:
      output: "Main thread is running:  2"
      no_failed_threads: true
  - run: {file: thread_exceptions.py, timeout: 30s}
  - expect: {output: "Thread is running:  4", no_failed_threads: true}
  - run: {file: thread_lock.py, timeout: 30s}
  - expect:
      output: "Shared variable is  8"
      no_anomalies: [deadlock, stall, unkillable]
      max_stack_percent: 80
"""


class SeedScripts(unittest.TestCase):

    def test_job_pushing_and_running_the_three_seed_scripts_passes_on_four_boards(self):
        seeds = seed_scripts_dir()
        apply("seed-smoke", SEED_JOB, {n: seeds / n for n in ("thread_basic.py", "thread_exceptions.py",
                                                              "thread_lock.py")})
        code, run, err = run_job(LAB, "seed-smoke")
        self.assertEqual(code, 0, f"job run exits 0 when the run passed; stderr: {err}")
        self.assertEqual(run["state"], "RUN_STATE_PASSED")
        results = board_results(run)
        self.assertEqual(sorted(results), LAB.boards)
        for board, r in results.items():
            self.assertEqual(r["state"], "RUN_STATE_PASSED", f"{board}: {r.get('message')}")
            self.assertEqual([s["kind"] for s in r["steps"]],
                             ["push"] * 3 + ["run", "expect"] * 3)
        logs = LAB.text("job", "logs", str(run["id"]), "b01")
        self.assertIn("Shared variable is  8", logs, "job logs shows the programs' output")

        listed = {j["name"]: j for j in LAB.ctl("job", "ls").get("jobs", [])}
        self.assertEqual(listed["seed-smoke"]["last_run"]["state"], "RUN_STATE_PASSED")


FAILS_JOB = """\
name: thread-raises
boards: {selector: "lab=local"}
timeout: 1m
steps:
  - push: {file: fails.py}
  - run: {file: fails.py, timeout: 30s}
  - expect: {no_failed_threads: true, output: "main thread still fine"}
"""


class FailedThread(unittest.TestCase):

    def test_script_raising_in_a_thread_fails_the_run_with_its_traceback_as_evidence(self):
        apply("thread-raises", FAILS_JOB, {"fails.py": SCRIPTS / "fails.py"})
        code, run, _ = run_job(LAB, "thread-raises")
        self.assertEqual(code, 1, "job run exits 1 when the run failed")
        self.assertEqual(run["state"], "RUN_STATE_FAILED")
        run = get_run(LAB, run["id"])
        for board, r in board_results(run).items():
            self.assertEqual(r["state"], "RUN_STATE_FAILED", board)
            failed = [s for s in r["steps"] if s["state"] == "RUN_STATE_FAILED"]
            self.assertEqual(len(failed), 1, f"{board}: one step failed")
            tracebacks = [t.get("exception", {}).get("traceback", "")
                          for t in failed[0].get("evidence", {}).get("failed_threads", [])]
            self.assertTrue(any("parse_reading" in tb and "ValueError" in tb for tb in tracebacks),
                            f"{board}: the evidence holds the failed thread's traceback: {tracebacks}")

        junit = LAB.text("job", "junit", str(run["id"]))
        path = pathlib.Path(TMP.name) / "junit.xml"
        path.write_text(junit)
        reader = subprocess.run(["/usr/bin/python3", "-c", JUNIT_READER, str(path)], capture_output=True, text=True,
                                timeout=60)
        self.assertEqual(reader.returncode, 0, reader.stderr)
        cases = [line.split("\t") for line in reader.stdout.splitlines()]
        failures = [c for c in cases if c[2] == "failure"]
        self.assertEqual(sorted({c[0] for c in failures}), LAB.boards, "a failed testcase per board")
        self.assertTrue(all("parse_reading" in c[3] for c in failures), "failure text carries the traceback")
        self.assertTrue(any(c[2] == "passed" for c in cases), "the push steps are passed testcases")

        tap = LAB.text("job", "report", str(run["id"]), "--format", "tap")
        self.assertTrue(tap.startswith("TAP version 13"), tap[:80])
        self.assertIn("not ok", tap)
        csv_rows = LAB.text("job", "report", str(run["id"]), "--format", "csv").splitlines()
        self.assertEqual(csv_rows[0], "run,job,board,case,result,attempts,flaky,seconds,message")
        self.assertEqual(len([r for r in csv_rows if ",failed," in r]), 4, "a failed row per board")
        markdown = LAB.text("job", "report", str(run["id"]), "--format", "markdown")
        self.assertIn("thread-raises", markdown)
        self.assertIn("FAILED", markdown.upper())


# Reads a JUnit file with Debian's junitparser: one line per testcase,
# "classname<TAB>name<TAB>passed|failure|error|skipped<TAB>text".
JUNIT_READER = r"""
import sys
from junitparser import JUnitXml, Failure, Error, Skipped
xml = JUnitXml.fromfile(sys.argv[1])
suites = list(xml) if hasattr(xml, '__iter__') else [xml]
for suite in suites:
    for case in suite:
        kind, text = 'passed', ''
        for r in case.result:
            kind = {Failure: 'failure', Error: 'error', Skipped: 'skipped'}.get(type(r), 'other')
            text = ((r.message or '') + ' ' + (r.text or '')).replace('\t', ' ').replace('\n', ' ')
        print('\t'.join([case.classname or '', case.name or '', kind, text]))
"""

DEADLOCK_JOB = """\
name: deadlock-check
boards: {selector: "lab=local"}
timeout: 1m
steps:
  - push: {file: deadlock.py}
  - run: {file: deadlock.py, args: ["60"], wait: false, name: locks}
  - sleep: 3s
  - expect: {no_anomalies: [deadlock]}
"""


class Deadlock(unittest.TestCase):

    def test_thread_deadlock_fails_no_anomalies_deadlock_and_its_threads_are_killed(self):
        apply("deadlock-check", DEADLOCK_JOB, {"deadlock.py": SCRIPTS / "deadlock.py"})
        code, run, _ = run_job(LAB, "deadlock-check")
        self.assertEqual(code, 1)
        run = get_run(LAB, run["id"])
        for board, r in board_results(run).items():
            expect = r["steps"][3]
            self.assertEqual(expect["state"], "RUN_STATE_FAILED", board)
            self.assertIn("deadlock", expect["message"].lower(), board)
            kinds = " ".join(e.get("message", "") for e in expect.get("evidence", {}).get("anomalies", []))
            self.assertIn("deadlock", kinds.lower(), f"{board}: the deadlock event is evidence")
        started = run_program_ids(run, 1)
        self.assertEqual(sorted(started), LAB.boards)
        wait_for("the deadlocked programs killed at the end of the run", lambda: not live_threads_of(LAB, started), 15)


SLEEPER_JOB = """\
name: {name}
boards: {{selector: "lab=local"}}
timeout: {timeout}
steps:
  - push: {{file: sleeper.py}}
  - run: {{file: sleeper.py, args: ["{seconds}"], timeout: 2m, name: sleeper}}
"""


class TimeoutAndCancel(unittest.TestCase):

    def test_run_past_its_timeout_ends_error_and_its_threads_are_killed_on_every_board(self):
        apply("times-out", SLEEPER_JOB.format(name="times-out", timeout="6s", seconds=60),
              {"sleeper.py": SCRIPTS / "sleeper.py"})
        started = time.monotonic()
        code, run, _ = run_job(LAB, "times-out")
        took = time.monotonic() - started
        self.assertEqual(code, 2, "a run that could not finish exits 2")
        self.assertEqual(run["state"], "RUN_STATE_ERROR")
        self.assertIn("timed out", run["message"])
        self.assertLess(took, 40, "the run ends at its timeout, not when the program would")
        run = get_run(LAB, run["id"])
        programs = run_program_ids(run, 1)
        self.assertEqual(sorted(programs), LAB.boards)
        self.assertEqual(live_threads_of(LAB, programs), {}, "no thread of the run is left on any board")

    def test_cancelled_run_kills_its_programs_and_frees_its_boards(self):
        apply("cancel-me", SLEEPER_JOB.format(name="cancel-me", timeout="2m", seconds=60),
              {"sleeper.py": SCRIPTS / "sleeper.py"})
        run_id = start_job(LAB, "cancel-me")

        def sleeping_everywhere():
            run = get_run(LAB, run_id)
            programs = run_program_ids(run, 1)
            return programs if len(live_threads_of(LAB, programs)) == 4 else None

        programs = wait_for("the sleeper running on 4 boards", sleeping_everywhere, 30)
        run = LAB.ctl("job", "cancel", run_id)
        run = run.get("run", run)
        self.assertEqual(run["state"], "RUN_STATE_CANCELLED")
        self.assertEqual(live_threads_of(LAB, programs), {}, "cancel kills the run's threads on every board")
        boards = LAB.ctl("board", "ls")["boards"]
        self.assertEqual([b["name"] for b in boards if int(b.get("reserved_by_run", 0))], [],
                         "the boards are free")


SHORT_JOB = """\
name: {name}
boards: {{selector: "lab=local"}}
timeout: 1m
steps:
  - sleep: 3s
"""


class Reservations(unittest.TestCase):

    def test_two_jobs_wanting_the_same_boards_run_one_after_the_other(self):
        apply("first", SHORT_JOB.format(name="first"))
        apply("second", SHORT_JOB.format(name="second"))
        first = start_job(LAB, "first")
        second = start_job(LAB, "second")
        a = wait_run_state(LAB, first, {"RUN_STATE_PASSED"}, 30)
        b = wait_run_state(LAB, second, {"RUN_STATE_PASSED"}, 30)
        a_end = max(ts(r["end_time"]) for r in a["results"])
        b_start = min(ts(r["start_time"]) for r in b["results"])
        self.assertGreaterEqual(b_start, a_end - 0.01, "the second run's boards start after the first run ends")


ABORT_JOB = """\
name: aborts
boards: {selector: "lab=local"}
timeout: 1m
rollout: {max_boards_at_once: 1}
abort: {failed_percent: 50, min_boards: 2}
steps:
  - push: {file: fails.py}
  - run: {file: fails.py, timeout: 30s}
"""

FLAKY_JOB = """\
name: flaky
boards: {boards_spec}
timeout: 1m
retries: 1
steps:
  - push: {{file: flaky_once.py}}
  - run: {{file: flaky_once.py, timeout: 20s}}
  - expect: {{output: "second run: passed"}}
"""


class RolloutRules(unittest.TestCase):

    def test_abort_rule_stops_the_run_before_every_board_started(self):
        apply("aborts", ABORT_JOB, {"fails.py": SCRIPTS / "fails.py"})
        code, run, _ = run_job(LAB, "aborts")
        self.assertEqual(code, 1)
        self.assertEqual(run["state"], "RUN_STATE_FAILED")
        states = {b: r["state"] for b, r in board_results(get_run(LAB, run["id"])).items()}
        self.assertEqual(sorted(s for s in states.values()),
                         ["RUN_STATE_FAILED", "RUN_STATE_FAILED", "RUN_STATE_SKIPPED", "RUN_STATE_SKIPPED"],
                         f"two boards failed, then the abort rule left two unstarted: {states}")
        self.assertIn("abort", run["message"].lower())

    def test_a_board_that_passes_on_retry_is_marked_flaky(self):
        apply("flaky", FLAKY_JOB.format(boards_spec="{names: [b02]}"), {"flaky_once.py": SCRIPTS / "flaky_once.py"})
        code, run, err = run_job(LAB, "flaky")
        self.assertEqual(code, 0, err)
        r = board_results(get_run(LAB, run["id"]))["b02"]
        self.assertEqual(r["state"], "RUN_STATE_PASSED")
        self.assertTrue(r.get("flaky"), "passed after a retry: flaky")
        self.assertEqual(r.get("attempts"), 2)
        self.assertIn("first run fails on purpose", r.get("retried_because", ""))


NOTIFY_JOB = """\
name: notifies
boards: {{names: [b01]}}
timeout: 1m
steps:
  - push: {{file: fails.py}}
  - run: {{file: fails.py, timeout: 30s}}
notify: {{url: "http://127.0.0.1:{port}/lab-hook", on: [failed, error]}}
"""


class Notify(unittest.TestCase):

    def test_failed_run_is_posted_as_json_to_the_jobs_notify_url(self):
        received = queue.Queue()

        class Hook(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                received.put((self.path, self.headers.get("Content-Type", ""), body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        server = http.server.HTTPServer(("127.0.0.1", 0), Hook)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            apply("notifies", NOTIFY_JOB.format(port=server.server_address[1]), {"fails.py": SCRIPTS / "fails.py"})
            code, run, _ = run_job(LAB, "notifies")
            self.assertEqual(code, 1)
            path, content_type, body = received.get(timeout=15)
        finally:
            server.shutdown()
            server.server_close()
        self.assertEqual(path, "/lab-hook")
        self.assertIn("application/json", content_type)
        posted = json.loads(body)
        posted = posted.get("run", posted)
        self.assertEqual(str(posted["id"]), str(run["id"]))
        self.assertEqual(posted["state"], "RUN_STATE_FAILED")


class BadSpecs(unittest.TestCase):

    def test_spec_with_an_unknown_key_is_refused_with_file_line_and_column(self):
        spec = write_job(TMP.name, "typo", "name: typo\nboards: {selector: \"lab=local\"}\nsteps:\n"
                                           "  - sleep: 1s\n  - run: {file: a.py, timout: 3s}\n")
        proc = LAB.run_ctl("job", "apply", str(spec))
        self.assertEqual(proc.returncode, 2, proc.stderr)
        self.assertIn(f"{spec}:5:", proc.stderr)
        self.assertIn("timout", proc.stderr)

    def test_selector_that_matches_no_board_is_refused(self):
        spec = write_job(TMP.name, "nomatch", "name: nomatch\nboards: {selector: \"lab=elsewhere\"}\n"
                                              "steps:\n  - sleep: 1s\n")
        proc = LAB.run_ctl("job", "apply", str(spec))
        self.assertEqual(proc.returncode, 2, proc.stderr)
        self.assertIn(":2:", proc.stderr)

    def test_viewer_token_cannot_apply_or_run_jobs(self):
        viewer = LAB.ctl("token", "create", "jobs-viewer", "--role", "viewer")["secret"]
        proc = LAB.run_ctl("job", "run", "seed-smoke", token=viewer)
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn("PERMISSION_DENIED", proc.stderr.upper().replace(" ", "_"))


if __name__ == "__main__":
    unittest.main(verbosity=2)
