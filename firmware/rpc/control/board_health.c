// BoardControl's WatchHealth: a snapshot at once and then every period, and
// every supervisor event in between, until the client cancels. The stream is
// polled; a send the transport refuses (flow control) is retried at the next
// poll, and the event cursor only moves past events that were sent.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "firmware/rpc/control/board_internal.h"

#define HEALTH_DEFAULT_PERIOD_MS 1000
#define HEALTH_MIN_PERIOD_MS 100
// How often new events are looked for between snapshots.
#define HEALTH_EVENT_POLL_MS 20
#define HEALTH_EVENT_BATCH 8

typedef struct {
  int64_t period_ns;
  int64_t next_snapshot_ns;
  uint64_t event_seq;  // the last event sent (or skipped as older than the stream)
  int64_t last_cpu_us, last_uptime_us;
} watch_state_t;

// The newest event's sequence number (0 if none yet).
static uint64_t latest_event_seq(void) {
  sup_event_t batch[HEALTH_EVENT_BATCH];
  uint64_t seq = 0;
  for (;;) {
    size_t n = sup_events_read(seq, batch, HEALTH_EVENT_BATCH, 0);
    if (n == 0) return seq;
    seq = batch[n - 1].seq;
  }
}

static bool thread_live_in(const BOARD_PB(HealthSnapshot) * snap, uint32_t thread_id) {
  for (size_t i = 0; i < snap->threads_count; i++) {
    const BOARD_PB(ThreadInfo) *t = &snap->threads[i];
    if (t->id == thread_id) return t->state <= threadfleet_board_v1_ThreadState_THREAD_STATE_WAITING_LOCK;
  }
  return false;
}

static void build_snapshot(board_scratch_t *s, watch_state_t *w, BOARD_PB(HealthSnapshot) * snap) {
  sup_health_t h;
  sup_health(&h);
  memset(snap, 0, sizeof(*snap));
  snprintf(snap->board_name, sizeof(snap->board_name), "%s", board_config()->board_name);
  snap->uptime_us = (uint64_t)h.uptime_us;
  snap->has_heap = true;
  snap->heap = (BOARD_PB(HeapStats)){.total_bytes = (uint32_t)h.heap_total,
                                     .used_bytes = (uint32_t)h.heap_used,
                                     .free_bytes = (uint32_t)h.heap_free,
                                     .largest_free_bytes = (uint32_t)h.heap_largest_free};
  snap->has_thread_counts = true;
  snap->thread_counts = (BOARD_PB(ThreadCounts)){.running = h.threads_by_state[SUP_THREAD_RUNNING],
                                                 .sleeping = h.threads_by_state[SUP_THREAD_SLEEPING],
                                                 .waiting_lock = h.threads_by_state[SUP_THREAD_WAITING_LOCK],
                                                 .finished = h.threads_by_state[SUP_THREAD_FINISHED],
                                                 .failed = h.threads_by_state[SUP_THREAD_FAILED],
                                                 .killed = h.threads_by_state[SUP_THREAD_KILLED],
                                                 .unkillable = h.unkillable_threads};
  board_fill_records(s, 0, true, snap->threads, &snap->threads_count,
                     sizeof(snap->threads) / sizeof(snap->threads[0]), snap->programs, &snap->programs_count,
                     sizeof(snap->programs) / sizeof(snap->programs[0]));
  snap->cpu_time_us = (uint64_t)h.process_cpu_us;
  int64_t wall_us = h.uptime_us - w->last_uptime_us;
  if (wall_us > 0)
    snap->cpu_usage_percent = 100.0f * (float)(h.process_cpu_us - w->last_cpu_us) / (float)wall_us;
  w->last_cpu_us = h.process_cpu_us;
  w->last_uptime_us = h.uptime_us;
  size_t cap = sizeof(snap->metrics) / sizeof(snap->metrics[0]);
  for (size_t i = 0; i < h.metric_count && snap->metrics_count < cap; i++) {
    if (!thread_live_in(snap, h.metrics[i].thread_id)) continue;
    BOARD_PB(UserMetric) *m = &snap->metrics[snap->metrics_count++];
    m->thread_id = h.metrics[i].thread_id;
    snprintf(m->key, sizeof(m->key), "%s", h.metrics[i].key);
    m->value = h.metrics[i].value;
  }
  board_net_stats_t net;
  board_net_stats(&net);
  snap->has_net = true;
  snap->net = (BOARD_PB(NetStats)){
      .tcp_connections = net.tcp_connections, .tx_bytes = net.tx_bytes, .rx_bytes = net.rx_bytes};
  snap->tls_sessions = net.tls_sessions;
  snap->vm_state = threadfleet_board_v1_VmState_VM_STATE_RUNNING;
  snap->has_machine = true;
  board_fill_machine(&snap->machine);
  board_channel_stats_t channel;
  snap->has_channel = board_channel_stats(&channel);
  if (snap->has_channel) {
    snap->channel = (BOARD_PB(ControlChannelStats)){.connections = channel.connections,
                                                    .max_connections = channel.max_connections,
                                                    .refused_connections = channel.refused_connections,
                                                    .failed_handshakes = channel.failed_handshakes,
                                                    .idle_closed = channel.idle_closed,
                                                    .send_timeouts = channel.send_timeouts,
                                                    .refused_calls = channel.refused_calls,
                                                    .buffered_bytes = channel.buffered_bytes,
                                                    .budget_bytes = channel.budget_bytes};
  }
}

