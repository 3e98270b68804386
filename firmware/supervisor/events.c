// The board's event log: a fixed ring of the newest events, read by sequence
// number so a watcher never misses one it can still get.
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "firmware/supervisor/internal.h"

#define EVENT_RING 256

static sup_event_t ring[EVENT_RING];
static uint64_t last_seq;  // sched

void sup_event_emit(sup_event_kind_t kind, uint32_t thread_id, uint32_t program_id, const uint32_t *cycle,
                    size_t cycle_len, const char *fmt, ...) {
  sup_event_t *e = &ring[last_seq % EVENT_RING];
  memset(e, 0, sizeof(*e));
  e->seq = ++last_seq;
  e->time_us = sup_uptime_us(rt_now_ns());
  e->kind = kind;
  e->thread_id = thread_id;
  e->program_id = program_id;
  if (cycle_len > SUP_MAX_CYCLE) cycle_len = SUP_MAX_CYCLE;
  if (cycle) memcpy(e->cycle, cycle, cycle_len * sizeof(*cycle));
  e->cycle_len = (uint32_t)cycle_len;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(e->message, sizeof(e->message), fmt, ap);
  va_end(ap);
  pthread_cond_broadcast(&sup.changed);
}

size_t sup_events_read(uint64_t after_seq, sup_event_t *out, size_t max, int64_t timeout_ms) {
  int64_t deadline = rt_now_ns() + timeout_ms * 1000000;
  rt_sched_lock();
  while (last_seq <= after_seq && timeout_ms > 0 && rt_now_ns() < deadline) {
    rt_sched_wait_until(&sup.changed, deadline);
  }
  uint64_t first = last_seq > EVENT_RING ? last_seq - EVENT_RING + 1 : 1;
  if (after_seq + 1 > first) first = after_seq + 1;
  size_t n = 0;
  for (uint64_t seq = first; seq <= last_seq && n < max; seq++) out[n++] = ring[(seq - 1) % EVENT_RING];
  rt_sched_unlock();
  return n;
}
