#include "server/fleetd/links/board_link.h"

#include <algorithm>
#include <cstdio>
#include <deque>
#include <iterator>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "server/fleetd/health/health.h"
#include "server/fleetd/links/grpc_response.h"

namespace threadfleet::fleetd {
namespace {

namespace pb = threadfleet::board::v1;
using CallKind = BoardConnections::CallKind;

// The board takes at most this many content bytes per WriteFile message
// (board.options: WriteFileRequest.data max_size).
constexpr size_t kWriteChunkBytes = 4096;

// How long a Reset may keep the board busy before the fresh VM runs: it ends
// every thread waiting up to three of its kill graces and half a second
// (firmware/supervisor/supervisor.c: kill_all_and_wait), and a board's grace
// is at most 10 s (SUP_KILL_GRACE_MAX_MS). A call without a deadline of its
// own gets this on top of LinkOptions::rpc_timeout.
constexpr absl::Duration kResetKillWait = absl::Milliseconds(3 * 10000 + 500);

std::chrono::steady_clock::duration ToSteady(absl::Duration d) {
  return std::chrono::duration_cast<std::chrono::steady_clock::duration>(absl::ToChronoNanoseconds(d));
}

// Why a connection ended, for LinkStatus::message, with a hint where the
// cause is usually the lab's set-up (board_connections.h lists the endings).
// `was_up`: the board had answered on it.
std::string ConnectionEndText(const absl::Status& status, bool was_up) {
  if (status.ok()) return "the board ended its health stream";
  const absl::string_view m = status.message();
  const std::string what = absl::StrCat(absl::StatusCodeToString(status.code()), ": ", m);
  if (absl::StartsWith(m, "TLS handshake failed") &&
      (absl::StrContains(m, "certificate") || absl::StrContains(m, "alert"))) {
    return absl::StrCat(
        "TLS handshake with the board failed (check that its certificate is issued by the lab CA "
        "and fleetd's by the CA the board trusts): ",
        what);
  }
  if (status.code() == absl::StatusCode::kDeadlineExceeded) {
    return absl::StrCat(what,
                        " (is the board frozen or overloaded, or is something else listening on its port?)");
  }
  if (absl::StartsWith(m, "TLS handshake failed")) {
    return absl::StrCat(
        "TLS handshake with the board did not complete (is the board overloaded, or is something else "
        "listening on its port?): ",
        what);
  }
  return absl::StrCat(was_up ? "connection lost: " : "connection failed: ", what);
}

// A StreamOutput call's handle: cancels the call while the connections live.
class OutputStreamHandle : public OutputStream {
 public:
  OutputStreamHandle(std::weak_ptr<BoardConnections> connections, uint64_t call)
      : connections_(std::move(connections)), call_(call) {}
  void Cancel() override {
    if (std::shared_ptr<BoardConnections> c = connections_.lock(); c != nullptr && call_ != 0)
      c->Cancel(call_);
  }

