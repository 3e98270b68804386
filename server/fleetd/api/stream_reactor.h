// StreamReactor: the base of the Fleet API's server-streaming calls. It owns
// the write side of one call: a bounded queue of messages, one write in
// flight at a time, and the call's end — after the queued messages (End) or
// at once (Abort, client cancel, queue overflow). Producers on any thread
// Push(); the reactor deletes itself once gRPC is done with the call and every
// Hold() was released, on the worker pool (never on a gRPC thread, never
// inside a producer's callback), after Cleanup().
//
// Example:
//
//   class TickReactor : public StreamReactor<Tick> { ... };
//   auto* r = new TickReactor(streams, pool, 1024);
//   r->Register();                       // Shutdown can now end it
//   r->Hold();
//   pool.Submit([r] { r->Push(Tick()); r->End(grpc::Status::OK); r->Release(); });
//   return r;                            // from the service method
#ifndef THREADFLEET_SERVER_FLEETD_API_STREAM_REACTOR_H_
#define THREADFLEET_SERVER_FLEETD_API_STREAM_REACTOR_H_

#include <atomic>
#include <cstddef>
#include <deque>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "grpcpp/support/server_callback.h"
#include "grpcpp/support/status.h"
#include "server/fleetd/api/fan_out.h"

namespace threadfleet::fleetd {

// What the service's Shutdown() sees of an open stream.
class OpenStream {
 public:
  virtual ~OpenStream() = default;
  // Ends the call with `status` at once, dropping queued messages.
  virtual void Abort(const grpc::Status& status) = 0;
  // Keep the stream from being deleted until Release().
  virtual void Hold() = 0;
  virtual void Release() = 0;
};

// The open streams of a service, so that Shutdown can end them. Thread-safe.
class OpenStreams {
 public:
  // Adds a stream; false (nothing added) once ShutdownAll has run.
  [[nodiscard]] bool Add(OpenStream* stream) {
    absl::MutexLock lock(&mu_);
    if (shut_down_) return false;
    streams_.insert(stream);
    return true;
  }
  void Remove(OpenStream* stream) {
    absl::MutexLock lock(&mu_);
    streams_.erase(stream);
  }
  // Counts a reactor that exists (registered or not), for WaitIdle.
  void Created() {
    absl::MutexLock lock(&mu_);
    ++reactors_;
  }
  void Deleted() {
    absl::MutexLock lock(&mu_);
    --reactors_;
  }
  // Aborts every open stream with `status`; streams added later are refused.
  void ShutdownAll(const grpc::Status& status) {
    std::vector<OpenStream*> open;
    {
      absl::MutexLock lock(&mu_);
      shut_down_ = true;
      for (OpenStream* s : streams_) {
        s->Hold();
        open.push_back(s);
      }
    }
    // Outside mu_: ending a call may run its OnDone, which calls Remove().
    for (OpenStream* s : open) {
      s->Abort(status);
      s->Release();
    }
  }
  // Waits up to `timeout` until every reactor is deleted; false if some
  // remain.
  bool WaitIdle(absl::Duration timeout) {
    absl::MutexLock lock(&mu_);
    return mu_.AwaitWithTimeout(absl::Condition(
                                    +[](int* n) { return *n == 0; }, &reactors_),
                                timeout);
  }

 private:
  absl::Mutex mu_;
  std::set<OpenStream*> streams_ ABSL_GUARDED_BY(mu_);
  int reactors_ ABSL_GUARDED_BY(mu_) = 0;
  bool shut_down_ ABSL_GUARDED_BY(mu_) = false;
};

template <typename Message>
class StreamReactor : public grpc::ServerWriteReactor<Message>, public OpenStream {
 public:
  // `max_queued`: messages waiting to be written beyond which Push() ends the
  // stream with RESOURCE_EXHAUSTED (the client reads too slowly).
  StreamReactor(OpenStreams& streams, WorkerPool& pool, size_t max_queued)
      : streams_(streams), pool_(pool), max_queued_(max_queued) {
    streams_.Created();
  }

  // Makes the stream visible to Shutdown; once fleetd shuts down, ends it at
  // once with UNAVAILABLE. Call once, from the service method.
  void Register() {
    if (!streams_.Add(this)) {
      Abort(grpc::Status(grpc::StatusCode::UNAVAILABLE, "fleetd is shutting down"));
    } else {
      registered_ = true;
    }
  }

