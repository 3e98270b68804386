#!/usr/bin/python3
"""Faults in a 4-board lab: a board killed with SIGKILL, fleetd restarted.

No manual step in between: fleetd notices and reconnects on its own;
`deploy/lab up` on the same directory restarts only what is not running.
"""

import hashlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
import unittest

from fleet_lab import LAB_SCRIPT, SCRIPTS, FleetLab, seed_scripts_dir, wait_for

LAB = None
OFFLINE_WITHIN_S = 3.0
# A frozen board keeps its connection open: fleetd notices it only by missed
# snapshots, offline_after (3 s) after the last one arrived, which may be up
# to one snapshot period (0.5 s) before the SIGSTOP; plus polling slack.
FROZEN_OFFLINE_WITHIN_S = 4.0


def setUpModule():
    global LAB
    LAB = FleetLab.start(boards=4)
    LAB.wait_online()


def tearDownModule():
    if LAB is not None:
        LAB.stop()


class BoardKilled(unittest.TestCase):

    def test_board_killed_with_sigkill_is_offline_within_3_s_and_online_again_after_restart(self):
        LAB.kill9("b02")
        killed_at = time.monotonic()

        def b02_offline():
            return LAB.board_states()["b02"] == "BOARD_STATE_OFFLINE"

        wait_for("b02 offline", b02_offline, 10, interval=0.05)
        took = time.monotonic() - killed_at
        print(f"b02 showed offline {took:.2f} s after kill -9", file=sys.stderr)
        self.assertLessEqual(took, OFFLINE_WITHIN_S, f"b02 showed offline {took:.2f} s after kill -9")
        states = LAB.board_states()
        self.assertEqual([b for b in LAB.boards if states[b] != "BOARD_STATE_ONLINE"], ["b02"],
                         "only the killed board left online")
        offline_events = [e for e in LAB.events("-b", "b02")
                          if e["kind"] == "EVENT_KIND_BOARD_STATE" and "offline" in e["message"].lower()]
        self.assertTrue(offline_events, "an event says b02 went offline")

        status = subprocess.run([str(LAB_SCRIPT), "status", "--dir", str(LAB.dir)], capture_output=True, text=True,
                                timeout=30)
        self.assertEqual(status.returncode, 3, "deploy/lab status exits 3 while a process is down")
        self.assertRegex(status.stdout, r"(?m)^b02\s+stopped")
        self.assertRegex(status.stdout, r"(?m)^fleetd\s+running")
        # A reader that stops early (`| head -1`) gets its line and no traceback.
        piped = subprocess.run(f"'{LAB_SCRIPT}' status --dir '{LAB.dir}' | head -1", shell=True,
                               capture_output=True, text=True, timeout=30)
        self.assertEqual(piped.stdout.count("\n"), 1, piped.stdout)
        self.assertNotIn("Traceback", piped.stderr)

        restart = LAB.up()  # restarts only b02
        self.assertIn("started 1 process", restart.stderr)
        back = wait_for("b02 online again", lambda: LAB.board_states()["b02"] == "BOARD_STATE_ONLINE", 30,
                        interval=0.2)
        self.assertTrue(back)
        board = LAB.ctl("board", "get", "b02")["board"]
        self.assertEqual(board["state_reason"], "")
        # The restarted board takes work at once.
        started = LAB.run_program(["-b", "b02"], seed_scripts_dir() / "thread_basic.py")
        wait_for("thread_basic.py runs on the restarted b02",
                 lambda: "Main thread is running:  0" in LAB.text("logs", "b02", str(started["b02"])), 10)