 private:
  // Weak: a handle dropped on the connections' thread must not end them.
  const std::weak_ptr<BoardConnections> connections_;
  const uint64_t call_;
};

google::protobuf::ArenaOptions FirstBlock(char* block, size_t size) {
  google::protobuf::ArenaOptions options;
  options.initial_block = block;
  options.initial_block_size = size;
  return options;
}

}  // namespace

absl::string_view BoardStateName(BoardState state) {
  switch (state) {
    case BoardState::kOffline:
      return "offline";
    case BoardState::kOnline:
      return "online";
    case BoardState::kDegraded:
      return "degraded";
  }
  return "unknown";
}

// ---------------------------------------------------------------------------
// BoardLink

namespace internal {

bool ConnectGate::TryAcquire() {
  absl::MutexLock lock(&mu_);
  if (in_flight_ >= capacity_) return false;
  ++in_flight_;
  return true;
}

void ConnectGate::Release() {
  absl::MutexLock lock(&mu_);
  if (in_flight_ > 0) --in_flight_;
}

int ConnectGate::in_flight() const {
  absl::MutexLock lock(&mu_);
  return in_flight_;
}

}  // namespace internal

std::shared_ptr<BoardLink> BoardLink::Create(std::string name, std::string address,
                                             const LinkOptions& options, LinkListener* listener,
                                             std::shared_ptr<BoardConnections> connections,
                                             std::shared_ptr<internal::ConnectGate> gate) {
  return std::shared_ptr<BoardLink>(new BoardLink(std::move(name), std::move(address), options, listener,
                                                  std::move(connections), std::move(gate)));
}

BoardLink::BoardLink(std::string name, std::string address, const LinkOptions& options,
                     LinkListener* listener, std::shared_ptr<BoardConnections> connections,
                     std::shared_ptr<internal::ConnectGate> gate)
    : name_(std::move(name)),
      address_(std::move(address)),
      options_(options),
      listener_(listener),
      connections_(std::move(connections)),
      gate_(std::move(gate)),
      arena_(FirstBlock(arena_block_, kArenaBlockBytes)) {
  status_.message = "connecting";
  status_.since = absl::Now();
  backoff_ = options_.initial_backoff;
}

BoardLink::~BoardLink() { Stop(); }

LinkStatus BoardLink::status() const {
  absl::MutexLock lock(&mu_);
  return status_;
}

void BoardLink::Start() {
  absl::MutexLock lock(&mu_);
  if (started_ || stopping_) return;
  started_ = true;
  next_attempt_ = Clock::now();
  UpdateTickDueLocked();
}

void BoardLink::ReleaseSlotLocked() {
  if (!holds_slot_) return;
  holds_slot_ = false;
  if (gate_ != nullptr) gate_->Release();
}

void BoardLink::UpdateTickDueLocked() {
  Clock::time_point due = Clock::time_point::max();
  if (!started_ || stopping_) {
    due = Clock::time_point::max();
  } else if (connection_ != 0) {
    // An abandoned connection's end schedules the next attempt.
    if (!abandoned_) due = activity_ + ToSteady(options_.offline_after);
  } else if (!attempt_queued_) {
    due = next_attempt_;
  }
  tick_due_.store(due.time_since_epoch().count(), std::memory_order_relaxed);
}

bool BoardLink::Tick() {
  // Most ticks of most links find nothing to do; they cost one clock read.
  if (Clock::now().time_since_epoch().count() < tick_due_.load(std::memory_order_relaxed)) return false;
  absl::MutexLock notify(&notify_mu_);
  Change change;
  bool due = false;
  {
    absl::MutexLock lock(&mu_);
    if (!started_ || stopping_) return false;
    const Clock::time_point now = Clock::now();
    if (connection_ != 0) {
      if (!abandoned_ && now - activity_ > ToSteady(options_.offline_after)) {
        abandoned_ = true;
        up_ = false;
        ReleaseSlotLocked();
        const std::string silent =
            absl::StrCat(got_snapshot_ ? "no health snapshot for " : "no health snapshot within ",
                         absl::FormatDuration(options_.offline_after), got_snapshot_ ? "" : " of connecting");
        change = SetStateLocked(BoardState::kOffline, silent);
        // Its calls end now, saying so, instead of at their deadlines.
        connections_->Close(connection_,
                            absl::UnavailableError(absl::StrCat("the board stopped answering: ", silent)));
      }
    } else if (!attempt_queued_ && now >= next_attempt_) {
      attempt_queued_ = true;
      due = true;
    }
    UpdateTickDueLocked();
  }
  Deliver(change);
  return due;
}

bool BoardLink::Connect() {
  absl::MutexLock lock(&mu_);
  attempt_queued_ = false;
  if (!started_ || stopping_ || connection_ != 0) return false;
  holds_slot_ = true;
  const uint64_t generation = ++generation_;
  abandoned_ = false;
  got_snapshot_ = false;
  info_done_ = false;
  up_ = false;
  degraded_.reset();
  activity_ = Clock::now();
  // Their callbacks take mu_, so none runs before this returns.
  connection_ = connections_->Connect(
      {.address = address_,
       .connect_timeout = options_.connect_timeout,
       .max_calls_in_flight = static_cast<size_t>(std::max(options_.max_calls_in_flight, 1)),
       .max_queued_calls = static_cast<size_t>(std::max(options_.max_queued_calls, 0)),
       .max_open_streams = static_cast<size_t>(std::max(options_.max_open_streams, 0))},
      [this, generation](const absl::Status& why) { OnConnectionClosed(generation, why); });
  pending_ += 3;  // on_closed, the health stream's and the info call's done

  pb::WatchHealthRequest watch;
  watch.set_period_ms(static_cast<uint32_t>(absl::ToInt64Milliseconds(options_.snapshot_period)));
  connections_->Call(
      connection_,
      {.method = "WatchHealth",
       .body = FrameGrpcMessage(watch.SerializeAsString()),
       .kind = CallKind::kControl},
      [this, generation](absl::string_view bytes) { return OnHealthMessage(generation, bytes); },
      [this, generation](const absl::Status& status) { OnHealthDone(generation, status); });

  // Info comes with every connection (a restarted board may run other
  // firmware), so readers of the board's state never call the board.
  auto info = std::make_shared<pb::GetInfoResponse>();
  const absl::Time deadline = absl::Now() + options_.rpc_timeout;
  connections_->Call(
      connection_,
      {.method = "GetInfo",
       .body = FrameGrpcMessage(""),
       .kind = CallKind::kControl,
       .deadline = deadline,
       .give_up = deadline + options_.deadline_slack},
      [info](absl::string_view bytes) {
        if (!info->ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
          return absl::InternalError("the board's GetInfoResponse does not parse");
        }
        return absl::OkStatus();
      },
      [this, generation, info](const absl::Status& status) {
        if (status.ok()) {
          OnInfoDone(generation, info->info());
        } else {
          OnInfoDone(generation, status);
        }
      });
  UpdateTickDueLocked();
  return true;
}

void BoardLink::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    up_ = false;
    ReleaseSlotLocked();
    if (connection_ != 0) connections_->Close(connection_, absl::CancelledError("the link was removed"));
    mu_.Await(absl::Condition(this, &BoardLink::Idle));
    UpdateTickDueLocked();
  }
  {
    // A Tick() may still be delivering a state change; wait for it.
    absl::MutexLock flush(&notify_mu_);
  }
}

