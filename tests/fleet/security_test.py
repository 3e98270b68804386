#!/usr/bin/python3
"""Who may do what in a lab: bearer tokens, roles, and the audit log.

fleetctl without a token is refused with UNAUTHENTICATED; `fleetctl whoami`
names the token and its role; a viewer token may
read but not kill (PERMISSION_DENIED); every refusal and every mutation is in
the audit log with its actor, action and code; `fleetctl audit` lists newest
first and says how to see older entries; token names are plain and short;
oversized requests are refused naming the field and its limit, unaudited.
"""

import unittest

from fleet_lab import SCRIPTS, FleetLab, wait_for

LAB = None
OK, PERMISSION_DENIED, UNAUTHENTICATED = 0, 7, 16


def setUpModule():
    global LAB
    LAB = FleetLab.start(boards=4)
    LAB.wait_online()


def tearDownModule():
    if LAB is not None:
        LAB.stop()


def config_without_token():
    """The lab's fleetctl.yaml minus its token line (server and CA kept)."""
    path = LAB.dir / "fleetctl-no-token.yaml"
    lines = [l for l in LAB.config.read_text().splitlines() if not l.startswith("token:")]
    path.write_text("\n".join(lines) + "\n")
    return path


def audit_entries(actor, action, code):
    return [a for a in LAB.audit() if a["actor"] == actor and a["action"] == action and a["code"] == code]


class Refusals(unittest.TestCase):

    def test_fleetctl_without_a_token_is_refused_unauthenticated_and_audited_as_anonymous(self):
        proc = LAB.run_ctl("board", "ls", config=config_without_token())
        self.assertEqual(proc.returncode, 1, proc.stderr)
        self.assertIn("UNAUTHENTICATED", proc.stderr)
        self.assertNotIn("Traceback", proc.stderr)
        self.assertTrue(audit_entries("anonymous", "Fleet.ListBoards", UNAUTHENTICATED),
                        "the refused ListBoards is in the audit log")

    def test_an_unknown_token_is_refused_unauthenticated(self):
        proc = LAB.run_ctl("threads", token="tf_" + "A" * 43)
        self.assertEqual(proc.returncode, 1, proc.stderr)
        self.assertIn("UNAUTHENTICATED", proc.stderr)

    def test_a_viewer_may_read_but_killing_is_refused_permission_denied_and_audited(self):
        secret = LAB.ctl("token", "create", "sec-viewer", "--role", "viewer")["secret"]
        self.assertTrue(secret.startswith("tf_"))
        self.assertEqual(LAB.run_ctl("threads", token=secret).returncode, 0, "a viewer may list threads")

        proc = LAB.run_ctl("kill", "b01/1", token=secret)
        self.assertEqual(proc.returncode, 1, proc.stderr)
        self.assertIn("PERMISSION_DENIED", proc.stderr)
        self.assertIn("operator", proc.stderr, "the message names the role needed")

        proc = LAB.run_ctl("token", "create", "escalate", "--role", "admin", token=secret)
        self.assertIn("PERMISSION_DENIED", proc.stderr)

        entries = audit_entries("sec-viewer", "Fleet.KillThread", PERMISSION_DENIED)
        self.assertEqual(len(entries), 1, "one audit entry for the refused kill")
        self.assertIn("b01", entries[0]["target"])
        self.assertTrue(audit_entries("sec-viewer", "Fleet.CreateToken", PERMISSION_DENIED))

    def test_a_revoked_token_is_refused_unauthenticated(self):
        created = LAB.ctl("token", "create", "sec-revoked", "--role", "operator")
        LAB.ctl("token", "revoke", str(created["token"]["id"]))
        proc = LAB.run_ctl("board", "ls", token=created["secret"])
        self.assertEqual(proc.returncode, 1, proc.stderr)
        self.assertIn("UNAUTHENTICATED", proc.stderr)
        self.assertTrue(audit_entries("lab-admin", "Fleet.RevokeToken", OK))


class WhoAmI(unittest.TestCase):

    def test_whoami_prints_the_tokens_name_and_role_and_is_not_audited(self):
        self.assertEqual(LAB.text("whoami"), "lab-admin (admin)\n")
        self.assertEqual(LAB.ctl("whoami"), {"token_name": "lab-admin", "role": "ROLE_ADMIN"})
        secret = LAB.ctl("token", "create", "sec-whoami", "--role", "viewer")["secret"]
        self.assertEqual(LAB.text("whoami", token=secret), "sec-whoami (viewer)\n")
        self.assertFalse([a for a in LAB.audit() if a["action"] == "Fleet.WhoAmI"], "a read is not audited")

    def test_whoami_without_a_token_is_refused_unauthenticated(self):
        proc = LAB.run_ctl("whoami", config=config_without_token())
        self.assertEqual(proc.returncode, 1, proc.stderr)
        self.assertIn("UNAUTHENTICATED", proc.stderr)


