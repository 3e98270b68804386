#!/usr/bin/python3
"""fleetd as a process under abuse: the same real `fleetd`, boards and lab PKI
as fleetd_process_test.py, attacked and broken the ways issue #11 found.

- oversized requests without a token: refused INVALID_ARGUMENT before any
  work; fleetd's RSS and its database stay bounded (figures logged);
- a 300 MB POST and 40 idle connections on the HTTP port: refused 413 unread,
  and /healthz still answers;
- kill -9 of fleetd during a push: the push's audit entry is there, and after
  the restart it reads "outcome unknown";
- a store that fails: /healthz 503, a mutation that cannot be audited does
  not run, a damaged file is refused at start with the way out; the
  database files are mode 0600;
- limits come from fleetd.yaml's limits: section.

Every loop is bounded in count and time; everything stays on 127.0.0.1.
"""

import os
import pathlib
import signal
import socket
import sqlite3
import stat
import subprocess
import sys
import time
import unittest

import grpc
from threadfleet.fleet.v1 import fleet_pb2, fleet_pb2_grpc

sys.dont_write_bytecode = True
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import fleetd_process_test as base  # noqa: E402  (Fleetd, http_get, the lab set-up)

RPC_TIMEOUT_S = base.RPC_TIMEOUT_S
MIB = 1 << 20
# The attack of issue #11: 20 calls made the DB +60 MiB, ~130 made RSS ~1 GB.
ATTACK_CALLS = 160
# The issue's 3 MiB names are parsed now (the largest message holds a job
# spec with its files, ~4.2 MiB) and refused by the field check; 5 MiB is over
# the largest message: gRPC refuses it unparsed.
ISSUE_BYTES = 3 * MIB
ATTACK_BYTES = 5 * MIB
# A wait for something fleetd does on its own (a row appears, a state changes).
WAIT_S = 10
STARTED, OUTCOME_UNKNOWN = fleet_pb2.AUDIT_STATE_STARTED, fleet_pb2.AUDIT_STATE_OUTCOME_UNKNOWN


