// lwIP netif over libslirp (see slirpif.h).
#include "firmware/net/slirpif.h"

#include <errno.h>
#include <lwip/etharp.h>
#include <lwip/ethip6.h>
#include <lwip/pbuf.h>
#include <lwip/prot/ip.h>
#include <lwip/prot/ip4.h>
#include <netif/ethernet.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define IFNAME0 's'
#define IFNAME1 'l'

// QEMU's default guest MAC; slirp learns it from our ARP traffic.
static const uint8_t slirpif_mac[ETH_HWADDR_LEN] = {0x52, 0x54, 0x00, 0x12, 0x34, 0x56};

typedef struct {
  uint16_t len;
  uint8_t data[SLIRPIF_MAX_FRAME];
} slirpif_frame_t;

typedef struct {
  bool initialised;  // one NIC per process: the state below is static
  int wake_fd;       // eventfd: written when a frame lands in an empty queue
  Slirp *slirp;      // read only by the slirp thread; changed only while it does not run
  ip4_addr_t reach;  // the one IPv4 destination slirp is given frames for (same rule as slirp)

  // Guest -> slirp frames. Producers (linkoutput, serialised by the core lock
  // and also by `lock`) copy into tx[head]; the one consumer (slirp thread)
  // reads tx[tail..head) without the lock, then releases the slots.
  pthread_mutex_t lock;
  bool attached;        // guarded by lock: linkoutput queues only when attached
  uint32_t head, tail;  // guarded by lock; free-running, slot = index % SLIRPIF_TX_QUEUE_FRAMES
  slirpif_frame_t tx[SLIRPIF_TX_QUEUE_FRAMES];

  // Relaxed atomics: counters only, read from any thread by slirpif_stats.
  _Atomic uint64_t rx_frames, rx_bytes, tx_frames, tx_bytes, dropped_frames, filtered_frames;
} slirpif_t;

static slirpif_t slirpif_state = {.wake_fd = -1, .lock = PTHREAD_MUTEX_INITIALIZER};

static void slirpif_count(_Atomic uint64_t *counter, uint64_t n) {
  atomic_fetch_add_explicit(counter, n, memory_order_relaxed);
}

// ---- Link side

static err_t low_level_init(struct netif *netif) {
  slirpif_t *s = netif->state;
  s->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (s->wake_fd < 0) return ERR_IF;

  netif->hwaddr_len = ETH_HWADDR_LEN;
  memcpy(netif->hwaddr, slirpif_mac, ETH_HWADDR_LEN);
  netif->mtu = SLIRPIF_MAX_FRAME - SIZEOF_ETH_HDR;
  netif->flags = NETIF_FLAG_BROADCAST | NETIF_FLAG_ETHARP | NETIF_FLAG_ETHERNET;
  return ERR_OK;
}

// netif->linkoutput: runs on any thread holding the lwIP core lock. `p` stays
// owned by lwIP; its bytes are copied into a queue slot before returning.
// Returns ERR_OK (queued), ERR_IF (detached: slirp is not running), ERR_BUF
// (frame larger than the link allows) or ERR_MEM (queue full; TCP keeps the
// segment and retries).
static err_t low_level_output(struct netif *netif, struct pbuf *p) {
  slirpif_t *s = netif->state;
  if (p->tot_len > SLIRPIF_MAX_FRAME) {
    slirpif_count(&s->dropped_frames, 1);
    return ERR_BUF;
  }
  pthread_mutex_lock(&s->lock);
  err_t err = ERR_OK;
  bool was_empty = s->head == s->tail;
  if (!s->attached) {
    err = ERR_IF;
  } else if (s->head - s->tail == SLIRPIF_TX_QUEUE_FRAMES) {
    err = ERR_MEM;
  } else {
    slirpif_frame_t *f = &s->tx[s->head % SLIRPIF_TX_QUEUE_FRAMES];
    f->len = pbuf_copy_partial(p, f->data, p->tot_len, 0);
    s->head++;
  }
  pthread_mutex_unlock(&s->lock);

  if (err != ERR_OK) {
    slirpif_count(&s->dropped_frames, 1);
    return err;
  }
  // The consumer drains until it sees the queue empty, so only the frame that
  // makes the queue non-empty needs to wake it.
  if (was_empty) {
    uint64_t one = 1;
    while (write(s->wake_fd, &one, sizeof one) < 0 && errno == EINTR) {
    }
  }
  return ERR_OK;
}

// Copies one frame from slirp into a new pbuf, or returns NULL.
//
// PBUF_RAM, never PBUF_POOL: Debian's liblwip is built with a smaller
// PBUF_POOL_BUFSIZE than its installed headers imply, so a full-size frame
// taken into a PBUF_POOL pbuf overflows the heap (netstack_test's 1 MB echo
// under ASan catches it). A PBUF_RAM pbuf is one block of exactly `len` bytes.
static struct pbuf *low_level_input(const void *frame, size_t len) {
  struct pbuf *p = pbuf_alloc(PBUF_RAW, (u16_t)len, PBUF_RAM);
  if (p == NULL) return NULL;
  if (pbuf_take(p, frame, (u16_t)len) != ERR_OK) {
    pbuf_free(p);
    return NULL;
  }
  return p;
}