absl::Status BoardLink::OnHealthMessage(uint64_t generation, absl::string_view bytes) {
  auto* message = google::protobuf::Arena::CreateMessage<pb::WatchHealthResponse>(&arena_);
  const bool parsed = message->ParseFromArray(bytes.data(), static_cast<int>(bytes.size()));
  if (parsed) {
    absl::MutexLock notify(&notify_mu_);
    Change change;
    bool current = false;
    {
      absl::MutexLock lock(&mu_);
      current = generation == generation_ && !abandoned_ && !stopping_;
      if (current && message->has_snapshot()) {
        activity_ = Clock::now();
        status_.last_snapshot = absl::Now();
        got_snapshot_ = true;
        degraded_ = DegradedReason(message->snapshot());
        change = UpdateStateLocked();
        UpdateTickDueLocked();
      }
    }
    Deliver(change);
    if (current && listener_ != nullptr) {
      if (message->has_snapshot()) listener_->OnSnapshot(name_, message->snapshot());
      if (message->has_event()) listener_->OnEvent(name_, message->event());
    }
  }
  arena_.Reset();
  if (!parsed) return absl::InternalError("the board sent a WatchHealthResponse that does not parse");
  return absl::OkStatus();
}

void BoardLink::OnHealthDone(uint64_t generation, const absl::Status& status) {
  {
    absl::MutexLock lock(&mu_);
    // The health stream is what tells the board is up: without it the
    // connection goes, and the link starts over.
    if (generation == generation_ && connection_ != 0 && !stopping_) {
      connections_->Close(connection_,
                          status.ok() ? absl::UnavailableError("the board ended its health stream") : status);
    }
  }
  CallEnded();
}

