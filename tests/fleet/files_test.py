#!/usr/bin/python3
"""Files on the boards, and what fleetd refuses before calling a board, as a
user sees them through fleetctl in a 2-board lab.

`fleetctl ls` lists a board's directory with sizes and SHA-256, `fleetctl rm`
deletes a file; a second push of the same content leaves the boards' files
unchanged (reported `unchanged`) unless `--force`; names over a board's
limits and kill grace periods over fleetd's cap are refused with the limit
named and no board called.
"""

import hashlib
import unittest

from fleet_lab import CtlError, FleetLab

LAB = None
NOT_FOUND = "NOT_FOUND"
CONTENT = "print('hello from files_test')\n"


def setUpModule():
    global LAB
    LAB = FleetLab.start(boards=2)
    LAB.wait_online()


def tearDownModule():
    if LAB is not None:
        LAB.stop()


def push_file(tmp_name, content, *extra):
    path = LAB.dir / tmp_name
    path.write_text(content)
    return LAB.text("push", str(path), "-b", "b01,b02", *extra)


def entries(board, directory="/"):
    return {e["name"]: e for e in LAB.ctl("ls", board, directory)["entries"]}


class Files(unittest.TestCase):

    def test_ls_shows_a_pushed_file_with_its_size_and_rm_deletes_it(self):
        push_file("listed.py", CONTENT)
        listed = entries("b01")
        self.assertIn("listed.py", listed)
        self.assertEqual(int(listed["listed.py"]["size_bytes"]), len(CONTENT))
        self.assertRegex(LAB.text("ls", "b01"), r"(?m)^NAME\s+SIZE\s+SHA256$")

        self.assertIn("removed b01:/listed.py", LAB.text("rm", "b01", "/listed.py"))
        self.assertNotIn("listed.py", entries("b01"))
        self.assertIn("listed.py", entries("b02"), "only b01's file went")
        with self.assertRaises(CtlError) as again:
            LAB.text("rm", "b01", "/listed.py")
        self.assertEqual(again.exception.returncode, 1)
        self.assertIn(NOT_FOUND, again.exception.stderr)

    # Needs the board's ListFiles with_sha256 (the fw-channel branch of issue 11).
    def test_ls_shows_each_files_sha256(self):
        push_file("hashed.py", CONTENT)
        self.assertEqual(entries("b02")["hashed.py"]["sha256_hex"], hashlib.sha256(CONTENT.encode()).hexdigest())
        self.assertRegex(LAB.text("ls", "b02"), rf"(?m)^hashed\.py\s+{len(CONTENT)}\s+[0-9a-f]{{64}}$")

    # Needs the board's skip_if_sha256_hex (the fw-channel branch of issue 11).
    def test_pushing_the_same_content_again_reports_unchanged_unless_forced(self):
        first = push_file("same.py", CONTENT)
        self.assertRegex(first, r"(?m)^b01\s+done\b")
        again = push_file("same.py", CONTENT)
        self.assertRegex(again, r"(?m)^b01\s+unchanged\b")
        self.assertRegex(again, r"(?m)^b02\s+unchanged\b")
        self.assertIn("pushed to 2/2 boards (2 unchanged)", again)
        forced = push_file("same.py", CONTENT, "--force")
        self.assertRegex(forced, r"(?m)^b01\s+done\b")


class RefusedBeforeAnyBoardCall(unittest.TestCase):

    def test_a_module_name_over_the_boards_limit_is_refused_naming_the_limit(self):
        proc = LAB.run_ctl("start", "b01", "m" * 65 + ".run", output=None)
        self.assertEqual(proc.returncode, 1, proc.stderr)
        self.assertIn("INVALID_ARGUMENT: module is 65 bytes, longer than a board takes (64", proc.stderr)

    def test_a_kill_grace_over_the_cap_is_refused_naming_the_cap(self):
        proc = LAB.run_ctl("kill", "b01/1", "--grace", "60000", output=None)
        self.assertEqual(proc.returncode, 1, proc.stderr)
        self.assertIn("INVALID_ARGUMENT: grace_ms is 60000, over fleetd's limit of 10000", proc.stderr)


if __name__ == "__main__":
    unittest.main()
