#include "server/cli/commands.h"

#include "server/cli/selector.h"

namespace threadfleet::cli {

void Session::PrintJson(const google::protobuf::Message& message, JsonLayout layout) {
  out_ << MessageToJson(message, layout) << std::flush;
}

int Session::Fail(const grpc::Status& status) {
  err_ << "fleetctl: error: " << DescribeStatus(status) << std::endl;
  return kExitFailed;
}

int Session::Fail(absl::string_view what) {
  err_ << "fleetctl: error: " << what << std::endl;
  return kExitFailed;
}

void SelectorFlags::AddTo(CLI::App& command) {
  command.add_option("-l,--labels", labels, "Pick boards by labels, e.g. lab=a,role!=spare");
  command.add_option("-b,--boards", boards, "Pick boards by name, e.g. b01,b02");
}

fleet::v1::Selector SelectorFlags::Build() const {
  absl::StatusOr<fleet::v1::Selector> selector = BuildSelector(labels, boards);
  ThrowUsageErrorUnlessOk(selector.status());
  return *std::move(selector);
}

void ThrowUsageErrorUnlessOk(const absl::Status& status) {
  if (!status.ok()) throw CLI::ValidationError(std::string(status.message()));
}

grpc::Status CopyProgramOutput(Session& session, const std::string& board, uint32_t program_id, bool follow) {
  fleet::v1::StreamOutputRequest request;
  request.set_board(board);
  request.set_program_id(program_id);
  request.set_follow(follow);
  auto context = session.client().NewContext(follow ? CallKind::kFollow : CallKind::kBounded);
  auto reader = session.client().stub().StreamOutput(context.get(), request);
  fleet::v1::StreamOutputResponse response;
  while (reader->Read(&response)) {
    if (session.json()) {
      session.PrintJson(response, JsonLayout::kLine);
    } else {
      session.out() << response.chunk().data() << std::flush;
    }
  }
  return reader->Finish();
}

grpc::Status GetBoardThreads(Session& session, const std::string& board, bool include_finished,
                             fleet::v1::BoardThreads& result) {
  fleet::v1::ListThreadsRequest request;
  request.mutable_selector()->add_boards(board);
  request.set_include_finished(include_finished);
  fleet::v1::ListThreadsResponse response;
  auto context = session.client().NewContext();
  grpc::Status status = session.client().stub().ListThreads(context.get(), request, &response);
  if (!status.ok()) return status;
  for (fleet::v1::BoardThreads& threads : *response.mutable_boards()) {
    if (threads.board() == board) {
      result = std::move(threads);
      return grpc::Status::OK;
    }
  }
  return grpc::Status(grpc::StatusCode::NOT_FOUND, "fleetd listed no threads for board " + board);
}

}  // namespace threadfleet::cli
