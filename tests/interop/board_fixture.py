#!/usr/bin/python3
"""Runs one interop client against a real board over mutual TLS.

    board_fixture.py --fleetboard PATH [--name b01] [--pki PATH] [--board-arg ARG]... -- CLIENT [ARGS...]

1. makes a fresh lab PKI in a temporary directory (deploy/pki: a CA, a server
   certificate for the board, a client certificate for the client);
2. starts `fleetboard serve` on 127.0.0.1 at a free port, with a fresh flash
   image in that directory, and waits for its "serving" line;
3. runs CLIENT with BOARD_ADDR, BOARD_CA, CLIENT_CERT, CLIENT_KEY and
   BOARD_NAME in its environment, and, for clients that start boards of their
   own with this module's Board (tests/board/channel_test.py), FLEETBOARD,
   BOARD_CERT, BOARD_KEY and FIXTURE_DIR (a directory for their flash images);
4. stops the board with SIGTERM and expects it to exit 0.

Exits 0 only when the client exited 0 and the board stopped cleanly. Runs with
Debian's /usr/bin/python3 and only the standard library.
"""

import argparse
import ctypes
import os
import pathlib
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

REPO = pathlib.Path(__file__).resolve().parents[2]
# Together under ctest's TIMEOUT of 120 s.
SERVING_TIMEOUT_S = 20
CLIENT_TIMEOUT_S = 80
STOP_TIMEOUT_S = 10


def log(msg):
    print(f"board_fixture: {msg}", file=sys.stderr, flush=True)


_prctl = ctypes.CDLL(None, use_errno=True).prctl  # resolved here, not in the forked child
PR_SET_PDEATHSIG = 1


def die_with_parent():
    """In a child before exec: SIGKILL it when this fixture dies (e.g. killed by ctest's timeout)."""
    _prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL))


def run_checked(cmd):
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd))} exited {proc.returncode}:\n{proc.stdout}")


def make_pki(pki_script, directory):
    """CA, board server certificate (SAN IP:127.0.0.1, DNS:localhost) and client certificate."""
    if not os.access(pki_script, os.X_OK):
        raise RuntimeError(f"no executable lab PKI script at {pki_script}")
    run_checked([pki_script, "init", directory])
    run_checked([pki_script, "issue", directory, "board", "--server"])
    run_checked([pki_script, "issue", directory, "client", "--client"])
    d = pathlib.Path(directory)
    return {
        "ca": d / "ca.pem",
        "board_cert": d / "board.pem",
        "board_key": d / "board.key",
        "client_cert": d / "client.pem",
        "client_key": d / "client.key",
    }


def free_port():
    # Bound to port 0 so the kernel picks a free one, released just before the
    # board binds it (never listened on or connected, so no TIME_WAIT).
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Board:
    """A `fleetboard serve` process; its stderr is echoed with a prefix and kept (lines())."""

    def __init__(self, fleetboard, name, port, flash, pki, extra_args=()):
        self.name = name
        self.addr = f"127.0.0.1:{port}"
        self._serving_line = f"fleetboard: serving {name} on {self.addr}"
        self._serving = threading.Event()
        self._lines = []
        self._lines_lock = threading.Lock()
        self.cmd = [
            fleetboard, "serve",
            "--name", name,
            "--listen", self.addr,
            "--flash", str(flash),
            "--cert", str(pki["board_cert"]),
            "--key", str(pki["board_key"]),
            "--ca", str(pki["ca"]),
            *extra_args,
        ]
        log("starting: " + " ".join(self.cmd))
        self.proc = subprocess.Popen(
            self.cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            preexec_fn=die_with_parent,
        )
        self._reader = threading.Thread(target=self._read_output, daemon=True)
        self._reader.start()

    def _read_output(self):
        for line in self.proc.stdout:
            line = line.rstrip("\n")
            print(f"[{self.name}] {line}", file=sys.stderr, flush=True)
            with self._lines_lock:
                self._lines.append(line)
            if line.strip() == self._serving_line:
                self._serving.set()

    def lines(self):
        """Every line the board has written so far."""
        with self._lines_lock:
            return list(self._lines)

    def wait_serving(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._serving.wait(0.05):
                return
            if self.proc.poll() is not None:
                self._reader.join(2)
                raise RuntimeError(
                    f"fleetboard exited {self.proc.returncode} before serving "
                    f"(expected the line '{self._serving_line}')"
                )
        raise RuntimeError(f"no line '{self._serving_line}' within {timeout} s")

    def stop(self):
        """SIGTERM; returns None when it exited 0, else a description of what went wrong."""
        if self.proc.poll() is not None:
            self._reader.join(2)
            return f"fleetboard had already exited with {self.proc.returncode} before SIGTERM"
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            self._reader.join(2)
            return f"fleetboard did not exit within {STOP_TIMEOUT_S} s of SIGTERM (killed)"
        self._reader.join(2)
        if rc != 0:
            return f"fleetboard exited {rc} after SIGTERM, expected 0"
        return None


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fleetboard", required=True, help="path of the fleetboard binary")
    parser.add_argument("--name", default="b01", help="board name (default b01)")
    parser.add_argument("--pki", default=str(REPO / "deploy" / "pki"), help="the lab PKI script")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument("--board-arg", action="append", default=[], help="one more argument for fleetboard serve")
    parser.add_argument("client", nargs=argparse.REMAINDER, help="-- CLIENT [ARGS...]")
    args = parser.parse_args()
    client = args.client[1:] if args.client[:1] == ["--"] else args.client
    if not client:
        parser.error("no client command (put it after --)")

    # SIGTERM/SIGINT: clean up (stop the board, remove the directory) too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    tmp = tempfile.mkdtemp(prefix="threadfleet-interop-")
    board = None
    try:
        pki = make_pki(args.pki, tmp)
        board = Board(
            args.fleetboard, args.name, free_port(), pathlib.Path(tmp) / f"{args.name}.lfs", pki, args.board_arg
        )
        board.wait_serving(SERVING_TIMEOUT_S)
        log(f"board {args.name} serving on {board.addr}")

        env = dict(os.environ)
        env.update(
            BOARD_ADDR=board.addr,
            BOARD_CA=str(pki["ca"]),
            CLIENT_CERT=str(pki["client_cert"]),
            CLIENT_KEY=str(pki["client_key"]),
            BOARD_NAME=args.name,
            FLEETBOARD=str(pathlib.Path(args.fleetboard).resolve()),
            BOARD_CERT=str(pki["board_cert"]),
            BOARD_KEY=str(pki["board_key"]),
            FIXTURE_DIR=tmp,
        )
        log("running client: " + " ".join(client))
        try:
            client_rc = subprocess.run(
                client, env=env, stdin=subprocess.DEVNULL, timeout=CLIENT_TIMEOUT_S, preexec_fn=die_with_parent
            ).returncode
        except subprocess.TimeoutExpired:
            log(f"client did not finish within {CLIENT_TIMEOUT_S} s")
            client_rc = 124
        log(f"client exited {client_rc}")

        problem = board.stop()
        board = None
        if problem:
            log(f"FAIL: {problem}")
            return client_rc or 1
        if client_rc == 0:
            log("board stopped cleanly (exit 0)")
        return client_rc
    except (RuntimeError, OSError) as e:
        log(f"FAIL: {e}")
        return 1
    finally:
        if board is not None and board.proc.poll() is None:
            board.proc.kill()
            board.proc.wait()
        if args.keep:
            log(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
