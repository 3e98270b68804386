#include "server/fleetd/links/board_link.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <deque>
#include <iterator>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "server/fleetd/health/health.h"

namespace threadfleet::fleetd {
namespace {

namespace pb = threadfleet::board::v1;

// The board takes at most this many content bytes per WriteFile message
// (board.options: WriteFileRequest.data max_size).
constexpr size_t kWriteChunkBytes = 4096;

int Millis(absl::Duration d) { return static_cast<int>(absl::ToInt64Milliseconds(d)); }

std::chrono::steady_clock::duration ToSteady(absl::Duration d) {
  return std::chrono::duration_cast<std::chrono::steady_clock::duration>(absl::ToChronoNanoseconds(d));
}

// `wait_for_ready`: wait for the channel to (re)connect instead of failing at
// once while it is not connected (gRPC's default).
void PrepareCall(grpc::ClientContext& context, absl::Duration timeout, bool wait_for_ready) {
  context.set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  context.set_wait_for_ready(wait_for_ready);
}

// The board's status and message, under the board's and the method's name.
absl::Status BoardError(absl::string_view board, absl::string_view method, const grpc::Status& status) {
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                      absl::StrCat("board ", board, ": ", method, ": ", status.error_message()));
}

// Why a health stream ended, for LinkStatus::message, with a hint where the
// cause is usually the lab's set-up (health_streams.h lists the endings).
std::string WatchEndText(const absl::Status& status) {
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
  return absl::StrCat("health stream failed: ", what);
}

// Runs one unary call with a deadline; `call(context, response)` returns its
// grpc::Status.
template <typename Response, typename Call>
absl::StatusOr<Response> Unary(absl::string_view board, absl::string_view method, absl::Duration timeout,
                               bool wait_for_ready, Call call) {
  grpc::ClientContext context;
  PrepareCall(context, timeout, wait_for_ready);
  Response response;
  const grpc::Status status = call(&context, &response);
  if (!status.ok()) return BoardError(board, method, status);
  return response;
}

// A StreamOutput call's handle: cancels through the call's context while the
// call lives.
class OutputStreamHandle : public OutputStream {
 public:
  void Cancel() override {
    absl::MutexLock lock(&mu_);
    if (context_ != nullptr) context_->TryCancel();
  }
  void Attach(grpc::ClientContext* context) {
    absl::MutexLock lock(&mu_);
    context_ = context;
  }
  void Detach() { Attach(nullptr); }

 private:
  absl::Mutex mu_;
  grpc::ClientContext* context_ ABSL_GUARDED_BY(mu_) = nullptr;
};

}  // namespace

namespace internal {

// The health stream of one link: one WatchHealth call on the manager's
// HealthStreams. Done, it hands itself to the link, which deletes it. The
// link outlives it: ~BoardLink waits for its end.
class HealthWatch {
 public:
  HealthWatch(BoardLink* link, uint64_t generation) : link_(link), generation_(generation) {}

  void Start(HealthStreams& streams, const std::string& address, absl::Duration period,
             absl::Duration connect_timeout) {
    pb::WatchHealthRequest request;
    request.set_period_ms(static_cast<uint32_t>(absl::ToInt64Milliseconds(period)));
    streams_ = &streams;
    id_ = streams.Watch(
        address, request, connect_timeout,
        [this](const pb::WatchHealthResponse& message) { link_->OnWatchMessage(generation_, message); },
        // The stream's last use of this object: from here on the link may delete it.
        [this](const absl::Status& status) { link_->OnWatchDone(this, generation_, status); });
  }

  // Ends the call soon; OnWatchDone follows on the stream thread.
  void Cancel() { streams_->Cancel(id_); }

