#!/usr/bin/python3
"""fleetd as a process: real `fleetd` and two real `fleetboard serve` boards on
127.0.0.1 with a fresh lab PKI (deploy/pki).

Checks the ready line, /healthz and /metrics (boards online within seconds),
`fleetd token create` (the secret works on the Fleet API; the health check
needs no token, reflection needs one), that a bad config exits 2 naming file:line, that
SIGTERM stops fleetd with exit 0 within 10 s, and that a restart keeps tokens
and the audit entry of their creation.

Environment: FLEETD, FLEETBOARD (binaries), PKI (deploy/pki), PYTHONPATH with
the generated stubs (build/<preset>/python). Debian's /usr/bin/python3, stdlib
(sqlite3 reads fleetd's database read-only) plus python3-grpcio.
"""

import os
import pathlib
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.request

import grpc
from threadfleet.board.v1 import board_pb2
from threadfleet.fleet.v1 import fleet_pb2, fleet_pb2_grpc

REPO = pathlib.Path(__file__).resolve().parents[2]
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, str(REPO / "tests" / "interop"))
import board_fixture  # noqa: E402  (Board, make_pki's helpers, free_port)

FLEETD = os.environ.get("FLEETD", str(REPO / "build" / "default" / "bin" / "fleetd"))
FLEETBOARD = os.environ.get("FLEETBOARD", str(REPO / "build" / "default" / "bin" / "fleetboard"))
PKI = os.environ.get("PKI", str(REPO / "deploy" / "pki"))

READY_TIMEOUT_S = 20
ONLINE_TIMEOUT_S = 10
STOP_TIMEOUT_S = 10
RPC_TIMEOUT_S = 10
READY_RE = re.compile(r"^fleetd: ready grpc=127\.0\.0\.1:(\d+) http=127\.0\.0\.1:(\d+) boards=(\d+)$")


def log(msg):
    print(f"fleetd_process_test: {msg}", file=sys.stderr, flush=True)