void BoardLink::OnInfoDone(uint64_t generation, absl::StatusOr<pb::BoardInfo> info) {
  {
    absl::MutexLock notify(&notify_mu_);
    Change change;
    {
      absl::MutexLock lock(&mu_);
      if (generation == generation_ && !abandoned_ && !stopping_) {
        info_done_ = true;
        if (info.ok()) {
          status_.info = std::make_shared<const pb::BoardInfo>(*std::move(info));
        } else {
          std::fprintf(stderr, "fleetd: board=%s no board info on this connection: %s\n", name_.c_str(),
                       info.status().ToString().c_str());
        }
        change = UpdateStateLocked();
      }
    }
    Deliver(change);
  }
  CallEnded();
}

void BoardLink::OnConnectionClosed(uint64_t generation, const absl::Status& why) {
  {
    absl::MutexLock notify(&notify_mu_);
    Change change;
    {
      absl::MutexLock lock(&mu_);
      if (generation == generation_) {
        const bool was_up = up_;
        connection_ = 0;
        up_ = false;
        ReleaseSlotLocked();
        if (!stopping_) {
          next_attempt_ = Clock::now() + ToSteady(NextBackoffLocked());
          // After the watchdog's close, its message says more.
          if (!abandoned_) change = SetStateLocked(BoardState::kOffline, ConnectionEndText(why, was_up));
        }
        UpdateTickDueLocked();
      }
    }
    Deliver(change);
  }
  CallEnded();
}

BoardLink::Change BoardLink::UpdateStateLocked() {
  if (!got_snapshot_ || !info_done_) return {};
  if (!up_) {
    // The board is up: calls may start, the attempt's slot goes back.
    up_ = true;
    ++status_.connections;
    backoff_ = options_.initial_backoff;
    ReleaseSlotLocked();
  }
  return degraded_ ? SetStateLocked(BoardState::kDegraded, *degraded_)
                   : SetStateLocked(BoardState::kOnline, "");
}

void BoardLink::CallEnded() {
  absl::MutexLock lock(&mu_);
  --pending_;
}

absl::Duration BoardLink::NextBackoffLocked() {
  const double jitter = absl::Uniform(rng_, 1.0 - options_.backoff_jitter, 1.0 + options_.backoff_jitter);
  const absl::Duration delay = backoff_ * jitter;
  backoff_ = std::min(backoff_ * options_.backoff_multiplier, options_.max_backoff);
  return delay;
}

BoardLink::Change BoardLink::SetStateLocked(BoardState state, std::string message) {
  if (state == status_.state && message == status_.message) return {};
  if (state != status_.state) status_.since = absl::Now();
  status_.state = state;
  status_.message = std::move(message);
  return {true, status_};
}

void BoardLink::Deliver(const Change& change) {
  if (change.changed && listener_ != nullptr) listener_->OnStateChange(name_, change.status);
}

// ---- BoardClient

absl::Duration AnswerReturnMargin(absl::Duration timeout) {
  return std::clamp(timeout / 10, absl::Milliseconds(20), absl::Milliseconds(250));
}

absl::Status BoardLink::CallStatus(absl::string_view method, const absl::Status& status,
                                   absl::Duration timeout, bool callers_deadline) const {
  if (status.ok()) return status;
  if (status.code() != absl::StatusCode::kDeadlineExceeded) {
    return absl::Status(status.code(), absl::StrCat("board ", name_, ": ", method, ": ", status.message()));
  }
  // The board's own words ("Deadline Exceeded" from its transport) add
  // nothing; a handler's (Exec: "killed it") do.
  std::string said(status.message());
  if (said.empty() || said == "Deadline Exceeded") said.clear();
  return absl::DeadlineExceededError(absl::StrCat(
      "board ", name_, ": ", method, ": no answer within ", absl::FormatDuration(timeout),
      callers_deadline ? " (the caller's deadline)"
                       : " (fleetd's default for calls without a deadline, LinkOptions.rpc_timeout)",
      said.empty() ? "" : ": ", said));
}