// Sends the snapshot if one is due. Returns false if the transport refused it.
static bool send_snapshot(rpc_call_t *call, board_scratch_t *s, watch_state_t *w, int64_t now) {
  if (now < w->next_snapshot_ns) return true;
  BOARD_PB(WatchHealthResponse) *resp = &s->msg.watch_health;
  resp->which_update = BOARD_PB(WatchHealthResponse_snapshot_tag);
  build_snapshot(s, w, &resp->update.snapshot);
  if (!board_send(call, s, BOARD_PB(WatchHealthResponse_fields), resp)) return false;
  w->next_snapshot_ns += w->period_ns;
  if (w->next_snapshot_ns <= now) w->next_snapshot_ns = now + w->period_ns;  // fell behind: no burst
  return true;
}

// Sends every event after the cursor. Returns false if the transport refused one.
static bool send_events(rpc_call_t *call, board_scratch_t *s, watch_state_t *w) {
  sup_event_t batch[HEALTH_EVENT_BATCH];
  BOARD_PB(WatchHealthResponse) *resp = &s->msg.watch_health;
  for (;;) {
    size_t n = sup_events_read(w->event_seq, batch, HEALTH_EVENT_BATCH, 0);
    for (size_t i = 0; i < n; i++) {
      resp->which_update = BOARD_PB(WatchHealthResponse_event_tag);
      board_pb_event(&batch[i], &resp->update.event);
      if (!board_send(call, s, BOARD_PB(WatchHealthResponse_fields), resp)) return false;
      w->event_seq = batch[i].seq;
    }
    if (n < HEALTH_EVENT_BATCH) return true;
  }
}

void board_watch_health_message(rpc_call_t *call, const uint8_t *msg, size_t len) {
  BOARD_PB(WatchHealthRequest) req;
  if (!board_decode(call, msg, len, BOARD_PB(WatchHealthRequest_fields), &req)) return;
  watch_state_t *w = calloc(1, sizeof(*w));
  if (!w) {
    board_finish(call, RPC_STATUS_RESOURCE_EXHAUSTED, "out of memory for the stream");
    return;
  }
  uint32_t period_ms = req.period_ms ? req.period_ms : HEALTH_DEFAULT_PERIOD_MS;
  if (period_ms < HEALTH_MIN_PERIOD_MS) period_ms = HEALTH_MIN_PERIOD_MS;
  w->period_ns = (int64_t)period_ms * 1000000;
  w->next_snapshot_ns = board_now_ns();
  w->event_seq = latest_event_seq();
  rpc_call_set_user(call, w);
  board_watch_health_poll(call);
}

void board_watch_health_poll(rpc_call_t *call) {
  watch_state_t *w = rpc_call_user(call);
  if (!w) return;
  int64_t now = board_now_ns();
  board_scratch_t *s = board_scratch_take();
  bool flowing = send_snapshot(call, s, w, now) && send_events(call, s, w);
  board_scratch_give(s);
  int64_t to_snapshot_ms = (w->next_snapshot_ns - now) / 1000000;
  int wait_ms = !flowing                                ? BOARD_POLL_MS
                : to_snapshot_ms < HEALTH_EVENT_POLL_MS ? (int)to_snapshot_ms
                                                        : HEALTH_EVENT_POLL_MS;
  rpc_call_poll_in(call, wait_ms > 0 ? wait_ms : 0);
}
