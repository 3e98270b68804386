#!/usr/bin/python3
"""The Fleet API in the Connect protocol on fleetd's HTTP listener, driven with
http.client as a script or the browser would: unary calls in JSON and binary,
server streams read envelope by envelope (WatchHealth, StreamOutput), Connect's
error codes and HTTP statuses, tokens and roles as for gRPC (a viewer's kill is
refused and audited), a cross-origin request refused, and board output that
looks like HTML coming back as JSON text, never as a page.

Binary messages are built by hand (a few protobuf fields): the test needs no
generated Python code.
"""

import base64
import http.client
import json
import pathlib
import struct
import tempfile
import unittest

from fleet_lab import FleetLab, wait_for

LAB = None
PORT = None
ADMIN = None
PERMISSION_DENIED = 7
# Every HTTP exchange of this test ends within this.
HTTP_TIMEOUT_S = 30
# The most envelopes a test reads from one stream before it gives up.
MAX_ENVELOPES = 200

# Prints markup, names its thread with markup, then sleeps so its output stays.
MARKUP_SCRIPT = """import fleet, time
fleet.thread_name('<script>x</script>')
print('<script>alert(1)</script>')
time.sleep(60)
"""


def setUpModule():
    global LAB, PORT, ADMIN
    LAB = FleetLab.start(boards=4)
    LAB.wait_online()
    PORT = json.loads((LAB.dir / "lab.json").read_text())["http_port"]
    ADMIN = LAB.config.read_text().split("token:", 1)[1].split()[0]


def tearDownModule():
    if LAB is not None:
        LAB.stop()


def post(method, body, content_type="application/json", token=None, headers=None):
    """POSTs to /threadfleet.fleet.v1.Fleet/METHOD; (status, headers dict, body bytes)."""
    conn = http.client.HTTPConnection("127.0.0.1", PORT, timeout=HTTP_TIMEOUT_S)
    try:
        sent = {"Content-Type": content_type, "Connect-Protocol-Version": "1"}
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        sent.update(headers or {})
        conn.request("POST", f"/threadfleet.fleet.v1.Fleet/{method}", body=body, headers=sent)
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def unary(method, message, token=None):
    status, headers, body = post(method, json.dumps(message).encode(), token=ADMIN if token is None else token)
    return status, headers, json.loads(body)


def envelope(payload, flags=0):
    return struct.pack(">BI", flags, len(payload)) + payload


class Stream:
    """A server-streaming call; read() gives (flags, payload) one envelope at a time."""

    def __init__(self, method, message, token=None, proto=False):
        self.conn = http.client.HTTPConnection("127.0.0.1", PORT, timeout=HTTP_TIMEOUT_S)
        payload = message if proto else json.dumps(message).encode()
        self.conn.request("POST", f"/threadfleet.fleet.v1.Fleet/{method}", body=envelope(payload), headers={
            "Content-Type": "application/connect+proto" if proto else "application/connect+json",
            "Authorization": f"Bearer {ADMIN if token is None else token}",
        })
        self.response = self.conn.getresponse()

    def _exactly(self, n):
        data = b""
        while len(data) < n:
            chunk = self.response.read(n - len(data))
            if not chunk:
                raise AssertionError(f"stream ended inside an envelope ({len(data)} of {n} bytes)")
            data += chunk
        return data

    def read(self):
        flags, length = struct.unpack(">BI", self._exactly(5))
        return flags, self._exactly(length)

    def messages(self):
        """The JSON messages, at most MAX_ENVELOPES; the end-stream is an AssertionError."""
        for _ in range(MAX_ENVELOPES):
            flags, payload = self.read()
            if flags & 0x02:
                raise AssertionError(f"stream ended: {payload.decode()}")
            yield json.loads(payload)

    def close(self):
        self.conn.close()


def binary_string_field(number, text):
    data = text.encode()
    return bytes([number << 3 | 2, len(data)]) + data


def names_in_binary_list_boards(data):
    """Board names in a binary ListBoardsResponse: field 1 (Board), whose field 1 is the name."""
    names, i = [], 0
    while i < len(data):
        assert data[i] == 0x0A, "ListBoardsResponse holds only boards"
        length, i = varint(data, i + 1)
        board = data[i:i + length]
        i += length
        assert board[0] == 0x0A, "a Board starts with its name"
        name_length, j = varint(board, 1)
        names.append(board[j:j + name_length].decode())
    return names


def varint(data, i):
    value, shift = 0, 0
    while True:
        byte = data[i]
        value |= (byte & 0x7F) << shift
        i += 1
        if not byte & 0x80:
            return value, i
        shift += 7