uint64_t BoardLink::StartCall(absl::string_view method, std::string body,
                              std::shared_ptr<const std::string> chunked, CallKind kind, CallOptions options,
                              absl::Duration default_timeout, BoardConnections::MessageFn on_message,
                              StatusDone done) {
  const absl::Time now = absl::Now();
  const bool callers_deadline = options.deadline != absl::InfiniteFuture();
  absl::Time deadline = options.deadline;
  if (!callers_deadline && default_timeout != absl::InfiniteDuration()) deadline = now + default_timeout;
  uint64_t connection = 0;
  absl::Status refused;
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) {
      refused = absl::CancelledError(absl::StrCat("board ", name_, ": ", method, ": the link was removed"));
    } else if (!up_) {
      refused = absl::UnavailableError(absl::StrCat(
          "board ", name_, ": ", method,
          ": the board is offline: ", status_.message.empty() ? "not connected" : status_.message));
    } else {
      connection = connection_;
      ++pending_;
    }
  }
  if (!refused.ok()) {
    done(std::move(refused));
    return 0;
  }
  const absl::Duration timeout = deadline - now;
  // The board answers by its deadline; its answer still has to reach the
  // caller through fleetd, so a caller's deadline reaches the board a little
  // earlier (a loaded host took over 20 ms for that way back).
  const absl::Time board_deadline = callers_deadline ? deadline - AnswerReturnMargin(timeout) : deadline;
  return connections_->Call(
      connection,
      {.method = std::string(method),
       .body = std::move(body),
       .kind = kind,
       .deadline = board_deadline,
       .give_up = deadline == absl::InfiniteFuture() ? deadline : deadline + options_.deadline_slack,
       .chunked = std::move(chunked),
       .chunk_bytes = kWriteChunkBytes,
       .chunk_field = pb::WriteFileRequest::kDataFieldNumber},
      std::move(on_message),
      [this, method = std::string(method), timeout, callers_deadline,
       done = std::move(done)](const absl::Status& status) {
        done(CallStatus(method, status, timeout, callers_deadline));
        CallEnded();
      });
}

template <typename Response>
void BoardLink::Unary(absl::string_view method, const google::protobuf::Message& request, CallOptions options,
                      absl::Duration default_timeout, Done<Response> done) {
  // Shared by the message and done callbacks, both on the connections'
  // thread, one after the other.
  struct Answer {
    Response response;
    int messages = 0;
  };
  auto answer = std::make_shared<Answer>();
  StartCall(
      method, FrameGrpcMessage(request.SerializeAsString()), nullptr, CallKind::kCall, options,
      default_timeout,
      [answer](absl::string_view bytes) {
        if (++answer->messages > 1) return absl::InternalError("the board answered more than one message");
        if (!answer->response.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
          return absl::InternalError(
              absl::StrCat("the board's ", Response::descriptor()->name(), " does not parse"));
        }
        return absl::OkStatus();
      },
      [answer, method = std::string(method), done = std::move(done)](absl::Status status) {
        if (status.ok() && answer->messages != 1) {
          status = absl::InternalError(absl::StrCat("board: ", method, ": no answer message"));
        }
        if (!status.ok()) return done(std::move(status));
        done(std::move(answer->response));
      });
}

void BoardLink::GetInfo(CallOptions options, Done<pb::BoardInfo> done) {
  Unary<pb::GetInfoResponse>("GetInfo", pb::GetInfoRequest(), options, options_.rpc_timeout,
                             [done = std::move(done)](absl::StatusOr<pb::GetInfoResponse> r) {
                               if (!r.ok()) return done(r.status());
                               done(std::move(*r->mutable_info()));
                             });
}

void BoardLink::ListFiles(const pb::ListFilesRequest& request, CallOptions options,
                          Done<pb::ListFilesResponse> done) {
  Unary<pb::ListFilesResponse>("ListFiles", request, options, options_.rpc_timeout, std::move(done));
}

