// The board's TCP/IP stack: lwIP (its own tcpip thread, sockets API lwip_*)
// over a libslirp virtual NIC, like QEMU user networking. Guest 10.0.2.15/24;
// a host port forward 127.0.0.1:PORT -> 10.0.2.15:PORT makes a board
// listening on lwIP reachable from the host.
//
// What the board reaches: slirp's host address 10.0.2.2, which slirp maps to
// the host's 127.0.0.1 (TCP and UDP: the lab's loopback services), and itself
// (127.0.0.1 is lwIP's own loopback). Nothing else: the interface has no
// gateway, so lwIP refuses other destinations at once (EHOSTUNREACH), and the
// NIC's reach filter (slirpif_attach) drops any frame for another address
// before slirp sees it. slirp's DNS and DHCP are off and its TFTP has no root.
// An MCU build keeps this contract with its own routing and firewall.
//
// lwIP socket numbers are not OS file descriptors: never pass them to libc.
#ifndef THREADFLEET_NET_NETSTACK_H
#define THREADFLEET_NET_NETSTACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define NET_GUEST_IP "10.0.2.15"
#define NET_NETMASK "255.255.255.0"
// slirp's virtual host, i.e. the host's loopback as the board sees it (not a
// gateway: the board routes nothing through it).
#define NET_GATEWAY_IP "10.0.2.2"

typedef struct {
  const char *host_ip;  // where the forward listens, e.g. "127.0.0.1"
  uint16_t port;        // host port == guest port; 0: no forward (the board serves nothing)
} net_config_t;

// Starts lwIP, the slirp NIC and its thread, and the port forward. Returns
// false with a message in err (e.g. the host port is taken, or the network is
// already started). lwIP itself is started on the first call only; net_stop
// followed by net_start gives a fresh slirp (new connections only).
bool net_start(const net_config_t *config, char *err, size_t err_len);
// Stops the slirp thread (lwIP's own thread lives until the process ends).
void net_stop(void);

// Starts lwIP without the NIC's link (what net_start does first; a no-op
// once done), so the board's sockets work on 127.0.0.1 in a board that
// serves no network (`fleetboard run`). Returns false with a message in err
// if lwIP cannot start.
bool net_lwip_start(char *err, size_t err_len);

typedef struct {
  uint64_t rx_frames, tx_frames, rx_bytes, tx_bytes, dropped_frames;
  uint64_t filtered_frames;  // frames to an address the board may not reach (dropped)
  uint32_t tcp_active;       // lwIP TCP connections (tcp_active_pcbs: not listening, not TIME_WAIT)
} net_stats_t;
// Counters since the process started (frames and bytes as Ethernet frames
// crossing the NIC: rx = slirp -> lwIP, tx = lwIP -> slirp). All zero before
// the first net_start. Safe from any thread; takes the lwIP core lock briefly.
void net_stats(net_stats_t *out);

#ifdef __cplusplus
}
#endif

#endif  // THREADFLEET_NET_NETSTACK_H