 private:
  BoardLink* const link_;
  const uint64_t generation_;
  HealthStreams* streams_ = nullptr;
  uint64_t id_ = 0;
};

// One StreamOutput call. Done, it hands itself to the link like HealthWatch.
class OutputCall : public grpc::ClientReadReactor<pb::StreamOutputResponse> {
 public:
  OutputCall(BoardLink* link, std::shared_ptr<OutputStreamHandle> handle,
             const pb::StreamOutputRequest& request, BoardClient::OutputChunkFn on_chunk,
             BoardClient::StreamDoneFn on_done)
      : link_(link),
        handle_(std::move(handle)),
        request_(request),
        on_chunk_(std::move(on_chunk)),
        on_done_(std::move(on_done)) {}

  // Only a call with a deadline may wait for the channel to connect.
  void Start(pb::BoardControl::Stub* stub, std::optional<absl::Duration> timeout, bool wait_for_ready) {
    if (timeout) PrepareCall(context_, *timeout, wait_for_ready);
    handle_->Attach(&context_);
    stub->async()->StreamOutput(&context_, &request_, this);
    StartRead(&response_);
    StartCall();
  }

  void Cancel() { context_.TryCancel(); }

  void OnReadDone(bool ok) override {
    if (!ok) return;  // the stream ended; OnDone follows
    if (on_chunk_) on_chunk_(response_.chunk());
    StartRead(&response_);
  }

  void OnDone(const grpc::Status& status) override {
    handle_->Detach();
    if (on_done_)
      on_done_(status.ok() ? absl::OkStatus() : BoardError(link_->name(), "StreamOutput", status));
    link_->OnOutputCallDone(this);
  }

 private:
  BoardLink* const link_;
  const std::shared_ptr<OutputStreamHandle> handle_;
  grpc::ClientContext context_;
  const pb::StreamOutputRequest request_;
  pb::StreamOutputResponse response_;
  const BoardClient::OutputChunkFn on_chunk_;
  const BoardClient::StreamDoneFn on_done_;
};

}  // namespace internal

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
                                             const LinkCredentials& credentials, const LinkOptions& options,
                                             LinkListener* listener, std::shared_ptr<HealthStreams> streams,
                                             std::shared_ptr<internal::ConnectGate> gate) {
  return std::shared_ptr<BoardLink>(new BoardLink(std::move(name), std::move(address), credentials, options,
                                                  listener, std::move(streams), std::move(gate)));
}

BoardLink::BoardLink(std::string name, std::string address, const LinkCredentials& credentials,
                     const LinkOptions& options, LinkListener* listener,
                     std::shared_ptr<HealthStreams> streams, std::shared_ptr<internal::ConnectGate> gate)
    : name_(std::move(name)),
      address_(std::move(address)),
      options_(options),
      listener_(listener),
      credentials_(credentials),
      streams_(std::move(streams)),
      gate_(std::move(gate)) {
  status_.message = "connecting";
  status_.since = absl::Now();
  backoff_ = options_.initial_backoff;
}

pb::BoardControl::Stub* BoardLink::Stub() {
  absl::MutexLock lock(&channel_mu_);
  if (stub_ != nullptr) return stub_.get();
  grpc::SslCredentialsOptions tls;
  tls.pem_root_certs = credentials_.ca_pem;
  tls.pem_cert_chain = credentials_.cert_pem;
  tls.pem_private_key = credentials_.key_pem;
  grpc::ChannelArguments args;
  // Keepalive notices a board that vanished without closing its connection.
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, Millis(options_.keepalive_time));
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, Millis(options_.keepalive_timeout));
  args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  args.SetInt(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
  // A health stream moves one small message a period: no bandwidth to
  // estimate. BDP probing would add a PING, its ACK and a timer to most
  // snapshots.
  args.SetInt(GRPC_ARG_HTTP2_BDP_PROBE, 0);
  // The channel's own reconnect backoff matches the link's, so a restarted
  // board is reached as soon as the link retries. The minimum is also the
  // connect timeout (TCP connect + TLS handshake).
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, Millis(options_.initial_backoff));
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, Millis(options_.connect_timeout));
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, Millis(options_.max_backoff));
  // One connection per link, never shared with another channel.
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  channel_ = grpc::CreateCustomChannel(address_, grpc::SslCredentials(tls), args);
  stub_ = pb::BoardControl::NewStub(channel_);
  return stub_.get();
}