void BoardLink::WriteFile(const pb::WriteFileHeader& header, std::shared_ptr<const std::string> content,
                          CallOptions options, Done<pb::WriteFileResponse> done) {
  pb::WriteFileRequest request;
  *request.mutable_header() = header;
  request.mutable_header()->set_expected_size_bytes(content->size());
  struct Answer {
    pb::WriteFileResponse response;
    int messages = 0;
  };
  auto answer = std::make_shared<Answer>();
  // Flash writes are slow: a second more per 64 KiB.
  const absl::Duration timeout =
      options_.rpc_timeout + absl::Seconds(static_cast<int64_t>(content->size() >> 16));
  StartCall(
      "WriteFile", FrameGrpcMessage(request.SerializeAsString()), std::move(content), CallKind::kCall,
      options, timeout,
      [answer](absl::string_view bytes) {
        ++answer->messages;
        if (!answer->response.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
          return absl::InternalError("the board's WriteFileResponse does not parse");
        }
        return absl::OkStatus();
      },
      [answer, done = std::move(done)](absl::Status status) {
        if (status.ok() && answer->messages != 1)
          status = absl::InternalError("WriteFile: no answer message");
        if (!status.ok()) return done(std::move(status));
        done(std::move(answer->response));
      });
}

void BoardLink::ReadFile(std::string path, CallOptions options, Done<std::string> done) {
  pb::ReadFileRequest request;
  request.set_path(std::move(path));
  auto content = std::make_shared<std::string>();
  StartCall(
      "ReadFile", FrameGrpcMessage(request.SerializeAsString()), nullptr, CallKind::kCall, options,
      options_.rpc_timeout,
      [content](absl::string_view bytes) {
        pb::ReadFileResponse chunk;
        if (!chunk.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
          return absl::InternalError("the board's ReadFileResponse does not parse");
        }
        *content += chunk.data();
        return absl::OkStatus();
      },
      [content, done = std::move(done)](absl::Status status) {
        if (!status.ok()) return done(std::move(status));
        done(std::move(*content));
      });
}

void BoardLink::DeleteFile(std::string path, CallOptions options, StatusDone done) {
  pb::DeleteFileRequest request;
  request.set_path(std::move(path));
  Unary<pb::DeleteFileResponse>(
      "DeleteFile", request, options, options_.rpc_timeout,
      [done = std::move(done)](absl::StatusOr<pb::DeleteFileResponse> r) { done(r.status()); });
}

void BoardLink::StartProgram(const pb::StartProgramRequest& request, CallOptions options,
                             Done<pb::StartProgramResponse> done) {
  Unary<pb::StartProgramResponse>("StartProgram", request, options, options_.rpc_timeout, std::move(done));
}

void BoardLink::StartThread(const pb::StartThreadRequest& request, CallOptions options,
                            Done<pb::StartThreadResponse> done) {
  Unary<pb::StartThreadResponse>("StartThread", request, options, options_.rpc_timeout, std::move(done));
}

void BoardLink::KillThread(uint32_t thread_id, absl::Duration grace, CallOptions options,
                           Done<pb::ThreadInfo> done) {
  pb::KillThreadRequest request;
  request.set_thread_id(thread_id);
  request.set_grace_ms(static_cast<uint32_t>(absl::ToInt64Milliseconds(grace)));
  // The board waits up to two grace periods (soft, then hard kill).
  Unary<pb::KillThreadResponse>("KillThread", request, options, options_.rpc_timeout + 2 * grace,
                                [done = std::move(done)](absl::StatusOr<pb::KillThreadResponse> r) {
                                  if (!r.ok()) return done(r.status());
                                  done(std::move(*r->mutable_thread()));
                                });
}

void BoardLink::KillProgram(uint32_t program_id, absl::Duration grace, CallOptions options,
                            Done<pb::KillProgramResponse> done) {
  pb::KillProgramRequest request;
  request.set_program_id(program_id);
  request.set_grace_ms(static_cast<uint32_t>(absl::ToInt64Milliseconds(grace)));
  Unary<pb::KillProgramResponse>("KillProgram", request, options, options_.rpc_timeout + 2 * grace,
                                 std::move(done));
}

