// BoardClient: the calls fleetd's API and jobs make on one board — BoardControl
// v1 (proto/threadfleet/board/v1/board.proto) as C++ calls that return
// absl::Status. An interface only: BoardLink (board_link.h) implements it over
// the board's gRPC channel, tests may fake it.
//
// Example:
//
//   absl::StatusOr<pb::WriteFileResponse> w = board.WriteFile("/app.py", source);
//   if (!w.ok()) return w.status();  // "board b01: WriteFile: flash is full"
//   absl::StatusOr<pb::StartProgramResponse> p = board.StartProgram(request);
//
// Errors: the board's gRPC status code and message are kept, the message
// prefixed with "board NAME: METHOD: ". A board that cannot be reached gives
// UNAVAILABLE; a call that outlives its deadline DEADLINE_EXCEEDED.
//
// Every method may be called from any thread, concurrently; each blocks until
// the board answers or its deadline passes, except StreamOutput.
#ifndef THREADFLEET_SERVER_FLEETD_LINKS_BOARD_CLIENT_H_
#define THREADFLEET_SERVER_FLEETD_LINKS_BOARD_CLIENT_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "threadfleet/board/v1/board.pb.h"

namespace threadfleet::fleetd {

// A running StreamOutput call.
class OutputStream {
 public:
  virtual ~OutputStream() = default;
  // Ends the stream early: its done callback then gets CANCELLED (unless it
  // had already ended). Safe to call at any time, more than once, and after
  // the stream ended.
  virtual void Cancel() = 0;
};

class BoardClient {
 public:
  // Receives each chunk of a StreamOutput call, in order. Called on a gRPC
  // thread; must not block for long. The chunk is valid during the call only.
  using OutputChunkFn = std::function<void(const threadfleet::board::v1::OutputChunk& chunk)>;
  // Called exactly once when a StreamOutput call ends, after its last chunk:
  // OK when the board ended it, else why it failed (CANCELLED after Cancel()).
  using StreamDoneFn = std::function<void(absl::Status status)>;

  virtual ~BoardClient() = default;

  // The board's name as fleetd knows it (inventory); used in every message.
  virtual const std::string& name() const = 0;

  // Identity, versions and limits of the board.
  [[nodiscard]] virtual absl::StatusOr<threadfleet::board::v1::BoardInfo> GetInfo() = 0;

  // One directory of the board's flash ("/" when empty). NOT_FOUND if absent.
  [[nodiscard]] virtual absl::StatusOr<threadfleet::board::v1::ListFilesResponse> ListFiles(
      absl::string_view dir) = 0;

  // Writes `content` to `path` atomically, in chunks. Returns the board's
  // sha256 and size of what it wrote. RESOURCE_EXHAUSTED if the flash is full.
  [[nodiscard]] virtual absl::StatusOr<threadfleet::board::v1::WriteFileResponse> WriteFile(
      absl::string_view path, absl::string_view content) = 0;

  // The whole content of a file. NOT_FOUND if absent.
  [[nodiscard]] virtual absl::StatusOr<std::string> ReadFile(absl::string_view path) = 0;

  // Deletes a file or an empty directory. NOT_FOUND if absent;
  // FAILED_PRECONDITION for a directory that is not empty.
  [[nodiscard]] virtual absl::Status DeleteFile(absl::string_view path) = 0;

  // Starts a script (path or inline source) as a program.
  [[nodiscard]] virtual absl::StatusOr<threadfleet::board::v1::StartProgramResponse> StartProgram(
      const threadfleet::board::v1::StartProgramRequest& request) = 0;

  // Starts module.function(args) as the main thread of a new program.
  [[nodiscard]] virtual absl::StatusOr<threadfleet::board::v1::StartThreadResponse> StartThread(
      const threadfleet::board::v1::StartThreadRequest& request) = 0;

  // Kills one thread, waiting up to `grace` (zero: the board's default) for
  // it to end. Returns its record: ended, or marked unkillable.
  [[nodiscard]] virtual absl::StatusOr<threadfleet::board::v1::ThreadInfo> KillThread(
      uint32_t thread_id, absl::Duration grace = absl::ZeroDuration()) = 0;

  // Kills every live thread of a program, with one grace period for all.
  [[nodiscard]] virtual absl::StatusOr<threadfleet::board::v1::KillProgramResponse> KillProgram(
      uint32_t program_id, absl::Duration grace = absl::ZeroDuration()) = 0;

  // Threads and programs the board knows of.
  [[nodiscard]] virtual absl::StatusOr<threadfleet::board::v1::ListThreadsResponse> ListThreads(
      const threadfleet::board::v1::ListThreadsRequest& request) = 0;

  // Runs a snippet and returns its output and exception. When `timeout`
  // passes, the board kills the snippet and this returns DEADLINE_EXCEEDED.
  [[nodiscard]] virtual absl::StatusOr<threadfleet::board::v1::ExecResponse> Exec(absl::string_view source,
                                                                                  absl::Duration timeout) = 0;

  // Soft-resets the VM; returns once the fresh VM runs. FAILED_PRECONDITION
  // when stuck threads could not be killed.
  [[nodiscard]] virtual absl::Status Reset() = 0;

  // Streams a program's output from request.from_offset(); with
  // request.follow() until the program ends. Returns at once; `on_chunk` and
  // then `on_done` run on gRPC threads. A stream without follow has the usual
  // deadline, a following one none. The returned handle may be dropped
  // without ending the stream.
  [[nodiscard]] virtual std::shared_ptr<OutputStream> StreamOutput(
      const threadfleet::board::v1::StreamOutputRequest& request, OutputChunkFn on_chunk,
      StreamDoneFn on_done) = 0;
};

}  // namespace threadfleet::fleetd

#endif  // THREADFLEET_SERVER_FLEETD_LINKS_BOARD_CLIENT_H_