BoardLink::~BoardLink() {
  Stop();
  {
    absl::MutexLock lock(&mu_);
    for (internal::OutputCall* call : output_calls_) call->Cancel();
    mu_.Await(absl::Condition(this, &BoardLink::OutputCallsEnded));
  }
  DeleteFinishedCalls();
}

LinkStatus BoardLink::status() const {
  absl::MutexLock lock(&mu_);
  return status_;
}

bool BoardLink::WaitForReady() const {
  absl::MutexLock lock(&mu_);
  return status_.state != BoardState::kOffline;
}

void BoardLink::WarmChannel() {
  Stub();
  absl::MutexLock lock(&channel_mu_);
  // After the board was gone the channel may wait out its reconnect backoff
  // (up to max_backoff): the board is back, so it connects now.
  grpc::experimental::ChannelResetConnectionBackoff(channel_.get());
  channel_->GetState(/*try_to_connect=*/true);
}

void BoardLink::Start() {
  absl::MutexLock lock(&mu_);
  if (started_ || stopping_) return;
  started_ = true;
  next_attempt_ = Clock::now();
  UpdateTickDueLocked();
}

void BoardLink::StartWatchLocked() {
  ++generation_;
  watch_abandoned_ = false;
  watch_got_snapshot_ = false;
  watch_activity_ = Clock::now();
  // Its callbacks take mu_, so none runs before this returns.
  watch_ = new internal::HealthWatch(this, generation_);
  watch_->Start(*streams_, address_, options_.snapshot_period, options_.connect_timeout);
  UpdateTickDueLocked();
}

void BoardLink::ReleaseSlotLocked() {
  if (!holds_slot_) return;
  holds_slot_ = false;
  if (gate_ != nullptr) gate_->Release();
}

void BoardLink::UpdateTickDueLocked() {
  Clock::time_point due = Clock::time_point::max();
  if (!finished_watches_.empty() || !finished_output_calls_.empty()) {
    due = Clock::time_point::min();
  } else if (!started_ || stopping_) {
    due = Clock::time_point::max();
  } else if (watch_ != nullptr) {
    // An abandoned watch's end queues it in finished_watches_.
    if (!watch_abandoned_) due = watch_activity_ + ToSteady(options_.offline_after);
  } else if (!attempt_queued_) {
    due = next_attempt_;
  }
  tick_due_.store(due.time_since_epoch().count(), std::memory_order_relaxed);
}

