#include "server/fleetd/api/internal/push_file_stream.h"

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "server/fleetd/api/internal/api_values.h"
#include "server/fleetd/api/internal/board_limits.h"
#include "server/fleetd/api/internal/service_call.h"

namespace threadfleet::fleetd::internal {

namespace {

// PushFile: QUEUED for every board, then WRITING and DONE/UNCHANGED/FAILED
// per board as the writes proceed; each write is a board call that holds no
// thread, and an unreachable board's next attempt waits on the timers.
class PushFileStream : public ServiceStream<fleet::PushFileResponse> {
 public:
  PushFileStream(FleetServiceState* state, const fleet::PushFileRequest& request, std::string authorization,
                 absl::Time deadline)
      : ServiceStream(state, kPushFile, SelectorTarget(request.selector()) + " " + request.path(),
                      std::move(authorization), SIZE_MAX),
        request_(request),
        content_(std::make_shared<const std::string>(request.content())),
        call_deadline_(deadline) {}

 private:
  void Run() override {
    absl::Status status = Prepare();
    if (!status.ok()) {
      AuditAndEnd(status);
      return;
    }
    // Retries stop a little before the call's deadline, so the last board's
    // FAILED still reaches the client.
    give_up_at_ = call_deadline_ == absl::InfiniteFuture() ? absl::Now() + kPushOfflineWait
                                                           : call_deadline_ - kPushRetryInterval;
    remaining_.store(boards_.size());
    for (const BoardRecord& b : boards_) Push(Progress(b.name, fleet::PUSH_STAGE_QUEUED, 0));
    Hold();  // released by the last board's Finished()
    for (size_t i = 0; i < boards_.size(); ++i) Attempt(i, false);
  }

  absl::Status Prepare() {
    absl::Status path = CheckBoardPath("path", request_.path(), "WriteFileHeader.path");
    if (!path.ok()) return path;
    absl::StatusOr<std::vector<BoardRecord>> boards = state_->deps.inventory->Select(request_.selector());
    if (!boards.ok()) return boards.status();
    if (boards->empty()) {
      return absl::FailedPreconditionError(
          absl::StrCat("the selector (", SelectorTarget(request_.selector()), ") picks no board"));
    }
    boards_ = *std::move(boards);
    absl::StatusOr<std::string> sha = state_->deps.store->PutScript(request_.content());
    if (!sha.ok()) return sha.status();
    sha_ = *std::move(sha);
    return absl::OkStatus();
  }

  // One attempt at board i, on the pool; `retried`: an earlier one found it
  // unreachable.
  void Attempt(size_t i, bool retried) {
    const std::string& board = boards_[i].name;
    if (ending()) {  // the client went away or fleetd shuts down: no more work
      Finished(board, absl::CancelledError(absl::StrCat("board ", board, ": the push ended first")));
      return;
    }
    absl::StatusOr<std::shared_ptr<BoardClient>> client = state_->ReachableClient(board);
    if (!client.ok()) return Missed(i, retried, client.status());
    Push(Progress(board, fleet::PUSH_STAGE_WRITING, 0));
    pb::WriteFileHeader header;
    header.set_path(request_.path());
    // The board compares what it has and skips the write when it matches.
    if (!request_.force()) header.set_skip_if_sha256_hex(sha_);
    (*client)->WriteFile(header, content_, {.deadline = call_deadline_},
                         state_->OnPool<absl::StatusOr<pb::WriteFileResponse>>(
                             [this, i, retried](absl::StatusOr<pb::WriteFileResponse> written) {
                               const std::string& board = boards_[i].name;
                               if (!written.ok()) return Missed(i, retried, written.status());
                               if (written->unchanged()) return Unchanged(board, written->sha256_hex());
                               Wrote(board, written->sha256_hex());
                             }));
  }

