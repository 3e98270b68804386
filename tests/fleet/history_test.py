#!/usr/bin/python3
"""What a dashboard's charts read from a real lab: GetHealthHistory and a throttled WatchHealth.

A program with a busy thread and a thread deep in its stack runs on a real
board; GetHealthHistory answers the board's samples with that thread's CPU and
stack columns aligned with the sample times. WatchHealth with min_period_ms
sends each board's snapshot at most about once per period (the lab's boards
send one every 500 ms), and with summary_only without threads, programs or
metrics. The Fleet API is called over gRPC with TLS (python3-grpcio and the
stubs under PYTHONPATH), the program started with the real fleetctl.
"""

import unittest

import grpc
from threadfleet.fleet.v1 import fleet_pb2, fleet_pb2_grpc

from fleet_lab import SCRIPTS, FleetLab, wait_for

LAB = None
RPC_TIMEOUT_S = 10


def setUpModule():
    global LAB
    LAB = FleetLab.start(boards=4)
    LAB.wait_online()


def tearDownModule():
    if LAB is not None:
        LAB.stop()


def lab_client():
    """(stub, metadata) for the lab's fleetd, from its fleetctl.yaml (server, ca, token)."""
    settings = dict(line.split(": ", 1) for line in LAB.config.read_text().splitlines() if ": " in line)
    with open(settings["ca"], "rb") as f:
        credentials = grpc.ssl_channel_credentials(root_certificates=f.read())
    channel = grpc.secure_channel(settings["server"], credentials)
    return channel, fleet_pb2_grpc.FleetStub(channel), [("authorization", f"Bearer {settings['token']}")]


