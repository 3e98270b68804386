#!/usr/bin/python3
"""The board's control channel admits only mutual-TLS clients of its own CA.

Every refused client fails with UNAVAILABLE (the handshake is refused, no call
reaches the service) and leaves the board serving: a valid client's GetInfo
works after each.

Run by tests/interop/board_fixture.py (BOARD_* variables, see board_client.py),
with PKI_SCRIPT (deploy/pki) to make the certificates the board must refuse.
"""

import pathlib
import socket
import subprocess
import tempfile
import unittest

import grpc
from board_client import BoardUnderTest, env
from threadfleet.board.v1 import board_pb2 as pb
from threadfleet.board.v1 import board_pb2_grpc

HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
EMPTY_SETTINGS_FRAME = bytes([0, 0, 0, 0x04, 0, 0, 0, 0, 0])
TLS_RECORD_TYPES = (0x15, 0x16)  # alert, handshake
CLOSE_TIMEOUT_S = 5

board = BoardUnderTest.from_env()


def pki(*args):
    subprocess.run([env("PKI_SCRIPT"), *map(str, args)], check=True, capture_output=True)


def get_info_on(channel):
    return board_pb2_grpc.BoardControlStub(channel).GetInfo(pb.GetInfoRequest(), timeout=5).info


class RefusedClientsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="threadfleet-security-")
        cls.dir = pathlib.Path(cls.tmp.name)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def assertRefused(self, credentials):
        with board.new_channel(credentials) as channel:
            with self.assertRaises(grpc.RpcError) as caught:
                get_info_on(channel)
        self.assertEqual(caught.exception.code(), grpc.StatusCode.UNAVAILABLE, caught.exception.details())
        self.assertBoardStillServes()

    def assertBoardStillServes(self):
        with board.new_channel() as channel:
            self.assertEqual(get_info_on(channel).name, board.name)

    def test_a_valid_client_gets_info(self):
        self.assertBoardStillServes()

    def test_client_without_certificate_is_refused(self):
        self.assertRefused(grpc.ssl_channel_credentials(root_certificates=board.read_ca()))

    def test_client_certificate_from_another_ca_is_refused(self):
        other = self.dir / "other-ca"
        pki("init", other)
        pki("issue", other, "stranger", "--client")
        self.assertRefused(board.credentials(cert=other / "stranger.pem", key=other / "stranger.key"))

    def test_expired_client_certificate_of_the_boards_ca_is_refused(self):
        # Issued by the board's own CA: the fixture keeps ca.key beside ca.pem.
        ca_dir = pathlib.Path(board.ca).parent
        pki("issue", ca_dir, "expired-client", "--client", "--expired")
        self.assertRefused(board.credentials(cert=ca_dir / "expired-client.pem", key=ca_dir / "expired-client.key"))

    def test_server_certificate_presented_as_client_certificate_is_refused(self):
        ca_dir = pathlib.Path(board.ca).parent
        pki("issue", ca_dir, "not-a-client", "--server")
        self.assertRefused(board.credentials(cert=ca_dir / "not-a-client.pem", key=ca_dir / "not-a-client.key"))

    def test_plaintext_grpc_channel_is_refused(self):
        with grpc.insecure_channel(board.addr) as channel:
            with self.assertRaises(grpc.RpcError) as caught:
                get_info_on(channel)
        self.assertEqual(caught.exception.code(), grpc.StatusCode.UNAVAILABLE, caught.exception.details())
        self.assertBoardStillServes()

    def test_plaintext_http2_preface_gets_the_connection_closed(self):
        host, port = board.addr.rsplit(":", 1)
        received = b""
        with socket.create_connection((host, int(port)), timeout=CLOSE_TIMEOUT_S) as s:
            s.sendall(HTTP2_PREFACE + EMPTY_SETTINGS_FRAME)
            try:
                while chunk := s.recv(4096):
                    received += chunk
            except ConnectionResetError:
                pass
            except socket.timeout:
                self.fail(f"connection still open {CLOSE_TIMEOUT_S} s after a plaintext preface")
        # Closed without speaking HTTP/2: nothing, or at most a TLS alert.
        if received:
            self.assertIn(received[0], TLS_RECORD_TYPES, f"board answered in plaintext: {received[:32].hex()}")
        self.assertBoardStillServes()


if __name__ == "__main__":
    unittest.main(verbosity=2)