  // Board i was not written: offline, or the connection went mid-write. The
  // old file is intact on the board (writes are atomic), so trying again is
  // safe until the push gives up.
  void Missed(size_t i, bool retried, absl::Status failure) {
    const std::string& board = boards_[i].name;
    if (absl::IsUnavailable(failure) && absl::Now() + kPushRetryInterval < give_up_at_) {
      if (!retried) {
        fleet::PushFileResponse waiting = Progress(board, fleet::PUSH_STAGE_QUEUED, 0);
        *waiting.mutable_error() = ToBoardError(failure);
        Push(std::move(waiting));
      }
      state_->timers->After(kPushRetryInterval, [this, i] { Attempt(i, true); });
      return;
    }
    if (retried && absl::IsUnavailable(failure)) {
      failure = absl::Status(
          failure.code(),
          absl::StrCat(failure.message(), " (still unreachable when the push gave up at its deadline)"));
    }
    Finished(board, failure);
  }

  // The board's file already had the content: nothing was written.
  void Unchanged(const std::string& board, const std::string& sha256_hex) {
    if (sha256_hex != sha_) {
      Finished(board, absl::DataLossError(absl::StrCat("board ", board, " found SHA-256 ", sha256_hex,
                                                       " unchanged, expected ", sha_)));
      return;
    }
    state_->RememberPush(board, request_.path(), sha_);
    Push(Progress(board, fleet::PUSH_STAGE_UNCHANGED, 0));
    Finished(board, absl::OkStatus());
  }

  // The board answered the write with the SHA-256 of what it stored.
  void Wrote(const std::string& board, const std::string& sha256_hex) {
    if (sha256_hex != sha_) {
      Finished(board, absl::DataLossError(
                          absl::StrCat("board ", board, " wrote SHA-256 ", sha256_hex, ", expected ", sha_)));
      return;
    }
    state_->RememberPush(board, request_.path(), sha_);
    Push(Progress(board, fleet::PUSH_STAGE_DONE, request_.content().size()));
    Finished(board, absl::OkStatus());
  }

  // Board `board` is done with `status`; the last one ends the call.
  void Finished(const std::string& board, const absl::Status& status) {
    if (!status.ok()) {
      {
        absl::MutexLock lock(&failures_mu_);
        failures_.emplace_back(board, status);
      }
      fleet::PushFileResponse m = Progress(board, fleet::PUSH_STAGE_FAILED, 0);
      *m.mutable_error() = ToBoardError(status);
      Push(std::move(m));
    }
    if (remaining_.fetch_sub(1) != 1) return;
    {
      absl::MutexLock lock(&failures_mu_);
      audit_message_ = FanOutSummary(boards_.size(), failures_);
    }
    AuditAndEnd(absl::OkStatus());
    Release();
  }

  fleet::PushFileResponse Progress(const std::string& board, fleet::PushStage stage, uint64_t sent) const {
    fleet::PushFileResponse m;
    m.set_board(board);
    m.set_stage(stage);
    m.set_sent_bytes(sent);
    m.set_total_bytes(request_.content().size());
    m.set_sha256_hex(sha_);
    return m;
  }

  // Audits the call's result and ends the stream.
  void AuditAndEnd(const absl::Status& status) {
    AuditOutcome(status, audit_message_);
    End(ToGrpc(status));
  }

  const fleet::PushFileRequest request_;
  // The content every board's write sends, shared by them all.
  const std::shared_ptr<const std::string> content_;
  const absl::Time call_deadline_;
  // Set in Run(), before any attempt.
  absl::Time give_up_at_;
  std::atomic<size_t> remaining_{0};
  std::vector<BoardRecord> boards_;
  std::string sha_;
  std::string audit_message_;
  absl::Mutex failures_mu_;
  std::vector<std::pair<std::string, absl::Status>> failures_ ABSL_GUARDED_BY(failures_mu_);
};

}  // namespace

grpc::ServerWriteReactor<fleet::PushFileResponse>* StartPushFile(FleetServiceState* state,
                                                                 const fleet::PushFileRequest& request,
                                                                 std::string authorization,
                                                                 absl::Time deadline) {
  return (new PushFileStream(state, request, std::move(authorization), deadline))->Start(request);
}

}  // namespace threadfleet::fleetd::internal
