// libFuzzer: raw client bytes (as after the TLS layer) into an HTTP/2 gRPC
// connection serving a small service of every call shape. Seeds in
// fuzz-corpus/h2server/ are byte streams recorded from gRPC C++ clients.
#include <cstddef>
#include <cstdint>

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
void SleepPoll(rpc_call_t *call) { rpc_call_finish(call, RPC_STATUS_OK, nullptr); }

const rpc_method_t kMethods[] = {
    {"Echo", false, false, Echo, nullptr, nullptr, nullptr},
    {"Count", false, true, Count, nullptr, CountPoll, nullptr},
    {"Sum", true, false, SumMessage, SumHalfClose, nullptr, nullptr},
    {"Sleep", false, false, Sleep, nullptr, SleepPoll, nullptr},
};
const rpc_service_t kService = {"threadfleet.test.v1.Test", kMethods, sizeof kMethods / sizeof kMethods[0]};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  rpc_h2_conn_t *conn = rpc_h2_conn_new(&kService, rpc_transport_t{}, "fuzz", nullptr);
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
  return 0;
}
