// RequestLimits: the size check every Fleet API request passes before any
// work — before authorization, before the audit log, before a handler reads
// a field. One generic walk over the message (protobuf reflection), so an RPC
// added later is covered without code of its own:
// - every string or bytes field: at most max_field_bytes, except the fields
//   with a limit of their own (PushFileRequest.content, ApplyJobRequest.spec_yaml,
//   ApplyJobRequest.files[].content);
// - the files of an ApplyJobRequest together: at most max_job_files_bytes;
// - every repeated or map field: at most max_repeated entries;
// - every uint64 id field ("id" or ending in "_id"): below 2^63, since the
//   store keeps ids as SQLite's signed 64-bit integers (a larger one would
//   wrap to a negative id).
// Nested messages are walked too (a Selector's boards).
//
// Example (the gate in service_call.h):
//
//   absl::Status sized = state->limits.Check(*request);
//   if (!sized.ok()) return reactor->Finish(ToGrpc(sized));
//   // INVALID_ARGUMENT "KillThreadRequest.board is 3145728 bytes; the limit is
//   // 1024 bytes (limits.request.max_field_bytes in fleetd.yaml)"
//
// The message never quotes the field's content, only its name and size.
#ifndef THREADFLEET_SERVER_FLEETD_AUTH_REQUEST_LIMITS_H_
#define THREADFLEET_SERVER_FLEETD_AUTH_REQUEST_LIMITS_H_

#include <cstddef>
#include <cstdint>

#include "absl/status/status.h"
#include "google/protobuf/message.h"

namespace threadfleet::fleetd {

// fleetd.yaml's `limits.request` section; the defaults are fleetd's.
struct RequestLimitOptions {
  // Bytes of any string or bytes field without a limit of its own (names,
  // paths, labels, arguments).
  size_t max_field_bytes = 1024;
  // Entries of any repeated or map field (e.g. a selector's boards).
  size_t max_repeated = 4096;
  // Bytes of a file pushed (PushFileRequest.content).
  size_t max_push_bytes = size_t{1} << 20;
  // Bytes of a job spec (ApplyJobRequest.spec_yaml).
  size_t max_job_spec_bytes = size_t{64} << 10;
  // Bytes of one file uploaded with a job spec (ApplyJobRequest.files[].content).
  size_t max_job_file_bytes = size_t{1} << 20;
  // Bytes of all files uploaded with one job spec together.
  size_t max_job_files_bytes = size_t{4} << 20;

  // The largest request message gRPC accepts: the largest field, or a job
  // spec with all its files, plus room for the rest of the message. A bigger
  // one is refused by gRPC itself (RESOURCE_EXHAUSTED) before fleetd sees it.
  size_t MaxMessageBytes() const;
};

// Thread-safe (immutable after construction).
class RequestLimits {
 public:
  explicit RequestLimits(RequestLimitOptions options) : options_(options) {}

  // OK when every field of `request` is within the limits; otherwise
  // INVALID_ARGUMENT naming the first field over its limit (its path from the
  // request, e.g. "RunProgramRequest.selector.boards", with the entry index
  // for a repeated one), its size and the limit with its fleetd.yaml key.
  [[nodiscard]] absl::Status Check(const google::protobuf::Message& request) const;

  const RequestLimitOptions& options() const { return options_; }

 private:
  absl::Status CheckMessage(const google::protobuf::Message& message, const std::string& path,
                            int depth) const;
  // max_job_files_bytes over an ApplyJobRequest's files; OK for any other
  // request.
  absl::Status CheckJobFilesTotal(const google::protobuf::Message& request) const;

  const RequestLimitOptions options_;
};

}  // namespace threadfleet::fleetd

#endif  // THREADFLEET_SERVER_FLEETD_AUTH_REQUEST_LIMITS_H_