class Limits(unittest.TestCase):

    def test_token_names_with_spaces_control_characters_or_over_64_characters_are_refused(self):
        for name in ("has space", "new\nline", "n" * 65):
            proc = LAB.run_ctl("token", "create", name, "--role", "viewer")
            self.assertEqual(proc.returncode, 1, proc.stderr)
            self.assertIn("INVALID_ARGUMENT", proc.stderr)
            self.assertIn("A-Z a-z 0-9 . _ -", proc.stderr)
        self.assertTrue(LAB.ctl("token", "create", "sec.ci-runner_1", "--role", "viewer")["secret"])

    def test_an_oversized_board_name_is_refused_naming_the_limit_and_is_not_audited(self):
        before = len(LAB.audit())
        proc = LAB.run_ctl("kill", "b" * 5000 + "/1", config=config_without_token())
        self.assertEqual(proc.returncode, 1, proc.stderr)
        self.assertIn("INVALID_ARGUMENT", proc.stderr)
        self.assertIn("limits.request.max_field_bytes", proc.stderr)
        self.assertLess(len(proc.stderr), 500, "the error does not echo the name")
        self.assertEqual(len(LAB.audit()), before)


class Mutations(unittest.TestCase):

    def test_every_mutation_is_audited_with_its_actor_action_and_result(self):
        operator = LAB.ctl("token", "create", "sec-operator", "--role", "operator")["secret"]
        self.assertTrue(audit_entries("lab-admin", "Fleet.CreateToken", OK), "token creation is audited")

        pushes = LAB.ctl_all("push", str(SCRIPTS / "fails.py"), "-b", "b04", token=operator)
        self.assertIn("PUSH_STAGE_DONE", {p["stage"] for p in pushes})
        started = LAB.run_program(["-b", "b04"], SCRIPTS / "fails.py")  # as lab-admin
        failed = wait_for("fails.py ended on b04", lambda: [
            p for p in LAB.threads("-b", "b04", all_=True)["b04"].get("programs", [])
            if p["id"] == started["b04"] and p["state"] != "PROGRAM_STATE_RUNNING"], 15, interval=0.5)
        self.assertTrue(failed)
        proc = LAB.run_ctl("kill", "b04/999999", token=operator)  # a failing mutation
        self.assertEqual(proc.returncode, 1)
        self.assertIn("NOT_FOUND", proc.stderr)

        self.assertTrue(audit_entries("sec-operator", "Fleet.PushFile", OK))
        self.assertTrue(audit_entries("lab-admin", "Fleet.RunProgram", OK))
        self.assertTrue(audit_entries("sec-operator", "Fleet.KillThread", 5), "a failed kill is audited as NOT_FOUND")
        self.assertTrue([a for a in LAB.audit() if a["actor"] == "local" and "token" in a["action"].lower()],
                        "`fleetd token create` (deploy/lab's admin token) is audited as local")
        self.assertFalse([a for a in LAB.audit() if a.get("state") not in (None, "AUDIT_STATE_DONE")],
                         "every mutation that ended has its outcome")

    def test_fleetctl_audit_lists_newest_first_and_says_how_to_see_older_entries(self):
        for _ in range(3):
            LAB.run_ctl("board", "ls", config=config_without_token())  # three refusals to list
        proc = LAB.run_ctl("audit", "--limit", "2", output=None)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        rows = [line.split()[0] for line in proc.stdout.splitlines()[1:] if line.strip()]
        self.assertEqual(len(rows), 2, proc.stdout)
        self.assertGreater(int(rows[0]), int(rows[1]), "newest first")
        self.assertIn(f"fleetctl audit --before {rows[1]}", proc.stderr)

        older = LAB.run_ctl("audit", "--limit", "2", "--before", rows[1], output=None)
        self.assertEqual(older.returncode, 0, older.stderr)
        older_rows = [line.split()[0] for line in older.stdout.splitlines()[1:] if line.strip()]
        self.assertLess(int(older_rows[0]), int(rows[1]))


if __name__ == "__main__":
    unittest.main(verbosity=2)
