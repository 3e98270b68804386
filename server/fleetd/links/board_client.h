// BoardClient: the calls fleetd's API and jobs make on one board — BoardControl
// v1 (proto/threadfleet/board/v1/board.proto) as asynchronous C++ calls. An
// interface only: BoardLink (board_link.h) implements it over the board's
// one connection, tests may fake it.
//
// Example:
//
//   board.KillThread(7, absl::Seconds(1), {.deadline = call_deadline},
//                    [](absl::StatusOr<pb::ThreadInfo> killed) {
//                      // on the links thread: hand blocking work to a pool
//                    });
//
// Every method returns at once; its `done` runs exactly once with the
// outcome: on the links thread ("board-links"), or on the calling thread
// before the method returns when the call is refused without reaching the
// board (offline, over a limit). So a caller must not hold a lock `done`
// takes. On the links thread `done` must not block: no SQLite, no waiting
// for a pool, no Stop()/destruction of a link — every board's health waits
// behind it. Submit such work to a pool.
//
// Errors: the board's gRPC status code and message are kept, the message
// prefixed with "board NAME: METHOD: ". Besides the board's own:
// - UNAVAILABLE "... the board is offline: REASON" when not connected (the
//   call is not tried);
// - UNAVAILABLE "... connection lost: WHY" when the connection fails while
//   the call runs, or "... the board stopped answering: no health snapshot
//   for 3s" when the board hangs: at once, not at the deadline;
// - DEADLINE_EXCEEDED "... no answer within 1.5s (the caller's deadline)"
//   (or "(fleetd's default ...)" for calls without one);
// - RESOURCE_EXHAUSTED when the board already has as many calls in flight
//   and waiting as the link allows (the message names both limits);
// - CANCELLED when the link is removed or fleetd stops.
//
// Deadlines: CallOptions::deadline goes to the board (grpc-timeout), which
// ends the call there; InfiniteFuture means the link's default (LinkOptions).
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

struct CallOptions {
  // When the caller stops waiting; InfiniteFuture: the link's default.
  absl::Time deadline = absl::InfiniteFuture();
};

class BoardClient {
 public:
  template <typename T>
  using Done = std::function<void(absl::StatusOr<T> result)>;
  using StatusDone = std::function<void(absl::Status status)>;
  // Receives each chunk of a StreamOutput call, in order, on the links
  // thread; must not block. The chunk is valid during the call only.
  using OutputChunkFn = std::function<void(const threadfleet::board::v1::OutputChunk& chunk)>;

  virtual ~BoardClient() = default;

  // The board's name as fleetd knows it (inventory); used in every message.
  virtual const std::string& name() const = 0;

  // Identity, versions and limits of the board.
  virtual void GetInfo(CallOptions options, Done<threadfleet::board::v1::BoardInfo> done) = 0;

  // One directory of the board's flash. NOT_FOUND if absent.
  virtual void ListFiles(const threadfleet::board::v1::ListFilesRequest& request, CallOptions options,
                         Done<threadfleet::board::v1::ListFilesResponse> done) = 0;

  // Writes `content` to header.path() atomically, in chunks; the board's
  // sha256 and size of what it wrote, or `unchanged` when the header's
  // skip_if_sha256_hex matched the file already there.
  // RESOURCE_EXHAUSTED if the flash is full. `content` is shared, not
  // copied: a push to many boards holds it once.
  virtual void WriteFile(const threadfleet::board::v1::WriteFileHeader& header,
                         std::shared_ptr<const std::string> content, CallOptions options,
                         Done<threadfleet::board::v1::WriteFileResponse> done) = 0;

  // The whole content of a file. NOT_FOUND if absent.
  virtual void ReadFile(std::string path, CallOptions options, Done<std::string> done) = 0;

  // Deletes a file or an empty directory. NOT_FOUND if absent;
  // FAILED_PRECONDITION for a directory that is not empty.
  virtual void DeleteFile(std::string path, CallOptions options, StatusDone done) = 0;

  // Starts a script (path or inline source) as a program.
  virtual void StartProgram(const threadfleet::board::v1::StartProgramRequest& request, CallOptions options,
                            Done<threadfleet::board::v1::StartProgramResponse> done) = 0;

  // Starts module.function(args) as the main thread of a new program.
  virtual void StartThread(const threadfleet::board::v1::StartThreadRequest& request, CallOptions options,
                           Done<threadfleet::board::v1::StartThreadResponse> done) = 0;

  // Kills one thread, the board waiting up to `grace` (zero: the board's
  // default) for it to end. Its record: ended, or marked unkillable.
  virtual void KillThread(uint32_t thread_id, absl::Duration grace, CallOptions options,
                          Done<threadfleet::board::v1::ThreadInfo> done) = 0;

  // Kills every live thread of a program, with one grace period for all.
  virtual void KillProgram(uint32_t program_id, absl::Duration grace, CallOptions options,
                           Done<threadfleet::board::v1::KillProgramResponse> done) = 0;

  // Threads and programs the board knows of.
  virtual void ListThreads(const threadfleet::board::v1::ListThreadsRequest& request, CallOptions options,
                           Done<threadfleet::board::v1::ListThreadsResponse> done) = 0;

  // Runs a snippet and returns its output and exception. At the deadline
  // the board kills the snippet and the call ends DEADLINE_EXCEEDED.
  virtual void Exec(std::string source, CallOptions options,
                    Done<threadfleet::board::v1::ExecResponse> done) = 0;

  // Resets the board as its reset button would: every thread ends (with the
  // board's own kill grace), the VM restarts with a fresh heap, files stay,
  // and the board boots /boot.py then /main.py again unless
  // request.safe_boot(). done once the fresh VM runs, so the next call lands
  // on it; with `hard` when threads stuck in native code made the board
  // restart instead (its connection then drops and the link reconnects).
  // Without a caller's deadline the link allows for the board's longest
  // kill waits (board_link.cc), not only LinkOptions::rpc_timeout.
  virtual void Reset(const threadfleet::board::v1::ResetRequest& request, CallOptions options,
                     Done<threadfleet::board::v1::ResetResponse> done) = 0;

  // The board's simulated hardware: pins, ADC channels, timers, watchdog.
  virtual void GetMachine(CallOptions options, Done<threadfleet::board::v1::MachineState> done) = 0;

  // Drives (or with request.release() releases) a pin from the lab; the
  // pin as it is then. INVALID_ARGUMENT for a pin the board's profile lacks
  // or a value other than 0/1; FAILED_PRECONDITION for a pin the program
  // drives as an output.
  virtual void SetPin(const threadfleet::board::v1::SetPinRequest& request, CallOptions options,
                      Done<threadfleet::board::v1::PinState> done) = 0;

  // Sets what an ADC channel reads; the channel as it is then.
  // INVALID_ARGUMENT for a channel the board's profile lacks.
  virtual void SetAdc(const threadfleet::board::v1::SetAdcRequest& request, CallOptions options,
                      Done<threadfleet::board::v1::AdcState> done) = 0;

  // Streams a program's output from request.from_offset(); with
  // request.follow() until the program ends (and without a deadline unless
  // options has one). `on_chunk` and then `on_done` run as `done` does
  // above. The returned handle may be dropped without ending the stream.
  [[nodiscard]] virtual std::shared_ptr<OutputStream> StreamOutput(
      const threadfleet::board::v1::StreamOutputRequest& request, CallOptions options, OutputChunkFn on_chunk,
      StatusDone on_done) = 0;
};

}  // namespace threadfleet::fleetd

#endif  // THREADFLEET_SERVER_FLEETD_LINKS_BOARD_CLIENT_H_