class Unary(unittest.TestCase):

    def test_list_boards_in_json_shows_the_boards_online(self):
        status, headers, answer = unary("ListBoards", {})
        self.assertEqual(status, 200, answer)
        self.assertEqual(headers["content-type"], "application/json")
        self.assertEqual({b["name"]: b["state"] for b in answer["boards"]},
                         {b: "BOARD_STATE_ONLINE" for b in LAB.boards})

    def test_list_boards_in_binary_answers_a_binary_message(self):
        request = bytes([0x0A, 5]) + binary_string_field(2, "b02")  # selector { boards: "b02" }
        status, headers, body = post("ListBoards", request, content_type="application/proto", token=ADMIN)
        self.assertEqual(status, 200, body)
        self.assertEqual(headers["content-type"], "application/proto")
        self.assertEqual(names_in_binary_list_boards(body), ["b02"])


class Streams(unittest.TestCase):

    def test_watch_health_gives_snapshots_envelope_by_envelope(self):
        stream = Stream("WatchHealth", {"selector": {"boards": ["b01"]}})
        try:
            self.assertEqual(stream.response.status, 200)
            self.assertEqual(stream.response.getheader("content-type"), "application/connect+json")
            snapshots = 0
            for message in stream.messages():
                self.assertEqual(message["board"], "b01")
                snapshots += "snapshot" in message
                if snapshots == 2:
                    break
            self.assertEqual(snapshots, 2)
        finally:
            stream.close()

    def test_stream_output_of_a_program_that_prints_markup_is_json_text(self):
        with tempfile.TemporaryDirectory() as tmp:
            script = pathlib.Path(tmp) / "markup.py"
            script.write_text(MARKUP_SCRIPT)
            program_id = LAB.run_program(["b03"], script)["b03"]
        stream = Stream("StreamOutput", {"board": "b03", "programId": program_id, "follow": True})
        try:
            output = b""
            for message in stream.messages():
                output += base64.b64decode(message["chunk"]["data"])
                if b"</script>" in output:
                    break
            self.assertIn(b"<script>alert(1)</script>", output)
        finally:
            stream.close()
        # The thread's name comes back in a unary JSON answer: JSON text, not HTML. (Threads are
        # listed from the board's health snapshots: the first one after the start may take a period.)
        request = json.dumps({"selector": {"boards": ["b03"]}}).encode()

        def listed():
            status, headers, body = post("ListThreads", request, token=ADMIN)
            self.assertEqual(status, 200, body)
            self.assertEqual(headers["content-type"], "application/json")
            threads = json.loads(body)["boards"][0].get("threads", [])
            return body if any(t["name"] == "<script>x</script>" for t in threads) else None

        body = wait_for("the markup-named thread listed", listed, timeout=10)
        self.assertNotIn(b"<script>", body, "markup is escaped inside JSON strings")
        LAB.ctl("kill", "b03", "--program", str(program_id))


class Errors(unittest.TestCase):

    def test_an_unknown_board_is_not_found_404(self):
        status, headers, answer = unary("GetBoard", {"name": "nope"})
        self.assertEqual(status, 404)
        self.assertEqual(headers["content-type"], "application/json")
        self.assertEqual(answer["code"], "not_found")
        self.assertIn("nope", answer["message"])

    def test_bad_json_is_invalid_argument_400_naming_the_field(self):
        status, _, body = post("GetBoard", b'{"nmae":"b01"}', token=ADMIN)
        self.assertEqual(status, 400)
        answer = json.loads(body)
        self.assertEqual(answer["code"], "invalid_argument")
        self.assertIn("nmae", answer["message"])
        status, _, body = post("GetBoard", b"{", token=ADMIN)
        self.assertEqual(status, 400)

    def test_an_unknown_method_is_404(self):
        status, _, body = post("Nope", b"{}", token=ADMIN)
        self.assertEqual(status, 404)
        self.assertIn("Nope", json.loads(body)["message"])

    def test_a_cross_origin_request_is_refused(self):
        status, _, _ = post("ListBoards", b"{}", token=ADMIN, headers={"Origin": "http://evil.example"})
        self.assertEqual(status, 403)


class Auth(unittest.TestCase):

    def test_no_token_is_unauthenticated_401(self):
        status, _, body = post("ListBoards", b"{}")
        self.assertEqual(status, 401)
        self.assertEqual(json.loads(body)["code"], "unauthenticated")

    def test_a_viewers_kill_is_permission_denied_403_and_audited(self):
        viewer = LAB.ctl("token", "create", "connect-viewer", "--role", "viewer")["secret"]
        status, _, answer = unary("KillThread", {"board": "b01", "threadId": 1}, token=viewer)
        self.assertEqual(status, 403)
        self.assertEqual(answer["code"], "permission_denied")
        refusals = [a for a in LAB.audit() if a["actor"] == "connect-viewer" and a["action"] == "Fleet.KillThread"
                    and a["code"] == PERMISSION_DENIED]
        self.assertEqual(len(refusals), 1, "one audit entry for the refused kill")
        self.assertEqual(refusals[0]["target"], "b01/1")


if __name__ == "__main__":
    unittest.main(verbosity=2)
