// libFuzzer: raw client bytes (as after the TLS layer) into an HTTP/2 gRPC
// connection serving a small service of every call shape, under a small byte
// budget (16 KiB: messages that span reads, queues that grow, handler charges
// run into it). Every byte taken from the budget must be back once the
// connection is freed. Seeds in fuzz-corpus/h2server/ are byte streams
// recorded from gRPC C++ clients (h2server_test with THREADFLEET_H2_RECORD).
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "firmware/rpc/transport/h2server.h"

namespace {

void Echo(rpc_call_t *call, const uint8_t *msg, size_t len) {
  rpc_call_send(call, msg, len);
  rpc_call_finish(call, RPC_STATUS_OK, nullptr);
}

// Count: a server stream of as many messages as the request's first byte.
void CountPoll(rpc_call_t *call) {
  auto left = reinterpret_cast<uintptr_t>(rpc_call_user(call));
  const uint8_t msg[3] = {1, 2, 3};
  while (left > 0 && rpc_call_send(call, msg, sizeof msg)) left--;
  rpc_call_set_user(call, reinterpret_cast<void *>(left));
  if (left == 0) rpc_call_finish(call, RPC_STATUS_OK, "done \xff%");
}
void Count(rpc_call_t *call, const uint8_t *msg, size_t len) {
  rpc_call_set_user(call, reinterpret_cast<void *>(static_cast<uintptr_t>(len > 0 ? msg[0] : 0)));
  CountPoll(call);
}

void SumMessage(rpc_call_t *call, const uint8_t *msg, size_t len) {
  rpc_call_set_user(call, reinterpret_cast<void *>(reinterpret_cast<uintptr_t>(rpc_call_user(call)) + len));
}
void SumHalfClose(rpc_call_t *call) {
  auto total = reinterpret_cast<uintptr_t>(rpc_call_user(call));
  rpc_call_send(call, reinterpret_cast<const uint8_t *>(&total), sizeof total);
  rpc_call_finish(call, RPC_STATUS_OK, nullptr);
}

void Sleep(rpc_call_t *call, const uint8_t *msg, size_t len) { rpc_call_poll_in(call, len > 0 ? 0 : 1000); }

// Charge: charges 256 bytes per request byte to the budget, gives half back,
// answers with what it charged.
void Charge(rpc_call_t *call, const uint8_t *msg, size_t len) {
  size_t bytes = len * 256;
  if (!rpc_call_charge(call, bytes)) return;  // the call ended RESOURCE_EXHAUSTED
  rpc_call_release(call, bytes / 2);
  rpc_call_send(call, reinterpret_cast<const uint8_t *>(&bytes), sizeof bytes);
  rpc_call_finish(call, RPC_STATUS_OK, nullptr);
}
void SleepPoll(rpc_call_t *call) { rpc_call_finish(call, RPC_STATUS_OK, nullptr); }

const rpc_method_t kMethods[] = {
    {"Echo", false, false, Echo, nullptr, nullptr, nullptr},
    {"Count", false, true, Count, nullptr, CountPoll, nullptr},
    {"Sum", true, false, SumMessage, SumHalfClose, nullptr, nullptr},
    {"Sleep", false, false, Sleep, nullptr, SleepPoll, nullptr},
    {"Charge", false, false, Charge, nullptr, nullptr, nullptr},
};
const rpc_service_t kService = {"threadfleet.test.v1.Test", kMethods, sizeof kMethods / sizeof kMethods[0]};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static rpc_channel_budget_t *budget = rpc_channel_budget_new(16 * 1024, nullptr, nullptr);
  rpc_h2_limits_t limits = {};
  limits.budget = budget;
  rpc_h2_conn_t *conn = rpc_h2_conn_new(&kService, rpc_transport_t{}, "fuzz", &limits);
  if (conn == nullptr) return 0;
  // Bytes arrive in reads of varying size, as from a socket.
  size_t off = 0, step = 1;
  while (off < size) {
    size_t n = size - off < step ? size - off : step;
    if (!rpc_h2_conn_feed(conn, data + off, n)) break;
    off += n;
    step = step * 7 % 4096 + 1;
  }
  rpc_h2_conn_free(conn);
  if (rpc_channel_budget_used(budget) != 0) abort();  // a byte taken and never given back
  return 0;
}