def rss_bytes(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def sanitized(pid):
    """True for a fleetd built with ASan: its quarantine keeps freed memory
    resident by design, so RSS says nothing about what fleetd holds."""
    with open(f"/proc/{pid}/maps") as f:
        return "libasan" in f.read()


def db_bytes(directory):
    return sum(p.stat().st_size for p in directory.glob("fleetd.db*"))


def wait_until(what, predicate, timeout=WAIT_S, interval=0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"not within {timeout} s: {what}")


class HardeningTest(base.FleetdProcessTest):
    """Inherits the lab set-up (two boards, PKI, a config per test) only: see load_tests."""

    def admin(self):
        return [("authorization", f"Bearer {self.create_token('root', 'admin')}")]

    def audit(self, stub, auth):
        return list(stub.ListAudit(fleet_pb2.ListAuditRequest(limit=1000), timeout=RPC_TIMEOUT_S,
                                   metadata=auth).entries)

    # ---- defect 1: audit flood and echo

    def test_oversized_anonymous_calls_are_refused_and_leave_rss_and_the_db_bounded(self):
        f, grpc_port, _, _ = self.start()
        admin = self.admin()
        with self.channel(grpc_port) as channel:
            stub = fleet_pb2_grpc.FleetStub(channel)
            stub.ListAudit(fleet_pb2.ListAuditRequest(), timeout=RPC_TIMEOUT_S, metadata=admin)  # warm up
            rss_before, db_before = rss_bytes(f.proc.pid), db_bytes(self.case_dir)
            started = time.monotonic()
            codes, longest_message = {}, 0
            # Names over the largest message (gRPC refuses them unparsed),
            # then the issue's 3 MiB names (parsed, refused by the field
            # check).
            for size in [ATTACK_BYTES] * (ATTACK_CALLS // 8) + [ISSUE_BYTES] * (ATTACK_CALLS // 2):
                try:
                    stub.KillThread(fleet_pb2.KillThreadRequest(board="b" * size, thread_id=1),
                                    timeout=RPC_TIMEOUT_S)
                except grpc.RpcError as e:
                    codes.setdefault(size, set()).add(e.code())
                    longest_message = max(longest_message, len(e.details() or ""))
            rss_after, db_after = rss_bytes(f.proc.pid), db_bytes(self.case_dir)
            base.log(f"{ATTACK_CALLS} anonymous KillThread x {ATTACK_BYTES} B in {time.monotonic() - started:.1f} s: "
                     f"RSS {rss_before / MIB:.1f} -> {rss_after / MIB:.1f} MiB, "
                     f"DB {db_before / MIB:.2f} -> {db_after / MIB:.2f} MiB, codes {codes}, "
                     f"longest message {longest_message} B")

            self.assertEqual(codes, {ATTACK_BYTES: {grpc.StatusCode.RESOURCE_EXHAUSTED},
                                     ISSUE_BYTES: {grpc.StatusCode.INVALID_ARGUMENT}})
            self.assertLess(longest_message, 300, "errors never echo the field")
            if not sanitized(f.proc.pid):
                self.assertLess(rss_after - rss_before, 50 * MIB)
            self.assertLess(db_after - db_before, 1 * MIB)
            # Nothing was audited, and the audit log still reads.
            self.assertFalse([e for e in self.audit(stub, admin) if e.action == "Fleet.KillThread"])

            # Over the largest message gRPC takes: refused by gRPC itself.
            with self.assertRaises(grpc.RpcError) as too_big:
                stub.PushFile(fleet_pb2.PushFileRequest(path="/big.py", content=b"x" * ATTACK_BYTES),
                              timeout=RPC_TIMEOUT_S, metadata=admin).next()
            self.assertEqual(too_big.exception.code(), grpc.StatusCode.RESOURCE_EXHAUSTED)
        self.stop(f)

    # ---- defects 2 and 12: the HTTP port

    def test_a_300_mb_post_is_refused_unread_and_idle_connections_do_not_starve_healthz(self):
        f, _, http_port, _ = self.start()
        rss_before = rss_bytes(f.proc.pid)
        with socket.create_connection(("127.0.0.1", http_port), timeout=5) as s:
            s.sendall(b"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 314572800\r\n\r\n")
            sent = 0
            try:
                for _ in range(64):  # up to 64 MiB, until fleetd closes
                    s.sendall(b"x" * MIB)
                    sent += MIB
            except OSError:
                pass
            answer = s.recv(4096).decode(errors="replace") if sent < 64 * MIB else ""
        rss_after = rss_bytes(f.proc.pid) if not sanitized(f.proc.pid) else rss_before
        base.log(f"300 MB POST: {sent / MIB:.0f} MiB sent before fleetd closed, RSS "
                 f"{rss_before / MIB:.1f} -> {rss_after / MIB:.1f} MiB, answer {answer.splitlines()[:1]}")
        self.assertLess(rss_after - rss_before, 10 * MIB)
        self.assertLess(sent, 64 * MIB, "fleetd stopped reading")

        idle = [socket.create_connection(("127.0.0.1", http_port), timeout=5) for _ in range(40)]
        try:
            started = time.monotonic()
            self.assertEqual(base.http_get(http_port, "/healthz"), (200, "ok\n"))
            self.assertEqual(base.http_get(http_port, "/metrics")[0], 200)
            base.log(f"/healthz and /metrics with 40 idle connections: {time.monotonic() - started:.3f} s")
        finally:
            for s in idle:
                s.close()
        self.stop(f)

    # ---- defect 8: intent before, outcome after

    def test_kill_9_during_a_push_leaves_its_intent_and_the_restart_marks_it_outcome_unknown(self):
        f, grpc_port, _, _ = self.start()
        admin = self.admin()
        with self.channel(grpc_port) as channel:
            stub = fleet_pb2_grpc.FleetStub(channel)
            # A board nobody serves: the push waits for it until its deadline.
            stub.AddBoard(fleet_pb2.AddBoardRequest(name="ghost", address=f"127.0.0.1:{base.board_fixture.free_port()}"),
                          timeout=RPC_TIMEOUT_S, metadata=admin)
            push = stub.PushFile(fleet_pb2.PushFileRequest(selector=fleet_pb2.Selector(boards=["ghost"]),
                                                           path="/app.py", content=b"print(1)\n"),
                                 timeout=30, metadata=admin)
            db = sqlite3.connect(f"file:{self.case_dir / 'fleetd.db'}?mode=ro", uri=True, timeout=5)
            try:
                row = wait_until("the push's audit entry", lambda: db.execute(
                    "SELECT id, state FROM audit_log WHERE action = 'Fleet.PushFile'").fetchone())
            finally:
                db.close()
            self.assertEqual(row[1], STARTED, "written before the push runs")
            f.proc.send_signal(signal.SIGKILL)
            f.proc.wait(10)
            push.cancel()

        f, grpc_port, _, _ = self.start()
        with self.channel(grpc_port) as channel:
            stub = fleet_pb2_grpc.FleetStub(channel)
            entry = [e for e in self.audit(stub, admin) if e.id == row[0]]
            self.assertEqual(len(entry), 1)
            self.assertEqual(entry[0].state, OUTCOME_UNKNOWN)
            self.assertIn("fleetd stopped before this call ended", entry[0].message)
        self.stop(f)

    # ---- defect 9: a damaged store is noticed; defect 14: files 0600

    def test_healthz_is_503_while_the_store_fails_and_an_unauditable_mutation_does_not_run(self):
        f, grpc_port, http_port, _ = self.start()
        admin = self.admin()
        self.assertEqual(base.http_get(http_port, "/healthz"), (200, "ok\n"))
        db = sqlite3.connect(str(self.case_dir / "fleetd.db"), timeout=5)
        db.execute("DROP TABLE audit_log")
        db.commit()
        db.close()

        status, body = base.http_get(http_port, "/healthz")
        self.assertEqual(status, 503, body)
        self.assertIn("audit_log", body)
        with self.channel(grpc_port) as channel:
            stub = fleet_pb2_grpc.FleetStub(channel)
            with self.assertRaises(grpc.RpcError) as refused:
                stub.CreateToken(fleet_pb2.CreateTokenRequest(name="sneaky", role=fleet_pb2.ROLE_ADMIN),
                                 timeout=RPC_TIMEOUT_S, metadata=admin)
            self.assertEqual(refused.exception.code(), grpc.StatusCode.UNAVAILABLE)
            self.assertIn("did not run", refused.exception.details())
            tokens = stub.ListTokens(fleet_pb2.ListTokensRequest(), timeout=RPC_TIMEOUT_S, metadata=admin)
            self.assertNotIn("sneaky", [t.name for t in tokens.tokens])
        self.stop(f)

    def test_a_damaged_store_is_refused_at_start_with_the_way_out(self):
        f, _, _, _ = self.start()
        self.stop(f)
        path = self.case_dir / "fleetd.db"
        db = sqlite3.connect(str(path))
        db.executemany("INSERT INTO audit_log (time_us, actor, action, target, result_code, result_message)"
                       " VALUES (0, 'a', 'x', ?, 0, '')", [("t" * 200,)] * 2000)
        db.commit()
        db.close()
        self.assertGreater(path.stat().st_size, 40 * 4096)
        with open(path, "r+b") as raw:
            raw.seek(30 * 4096)
            raw.write(b"\x5a" * 4096)

        proc = subprocess.run([base.FLEETD, "--config", str(self.config)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, timeout=60)
        self.assertEqual(proc.returncode, 1, proc.stderr)
        self.assertIn("quick_check", proc.stderr)
        self.assertIn(".recover", proc.stderr)
        self.assertNotIn("fleetd: ready", proc.stderr)

    def test_the_database_files_are_mode_0600(self):
        old_umask = os.umask(0o022)
        try:
            f, _, _, _ = self.start()
            self.create_token("root", "admin")
        finally:
            os.umask(old_umask)
        for suffix in ("", "-wal", "-shm"):
            path = self.case_dir / f"fleetd.db{suffix}"
            self.assertEqual(stat.S_IMODE(path.stat().st_mode), 0o600, path)
        self.stop(f)

    # ---- limits in fleetd.yaml

    def test_limits_come_from_fleetd_yaml_and_refusals_name_them(self):
        self.config = self.write_config(self.case_dir, extra=(
            "limits:\n"
            "  request:\n"
            "    max_field_bytes: 64\n"
            "  http:\n"
            "    max_body_bytes: 0\n"
            "  api:\n"
            "    max_metadata_bytes: 2048\n"))
        f, grpc_port, http_port, _ = self.start()
        with self.channel(grpc_port) as channel:
            stub = fleet_pb2_grpc.FleetStub(channel)
            with self.assertRaises(grpc.RpcError) as refused:
                stub.GetBoard(fleet_pb2.GetBoardRequest(name="b" * 65), timeout=RPC_TIMEOUT_S)
            self.assertEqual(refused.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
            self.assertIn("GetBoardRequest.name is 65 bytes; the limit is 64 bytes (limits.request.max_field_bytes",
                          refused.exception.details())
            # Headers over limits.api.max_metadata_bytes are refused by gRPC before any handler runs.
            with self.assertRaises(grpc.RpcError) as big_headers:
                stub.ListBoards(fleet_pb2.ListBoardsRequest(), timeout=RPC_TIMEOUT_S,
                                metadata=[("x-padding", "p" * 4096)])
            self.assertNotEqual(big_headers.exception.code(), grpc.StatusCode.UNAUTHENTICATED,
                                "refused before authorization")
        with socket.create_connection(("127.0.0.1", http_port), timeout=5) as s:
            s.sendall(b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nx")
            answer = s.recv(4096).decode()
        self.assertTrue(answer.startswith("HTTP/1.1 413 "), answer)
        self.assertIn("limits.http.max_body_bytes", answer)
        self.stop(f)

        bad = self.write_config(self.case_dir, extra="limits:\n  http:\n    max_connections: 1\n")
        proc = subprocess.run([base.FLEETD, "--config", str(bad)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, timeout=30)
        self.assertEqual(proc.returncode, 2, proc.stderr)
        self.assertIn("limits.http.max_connections: must be an integer from 4 to 65536", proc.stderr)


def load_tests(loader, tests, pattern):
    """Only this module's own tests; the inherited ones run in fleetd_process_test."""
    suite = unittest.TestSuite()
    for name in loader.getTestCaseNames(HardeningTest):
        if name in HardeningTest.__dict__:
            suite.addTest(HardeningTest(name))
    return suite


if __name__ == "__main__":
    unittest.main(verbosity=2)