class History(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.channel, cls.stub, cls.auth = lab_client()

    @classmethod
    def tearDownClass(cls):
        cls.channel.close()

    def history(self, board, window_ms=0):
        return self.stub.GetHealthHistory(fleet_pb2.GetHealthHistoryRequest(board=board, window_ms=window_ms),
                                          timeout=RPC_TIMEOUT_S, metadata=self.auth)

    def test_a_busy_thread_shows_its_cpu_and_stack_columns_aligned_with_the_samples(self):
        LAB.run_program(["b01"], SCRIPTS / "spinner.py", "20")

        def spinner_samples():
            h = self.history("b01")
            spin = [t for t in h.threads if t.name == "spin"]
            return (h, spin[-1]) if spin and len(spin[-1].cpu_percent) >= 6 else None

        h, spin = wait_for("six samples of the spinning thread", spinner_samples, timeout=30)

        self.assertEqual(h.board, "b01")
        self.assertGreater(h.start_time_ms, 0)
        n = len(h.offset_ms)
        self.assertEqual([len(h.heap_used_bytes), len(h.heap_total_bytes), len(h.cpu_percent)], [n, n, n])
        self.assertEqual(list(h.offset_ms), sorted(h.offset_ms), "oldest first")
        self.assertTrue(all(0 < used <= total for used, total in zip(h.heap_used_bytes, h.heap_total_bytes)))
        # The spinner is live to the newest sample: its columns run from
        # first_sample to the end.
        self.assertEqual(len(spin.cpu_percent), n - spin.first_sample)
        self.assertEqual(len(spin.stack_used_bytes), len(spin.cpu_percent))
        self.assertEqual(len(spin.stack_peak_bytes), len(spin.cpu_percent))
        self.assertGreater(spin.stack_size_bytes, 0)
        self.assertGreater(spin.program_id, 0)
        # A running thread's stack in use is not sampled (0); its high-water
        # mark is.
        self.assertTrue(all(0 <= used <= peak <= spin.stack_size_bytes and peak > 0
                            for used, peak in zip(spin.stack_used_bytes, spin.stack_peak_bytes)),
                        (spin.stack_size_bytes, list(spin.stack_used_bytes), list(spin.stack_peak_bytes)))
        # It never sleeps: past its first sample it uses a good part of a core
        # (the machine is shared, so not all of it).
        self.assertGreater(max(spin.cpu_percent[1:]), 20.0, list(spin.cpu_percent))
        # The program's other thread, 40 calls deep and asleep, uses far less.
        others = [t for t in h.threads if t.program_id == spin.program_id and t.thread_id != spin.thread_id]
        self.assertTrue(others, [t.name for t in h.threads])
        self.assertLess(max(others[-1].cpu_percent[1:] or [0.0]), 20.0)
        self.assertGreater(others[-1].stack_used_bytes[-1], 0, "an asleep thread's stack in use is sampled")
        self.assertGreaterEqual(others[-1].stack_peak_bytes[-1], others[-1].stack_used_bytes[-1])

        # A window keeps only the newest samples, threads' first_sample
        # counting from its own first sample.
        recent = self.history("b01", window_ms=1500)
        self.assertLess(len(recent.offset_ms), n)
        self.assertGreater(len(recent.offset_ms), 0)
        for t in recent.threads:
            self.assertLessEqual(t.first_sample + len(t.cpu_percent), len(recent.offset_ms))

    def test_an_unknown_board_is_not_found_and_a_negative_window_invalid(self):
        with self.assertRaises(grpc.RpcError) as unknown:
            self.history("b99")
        self.assertEqual(unknown.exception.code(), grpc.StatusCode.NOT_FOUND)
        with self.assertRaises(grpc.RpcError) as negative:
            self.history("b01", window_ms=-1)
        self.assertEqual(negative.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("window_ms", negative.exception.details())


class ThrottledWatch(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.channel, cls.stub, cls.auth = lab_client()

    @classmethod
    def tearDownClass(cls):
        cls.channel.close()

    def watch(self, seconds, **request):
        """Every WatchHealthResponse of a watch of the whole lab for `seconds`."""
        call = self.stub.WatchHealth(fleet_pb2.WatchHealthRequest(**request), timeout=seconds, metadata=self.auth)
        messages = []
        try:
            for m in call:
                messages.append(m)
        except grpc.RpcError as e:
            self.assertEqual(e.code(), grpc.StatusCode.DEADLINE_EXCEEDED, e.details())
        return messages

    def snapshots_per_board(self, messages):
        counts = {b: 0 for b in LAB.boards}
        for m in messages:
            if m.WhichOneof("update") == "snapshot":
                counts[m.board] += 1
        return counts

    def test_min_period_sends_each_board_about_once_a_period_and_summary_only_drops_the_lists(self):
        LAB.run_program(["b02"], SCRIPTS / "spinner.py", "15")
        seconds = 5
        full = self.snapshots_per_board(self.watch(seconds))
        messages = self.watch(seconds, min_period_ms=2000, summary_only=True)
        throttled = self.snapshots_per_board(messages)

        # Every 500 ms unthrottled; at most the first at once and then one per
        # 2 s (5 s: 1 + 2, and one more for a period ending as the call does).
        for board in LAB.boards:
            self.assertGreaterEqual(full[board], 6, full)
            self.assertGreaterEqual(throttled[board], 2, throttled)
            self.assertLessEqual(throttled[board], 4, throttled)
        snapshots = [m.snapshot for m in messages if m.WhichOneof("update") == "snapshot"]
        self.assertTrue(all(not s.threads and not s.programs and not s.metrics for s in snapshots))
        busy = [s for m, s in zip([m for m in messages if m.WhichOneof("update") == "snapshot"], snapshots)
                if m.board == "b02"]
        self.assertTrue(all(s.thread_counts.running + s.thread_counts.sleeping >= 2 and s.heap.total_bytes > 0
                            for s in busy), "counts and heap stay")

    def test_a_period_over_a_minute_is_invalid(self):
        with self.assertRaises(grpc.RpcError) as refused:
            list(self.stub.WatchHealth(fleet_pb2.WatchHealthRequest(min_period_ms=60001), timeout=RPC_TIMEOUT_S,
                                       metadata=self.auth))
        self.assertEqual(refused.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("min_period_ms", refused.exception.details())


if __name__ == "__main__":
    unittest.main()
