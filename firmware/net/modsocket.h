// The `socket` module a board offers its programs: BSD sockets on the board's
// own lwIP stack (firmware/net/netstack.h), as MicroPython's esp32 port does
// over lwIP's sockets API (ports/esp32/modsocket.c):
//
//   import socket
//   addr = socket.getaddrinfo("10.0.2.2", 7000)[0][-1]  # the lab host's 127.0.0.1:7000
//   s = socket.socket()
//   s.settimeout(5)
//   s.connect(addr)
//   s.sendall(b"ping")
//   print(s.recv(64))
//   s.close()
//
// What it offers: socket(AF_INET, SOCK_STREAM|SOCK_DGRAM), bind/listen/accept,
// connect, send/sendall/sendto/recv/recvfrom, settimeout/setblocking,
// setsockopt, close, makefile and the stream methods (read, readinto,
// readline, write), so select.poll/select.select and asyncio's streams work
// on sockets; getaddrinfo resolves numeric IPv4 addresses and "localhost"
// only (a board without DNS: other names raise OSError). Addresses are
// (host, port) tuples, as on esp32 and rp2.
//
// Errors raise OSError with the errno a board gives (ECONNREFUSED, ETIMEDOUT
// after a socket's timeout, EAGAIN on a non-blocking socket with nothing to
// do, EHOSTUNREACH for an address the board cannot reach, ...).
//
// Blocking calls release the GIL and wait in steps of NET_SOCKET_WAIT_STEP_MS,
// so a kill reaches a thread blocked in recv/accept/connect within one step
// and raises there (fleet.ThreadKilled), and other threads run meanwhile.
//
// At most NET_SOCKETS_MAX sockets are open on the board at once (a board's
// lwIP has a fixed socket table too: 10 by default on an ESP32, 16 at most);
// one more raises OSError(EMFILE). Sockets a program leaves open are closed
// when the program ends (net_socket_program_ended), so they never count
// against the next one.
#ifndef THREADFLEET_NET_MODSOCKET_H
#define THREADFLEET_NET_MODSOCKET_H

#include <stdint.h>

// Sockets open on the board at once, all programs together.
#define NET_SOCKETS_MAX 16
// Longest a blocked socket call goes without checking for a kill.
#define NET_SOCKET_WAIT_STEP_MS 10

// Closes every socket program `program_id` still has open. Called by the
// supervisor when the program's last thread ended.
// REQUIRES: GIL held.
void net_socket_program_ended(uint32_t program_id);

#endif  // THREADFLEET_NET_MODSOCKET_H
