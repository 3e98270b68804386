#!/usr/bin/python3
"""Programs on a real board use `socket` as on an ESP32 (issue #14): over the
board's own lwIP stack and its slirp NIC they reach the lab host's loopback
services through 10.0.2.2 (TCP and UDP), select.poll/select.select work on
sockets, a thread blocked in recv is killed within its grace, addresses
outside the machine fail at once, and the board caps open sockets and closes
the ones a program leaves open when it ends.

The test's servers listen on 127.0.0.1 of this host (what the board calls
10.0.2.2). Run by tests/interop/board_fixture.py (BOARD_* variables, see
board_client.py). Every test leaves the board with no live threads.
"""

import errno
import socket
import threading
import unittest

from board_client import CONTROL_DEADLINE_S, BoardUnderTest, poll
from threadfleet.board.v1 import board_pb2 as pb

HOST_FROM_BOARD = "10.0.2.2"
SOCKETS_MAX = 16  # NET_SOCKETS_MAX
# MicroPython's errno module has no EMFILE; the board's OSError carries Linux's.
PROGRAM_TIMEOUT_S = 20

board = BoardUnderTest.from_env()


class HostServer:
    """A TCP and a UDP server on 127.0.0.1 of one port. TCP connections are
    echoed (or, with echo=False, held open in silence); every TCP connection
    the board opens is counted and its end seen."""

    def __init__(self, echo=True):
        self.echo = echo
        self.tcp = socket.socket()
        self.tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.tcp.bind(("127.0.0.1", 0))
        self.tcp.listen(32)
        self.port = self.tcp.getsockname()[1]
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("127.0.0.1", self.port))
        self.lock = threading.Lock()
        self.accepted = 0
        self.ended = 0
        self.stopping = False
        self.threads = [threading.Thread(target=self.accept_loop, daemon=True),
                        threading.Thread(target=self.udp_loop, daemon=True)]
        for t in self.threads:
            t.start()

    def accept_loop(self):
        self.tcp.settimeout(0.2)
        while not self.stopping:
            try:
                conn, _ = self.tcp.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with self.lock:
                self.accepted += 1
            threading.Thread(target=self.serve, args=(conn,), daemon=True).start()

    def serve(self, conn):
        conn.settimeout(PROGRAM_TIMEOUT_S)
        try:
            while data := conn.recv(65536):
                if self.echo:
                    conn.sendall(data)
        except OSError:
            pass
        finally:
            conn.close()
            with self.lock:
                self.ended += 1

    def udp_loop(self):
        self.udp.settimeout(0.2)
        while not self.stopping:
            try:
                data, addr = self.udp.recvfrom(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            self.udp.sendto(data, addr)

    def counts(self):
        with self.lock:
            return self.accepted, self.ended

    def close(self):
        self.stopping = True
        for t in self.threads:
            t.join(2)
        self.tcp.close()
        self.udp.close()


def closed_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class SocketTestCase(unittest.TestCase):
    def setUp(self):
        self.server = HostServer()

    def tearDown(self):
        self.server.close()
        for t in board.live_threads():
            board.stub().KillThread(pb.KillThreadRequest(thread_id=t.id, grace_ms=500), timeout=CONTROL_DEADLINE_S)

    def run_program(self, source):
        program, output = board.run_to_end(source, timeout_s=PROGRAM_TIMEOUT_S)
        text = output.decode(errors="replace")
        self.assertEqual(program.state, pb.PROGRAM_STATE_FINISHED, text)
        return text


class ReachTest(SocketTestCase):
    def test_tcp_client_gets_its_bytes_back_from_a_host_server_through_10_0_2_2(self):
        text = self.run_program(f"""
import socket
addr = socket.getaddrinfo("{HOST_FROM_BOARD}", {self.server.port})[0][-1]
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.settimeout(10)
s.connect(addr)
data = bytes(range(256)) * 64
s.sendall(data)
got = b""
while len(got) < len(data):
    chunk = s.recv(2048)
    if not chunk:
        break
    got += chunk
s.close()
print("echoed", len(got), got == data)
""")
        self.assertIn("echoed 16384 True", text)

    def test_udp_datagram_comes_back_from_a_host_server(self):
        text = self.run_program(f"""
import socket
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.settimeout(10)
u.sendto(b"ping", ("{HOST_FROM_BOARD}", {self.server.port}))
data, addr = u.recvfrom(64)
u.close()
print("reply", data, addr)
""")
        self.assertIn(f"reply b'ping' ('{HOST_FROM_BOARD}', {self.server.port})", text)

    def test_stream_methods_read_lines_the_host_echoes(self):
        text = self.run_program(f"""
import socket
s = socket.socket()
s.settimeout(10)
s.connect(("{HOST_FROM_BOARD}", {self.server.port}))
f = s.makefile("rwb")
f.write(b"first line\\nsecond line\\n")
print(f.readline(), f.readline())
s.close()
""")
        self.assertIn("b'first line\\n' b'second line\\n'", text)

    def test_connect_to_a_closed_host_port_is_refused(self):
        text = self.run_program(f"""
import socket, errno
s = socket.socket()
s.settimeout(10)
try:
    s.connect(("{HOST_FROM_BOARD}", {closed_port()}))
    print("connected")
except OSError as e:
    print("refused", e.errno == errno.ECONNREFUSED, e.errno)
""")
        self.assertIn("refused True", text)

    def test_addresses_outside_the_machine_fail_at_once_with_ehostunreach(self):
        # A timeout far longer than the test: an address the board sent
        # packets to would end in ETIMEDOUT, not EHOSTUNREACH.
        text = self.run_program("""
import socket, errno
for host in ("8.8.8.8", "192.0.2.1", "1.1.1.1"):
    s = socket.socket()
    s.settimeout(60)
    try:
        s.connect((host, 53))
        print(host, "connected")
    except OSError as e:
        print(host, "tcp", e.errno == errno.EHOSTUNREACH, e.errno)
    s.close()
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        u.sendto(b"x", (host, 53))
        print(host, "sent")
    except OSError as e:
        print(host, "udp", e.errno == errno.EHOSTUNREACH, e.errno)
    u.close()
try:
    socket.getaddrinfo("example.com", 80)
    print("resolved")
except OSError as e:
    print("no dns", e)
""")
        for host in ("8.8.8.8", "192.0.2.1", "1.1.1.1"):
            self.assertIn(f"{host} tcp True", text)
            self.assertIn(f"{host} udp True", text)
        self.assertIn("no dns", text)
        self.assertIn("the board has no DNS", text)


class SelectTest(SocketTestCase):
    def test_poll_sees_a_socket_become_readable_when_the_host_answers(self):
        text = self.run_program(f"""
import socket, select
s = socket.socket()
s.settimeout(10)
s.connect(("{HOST_FROM_BOARD}", {self.server.port}))
p = select.poll()
p.register(s, select.POLLIN)
print("before", p.poll(0))
s.send(b"hello")
ready = p.poll(10000)
print("after", len(ready), ready[0][1] & select.POLLIN != 0, s.recv(16))
s.close()
""")
        self.assertIn("before []", text)
        self.assertIn("after 1 True b'hello'", text)

    def test_select_sees_a_socket_become_readable_when_the_host_answers(self):
        text = self.run_program(f"""
import socket, select
if not hasattr(select, "select"):
    print("no select.select")
    raise SystemExit
s = socket.socket()
s.settimeout(10)
s.connect(("{HOST_FROM_BOARD}", {self.server.port}))
r, w, x = select.select([s], [], [], 0)
print("before", len(r), len(w))
s.send(b"hello")
r, w, x = select.select([s], [s], [], 10)
print("after", len(r), len(w), s.recv(16))
s.close()
""")
        if "no select.select" in text:
            self.skipTest("select.select is off in this build (MICROPY_PY_SELECT_SELECT)")
        self.assertIn("before 0 0", text)
        self.assertIn("after 1 1 b'hello'", text)


class SteerTest(SocketTestCase):
    def setUp(self):
        self.server = HostServer(echo=False)

    def test_thread_blocked_in_recv_is_killed_within_its_grace(self):
        started = board.stub().StartProgram(pb.StartProgramRequest(source=f"""
import socket, fleet
s = socket.socket()
s.connect(("{HOST_FROM_BOARD}", {self.server.port}))
print("waiting")
try:
    s.recv(16)
except fleet.ThreadKilled:
    print("killed in recv")
    raise
"""), timeout=CONTROL_DEADLINE_S)
        poll("the program blocked in recv", 10,
             lambda: [t for t in board.live_threads(started.program_id) if t.state == pb.THREAD_STATE_SLEEPING]
             and b"waiting" in board.output(started.program_id))
        killed = board.stub().KillThread(
            pb.KillThreadRequest(thread_id=started.main_thread_id, grace_ms=1000), timeout=CONTROL_DEADLINE_S
        ).thread
        self.assertEqual(killed.state, pb.THREAD_STATE_KILLED, killed)
        self.assertIn(b"killed in recv", board.output(started.program_id))
        # Its socket went with the program: the host sees the connection end.
        poll("the host sees the killed program's connection closed", 10, lambda: self.server.counts()[1] == 1)

    def test_threads_blocked_in_accept_and_connect_are_killed_within_their_grace(self):
        # 10.0.2.99 is on the board's LAN but nobody answers there: the
        # connect waits (as on a real LAN) until the kill.
        for call, source in (
            ("accept", "s = socket.socket()\ns.bind(('', 8123))\ns.listen(1)\nblocked = s.accept"),
            ("connect", "s = socket.socket()\nblocked = lambda: s.connect(('10.0.2.99', 80))"),
        ):
            with self.subTest(call=call):
                started = board.stub().StartProgram(pb.StartProgramRequest(source=f"""
import socket, fleet
{source}
print("waiting")
try:
    blocked()
except fleet.ThreadKilled:
    print("killed in {call}")
    raise
"""), timeout=CONTROL_DEADLINE_S)
                poll(f"the program blocked in {call}", 10,
                     lambda: [t for t in board.live_threads(started.program_id)
                              if t.state == pb.THREAD_STATE_SLEEPING]
                     and b"waiting" in board.output(started.program_id))
                killed = board.stub().KillThread(
                    pb.KillThreadRequest(thread_id=started.main_thread_id, grace_ms=1000),
                    timeout=CONTROL_DEADLINE_S,
                ).thread
                self.assertEqual(killed.state, pb.THREAD_STATE_KILLED, killed)
                self.assertIn(f"killed in {call}".encode(), board.output(started.program_id))

    def test_sockets_are_capped_per_board_and_closed_when_their_program_ends(self):
        count_open = f"""
import socket
held = []
try:
    while len(held) < {SOCKETS_MAX + 4}:
        s = socket.socket()
        s.settimeout(10)
        s.connect(("{HOST_FROM_BOARD}", {self.server.port}))
        held.append(s)
except OSError as e:
    print("capped at", len(held), e.errno == {errno.EMFILE}, e)
"""
        first = self.run_program(count_open)
        self.assertIn(f"capped at {SOCKETS_MAX} True", first)
        self.assertIn("too many open sockets", first)
        # The program left its sockets open; they closed when it ended ...
        poll("the host sees all the first program's connections closed", 10,
             lambda: self.server.counts() == (SOCKETS_MAX, SOCKETS_MAX))
        # ... and the next program has the whole allowance again.
        second = self.run_program(count_open)
        self.assertIn(f"capped at {SOCKETS_MAX} True", second)


if __name__ == "__main__":
    unittest.main(verbosity=2)
