#include "server/fleetd/api/internal/output_stream_proxy.h"

#include <memory>
#include <string>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "server/fleetd/api/internal/api_values.h"
#include "server/fleetd/api/internal/service_call.h"

namespace threadfleet::fleetd::internal {

namespace {

// StreamOutput: proxies the board's output stream. A client cancel (or a
// slow client) cancels the board stream; the board's end ends the call.
class OutputStreamProxy : public ServiceStream<fleet::StreamOutputResponse> {
 public:
  OutputStreamProxy(FleetServiceState* state, const fleet::StreamOutputRequest& request,
                    std::string authorization, absl::Time deadline)
      : ServiceStream(state, kStreamOutput, absl::StrCat(request.board(), "/program/", request.program_id()),
                      std::move(authorization)),
        request_(request),
        deadline_(deadline) {}

 private:
  void Run() override {
    absl::StatusOr<std::shared_ptr<BoardClient>> board = state_->Reachable(request_.board());
    if (!board.ok()) {
      End(ToGrpc(board.status()));
      return;
    }
    pb::StreamOutputRequest board_request;
    board_request.set_program_id(request_.program_id());
    board_request.set_from_offset(request_.from_offset());
    board_request.set_follow(request_.follow());
    Hold();  // released by the board stream's done callback
    // Chunks and the end come on the links thread: Push and End only queue.
    std::shared_ptr<OutputStream> handle = (*board)->StreamOutput(
        board_request, {.deadline = deadline_},
        [this](const pb::OutputChunk& chunk) {
          fleet::StreamOutputResponse m;
          *m.mutable_chunk() = chunk;
          Push(std::move(m));
        },
        [this](absl::Status status) {
          End(ToGrpc(status));
          Release();
        });
    bool cancel = false;
    {
      absl::MutexLock lock(&handle_mu_);
      handle_ = handle;
      cancel = cancelled_;
    }
    if (cancel) handle->Cancel();
  }

  void OnEnding() override {
    std::shared_ptr<OutputStream> handle;
    {
      absl::MutexLock lock(&handle_mu_);
      cancelled_ = true;
      handle = handle_;
    }
    if (handle != nullptr) handle->Cancel();
  }

  void Cleanup() override {
    absl::MutexLock lock(&handle_mu_);
    handle_.reset();
  }

  const fleet::StreamOutputRequest request_;
  const absl::Time deadline_;
  absl::Mutex handle_mu_;
  std::shared_ptr<OutputStream> handle_ ABSL_GUARDED_BY(handle_mu_);
  bool cancelled_ ABSL_GUARDED_BY(handle_mu_) = false;
};

}  // namespace

grpc::ServerWriteReactor<fleet::StreamOutputResponse>* StartOutputStream(
    FleetServiceState* state, const fleet::StreamOutputRequest& request, std::string authorization,
    absl::Time deadline) {
  return (new OutputStreamProxy(state, request, std::move(authorization), deadline))->Start(request);
}

}  // namespace threadfleet::fleetd::internal
