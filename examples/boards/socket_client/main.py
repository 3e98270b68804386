# Sends readings to a telemetry server over TCP and checks each answer.
# The server's address comes from config.json on flash, pushed beside this
# program: {"host": "10.0.2.2", "port": 7300}. On a threadfleet board
# 10.0.2.2 is the host machine (its 127.0.0.1); on a real board it is the
# server's LAN address, with the network brought up by boot.py.
#
# The protocol, one line each way per request:
#   HELLO <platform> <unique id hex>   -> WELCOME <session>
#   READING <seq> <value>              -> ACK <seq>
#   SUM                                -> SUM <count> <total>
#   BYE                                -> BYE, then the server closes
import binascii
import json
import socket
import sys

import machine

TIMEOUT_S = 5
READINGS = (12, 17, 22, 27, 32)


def load_config(path="config.json"):
    with open(path) as f:
        config = json.load(f)
    return config["host"], int(config["port"])


class ProtocolError(Exception):
    pass


def request(sock, line, expect):
    sock.write(line.encode() + b"\n")
    answer = sock.readline().decode().strip()
    if not answer.startswith(expect):
        raise ProtocolError("sent %r, expected %s..., got %r" % (line, expect, answer))
    return answer.split()[1:]


def main():
    host, port = load_config()
    address = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)[0][-1]
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(TIMEOUT_S)
    try:
        sock.connect(address)
        print("connected to %s:%d" % (host, port))
        board_id = binascii.hexlify(machine.unique_id()).decode()
        session = request(sock, "HELLO %s %s" % (sys.platform, board_id), "WELCOME")[0]
        print("session", session)
        for seq, value in enumerate(READINGS):
            request(sock, "READING %d %d" % (seq, value), "ACK %d" % seq)
        print("acked", len(READINGS), "readings")
        count, total = request(sock, "SUM", "SUM")
        print("server counted", count, "readings, total", total)
        if int(count) != len(READINGS) or int(total) != sum(READINGS):
            raise ProtocolError("server's sum %s/%s, sent %d/%d" % (count, total, len(READINGS), sum(READINGS)))
        request(sock, "BYE", "BYE")
        print("closed by server" if sock.read(1) == b"" else "server left the connection open")
    finally:
        sock.close()


main()
