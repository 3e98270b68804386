"""The client side of the board tests: channels to the board that
tests/interop/board_fixture.py started, and the few waits every test needs.

    board = BoardUnderTest.from_env()       # BOARD_ADDR, BOARD_CA, CLIENT_CERT, CLIENT_KEY, BOARD_NAME
    stub = board.stub()                     # a BoardControl stub over mutual TLS
    board.reset()                           # Reset, then wait until the VM is back
    with Events(board) as events:           # the board's events from now on
        events.wait_for(pb.EVENT_KIND_BOOT)

Runs with Debian's /usr/bin/python3 (python3-grpcio, python3-protobuf) and the
stubs of target board_proto_python on PYTHONPATH.
"""

import os
import queue
import threading
import time

import grpc
from threadfleet.board.v1 import board_pb2 as pb
from threadfleet.board.v1 import board_pb2_grpc

# Deadline of a control call that must answer even while programs misbehave.
CONTROL_DEADLINE_S = 2
# The largest WriteFileRequest.data a board takes (board.options).
WRITE_CHUNK_BYTES = 4096
LIVE = (pb.THREAD_STATE_RUNNING, pb.THREAD_STATE_SLEEPING, pb.THREAD_STATE_WAITING_LOCK)


def env(name):
    value = os.environ.get(name)
    if not value:
        raise RuntimeError(f"{name} is not set (run through tests/interop/board_fixture.py)")
    return value


def read(path):
    with open(path, "rb") as f:
        return f.read()


