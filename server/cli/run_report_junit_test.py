#!/usr/bin/python3
"""`fleetctl job report --format junit` read back by a real JUnit reader.

Usage: run_report_junit_test.py FLEETCTL

Writes a run (as `fleetctl job show RUN_ID -o json` prints it) with passed,
failed, error, skipped and flaky boards, renders it with the real fleetctl
binary (no fleetd: --input reads the file) and parses the XML with Debian's
python3-junitparser, as a CI server would: suites, cases, failures, errors,
skips and their texts must be what the run says.
"""
import json
import os
import subprocess
import sys
import tempfile
import unittest

import junitparser

FLEETCTL = None

# Steps of one board: push, run, expect, each with an outcome.
def steps(push="RUN_STATE_PASSED", run="RUN_STATE_PASSED", expect="RUN_STATE_PASSED", **expect_fields):
    expect_step = {"index": 2, "kind": "expect", "state": expect}
    expect_step.update(expect_fields)
    return [
        {"index": 0, "kind": "push", "state": push, "message": "12 KB written",
         "start_time": "2026-12-06T10:00:00Z", "end_time": "2026-12-06T10:00:01Z"},
        {"index": 1, "kind": "run", "state": run, "program_id": 3,
         "start_time": "2026-12-06T10:00:01Z", "end_time": "2026-12-06T10:00:04.500Z"},
        expect_step,
    ]


RUN = {
    "run": {
        "id": "17", "job_name": "seed-smoke", "job_version": "2", "state": "RUN_STATE_FAILED",
        "trigger": "manual:ci", "message": "1 board failed, 1 ended ERROR",
        "start_time": "2026-12-06T10:00:00Z", "end_time": "2026-12-06T10:00:30Z",
        "counts": {"boards": 5, "passed": 2, "failed": 1, "error": 1, "skipped": 1, "flaky": 1},
        "results": [
            {"board": "b01", "state": "RUN_STATE_PASSED", "attempts": 1, "steps": steps()},
            {"board": "b02", "state": "RUN_STATE_FAILED", "attempts": 1,
             "message": "steps[2] expect: output did not match",
             "steps": steps(expect="RUN_STATE_FAILED",
                            message="output did not match \"Shared variable is  8\"",
                            evidence={
                                "output_excerpt": "Shared variable is  7\n",
                                "failed_threads": [{
                                    "id": 4, "name": "worker", "program_id": 3, "state": "THREAD_STATE_FAILED",
                                    "exception": {"type": "ValueError", "message": "boom",
                                                  "traceback": "Traceback (most recent call last):\n"
                                                               "  File \"app.py\", line 9, in worker\n"
                                                               "ValueError: boom"}}],
                            })},
            {"board": "b03", "state": "RUN_STATE_ERROR", "attempts": 2, "message": "timed out",
             "retried_because": "connection lost",
             "steps": steps(run="RUN_STATE_ERROR", expect="RUN_STATE_SKIPPED")},
            {"board": "b04", "state": "RUN_STATE_SKIPPED", "message": "the abort rule stopped the run"},
            {"board": "b05", "state": "RUN_STATE_PASSED", "attempts": 2, "flaky": True,
             "retried_because": "steps[1] run: timed out", "steps": steps()},
        ],
    }
}


class RunReportJunitTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="run_report_junit_test_")
        path = os.path.join(cls.tmp.name, "run.json")
        with open(path, "w") as f:
            json.dump(RUN, f)
        result = subprocess.run([FLEETCTL, "job", "report", "--input", path, "--format", "junit"],
                                capture_output=True, text=True, timeout=30,
                                env={"HOME": cls.tmp.name, "PATH": "/usr/bin:/bin"})
        assert result.returncode == 0, result
        cls.xml = junitparser.JUnitXml.fromstring(result.stdout)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def suite(self):
        suites = list(self.xml)
        self.assertEqual(len(suites), 1, "a testsuite per run")
        return suites[0]

    def cases(self):
        return {(case.classname, case.name): case for case in self.suite()}

    def test_one_suite_per_run_with_its_counts(self):
        suite = self.suite()
        self.assertEqual(suite.name, "seed-smoke run 17")
        # Three steps each, and b04 (no step started) a case of its own.
        self.assertEqual(suite.tests, 13)
        self.assertEqual(suite.failures, 1)
        self.assertEqual(suite.errors, 1)  # b03's run step
        self.assertEqual(suite.skipped, 2)  # b03's expect, b04
        self.assertAlmostEqual(suite.time, 30.0)
        properties = {p.name: p.value for p in suite.properties()}
        self.assertEqual(properties["job"], "seed-smoke")
        self.assertEqual(properties["run_id"], "17")
        self.assertEqual(properties["state"], "failed")

    def test_a_case_per_board_and_step_with_the_board_as_class(self):
        cases = self.cases()
        for board in ("b01", "b02", "b03", "b05"):
            for name in ("steps[0] push", "steps[1] run", "steps[2] expect"):
                self.assertIn((board, name), cases)
        self.assertAlmostEqual(cases[("b01", "steps[1] run")].time, 3.5)
        self.assertTrue(cases[("b01", "steps[0] push")].is_passed)

    def test_a_failure_carries_the_evidence(self):
        [failure] = cases_result = self.cases()[("b02", "steps[2] expect")].result
        self.assertIsInstance(failure, junitparser.Failure, cases_result)
        self.assertEqual(failure.message, 'FAILED: output did not match "Shared variable is  8"')
        self.assertIn("Shared variable is  7", failure.text)
        self.assertIn("thread 4 \"worker\" (program 3): failed: ValueError: boom", failure.text)
        self.assertIn("File \"app.py\", line 9, in worker", failure.text)

    def test_errors_and_skips(self):
        cases = self.cases()
        [error] = cases[("b03", "steps[1] run")].result
        self.assertIsInstance(error, junitparser.Error)
        self.assertIn("board: b03, attempts: 2", error.text)
        self.assertIn("retried because: connection lost", error.text)
        self.assertNotIn(("b03", "board"), cases, "the run step carries the board's ERROR")
        [skipped] = cases[("b04", "board")].result
        self.assertIsInstance(skipped, junitparser.Skipped)
        self.assertEqual(skipped.message, "the abort rule stopped the run")

    def test_a_flaky_board_says_so_in_a_property_of_its_cases(self):
        case = self.cases()[("b05", "steps[0] push")]
        self.assertTrue(case.is_passed)
        properties = case.child(junitparser.Properties)
        self.assertIsNotNone(properties)
        values = {p.name: p.value for p in properties}
        self.assertEqual(values, {"flaky": "true", "attempts": "2", "retried_because": "steps[1] run: timed out"})


if __name__ == "__main__":
    FLEETCTL = sys.argv.pop(1)
    unittest.main()