def run_pki(*args):
    proc = subprocess.run([PKI, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"pki {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}")


class Fleetd:
    """A running `fleetd --config FILE`; its stderr is echoed with a prefix and kept."""

    def __init__(self, config):
        self.lines = []
        self._cond = threading.Condition()
        self.proc = subprocess.Popen(
            [FLEETD, "--config", str(config)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=board_fixture.die_with_parent,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.proc.stderr:
            line = line.rstrip("\n")
            print(f"[fleetd] {line}", file=sys.stderr, flush=True)
            with self._cond:
                self.lines.append(line)
                self._cond.notify_all()

    def wait_ready(self):
        """Returns (grpc port, http port, boards) from the ready line."""
        deadline = time.monotonic() + READY_TIMEOUT_S
        with self._cond:
            while time.monotonic() < deadline:
                for line in self.lines:
                    m = READY_RE.match(line)
                    if m:
                        return int(m.group(1)), int(m.group(2)), int(m.group(3))
                if self.proc.poll() is not None:
                    break
                self._cond.wait(0.1)
        raise AssertionError(f"no ready line within {READY_TIMEOUT_S} s; stderr: {self.lines}")

    def stop(self):
        """SIGTERM; returns the exit code (None if it had to be killed)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            rc = None
        self._reader.join(2)
        self.proc.stderr.close()
        return rc

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._reader.join(2)
        self.proc.stderr.close()


def http_get(port, path):
    """(status, body) of GET http://127.0.0.1:port/path."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def metric(text, series):
    """The value of one exact series line (e.g. 'fleetd_boards{state="online"}'), or None."""
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line[len(series) + 1:])
    return None


class FleetdProcessTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = pathlib.Path(tempfile.mkdtemp(prefix="fleetd-process-test-"))
        pki = cls.dir / "pki"
        run_pki("init", str(pki))
        run_pki("issue", str(pki), "board", "--server")
        run_pki("issue", str(pki), "fleetd", "--client")
        run_pki("issue", str(pki), "fleetd-api", "--server")
        cls.ca = (pki / "ca.pem").read_bytes()
        board_pki = {"ca": pki / "ca.pem", "board_cert": pki / "board.pem", "board_key": pki / "board.key"}
        cls.boards = []
        for name in ("b01", "b02"):
            board = board_fixture.Board(FLEETBOARD, name, board_fixture.free_port(), cls.dir / f"{name}.lfs", board_pki)
            cls.boards.append(board)
        for board in cls.boards:
            board.wait_serving(20)
        (cls.dir / "lab.yaml").write_text(
            "boards:\n" + "".join(f"  - name: {b.name}\n    address: {b.addr}\n    labels: {{lab: t}}\n" for b in cls.boards)
        )

    @classmethod
    def tearDownClass(cls):
        for board in cls.boards:
            problem = board.stop()
            if problem:
                log(problem)
        shutil.rmtree(cls.dir, ignore_errors=True)

    def setUp(self):
        # A fresh database per test (the restart test reuses its own).
        self.case_dir = pathlib.Path(tempfile.mkdtemp(dir=self.dir, prefix=self._testMethodName + "-"))
        self.config = self.write_config(self.case_dir)
        self.fleetds = []

    def tearDown(self):
        for f in self.fleetds:
            f.kill()

    def write_config(self, directory, extra=""):
        # Relative paths resolve against the config's directory: pki and lab
        # are one level up.
        path = directory / "fleetd.yaml"
        path.write_text(
            "api:\n"
            "  listen: 127.0.0.1:0\n"
            "  cert: ../pki/fleetd-api.pem\n"
            "  key: ../pki/fleetd-api.key\n"
            "http:\n"
            "  listen: 127.0.0.1:0\n"
            "boards:\n"
            "  ca: ../pki/ca.pem\n"
            "  cert: ../pki/fleetd.pem\n"
            "  key: ../pki/fleetd.key\n"
            "  lab: ../lab.yaml\n"
            "  health_period_ms: 200\n"
            "database: fleetd.db\n" + extra
        )
        return path

    def start(self):
        f = Fleetd(self.config)
        self.fleetds.append(f)
        return f, *f.wait_ready()

    def stop(self, f):
        started = time.monotonic()
        rc = f.stop()
        self.assertEqual(rc, 0, f"fleetd exit code after SIGTERM (None: still running after {STOP_TIMEOUT_S} s)")
        self.assertLess(time.monotonic() - started, STOP_TIMEOUT_S)

    def create_token(self, name, role):
        proc = subprocess.run(
            [FLEETD, "token", "create", "--config", str(self.config), "--name", name, "--role", role],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=30,
        )
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertRegex(proc.stdout, r"^tf_[A-Za-z0-9_-]{43}\n$")
        return proc.stdout.strip()

    def channel(self, grpc_port):
        return grpc.secure_channel(f"127.0.0.1:{grpc_port}", grpc.ssl_channel_credentials(root_certificates=self.ca))

    # ---- tests

    def test_ready_line_healthz_metrics_and_sigterm(self):
        f, grpc_port, http_port, boards = self.start()
        self.assertEqual(boards, 2)
        self.assertGreater(grpc_port, 0)
        self.assertGreater(http_port, 0)

        self.assertEqual(http_get(http_port, "/healthz"), (200, "ok\n"))
        self.assertEqual(http_get(http_port, "/nope")[0], 404)

        deadline = time.monotonic() + ONLINE_TIMEOUT_S
        text = ""
        while time.monotonic() < deadline:
            status, text = http_get(http_port, "/metrics")
            self.assertEqual(status, 200)
            if metric(text, 'fleetd_boards{state="online"}') == 2:
                break
            time.sleep(0.2)
        self.assertEqual(metric(text, 'fleetd_boards{state="online"}'), 2, text)
        self.assertEqual(metric(text, 'fleetd_boards{state="offline"}'), 0, text)
        for family, kind in [("fleetd_boards", "gauge"), ("fleetd_threads", "gauge"),
                             ("fleetd_anomalies_active", "gauge"), ("fleetd_events_total", "counter"),
                             ("fleetd_rpcs_total", "counter"), ("fleetd_health_snapshots_total", "counter"),
                             ("fleetd_process_cpu_seconds_total", "counter"),
                             ("fleetd_process_resident_memory_bytes", "gauge")]:
            self.assertIn(f"# HELP {family} ", text)
            self.assertIn(f"# TYPE {family} {kind}\n", text)
        self.assertGreater(metric(text, "fleetd_health_snapshots_total"), 0)
        self.assertGreater(metric(text, "fleetd_process_resident_memory_bytes"), 1 << 20)
        # Both boards coming online were recorded as info events.
        self.assertGreaterEqual(metric(text, 'fleetd_events_total{severity="info"}'), 2)

        self.stop(f)
        self.assertIn("fleetd: stopped", f.lines)

    def test_token_secret_works_health_needs_none_and_reflection_needs_one(self):
        f, grpc_port, http_port, _ = self.start()
        secret = self.create_token("ci", "viewer")  # while fleetd runs
        with self.channel(grpc_port) as channel:
            # grpc.health.v1.Health/Check, empty request: SERVING is field 1 = 1.
            check = channel.unary_unary("/grpc.health.v1.Health/Check")
            self.assertEqual(check(b"", timeout=RPC_TIMEOUT_S), b"\x08\x01")

            # Reflection: list_services (field 7, "") names the Fleet service,
            # for a caller with a token only.
            reflect = channel.stream_stream("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo")
            with self.assertRaises(grpc.RpcError) as anonymous:
                list(reflect(iter([b"\x3a\x00"]), timeout=RPC_TIMEOUT_S))
            self.assertEqual(anonymous.exception.code(), grpc.StatusCode.UNAUTHENTICATED)
            self.assertIn("reflection needs a valid token", anonymous.exception.details())
            replies = list(reflect(iter([b"\x3a\x00"]), timeout=RPC_TIMEOUT_S,
                                   metadata=[("authorization", f"Bearer {secret}")]))
            self.assertEqual(len(replies), 1)
            self.assertIn(b"threadfleet.fleet.v1.Fleet", replies[0])

            stub = fleet_pb2_grpc.FleetStub(channel)
            with self.assertRaises(grpc.RpcError) as refused:
                stub.ListBoards(fleet_pb2.ListBoardsRequest(), timeout=RPC_TIMEOUT_S)
            self.assertEqual(refused.exception.code(), grpc.StatusCode.UNAUTHENTICATED)

            response = stub.ListBoards(fleet_pb2.ListBoardsRequest(), timeout=RPC_TIMEOUT_S,
                                       metadata=[("authorization", f"Bearer {secret}")])
            self.assertEqual([b.name for b in response.boards], ["b01", "b02"])

        _, text = http_get(http_port, "/metrics")
        self.assertEqual(metric(text, 'fleetd_rpcs_total{method="/threadfleet.fleet.v1.Fleet/ListBoards",code="OK"}'),
                         1, text)
        self.assertEqual(
            metric(text, 'fleetd_rpcs_total{method="/threadfleet.fleet.v1.Fleet/ListBoards",code="UNAUTHENTICATED"}'),
            1, text)
        self.stop(f)

    def test_restart_keeps_tokens_and_the_audit_entry_of_their_creation(self):
        admin = self.create_token("root", "admin")  # before fleetd ever ran
        f, grpc_port, _, _ = self.start()
        self.stop(f)

        f, grpc_port, _, _ = self.start()
        with self.channel(grpc_port) as channel:
            stub = fleet_pb2_grpc.FleetStub(channel)
            auth = [("authorization", f"Bearer {admin}")]
            tokens = stub.ListTokens(fleet_pb2.ListTokensRequest(), timeout=RPC_TIMEOUT_S, metadata=auth)
            self.assertIn("root", [t.name for t in tokens.tokens])
            audit = stub.ListAudit(fleet_pb2.ListAuditRequest(), timeout=RPC_TIMEOUT_S, metadata=auth)
            created = [e for e in audit.entries if e.actor == "local" and e.target == "token root"]
            self.assertEqual(len(created), 1, audit)
            self.assertEqual(created[0].action, "Fleet.CreateToken")
            self.assertEqual(created[0].code, 0)
        self.stop(f)

    def wait_online(self, stub, auth):
        """Waits until fleetd has every board online: the ready line comes
        before the boards are connected."""
        deadline = time.monotonic() + ONLINE_TIMEOUT_S
        while True:
            boards = stub.ListBoards(fleet_pb2.ListBoardsRequest(), timeout=RPC_TIMEOUT_S, metadata=auth).boards
            offline = [b.name for b in boards if b.state != fleet_pb2.BOARD_STATE_ONLINE]
            if not offline:
                return
            self.assertLess(time.monotonic(), deadline, f"boards not online: {offline}")
            time.sleep(0.1)

    def test_board_events_and_program_ends_are_recorded(self):
        f, grpc_port, _, _ = self.start()
        operator = self.create_token("op", "operator")
        auth = [("authorization", f"Bearer {operator}")]
        b01 = fleet_pb2.Selector(boards=["b01"])
        with self.channel(grpc_port) as channel:
            stub = fleet_pb2_grpc.FleetStub(channel)
            self.wait_online(stub, auth)
            script = b"def main():\n    raise ValueError('boom')\nmain()\n"
            stages = list(stub.PushFile(fleet_pb2.PushFileRequest(selector=b01, path="/fails.py", content=script),
                                        timeout=RPC_TIMEOUT_S, metadata=auth))
            self.assertFalse([m for m in stages if m.error.code != 0], stages)
            started = stub.RunProgram(fleet_pb2.RunProgramRequest(selector=b01, path="/fails.py"),
                                      timeout=RPC_TIMEOUT_S, metadata=auth)
            self.assertEqual(len(started.results), 1, started)
            self.assertEqual(started.results[0].error.code, 0, started)
            program_id = started.results[0].program_id

            # The board's PROGRAM_ENDED marks the stored program failed.
            db = sqlite3.connect(f"file:{self.case_dir / 'fleetd.db'}?mode=ro", uri=True, timeout=5)
            deadline = time.monotonic() + ONLINE_TIMEOUT_S
            row = None
            while time.monotonic() < deadline:
                row = db.execute("SELECT state, exit_code, end_time_us FROM programs WHERE board = 'b01' AND "
                                 "board_program_id = ?", (program_id,)).fetchone()
                if row is not None and row[2] is not None:
                    break
                time.sleep(0.2)
            db.close()
            self.assertIsNotNone(row)
            self.assertIsNotNone(row[2], "program never marked ended")
            self.assertEqual(row[0], 3)  # PROGRAM_STATE_FAILED
            self.assertEqual(row[1], 1)

            # The failure is a warning board event, cleared (info) once its program ended; both boards
            # came online (info).
            events = stub.ListEvents(fleet_pb2.ListEventsRequest(limit=1000), timeout=RPC_TIMEOUT_S,
                                     metadata=auth).events
            failed = [e for e in events if e.kind == fleet_pb2.EVENT_KIND_BOARD_EVENT and
                      e.board_event.kind == board_pb2.EVENT_KIND_THREAD_FAILED]
            raised = [e for e in failed if e.severity == fleet_pb2.SEVERITY_WARNING]
            self.assertEqual(len(raised), 1, events)
            self.assertEqual(raised[0].board, "b01")
            self.assertTrue(all(e.severity == fleet_pb2.SEVERITY_INFO and "cleared" in e.message
                                for e in failed if e is not raised[0]), failed)
            online = {e.board for e in events if e.kind == fleet_pb2.EVENT_KIND_BOARD_STATE and
                      e.severity == fleet_pb2.SEVERITY_INFO and "online" in e.message}
            self.assertEqual(online, {"b01", "b02"})
        self.stop(f)

    def test_bad_config_exits_2_naming_file_and_line(self):
        bad = self.write_config(self.case_dir, extra="schedules: nope\n")
        proc = subprocess.run([FLEETD, "--config", str(bad)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, timeout=30)
        self.assertEqual(proc.returncode, 2, proc.stderr)
        self.assertIn(f"fleetd: error: {bad}:14: schedules: unknown key", proc.stderr)

        self.config = self.write_config(self.case_dir)
        self.config.write_text(self.config.read_text().replace("127.0.0.1:0", "127.0.0.1:99999", 1))
        proc = subprocess.run([FLEETD, "--config", str(self.config)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, timeout=30)
        self.assertEqual(proc.returncode, 2, proc.stderr)
        self.assertIn(f"{self.config}:2: api.listen:", proc.stderr)

    def test_usage_errors_exit_2(self):
        for args in ([], ["--bogus"], ["token", "create", "--config", str(self.config), "--name", "x"],
                     ["token", "create", "--config", str(self.config), "--name", "x", "--role", "root"],
                     ["token", "create", "--config", str(self.config), "--name", "new\nline", "--role", "viewer"],
                     ["token", "create", "--config", str(self.config), "--name", "n" * 65, "--role", "viewer"],
                     ["--config", str(self.case_dir / "missing.yaml")]):
            proc = subprocess.run([FLEETD, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                  timeout=30)
            self.assertEqual(proc.returncode, 2, f"{args}: {proc.stderr}")
            self.assertIn("fleetd: error: ", proc.stderr, args)
            self.assertEqual(proc.stdout, "", args)

    def test_unreadable_tls_material_exits_1(self):
        self.config.write_text(self.config.read_text().replace("../pki/fleetd-api.key", "../pki/missing.key"))
        proc = subprocess.run([FLEETD, "--config", str(self.config)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, timeout=30)
        self.assertEqual(proc.returncode, 1, proc.stderr)
        self.assertIn("missing.key", proc.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
