// The board's Ethernet NIC on a host: an lwIP netif whose wire is libslirp.
// Shaped like lwIP's contrib/ports/unix/port/netif/tapif.c: the static
// low_level_* functions in slirpif.c touch the link, these few slirpif_*
// functions face the stack. On an MCU this file pair is replaced by the
// Ethernet MAC driver; nothing above the netif changes.
//
// Two directions, two threads:
//   guest -> slirp: lwIP calls linkoutput on whichever thread holds the core
//     lock (tcpip thread or an application thread). slirp is not thread-safe,
//     so the frame is copied into a fixed ring and the slirp thread is woken
//     through slirpif_wake_fd(); it hands the frames to slirp_input() in
//     slirpif_poll().
//   slirp -> guest: slirp's send_packet callback (on the slirp thread) calls
//     slirpif_input(), which copies the frame into a PBUF_RAM pbuf and passes
//     it to netif->input (tcpip_input, or netstack.c's netstack_input, which
//     runs ethernet_input under the core lock on the calling thread).
//
// Usage (netstack.c):
//   netif_add(&netif, &ip, &mask, &gw, NULL, slirpif_init, netstack_input);
//   slirpif_attach(&netif, slirp);            // before the slirp thread runs
//   ... slirp thread: poll slirpif_wake_fd(); slirpif_poll(&netif);
//   ... send_packet callback: slirpif_input(&netif, buf, len);
//   slirpif_attach(&netif, NULL);             // after the slirp thread ended
#ifndef THREADFLEET_NET_SLIRPIF_H
#define THREADFLEET_NET_SLIRPIF_H

#include <libslirp.h>
#include <lwip/err.h>
#include <lwip/ip4_addr.h>
#include <lwip/netif.h>
#include <stddef.h>
#include <stdint.h>

// Largest Ethernet frame the link carries: 1500 B MTU + 14 B header (no FCS,
// no VLAN tag). Larger frames are dropped and counted.
#define SLIRPIF_MAX_FRAME 1514
// Frames lwIP may have queued for slirp at once. Enough for several TCP
// connections each with a full 64 KB send window in flight; when it is full
// linkoutput returns ERR_MEM and TCP retries the segment later.
#define SLIRPIF_TX_QUEUE_FRAMES 1024

typedef struct {
  uint64_t rx_frames, rx_bytes;  // slirp -> lwIP, delivered to netif->input
  uint64_t tx_frames, tx_bytes;  // lwIP -> slirp, handed to slirp_input
  uint64_t dropped_frames;       // either direction: queue full, no pbuf, oversize, detached
  uint64_t filtered_frames;      // lwIP -> slirp frames the reach filter refused (see slirpif_attach)
} slirpif_stats_t;

// netif_add() init callback. There is one slirp NIC per process: the driver
// state is static and netif->state points to it.
// Returns ERR_OK; ERR_IF if a slirpif netif already exists or the wake-up
// eventfd cannot be created (netif_add then returns NULL).
// REQUIRES: called by netif_add with the lwIP core lock held.
err_t slirpif_init(struct netif *netif);

// Connects the NIC to a slirp instance (frames from lwIP are queued for it
// from now on) or, with slirp == NULL, disconnects it: queued frames are
// discarded and linkoutput drops new ones (counted) until the next attach.
//
// The reach filter: slirp runs unrestricted (so the board reaches the host's
// loopback services through slirp's host address), which would also let it
// reach any address the host can. So slirpif_poll hands slirp only ARP and
// IPv4 frames addressed to `reach` (slirp's host address); every other frame
// (another IPv4 destination, IPv6, anything else) is dropped and counted in
// filtered_frames. `reach` is ignored when slirp is NULL.
// REQUIRES: the slirp thread is not running (it is created after attaching
// and joined before detaching), so slirpif_poll never sees the change.
void slirpif_attach(struct netif *netif, Slirp *slirp, const ip4_addr_t *reach);

// An eventfd that becomes readable when frames wait in the queue for
// slirpif_poll. Owned by the driver (lives as long as the process); the
// caller only polls it for POLLIN and never reads or closes it.
int slirpif_wake_fd(struct netif *netif);

// Slirp thread only: clears the wake-up and passes every queued frame the
// reach filter allows to slirp_input() of the attached slirp, in order. Returns when the queue is
// empty. A frame's queue slot is reused only after slirp_input returned
// (slirp copies what it keeps).
void slirpif_poll(struct netif *netif);

// Slirp thread only (from the SlirpCb send_packet callback): delivers one
// Ethernet frame from slirp to lwIP. The caller keeps ownership of `frame`;
// the driver copies it into a PBUF_RAM pbuf whose ownership passes to
// netif->input.
// Returns ERR_OK when lwIP took the frame; ERR_VAL (oversize), ERR_MEM (no
// pbuf) or the error of netif->input (e.g. tcpip_input's mailbox is full)
// when it was dropped and counted — the peer's TCP retransmits.
err_t slirpif_input(struct netif *netif, const void *frame, size_t len);

// Counters since the process started; safe from any thread.
void slirpif_stats(struct netif *netif, slirpif_stats_t *out);

#endif  // THREADFLEET_NET_SLIRPIF_H