void BoardLink::ListThreads(const pb::ListThreadsRequest& request, CallOptions options,
                            Done<pb::ListThreadsResponse> done) {
  Unary<pb::ListThreadsResponse>("ListThreads", request, options, options_.rpc_timeout, std::move(done));
}

void BoardLink::Exec(std::string source, CallOptions options, Done<pb::ExecResponse> done) {
  pb::ExecRequest request;
  request.set_source(std::move(source));
  Unary<pb::ExecResponse>("Exec", request, options, options_.rpc_timeout, std::move(done));
}

void BoardLink::Reset(const pb::ResetRequest& request, CallOptions options, Done<pb::ResetResponse> done) {
  Unary<pb::ResetResponse>("Reset", request, options, options_.rpc_timeout + kResetKillWait, std::move(done));
}

void BoardLink::GetMachine(CallOptions options, Done<pb::MachineState> done) {
  Unary<pb::GetMachineResponse>("GetMachine", pb::GetMachineRequest(), options, options_.rpc_timeout,
                                [done = std::move(done)](absl::StatusOr<pb::GetMachineResponse> r) {
                                  if (!r.ok()) return done(r.status());
                                  done(std::move(*r->mutable_machine()));
                                });
}

void BoardLink::SetPin(const pb::SetPinRequest& request, CallOptions options, Done<pb::PinState> done) {
  Unary<pb::SetPinResponse>("SetPin", request, options, options_.rpc_timeout,
                            [done = std::move(done)](absl::StatusOr<pb::SetPinResponse> r) {
                              if (!r.ok()) return done(r.status());
                              done(std::move(*r->mutable_pin()));
                            });
}

void BoardLink::SetAdc(const pb::SetAdcRequest& request, CallOptions options, Done<pb::AdcState> done) {
  Unary<pb::SetAdcResponse>("SetAdc", request, options, options_.rpc_timeout,
                            [done = std::move(done)](absl::StatusOr<pb::SetAdcResponse> r) {
                              if (!r.ok()) return done(r.status());
                              done(std::move(*r->mutable_adc()));
                            });
}

std::shared_ptr<OutputStream> BoardLink::StreamOutput(const pb::StreamOutputRequest& request,
                                                      CallOptions options, OutputChunkFn on_chunk,
                                                      StatusDone on_done) {
  // A follow lasts as long as the program: no deadline unless the caller
  // has one, and counted apart from the calls that end on their own.
  const bool follow = request.follow();
  const uint64_t call = StartCall(
      "StreamOutput", FrameGrpcMessage(request.SerializeAsString()), nullptr,
      follow ? CallKind::kStream : CallKind::kCall, options,
      follow ? absl::InfiniteDuration() : options_.rpc_timeout,
      [on_chunk = std::move(on_chunk)](absl::string_view bytes) {
        pb::StreamOutputResponse response;
        if (!response.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
          return absl::InternalError("the board's StreamOutputResponse does not parse");
        }
        if (on_chunk) on_chunk(response.chunk());
        return absl::OkStatus();
      },
      [on_done = std::move(on_done)](absl::Status status) {
        if (on_done) on_done(std::move(status));
      });
  return std::make_shared<OutputStreamHandle>(connections_, call);
}

// ---------------------------------------------------------------------------
// LinkManager

LinkManager::LinkManager(LinkCredentials credentials, LinkOptions options, LinkListener* listener,
                         ResolveFn resolve)
    : options_(options),
      listener_(listener),
      connections_(std::make_shared<BoardConnections>(credentials, std::move(resolve))),
      gate_(std::make_shared<internal::ConnectGate>(options.max_connecting)) {
  timer_ = std::thread([this] { RunTimer(); });
}

LinkManager::~LinkManager() {
  std::map<std::string, std::shared_ptr<BoardLink>, std::less<>> links;
  std::vector<std::shared_ptr<BoardLink>> retired;
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    links.swap(links_);
  }
  timer_.join();
  for (auto& [name, link] : links) link->Stop();
  {
    absl::MutexLock lock(&mu_);
    retired.swap(retired_);
  }
  // Destroyed here, outside mu_.
}

