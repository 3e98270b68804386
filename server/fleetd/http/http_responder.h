// How a route's answer reaches the HTTP server's thread: the HttpResponder
// given to routes (http_exchange.h) turns each call into an ExchangeEvent
// in an ExchangeQueue, which wakes the server's poll() through its pipe. The
// server applies the events to the connection whose exchange they name.
// Internal to http_server.cc; apart so the threading can be read alone.
//
//   server thread                         any thread (the route's work)
//   ExchangeQueue queue;                  responder->StartStream(200, {...});
//   route(request, MakeResponder(...));   responder->Write(message);  // queue.Post
//   poll(..., queue.wake_fd(), ...);      responder->Finish();
//   for (ExchangeEvent& e : queue.Take()) apply e to the connection whose
//                                         exchange is e.exchange
//
// The responder, its exchange and the queue are shared_ptr-owned, so a route
// may keep a responder after the server stopped: its calls then do nothing.
#ifndef THREADFLEET_SERVER_FLEETD_HTTP_HTTP_RESPONDER_H_
#define THREADFLEET_SERVER_FLEETD_HTTP_HTTP_RESPONDER_H_

#include <atomic>
#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "server/fleetd/http/http_exchange.h"

namespace threadfleet::fleetd {

// One request's answer in progress, shared by its connection (server
// thread) and its responder (any thread).
class Exchange {
 public:
  // Runs the cancel callback (now or when set) unless the answer completed.
  // Server thread only.
  void Cancel();
  // The answer went out whole: the cancel callback is dropped, never run.
  void Complete();
  // Sets the callback; runs it at once if already cancelled.
  void OnCancel(std::function<void()> cancel);
  bool cancelled() const { return cancelled_.load(); }

  // Stream bytes Write queued that the server has not moved to its
  // connection yet, and bytes the connection holds unsent: together the
  // stream buffer bounded by max_stream_buffer_bytes.
  std::atomic<size_t> queued_bytes{0};
  std::atomic<size_t> unsent_bytes{0};

 private:
  std::mutex mu_;
  std::function<void()> cancel_;
  bool completed_ = false;
  std::atomic<bool> cancelled_{false};
};

struct ExchangeEvent {
  enum class Kind {
    kReply,        // status, headers, bytes (the body)
    kStartStream,  // status, headers
    kWrite,        // bytes: one chunk, framed
    kFinish,       // the last chunk
    kDropped,      // the responder was destroyed without answering
    kOverflow,     // Write passed max_stream_buffer_bytes
  };
  std::shared_ptr<Exchange> exchange = nullptr;
  Kind kind = Kind::kReply;
  int status = 0;
  HttpHeaders headers = {};
  std::string bytes = {};
};

// Events for the server's thread, and the pipe that wakes it. Thread-safe.
class ExchangeQueue {
 public:
  // Opens the wake pipe; ok() is false if it could not be made.
  ExchangeQueue();
  ~ExchangeQueue();
  ExchangeQueue(const ExchangeQueue&) = delete;
  ExchangeQueue& operator=(const ExchangeQueue&) = delete;

  bool ok() const { return wake_read_ >= 0; }
  // Readable when events (or Wake) arrived; drained by Take.
  int wake_fd() const { return wake_read_; }

  void Post(ExchangeEvent event);
  // Wakes the loop without an event (Stop).
  void Wake();
  // Every event posted so far, oldest first; drains the pipe.
  std::vector<ExchangeEvent> Take();

 private:
  std::mutex mu_;
  std::vector<ExchangeEvent> events_;
  int wake_read_ = -1;
  int wake_write_ = -1;
};

// The responder for one exchange. Write frames each chunk
// ("<hex size>\r\n<bytes>\r\n") and refuses once the exchange is cancelled
// or the stream buffer would pass `max_stream_buffer_bytes`.
[[nodiscard]] std::shared_ptr<HttpResponder> MakeResponder(std::shared_ptr<Exchange> exchange,
                                                           std::shared_ptr<ExchangeQueue> queue,
                                                           size_t max_stream_buffer_bytes);

}  // namespace threadfleet::fleetd

#endif  // THREADFLEET_SERVER_FLEETD_HTTP_HTTP_RESPONDER_H_