// The reach filter (see slirpif_attach): true for ARP, and for IPv4 whose
// destination is s->reach. Reads the headers in place; a frame too short to
// hold them is refused.
static bool low_level_reachable(const slirpif_t *s, const slirpif_frame_t *f) {
  if (f->len < SIZEOF_ETH_HDR) return false;
  uint16_t type = (uint16_t)(f->data[SIZEOF_ETH_HDR - 2] << 8 | f->data[SIZEOF_ETH_HDR - 1]);
  if (type == ETHTYPE_ARP) return true;
  if (type != ETHTYPE_IP || f->len < SIZEOF_ETH_HDR + IP_HLEN) return false;
  ip4_addr_t dst;
  memcpy(&dst.addr, &f->data[SIZEOF_ETH_HDR + offsetof(struct ip_hdr, dest)], sizeof dst.addr);
  return ip4_addr_cmp(&dst, &s->reach);
}

// ---- Stack side

err_t slirpif_init(struct netif *netif) {
  slirpif_t *s = &slirpif_state;
  if (s->initialised) return ERR_IF;
  netif->state = s;
  netif->name[0] = IFNAME0;
  netif->name[1] = IFNAME1;
  netif->output = etharp_output;
#if LWIP_IPV6
  netif->output_ip6 = ethip6_output;
#endif
  netif->linkoutput = low_level_output;
  err_t err = low_level_init(netif);
  if (err != ERR_OK) return err;
  s->initialised = true;
  return ERR_OK;
}

void slirpif_attach(struct netif *netif, Slirp *slirp, const ip4_addr_t *reach) {
  slirpif_t *s = netif->state;
  pthread_mutex_lock(&s->lock);
  s->slirp = slirp;
  if (slirp != NULL) ip4_addr_copy(s->reach, *reach);
  s->attached = slirp != NULL;
  if (slirp == NULL) {
    slirpif_count(&s->dropped_frames, s->head - s->tail);
    s->tail = s->head;
  }
  pthread_mutex_unlock(&s->lock);
}

int slirpif_wake_fd(struct netif *netif) {
  const slirpif_t *s = netif->state;
  return s->wake_fd;
}

void slirpif_poll(struct netif *netif) {
  slirpif_t *s = netif->state;
  uint64_t wakeups;
  while (read(s->wake_fd, &wakeups, sizeof wakeups) < 0 && errno == EINTR) {
  }
  for (;;) {
    pthread_mutex_lock(&s->lock);
    uint32_t tail = s->tail, head = s->head;
    pthread_mutex_unlock(&s->lock);
    if (tail == head) return;

    for (uint32_t i = tail; i != head; i++) {
      const slirpif_frame_t *f = &s->tx[i % SLIRPIF_TX_QUEUE_FRAMES];
      if (!low_level_reachable(s, f)) {
        slirpif_count(&s->filtered_frames, 1);
        continue;
      }
      // Counted before slirp sees it, so a peer that received the data
      // never reads counters that miss the frame.
      slirpif_count(&s->tx_frames, 1);
      slirpif_count(&s->tx_bytes, f->len);
      slirp_input(s->slirp, f->data, f->len);
    }

    pthread_mutex_lock(&s->lock);
    s->tail = head;
    pthread_mutex_unlock(&s->lock);
  }
}

err_t slirpif_input(struct netif *netif, const void *frame, size_t len) {
  slirpif_t *s = netif->state;
  if (len > SLIRPIF_MAX_FRAME) {
    slirpif_count(&s->dropped_frames, 1);
    return ERR_VAL;
  }
  struct pbuf *p = low_level_input(frame, len);
  if (p == NULL) {
    slirpif_count(&s->dropped_frames, 1);
    return ERR_MEM;
  }
  err_t err = netif->input(p, netif);
  if (err != ERR_OK) {
    pbuf_free(p);  // netif->input took ownership only on success
    slirpif_count(&s->dropped_frames, 1);
    return err;
  }
  slirpif_count(&s->rx_frames, 1);
  slirpif_count(&s->rx_bytes, len);
  return ERR_OK;
}

void slirpif_stats(struct netif *netif, slirpif_stats_t *out) {
  slirpif_t *s = netif->state;
  out->rx_frames = atomic_load_explicit(&s->rx_frames, memory_order_relaxed);
  out->rx_bytes = atomic_load_explicit(&s->rx_bytes, memory_order_relaxed);
  out->tx_frames = atomic_load_explicit(&s->tx_frames, memory_order_relaxed);
  out->tx_bytes = atomic_load_explicit(&s->tx_bytes, memory_order_relaxed);
  out->dropped_frames = atomic_load_explicit(&s->dropped_frames, memory_order_relaxed);
  out->filtered_frames = atomic_load_explicit(&s->filtered_frames, memory_order_relaxed);
}