class BoardFrozen(unittest.TestCase):

    def test_board_frozen_with_sigstop_is_offline_within_4_s_and_online_again_after_sigcont(self):
        # A hung board keeps its TCP connection open: only missed snapshots tell.
        pid = LAB.pid("b03")
        os.kill(pid, signal.SIGSTOP)
        frozen_at = time.monotonic()
        try:
            wait_for("b03 offline", lambda: LAB.board_states()["b03"] == "BOARD_STATE_OFFLINE", 10, interval=0.05)
            took = time.monotonic() - frozen_at
            print(f"b03 showed offline {took:.2f} s after SIGSTOP", file=sys.stderr)
            self.assertLessEqual(took, FROZEN_OFFLINE_WITHIN_S, f"b03 showed offline {took:.2f} s after SIGSTOP")
        finally:
            os.kill(pid, signal.SIGCONT)
        wait_for("b03 online again", lambda: LAB.board_states()["b03"] == "BOARD_STATE_ONLINE", 30)


class FleetdRestarted(unittest.TestCase):

    def test_fleetd_restart_keeps_inventory_scripts_events_tokens_and_audit_log(self):
        # Arrange: something of each kind fleetd stores.
        LAB.ctl("board", "add", "spare1", "127.0.0.1:9", "--label", "role=spare")
        viewer_secret = LAB.ctl("token", "create", "restart-viewer", "--role", "viewer")["secret"]
        script = SCRIPTS / "fails.py"
        pushes = LAB.ctl_all("push", str(script), "-b", "b01")
        sha = next(p["sha256_hex"] for p in pushes if p["stage"] == "PUSH_STAGE_DONE")
        self.assertEqual(sha, hashlib.sha256(script.read_bytes()).hexdigest())
        boards_before = {b["name"]: (b["address"], b["labels"]) for b in LAB.ctl("board", "ls")["boards"]}
        tokens_before = {t["id"]: t["name"] for t in LAB.ctl("token", "ls")["tokens"]}
        events_before = {e["id"] for e in LAB.events()}
        # Oldest first: `audit` lists newest first, and entries come after the restart.
        audit_before = [(a["id"], a["actor"], a["action"], a["code"]) for a in reversed(LAB.audit())]
        self.assertTrue(events_before, "the lab has events before the restart")

        # Act: stop fleetd (SIGTERM, as systemd would), then bring the lab up again.
        pid = LAB.pid("fleetd")
        os.kill(pid, signal.SIGTERM)
        wait_for("fleetd exited", lambda: not os.path.exists(f"/proc/{pid}") or _zombie(pid), 15)
        LAB.up()
        LAB.wait_online()

        # Assert: all of it is still there.
        boards_after = {b["name"]: (b["address"], b["labels"]) for b in LAB.ctl("board", "ls")["boards"]}
        self.assertEqual(boards_after, boards_before)
        spare = LAB.ctl("board", "get", "spare1")["board"]
        self.assertEqual(spare["origin"], "BOARD_ORIGIN_RUNTIME")
        tokens_after = {t["id"]: t["name"] for t in LAB.ctl("token", "ls")["tokens"]}
        self.assertEqual(tokens_after, tokens_before)
        self.assertEqual(LAB.run_ctl("board", "ls", token=viewer_secret).returncode, 0,
                         "the viewer token created before the restart still works")
        self.assertTrue(events_before <= {e["id"] for e in LAB.events()}, "every event from before is listed")
        audit_after = [(a["id"], a["actor"], a["action"], a["code"]) for a in reversed(LAB.audit())]
        self.assertEqual(audit_after[: len(audit_before)], audit_before)
        # Scripts have no read RPC: the pushed content must be in fleetd's store.
        with sqlite3.connect(f"file:{LAB.dir / 'fleetd.db'}?mode=ro", uri=True, timeout=10) as db:
            row = db.execute("SELECT content FROM scripts WHERE sha256 = ?", (sha,)).fetchone()
        self.assertIsNotNone(row, "the pushed script is in fleetd's store")
        self.assertEqual(bytes(row[0]), script.read_bytes())

        LAB.ctl("board", "rm", "spare1")


def _zombie(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


if __name__ == "__main__":
    unittest.main(verbosity=2)
