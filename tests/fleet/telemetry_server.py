"""The host side of examples/boards/socket_client: a TCP telemetry server on
127.0.0.1 speaking its line protocol, recording what each session sent.

    with TelemetryServer() as server:     # listening on 127.0.0.1:server.port
        ...                               # a board connects via 10.0.2.2
        session = server.wait_session(timeout=10)

Standard library only; one thread per connection, each read bounded by a timeout.
"""

import queue
import socketserver
import threading

READ_TIMEOUT_S = 10
MAX_LINES = 100  # a session longer than this is a client bug; the server hangs up


class _Handler(socketserver.StreamRequestHandler):
    timeout = READ_TIMEOUT_S

    def handle(self):
        server = self.server.owner
        session = {"id": server.next_session_id(), "hello": None, "readings": [], "bye": False, "errors": []}
        try:
            for _ in range(MAX_LINES):
                line = self.rfile.readline()
                if not line:
                    break
                answer = self._answer(session, line.decode().split())
                self.wfile.write(answer.encode() + b"\n")
                if session["bye"]:
                    break
        except (OSError, ValueError) as e:
            session["errors"].append(repr(e))
        server.sessions.put(session)

    @staticmethod
    def _answer(session, words):
        if words[:1] == ["HELLO"] and len(words) == 3:
            session["hello"] = words[1:]
            return f"WELCOME s{session['id']}"
        if words[:1] == ["READING"] and len(words) == 3:
            session["readings"].append((int(words[1]), int(words[2])))
            return f"ACK {words[1]}"
        if words == ["SUM"]:
            values = [v for _, v in session["readings"]]
            return f"SUM {len(values)} {sum(values)}"
        if words == ["BYE"]:
            session["bye"] = True
            return "BYE"
        session["errors"].append(f"unknown request {words!r}")
        return "ERROR unknown request"


class TelemetryServer:
    def __init__(self):
        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._server.owner = self
        self.port = self._server.server_address[1]
        self.sessions = queue.Queue()
        self._ids = 0
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        daemon=True)

    def next_session_id(self):
        with self._lock:
            self._ids += 1
            return self._ids

    def wait_session(self, timeout):
        """The next finished session (a dict); AssertionError if none ends within `timeout` s."""
        try:
            return self.sessions.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no telemetry session ended within {timeout} s") from None

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