absl::Status LinkManager::Add(std::string name, std::string address) {
  if (name.empty()) return absl::InvalidArgumentError("a board needs a name");
  if (address.empty()) return absl::InvalidArgumentError(absl::StrCat("board ", name, " needs an address"));
  absl::MutexLock lock(&mu_);
  if (stopping_) return absl::FailedPreconditionError("the link manager is shutting down");
  if (links_.contains(name)) {
    return absl::AlreadyExistsError(
        absl::StrCat("board ", name, " already has a link (", links_.find(name)->second->address(), ")"));
  }
  std::shared_ptr<BoardLink> link =
      BoardLink::Create(name, std::move(address), options_, listener_, connections_, gate_);
  // Due at once; the timer thread connects it when a slot is free.
  link->Start();
  links_.emplace(std::move(name), std::move(link));
  return absl::OkStatus();
}

absl::Status LinkManager::Remove(absl::string_view name) {
  std::shared_ptr<BoardLink> link;
  {
    absl::MutexLock lock(&mu_);
    auto it = links_.find(name);
    if (it == links_.end()) return absl::NotFoundError(absl::StrCat("no board named ", name));
    link = it->second;
    links_.erase(it);
  }
  link->Stop();
  absl::MutexLock lock(&mu_);
  // The timer thread destroys it once nobody else holds it (ReapRetired).
  retired_.push_back(std::move(link));
  return absl::OkStatus();
}

std::shared_ptr<BoardLink> LinkManager::Get(absl::string_view name) const {
  absl::MutexLock lock(&mu_);
  auto it = links_.find(name);
  return it == links_.end() ? nullptr : it->second;
}

std::shared_ptr<BoardClient> LinkManager::Client(absl::string_view name) const { return Get(name); }

std::optional<LinkStatus> LinkManager::Status(absl::string_view name) const {
  std::shared_ptr<BoardLink> link = Get(name);
  if (link == nullptr) return std::nullopt;
  return link->status();
}

std::map<std::string, LinkStatus> LinkManager::Statuses() const {
  std::vector<std::shared_ptr<BoardLink>> links;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [name, link] : links_) links.push_back(link);
  }
  std::map<std::string, LinkStatus> out;
  for (const auto& link : links) out.emplace(link->name(), link->status());
  return out;
}

void LinkManager::ReapRetired() {
  std::vector<std::shared_ptr<BoardLink>> unused;
  {
    absl::MutexLock lock(&mu_);
    // Nobody can Get() a retired link, so a use count of 1 (this list) stays 1.
    auto held = std::partition(retired_.begin(), retired_.end(),
                               [](const std::shared_ptr<BoardLink>& l) { return l.use_count() > 1; });
    std::move(held, retired_.end(), std::back_inserter(unused));
    retired_.erase(held, retired_.end());
  }
  // Destroyed here, outside mu_.
}

void LinkManager::RunTimer() {
  pthread_setname_np(pthread_self(), "link-timer");
  // Links whose attempt is due, in the order they became due. Only this
  // thread touches it.
  std::deque<std::shared_ptr<BoardLink>> due;
  for (;;) {
    std::vector<std::shared_ptr<BoardLink>> links;
    {
      absl::MutexLock lock(&mu_);
      mu_.AwaitWithTimeout(absl::Condition(&stopping_), options_.tick);
      if (stopping_) return;
      links.reserve(links_.size());
      for (const auto& [name, link] : links_) links.push_back(link);
    }
    for (const auto& link : links) {
      if (link->Tick()) due.push_back(link);
    }
    links.clear();
    // A removed link's Connect() returns false and gives the slot back.
    while (!due.empty() && gate_->TryAcquire()) {
      std::shared_ptr<BoardLink> link = std::move(due.front());
      due.pop_front();
      if (!link->Connect()) gate_->Release();
    }
    ReapRetired();
  }
}

}  // namespace threadfleet::fleetd