bool BoardLink::Tick() {
  // Most ticks of most links find nothing to do; they cost one clock read.
  if (Clock::now().time_since_epoch().count() < tick_due_.load(std::memory_order_relaxed)) return false;
  DeleteFinishedCalls();
  absl::MutexLock notify(&notify_mu_);
  Change change;
  bool due = false;
  {
    absl::MutexLock lock(&mu_);
    if (!started_ || stopping_) return false;
    const Clock::time_point now = Clock::now();
    if (watch_ != nullptr) {
      if (!watch_abandoned_ && now - watch_activity_ > ToSteady(options_.offline_after)) {
        watch_abandoned_ = true;
        ReleaseSlotLocked();
        change = SetStateLocked(
            BoardState::kOffline,
            absl::StrCat(watch_got_snapshot_ ? "no health snapshot for " : "no health snapshot within ",
                         absl::FormatDuration(options_.offline_after),
                         watch_got_snapshot_ ? "" : " of connecting"));
        watch_->Cancel();
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
  if (!started_ || stopping_ || watch_ != nullptr) return false;
  holds_slot_ = true;
  StartWatchLocked();
  return true;
}

void BoardLink::Stop() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    ReleaseSlotLocked();
    if (watch_ != nullptr) watch_->Cancel();
    mu_.Await(absl::Condition(this, &BoardLink::WatchEnded));
  }
  {
    // A Tick() may still be delivering a state change; wait for it.
    absl::MutexLock flush(&notify_mu_);
  }
  DeleteFinishedCalls();
}

void BoardLink::OnWatchMessage(uint64_t generation, const pb::WatchHealthResponse& message) {
  absl::MutexLock notify(&notify_mu_);
  Change change;
  {
    absl::MutexLock lock(&mu_);
    if (generation != generation_ || watch_abandoned_ || stopping_) return;
    if (message.has_snapshot()) {
      watch_activity_ = Clock::now();
      status_.last_snapshot = absl::Now();
      if (!watch_got_snapshot_) {
        // The board answers: have the call channel connect before anyone
        // sees the board online (a kill should not wait for a handshake or
        // fail on the channel's backoff from when the board was gone).
        WarmChannel();
        watch_got_snapshot_ = true;
        ++status_.connections;
        backoff_ = options_.initial_backoff;
        ReleaseSlotLocked();
      }
      UpdateTickDueLocked();
      std::optional<std::string> degraded = DegradedReason(message.snapshot());
      change = degraded ? SetStateLocked(BoardState::kDegraded, *std::move(degraded))
                        : SetStateLocked(BoardState::kOnline, "");
    }
  }
  Deliver(change);
  if (listener_ == nullptr) return;
  if (message.has_snapshot()) listener_->OnSnapshot(name_, message.snapshot());
  if (message.has_event()) listener_->OnEvent(name_, message.event());
}

void BoardLink::OnWatchDone(internal::HealthWatch* watch, uint64_t generation, const absl::Status& status) {
  absl::MutexLock notify(&notify_mu_);
  Change change;
  {
    absl::MutexLock lock(&mu_);
    finished_watches_.emplace_back(watch);
    UpdateTickDueLocked();
    if (generation != generation_) return;
    watch_ = nullptr;
    ReleaseSlotLocked();
    if (stopping_) return;
    next_attempt_ = Clock::now() + ToSteady(NextBackoffLocked());
    // After the watchdog's cancel, its message says more than CANCELLED.
    if (!watch_abandoned_) change = SetStateLocked(BoardState::kOffline, WatchEndText(status));
  }
  Deliver(change);
}

void BoardLink::OnOutputCallDone(internal::OutputCall* call) {
  absl::MutexLock lock(&mu_);
  output_calls_.erase(call);
  finished_output_calls_.emplace_back(call);
  UpdateTickDueLocked();
}

void BoardLink::DeleteFinishedCalls() {
  std::vector<std::unique_ptr<internal::HealthWatch>> watches;
  std::vector<std::unique_ptr<internal::OutputCall>> output_calls;
  absl::MutexLock lock(&mu_);
  watches.swap(finished_watches_);
  output_calls.swap(finished_output_calls_);
  UpdateTickDueLocked();
  // Deleted here, after mu_ is released: destroying a call's context may
  // destroy gRPC objects, which must not happen under the link's lock.
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

absl::StatusOr<pb::BoardInfo> BoardLink::GetInfo() {
  absl::StatusOr<pb::GetInfoResponse> r = Unary<pb::GetInfoResponse>(
      name_, "GetInfo", options_.rpc_timeout, WaitForReady(),
      [&](grpc::ClientContext* c, pb::GetInfoResponse* out) { return Stub()->GetInfo(c, {}, out); });
  if (!r.ok()) return r.status();
  return r->info();
}

absl::StatusOr<pb::ListFilesResponse> BoardLink::ListFiles(absl::string_view dir) {
  pb::ListFilesRequest request;
  request.set_path(std::string(dir));
  return Unary<pb::ListFilesResponse>(
      name_, "ListFiles", options_.rpc_timeout, WaitForReady(),
      [&](grpc::ClientContext* c, pb::ListFilesResponse* out) { return Stub()->ListFiles(c, request, out); });
}

absl::StatusOr<pb::WriteFileResponse> BoardLink::WriteFile(absl::string_view path,
                                                           absl::string_view content) {
  grpc::ClientContext context;
  // Flash writes are slow: a second more per 64 KiB.
  PrepareCall(context, options_.rpc_timeout + absl::Seconds(static_cast<int64_t>(content.size() >> 16)),
              WaitForReady());
  pb::WriteFileResponse response;
  std::unique_ptr<grpc::ClientWriter<pb::WriteFileRequest>> writer = Stub()->WriteFile(&context, &response);
  pb::WriteFileRequest request;
  request.mutable_header()->set_path(std::string(path));
  request.mutable_header()->set_expected_size_bytes(content.size());
  // A refused write means the board ended the call; Finish() says why.
  bool ok = writer->Write(request);
  for (size_t offset = 0; ok && offset < content.size(); offset += kWriteChunkBytes) {
    request.set_data(std::string(content.substr(offset, kWriteChunkBytes)));
    ok = writer->Write(request);
  }
  writer->WritesDone();
  const grpc::Status status = writer->Finish();
  if (!status.ok()) return BoardError(name_, "WriteFile", status);
  return response;
}

absl::StatusOr<std::string> BoardLink::ReadFile(absl::string_view path) {
  grpc::ClientContext context;
  PrepareCall(context, options_.rpc_timeout, WaitForReady());
  pb::ReadFileRequest request;
  request.set_path(std::string(path));
  std::unique_ptr<grpc::ClientReader<pb::ReadFileResponse>> reader = Stub()->ReadFile(&context, request);
  std::string content;
  pb::ReadFileResponse chunk;
  while (reader->Read(&chunk)) content += chunk.data();
  const grpc::Status status = reader->Finish();
  if (!status.ok()) return BoardError(name_, "ReadFile", status);
  return content;
}

absl::Status BoardLink::DeleteFile(absl::string_view path) {
  pb::DeleteFileRequest request;
  request.set_path(std::string(path));
  return Unary<pb::DeleteFileResponse>(name_, "DeleteFile", options_.rpc_timeout, WaitForReady(),
                                       [&](grpc::ClientContext* c, pb::DeleteFileResponse* out) {
                                         return Stub()->DeleteFile(c, request, out);
                                       })
      .status();
}

absl::StatusOr<pb::StartProgramResponse> BoardLink::StartProgram(const pb::StartProgramRequest& request) {
  return Unary<pb::StartProgramResponse>(name_, "StartProgram", options_.rpc_timeout, WaitForReady(),
                                         [&](grpc::ClientContext* c, pb::StartProgramResponse* out) {
                                           return Stub()->StartProgram(c, request, out);
                                         });
}

absl::StatusOr<pb::StartThreadResponse> BoardLink::StartThread(const pb::StartThreadRequest& request) {
  return Unary<pb::StartThreadResponse>(name_, "StartThread", options_.rpc_timeout, WaitForReady(),
                                        [&](grpc::ClientContext* c, pb::StartThreadResponse* out) {
                                          return Stub()->StartThread(c, request, out);
                                        });
}

absl::StatusOr<pb::ThreadInfo> BoardLink::KillThread(uint32_t thread_id, absl::Duration grace) {
  pb::KillThreadRequest request;
  request.set_thread_id(thread_id);
  request.set_grace_ms(static_cast<uint32_t>(absl::ToInt64Milliseconds(grace)));
  // The board waits up to two grace periods (soft, then hard kill).
  absl::StatusOr<pb::KillThreadResponse> r =
      Unary<pb::KillThreadResponse>(name_, "KillThread", options_.rpc_timeout + 2 * grace, WaitForReady(),
                                    [&](grpc::ClientContext* c, pb::KillThreadResponse* out) {
                                      return Stub()->KillThread(c, request, out);
                                    });
  if (!r.ok()) return r.status();
  return r->thread();
}

absl::StatusOr<pb::KillProgramResponse> BoardLink::KillProgram(uint32_t program_id, absl::Duration grace) {
  pb::KillProgramRequest request;
  request.set_program_id(program_id);
  request.set_grace_ms(static_cast<uint32_t>(absl::ToInt64Milliseconds(grace)));
  return Unary<pb::KillProgramResponse>(name_, "KillProgram", options_.rpc_timeout + 2 * grace,
                                        WaitForReady(),
                                        [&](grpc::ClientContext* c, pb::KillProgramResponse* out) {
                                          return Stub()->KillProgram(c, request, out);
                                        });
}

absl::StatusOr<pb::ListThreadsResponse> BoardLink::ListThreads(const pb::ListThreadsRequest& request) {
  return Unary<pb::ListThreadsResponse>(name_, "ListThreads", options_.rpc_timeout, WaitForReady(),
                                        [&](grpc::ClientContext* c, pb::ListThreadsResponse* out) {
                                          return Stub()->ListThreads(c, request, out);
                                        });
}

absl::StatusOr<pb::ExecResponse> BoardLink::Exec(absl::string_view source, absl::Duration timeout) {
  pb::ExecRequest request;
  request.set_source(std::string(source));
  return Unary<pb::ExecResponse>(
      name_, "Exec", timeout, WaitForReady(),
      [&](grpc::ClientContext* c, pb::ExecResponse* out) { return Stub()->Exec(c, request, out); });
}

absl::Status BoardLink::Reset() {
  return Unary<pb::ResetResponse>(
             name_, "Reset", options_.rpc_timeout, WaitForReady(),
             [&](grpc::ClientContext* c, pb::ResetResponse* out) { return Stub()->Reset(c, {}, out); })
      .status();
}

std::shared_ptr<OutputStream> BoardLink::StreamOutput(const pb::StreamOutputRequest& request,
                                                      OutputChunkFn on_chunk, StreamDoneFn on_done) {
  auto handle = std::make_shared<OutputStreamHandle>();
  auto* call = new internal::OutputCall(this, handle, request, std::move(on_chunk), std::move(on_done));
  const bool wait_for_ready = WaitForReady();
  absl::MutexLock lock(&mu_);  // OnDone, which takes mu_, cannot run before the call is listed
  output_calls_.insert(call);
  call->Start(Stub(), request.follow() ? std::nullopt : std::optional(options_.rpc_timeout), wait_for_ready);
  return handle;
}

// ---------------------------------------------------------------------------
// LinkManager

LinkManager::LinkManager(LinkCredentials credentials, LinkOptions options, LinkListener* listener)
    : credentials_(std::move(credentials)),
      options_(options),
      listener_(listener),
      streams_(std::make_shared<HealthStreams>(credentials_)),
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
  // Destroyed here, outside mu_: each waits for its last calls.
}

absl::Status LinkManager::Add(std::string name, std::string address) {
  if (name.empty()) return absl::InvalidArgumentError("a board needs a name");
  if (address.empty()) return absl::InvalidArgumentError(absl::StrCat("board ", name, " needs an address"));
  std::shared_ptr<BoardLink> link;
  {
    absl::MutexLock lock(&mu_);
    if (stopping_) return absl::FailedPreconditionError("the link manager is shutting down");
    if (links_.contains(name)) {
      return absl::AlreadyExistsError(
          absl::StrCat("board ", name, " already has a link (", links_.find(name)->second->address(), ")"));
    }
    link = BoardLink::Create(name, std::move(address), credentials_, options_, listener_, streams_, gate_);
    // Due at once; the timer thread connects it when a slot is free.
    link->Start();
    links_.emplace(std::move(name), link);
  }
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
