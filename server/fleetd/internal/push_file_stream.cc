#include "server/fleetd/internal/push_file_stream.h"

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "server/fleetd/fan_out.h"
#include "server/fleetd/internal/api_values.h"
#include "server/fleetd/internal/service_call.h"

namespace threadfleet::fleetd::internal {

namespace {

// PushFile: QUEUED for every board, then WRITING and DONE/FAILED per board as
// the fan-out proceeds on the pool.
class PushFileStream : public ServiceStream<fleet::PushFileResponse> {
 public:
  PushFileStream(FleetServiceState* state, const fleet::PushFileRequest& request, std::string authorization)
      : ServiceStream(state, kPushFile, SelectorTarget(request.selector()) + " " + request.path(),
                      std::move(authorization), SIZE_MAX),
        request_(request) {}

 private:
  void Run() override {
    absl::Status status = Prepare();
    if (!status.ok()) {
      AuditAndEnd(status);
      return;
    }
    for (const BoardRecord& b : boards_) Push(Progress(b.name, fleet::PUSH_STAGE_QUEUED, 0));
    Hold();
    FanOut(
        *state_->pool, boards_.size(), [this](size_t i) { PushTo(boards_[i].name); },
        [this] {
          {
            absl::MutexLock lock(&failures_mu_);
            audit_message_ = FanOutSummary(boards_.size(), failures_);
          }
          AuditAndEnd(absl::OkStatus());
          Release();
        });
  }

  absl::Status Prepare() {
    absl::Status path = CheckAbsolutePath(request_.path());
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

  void PushTo(const std::string& board) {
    absl::StatusOr<std::shared_ptr<BoardLink>> link = state_->ReachableLink(board);
    if (!link.ok()) {
      Failed(board, link.status());
      return;
    }
    Push(Progress(board, fleet::PUSH_STAGE_WRITING, 0));
    absl::StatusOr<pb::WriteFileResponse> written = (*link)->WriteFile(request_.path(), request_.content());
    if (!written.ok()) {
      Failed(board, written.status());
      return;
    }
    if (written->sha256_hex() != sha_) {
      Failed(board, absl::DataLossError(absl::StrCat("board ", board, " wrote SHA-256 ",
                                                     written->sha256_hex(), ", expected ", sha_)));
      return;
    }
    state_->RememberPush(board, request_.path(), sha_);
    Push(Progress(board, fleet::PUSH_STAGE_DONE, request_.content().size()));
  }

  void Failed(const std::string& board, const absl::Status& status) {
    {
      absl::MutexLock lock(&failures_mu_);
      failures_.emplace_back(board, status);
    }
    fleet::PushFileResponse m = Progress(board, fleet::PUSH_STAGE_FAILED, 0);
    *m.mutable_error() = ToBoardError(status);
    Push(std::move(m));
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
    state_->auth.Audit(caller_.name, spec_.action, target_, status, audit_message_);
    End(ToGrpc(status));
  }

  const fleet::PushFileRequest request_;
  std::vector<BoardRecord> boards_;
  std::string sha_;
  std::string audit_message_;
  absl::Mutex failures_mu_;
  std::vector<std::pair<std::string, absl::Status>> failures_ ABSL_GUARDED_BY(failures_mu_);
};

}  // namespace

grpc::ServerWriteReactor<fleet::PushFileResponse>* StartPushFile(FleetServiceState* state,
                                                                 const fleet::PushFileRequest& request,
                                                                 std::string authorization) {
  return (new PushFileStream(state, request, std::move(authorization)))->Start();
}

}  // namespace threadfleet::fleetd::internal