  // Queues a message. False when the stream is ending (the message is
  // dropped) or the queue is full (then the stream ends with
  // RESOURCE_EXHAUSTED). Any thread; never blocks on the client.
  bool Push(Message message) {
    bool overflow = false;
    {
      absl::MutexLock lock(&mu_);
      if (end_status_.has_value()) return false;
      if (queue_.size() >= max_queued_) {
        overflow = true;
        queue_.clear();
        end_status_ = grpc::Status(
            grpc::StatusCode::RESOURCE_EXHAUSTED,
            "the client reads too slowly: more than " + std::to_string(max_queued_) + " messages queued");
      } else {
        queue_.push_back(std::move(message));
      }
    }
    if (overflow) OnEnding();
    Pump();
    return !overflow;
  }

  // Queues a message that supersedes every message still queued (a whole
  // state sent again after each change): those are dropped, so the queue
  // holds at most this one and a slow client gets fewer messages instead of
  // an overflow. False when the stream is ending (the message is dropped).
  // Any thread; never blocks on the client.
  bool PushLatest(Message message) {
    {
      absl::MutexLock lock(&mu_);
      if (end_status_.has_value()) return false;
      queue_.clear();
      queue_.push_back(std::move(message));
    }
    Pump();
    return true;
  }

  // Ends the call with `status` once the queued messages are written. Later
  // End/Abort calls change nothing.
  void End(const grpc::Status& status) { EndWith(status, /*drop=*/false); }
  void Abort(const grpc::Status& status) override { EndWith(status, /*drop=*/true); }

  // True once the stream is ending (End, Abort, cancel, overflow).
  bool ending() {
    absl::MutexLock lock(&mu_);
    return end_status_.has_value();
  }

  void Hold() override { holds_.fetch_add(1); }
  void Release() override {
    if (holds_.fetch_sub(1) == 1) {
      pool_.Submit([this] {
        Cleanup();
        OpenStreams& streams = streams_;
        delete this;
        streams.Deleted();
      });
    }
  }

 protected:
  ~StreamReactor() override = default;

  // Called once when the stream starts ending for any reason, on the thread
  // that ended it (possibly a producer's callback): must not block. E.g.
  // cancel the board stream that feeds it.
  virtual void OnEnding() {}
  // Called once on the worker pool before the reactor is deleted: release
  // what producers hold (e.g. unsubscribe from the event hub).
  virtual void Cleanup() {}

 private:
  void EndWith(const grpc::Status& status, bool drop) {
    {
      absl::MutexLock lock(&mu_);
      if (end_status_.has_value()) return;
      end_status_ = status;
      if (drop) queue_.clear();
    }
    OnEnding();
    Pump();
  }

  // Starts the next write, or the Finish once the queue is empty and the end
  // is decided. gRPC is called outside mu_, in case it reacts inline.
  void Pump() {
    Message* write = nullptr;
    std::optional<grpc::Status> finish;
    {
      absl::MutexLock lock(&mu_);
      if (writing_ || finish_called_) return;
      if (!queue_.empty()) {
        current_ = std::move(queue_.front());
        queue_.pop_front();
        writing_ = true;
        write = &current_;
      } else if (end_status_.has_value()) {
        finish_called_ = true;
        finish = *end_status_;
      } else {
        return;
      }
    }
    if (write != nullptr) {
      this->StartWrite(write);
    } else {
      this->Finish(*finish);
    }
  }

  void OnWriteDone(bool ok) override {
    bool ended_now = false;
    {
      absl::MutexLock lock(&mu_);
      writing_ = false;
      if (!ok && !end_status_.has_value()) {
        // The call is broken (client gone): nothing more can be written.
        end_status_ = grpc::Status(grpc::StatusCode::CANCELLED, "the client went away");
        queue_.clear();
        ended_now = true;
      } else if (!ok) {
        queue_.clear();
      }
    }
    if (ended_now) OnEnding();
    Pump();
  }

  void OnCancel() override { Abort(grpc::Status(grpc::StatusCode::CANCELLED, "the client cancelled")); }

  void OnDone() override {
    if (registered_) streams_.Remove(this);
    Release();
  }

  OpenStreams& streams_;
  WorkerPool& pool_;
  const size_t max_queued_;
  // Set by Register() on the service method's thread, before any OnDone.
  bool registered_ = false;
  // gRPC's own reference (released in OnDone) plus Hold() calls.
  std::atomic<int> holds_{1};

  absl::Mutex mu_;
  std::deque<Message> queue_ ABSL_GUARDED_BY(mu_);
  // The message being written; stable until OnWriteDone.
  Message current_;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  std::optional<grpc::Status> end_status_ ABSL_GUARDED_BY(mu_);
  bool finish_called_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace threadfleet::fleetd

#endif  // THREADFLEET_SERVER_FLEETD_API_STREAM_REACTOR_H_