def poll(what, timeout_s, fn, interval_s=0.05):
    """Calls fn until it returns something truthy and returns that; AssertionError after timeout_s."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout_s} s (last: {value!r})")
        time.sleep(interval_s)


class BoardUnderTest:
    """Address, CA and client certificate of the fixture's board."""

    def __init__(self, addr, name, ca, client_cert, client_key):
        self.addr = addr
        self.name = name
        self.ca = ca
        self.client_cert = client_cert
        self.client_key = client_key
        self._channel = None

    @classmethod
    def from_env(cls):
        return cls(env("BOARD_ADDR"), env("BOARD_NAME"), env("BOARD_CA"), env("CLIENT_CERT"), env("CLIENT_KEY"))

    def credentials(self, cert=None, key=None):
        """mTLS credentials trusting the board's CA, with the fixture's client certificate by default."""
        return grpc.ssl_channel_credentials(
            root_certificates=read(self.ca),
            private_key=read(key or self.client_key),
            certificate_chain=read(cert or self.client_cert),
        )

    def read_ca(self):
        return read(self.ca)

    def new_channel(self, credentials=None):
        """A channel with its own connection (gRPC Python otherwise shares one per target)."""
        return grpc.secure_channel(
            self.addr, credentials or self.credentials(), options=[
                ("grpc.use_local_subchannel_pool", 1),
                # A board that restarts (hard reset) is back within a second or two;
                # gRPC's default backoff (1 s growing 1.6x) could leave the channel
                # asleep well past that on a loaded machine, which is gRPC's
                # behaviour, not the board's.
                ("grpc.initial_reconnect_backoff_ms", 200),
                ("grpc.max_reconnect_backoff_ms", 1000),
            ]
        )

    def stub(self):
        """A stub on one channel shared by the calling test module."""
        if self._channel is None:
            self._channel = self.new_channel()
        return board_pb2_grpc.BoardControlStub(self._channel)

    def close(self):
        if self._channel is not None:
            self._channel.close()
            self._channel = None

    def get_info(self):
        return self.stub().GetInfo(pb.GetInfoRequest(), timeout=CONTROL_DEADLINE_S).info

    def live_threads(self, program_id=0):
        resp = self.stub().ListThreads(pb.ListThreadsRequest(program_id=program_id), timeout=CONTROL_DEADLINE_S)
        return [t for t in resp.threads if t.state in LIVE]

    def program(self, program_id):
        resp = self.stub().ListThreads(
            pb.ListThreadsRequest(program_id=program_id, include_finished=True), timeout=CONTROL_DEADLINE_S
        )
        found = [p for p in resp.programs if p.id == program_id]
        return found[0] if found else None

    def output(self, program_id):
        chunks = self.stub().StreamOutput(
            pb.StreamOutputRequest(program_id=program_id, from_offset=0, follow=False), timeout=CONTROL_DEADLINE_S
        )
        return b"".join(r.chunk.data for r in chunks)

    def snapshot(self):
        """The first snapshot of a fresh WatchHealth stream."""
        stream = self.stub().WatchHealth(pb.WatchHealthRequest(period_ms=100), timeout=5)
        try:
            for update in stream:
                if update.HasField("snapshot"):
                    return update.snapshot
        finally:
            stream.cancel()
        raise AssertionError("WatchHealth ended without a snapshot")

    def reset(self, timeout_s=10):
        """Reset, then wait for the RESET event and a later snapshot in VM_STATE_RUNNING.

        Not GetInfo: it answers while the reset is still tearing down (see
        resilience_test.py,
        test_program_started_once_getinfo_answers_after_reset_runs).
        """
        stream = self.stub().WatchHealth(pb.WatchHealthRequest(period_ms=100), timeout=timeout_s)
        updates = queue.Queue()

        def pump():
            try:
                for u in stream:
                    updates.put(u)
            except grpc.RpcError:
                pass
            updates.put(None)

        reader = threading.Thread(target=pump, daemon=True)
        reader.start()
        try:
            first = updates.get(timeout=timeout_s)
            assert first is not None and first.HasField("snapshot"), f"WatchHealth began with {first}"
            self.stub().Reset(pb.ResetRequest(), timeout=CONTROL_DEADLINE_S)
            deadline = time.monotonic() + timeout_s
            saw_reset = False
            while True:
                u = updates.get(timeout=max(0.01, deadline - time.monotonic()))
                assert u is not None, "WatchHealth ended during the reset"
                if u.HasField("event") and u.event.kind == pb.EVENT_KIND_RESET:
                    saw_reset = True
                elif saw_reset and u.HasField("snapshot") and u.snapshot.vm_state == pb.VM_STATE_RUNNING:
                    return
        except queue.Empty:
            raise AssertionError(f"the VM was not back within {timeout_s} s of Reset") from None
        finally:
            stream.cancel()
            reader.join(5)

    def wait_for_restart(self, uptime_before_us, timeout_s=20):
        """Waits until the board answers again after a hard reset (its uptime began again); returns its info.

        The default timeout covers the process start, TLS set-up and
        python-grpcio's reconnect backoff (1 s, then 1.6 s, ...).
        """

        def restarted():
            # The test's one channel, kept across the restart as any client
            # keeps it. wait_for_ready: the call waits for the channel and so
            # drives its reconnect; a call failing fast meanwhile sees the board
            # only once gRPC's backup poller got the new connection through its
            # handshake, up to ~15 s later (reconnect_test.py).
            try:
                info = self.stub().GetInfo(pb.GetInfoRequest(), timeout=CONTROL_DEADLINE_S, wait_for_ready=True).info
            except grpc.RpcError:
                return None
            return info if info.uptime_us < uptime_before_us else None

        return poll("the board back after its hard reset", timeout_s, restarted, interval_s=0.1)

    def write_file(self, path, data):
        """Writes a whole file (replacing it) through WriteFile."""

        def requests():
            yield pb.WriteFileRequest(header=pb.WriteFileHeader(path=path))
            for at in range(0, len(data), WRITE_CHUNK_BYTES):
                yield pb.WriteFileRequest(data=data[at:at + WRITE_CHUNK_BYTES])

        self.stub().WriteFile(requests(), timeout=CONTROL_DEADLINE_S)

    def delete_file(self, path):
        """Deletes a file; one that is not there is fine."""
        try:
            self.stub().DeleteFile(pb.DeleteFileRequest(path=path), timeout=CONTROL_DEADLINE_S)
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.NOT_FOUND:
                raise

    def run_to_end(self, source, timeout_s=5):
        """Starts source as a program and waits until it ended; returns (ProgramInfo, output)."""
        started = self.stub().StartProgram(pb.StartProgramRequest(source=source), timeout=CONTROL_DEADLINE_S)

        def ended():
            p = self.program(started.program_id)
            return p if p and p.state != pb.PROGRAM_STATE_RUNNING else None

        program = poll(f"program {started.program_id} ended", timeout_s, ended)
        return program, self.output(started.program_id)


class Events:
    """The board's events from now on, read from a WatchHealth stream in the background."""

    def __init__(self, board):
        self.board = board

    def __enter__(self):
        self.stream = self.board.stub().WatchHealth(pb.WatchHealthRequest(period_ms=100), timeout=30)
        self.updates = queue.Queue()
        self.reader = threading.Thread(target=self.pump, daemon=True)
        self.reader.start()
        first = self.updates.get(timeout=CONTROL_DEADLINE_S)  # the stream is open: later events reach it
        assert first is not None and first.HasField("snapshot"), f"WatchHealth began with {first}"
        return self

    def pump(self):
        try:
            for u in self.stream:
                self.updates.put(u)
        except grpc.RpcError:
            pass
        self.updates.put(None)

    def wait_for(self, kind, timeout_s=10, while_waiting=None, match=None):
        """The first event of `kind` (that match(event) accepts, if given); calls while_waiting() between updates."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if while_waiting:
                while_waiting()
            try:
                u = self.updates.get(timeout=0.05)
            except queue.Empty:
                continue
            assert u is not None, "WatchHealth ended"
            if u.HasField("event") and u.event.kind == kind and (match is None or match(u.event)):
                return u.event
        raise AssertionError(f"no {pb.EventKind.Name(kind)} event within {timeout_s} s")

    def __exit__(self, *exc):
        self.stream.cancel()
        self.reader.join(5)
