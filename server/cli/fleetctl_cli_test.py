#!/usr/bin/python3
"""fleetctl's command line, run as a real process without a fleetd.

Usage: fleetctl_cli_test.py FLEETCTL DEPLOY_PKI

Checks the exit codes and messages of the contracts: usage errors exit 2
with CLI11's message, an unreachable server exits 1 with
"fleetctl: error: UNAVAILABLE: ...", configuration problems name the file,
and the config precedence picks the address the flags give.
"""
import os
import socket
import subprocess
import sys
import tempfile
import unittest

FLEETCTL = None
PKI = None


def free_port():
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class FleetctlCliTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="fleetctl_cli_test_")
        cls.home = cls.tmp.name
        subprocess.run([PKI, "init", os.path.join(cls.home, "pki")], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
        cls.ca = os.path.join(cls.home, "pki", "ca.pem")

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def fleetctl(self, *args, env_extra=None):
        env = {"HOME": self.home, "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        env.update(env_extra or {})
        return subprocess.run([FLEETCTL, *args], capture_output=True, text=True, env=env, timeout=30)

    def write(self, name, text):
        path = os.path.join(self.home, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def assertUsageError(self, result, message):
        self.assertEqual(result.returncode, 2, result)
        self.assertIn(message, result.stderr)
        self.assertNotIn("terminate", result.stderr)

    def test_help_exits_zero(self):
        result = self.fleetctl("--help")
        self.assertEqual(result.returncode, 0)
        self.assertIn("threads", result.stdout)

    def test_missing_subcommand_is_a_usage_error(self):
        self.assertUsageError(self.fleetctl(), "A subcommand is required")

    def test_unknown_subcommand_is_a_usage_error(self):
        result = self.fleetctl("frobnicate")
        self.assertEqual(result.returncode, 2, result)
        self.assertIn("frobnicate", result.stderr)

    def test_bad_output_format_is_a_usage_error(self):
        self.assertUsageError(self.fleetctl("board", "ls", "-o", "yaml"), "yaml not in {table,json}")

    def test_kill_targets_are_checked_before_any_call(self):
        self.assertUsageError(self.fleetctl("kill", "b01/x"), "thread id 'x' is not a positive number")
        self.assertUsageError(self.fleetctl("kill", "b01"), "expected BOARD/THREAD_ID")
        self.assertUsageError(self.fleetctl("kill", "/7"), "no board name")

    def test_pins_levels_and_adc_values_are_checked_before_any_call(self):
        self.assertUsageError(self.fleetctl("pin", "b01", "256", "1"), "PIN 256 is out of range: pins are 0..255")
        self.assertUsageError(self.fleetctl("pin", "b01", "4", "2"), "VALUE '2' is neither a level (0 or 1) nor release")
        self.assertUsageError(self.fleetctl("pin", "b01", "-1"), "PIN '-1' is not a number")
        self.assertUsageError(self.fleetctl("adc", "b01", "0", "65536"), "VALUE 65536 is out of range: the limit is 65535")
        self.assertUsageError(self.fleetctl("adc", "b01", "ch0"), "CHANNEL 'ch0' is not a number")
        self.assertUsageError(self.fleetctl("machine"), "BOARD is required")

    def test_reset_is_listed_and_its_words_are_checked_before_any_call(self):
        self.assertIn("reset", self.fleetctl("--help").stdout)
        self.assertIn("--safe", self.fleetctl("reset", "--help").stdout)
        self.assertUsageError(self.fleetctl("reset"), "BOARD is required")
        self.assertUsageError(self.fleetctl("reset", "b01", "b02"), "b02")

    def test_follow_needs_exactly_one_board(self):
        script = self.write("app.py", "print('hi')\n")
        self.assertUsageError(self.fleetctl("run", "-l", "lab=a", script, "--follow"),
                              "--follow needs exactly one board")

    def test_dashes_pass_arguments_to_run_only(self):
        script = self.write("args.py", "import sys\nprint(sys.argv)\n")
        port = free_port()
        server = ["--server", f"127.0.0.1:{port}", "--ca", self.ca]
        accepted = self.fleetctl("run", "b01", script, *server, "--", "-x", "--y")
        self.assertEqual(accepted.returncode, 1, accepted)  # parsed; then fleetd is unreachable
        self.assertIn("UNAVAILABLE", accepted.stderr)
        self.assertUsageError(self.fleetctl("threads", *server, "--", "x"), "'--' is only for")

    def test_bad_numbers_are_usage_errors(self):
        self.assertUsageError(self.fleetctl("--timeout", "0", "health"), "positive number of seconds")
        self.assertUsageError(self.fleetctl("events", "--limit", "-1"), "--limit")
        self.assertUsageError(self.fleetctl("events", "--min-severity", "loud"), "loud")
        self.assertUsageError(self.fleetctl("logs", "b01", "x"), "PROGRAM_ID 'x'")
        self.assertUsageError(self.fleetctl("start", "b01", "blink"), "MODULE.FUNCTION")

    def test_pushing_a_missing_file_is_a_usage_error(self):
        self.assertUsageError(self.fleetctl("push", "/nonexistent/app.py"), "/nonexistent/app.py")

    def test_unreachable_server_exits_one_with_unavailable(self):
        port = free_port()
        result = self.fleetctl("board", "ls", "--server", f"127.0.0.1:{port}", "--ca", self.ca, "--timeout", "5")
        self.assertEqual(result.returncode, 1, result)
        self.assertTrue(result.stderr.startswith("fleetctl: error: UNAVAILABLE: "), result.stderr)
        self.assertEqual(result.stdout, "")

    def test_missing_ca_file_names_the_file(self):
        result = self.fleetctl("health", "--server", "127.0.0.1:1", "--ca", "/nonexistent/ca.pem")
        self.assertIn(result.returncode, (1, 2), result)
        self.assertIn("/nonexistent/ca.pem", result.stderr)

    def test_no_server_configured_says_how_to_give_one(self):
        result = self.fleetctl("threads", "--ca", self.ca)
        self.assertEqual(result.returncode, 2, result)
        self.assertIn("--server", result.stderr)

    def test_config_file_with_unknown_key_names_file_and_line(self):
        config = self.write("bad.yaml", f"server: 127.0.0.1:1\nca: {self.ca}\nsevrer: x\n")
        result = self.fleetctl("--config", config, "health")
        self.assertEqual(result.returncode, 2, result)
        self.assertIn(f"{config}:3: unknown key 'sevrer'", result.stderr)

    def test_flags_override_the_config_file_from_the_environment(self):
        file_port, flag_port = free_port(), free_port()
        config = self.write("env.yaml", f"server: 127.0.0.1:{file_port}\nca: pki/ca.pem\n")
        env = {"FLEETCTL_CONFIG": config}
        from_file = self.fleetctl("health", env_extra=env)
        self.assertEqual(from_file.returncode, 1, from_file)
        self.assertIn(f"127.0.0.1:{file_port}", from_file.stderr)
        from_flag = self.fleetctl("health", "--server", f"127.0.0.1:{flag_port}", env_extra=env)
        self.assertEqual(from_flag.returncode, 1, from_flag)
        self.assertIn(f"127.0.0.1:{flag_port}", from_flag.stderr)

    def test_default_config_under_home_is_used(self):
        port = free_port()
        os.makedirs(os.path.join(self.home, ".config", "threadfleet"), exist_ok=True)
        self.write(".config/threadfleet/fleetctl.yaml", f"server: 127.0.0.1:{port}\nca: {self.ca}\n")
        try:
            result = self.fleetctl("events", "-o", "json")
            self.assertEqual(result.returncode, 1, result)
            self.assertIn(f"127.0.0.1:{port}", result.stderr)
        finally:
            os.remove(os.path.join(self.home, ".config", "threadfleet", "fleetctl.yaml"))

    # ---- job: what needs no fleetd (the job tests with real boards are in tests/).

    def unreachable_server(self):
        return ["--server", f"127.0.0.1:{free_port()}", "--ca", self.ca, "--timeout", "5"]

    def test_job_apply_refuses_a_bad_spec_before_any_connection(self):
        spec = self.write("bad.yaml", 'name: x\nboards: {selector: "lab=a"}\nsteps:\n  - rnu: {file: a.py}\n')
        result = self.fleetctl("job", "apply", spec)  # no server configured: not needed to refuse
        self.assertEqual(result.returncode, 2, result)
        self.assertTrue(result.stderr.startswith(f"{spec}:4:5: "), result.stderr)
        self.assertIn("unknown step kind 'rnu'", result.stderr)

    def test_job_apply_points_at_the_push_step_of_a_missing_file(self):
        spec = self.write("missing.yaml", 'name: x\nboards: {selector: "lab=a"}\nsteps:\n  - push: {file: gone.py}\n')
        result = self.fleetctl("job", "apply", spec)
        self.assertEqual(result.returncode, 2, result)
        self.assertRegex(result.stderr, rf"^{spec}:4:\d+: push file .*gone.py does not exist")

    def test_job_apply_of_a_good_spec_reads_its_files_then_calls_fleetd(self):
        os.makedirs(os.path.join(self.home, "jobs"), exist_ok=True)
        self.write("jobs/app.py", "print('hi')\n")
        spec = self.write("jobs/good.yaml", 'name: good\nboards: {selector: "lab=a"}\nsteps:\n'
                                            '  - push: {file: app.py}\n  - run: {file: app.py}\n')
        result = self.fleetctl("job", "apply", spec, *self.unreachable_server())
        self.assertEqual(result.returncode, 1, result)  # parsed and read; then fleetd is unreachable
        self.assertIn("UNAVAILABLE", result.stderr)

    def test_job_run_exits_two_when_the_run_could_not_start(self):
        for flags in ([], ["--wait"], ["--follow"]):
            result = self.fleetctl("job", "run", "smoke", *flags, *self.unreachable_server())
            self.assertEqual(result.returncode, 2, (flags, result))
            self.assertIn("fleetctl: error: UNAVAILABLE", result.stderr)

    def test_job_words_are_checked_before_any_call(self):
        self.assertUsageError(self.fleetctl("job", "show", "abc"), "run id 'abc' is not a positive number")
        self.assertUsageError(self.fleetctl("job", "cancel", "0"), "run id '0' is not a positive number")
        self.assertUsageError(self.fleetctl("job", "logs", "7"), "BOARD is required")
        self.assertUsageError(self.fleetctl("job", "run"), "NAME is required")
        self.assertUsageError(self.fleetctl("job", "runs", "--limit", "0"), "--limit")
        self.assertUsageError(self.fleetctl("job", "report", "7", "--format", "xlsx"), "xlsx not in")
        self.assertUsageError(self.fleetctl("job", "report"), "give a RUN_ID or --input FILE")
        self.assertUsageError(self.fleetctl("job", "report", "7", "--input", "run.json"),
                              "give a RUN_ID or --input FILE")
        self.assertUsageError(self.fleetctl("board", "release"), "NAME is required")

    def test_job_report_renders_a_saved_run_without_fleetd(self):
        run = self.write("run.json", '{"run": {"id": "9", "job_name": "smoke", "state": "RUN_STATE_PASSED", '
                                     '"results": [{"board": "b01", "state": "RUN_STATE_PASSED", '
                                     '"steps": [{"index": 0, "kind": "push", "state": "RUN_STATE_PASSED"}]}]}}')
        tap = self.fleetctl("job", "report", "--input", run, "--format", "tap")
        self.assertEqual(tap.returncode, 0, tap)
        self.assertEqual(tap.stdout, "TAP version 13\n1..1\n# smoke run 9: passed\nok 1 - b01 steps[0] push\n")
        markdown = self.fleetctl("job", "report", "--input", run, "--format", "markdown")
        self.assertEqual(markdown.returncode, 0, markdown)
        self.assertIn("| b01 | ✅ passed | 0 |", markdown.stdout)
        broken = self.write("broken.json", '{"run": ')
        result = self.fleetctl("job", "report", "--input", broken)
        self.assertEqual(result.returncode, 2, result)
        self.assertIn(f"run file {broken} is neither", result.stderr)


if __name__ == "__main__":
    FLEETCTL, PKI = sys.argv[1], sys.argv[2]
    unittest.main(argv=[sys.argv[0], "-v"])
