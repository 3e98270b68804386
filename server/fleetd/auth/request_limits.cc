#include "server/fleetd/auth/request_limits.h"

#include <algorithm>
#include <limits>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/descriptor.h"
#include "threadfleet/fleet/v1/fleet.pb.h"

namespace threadfleet::fleetd {
namespace {

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;

// Room in a message for everything but its largest field (the other fields,
// tags and lengths).
constexpr size_t kMessageOverheadBytes = size_t{64} << 10;
// Fleet API requests nest two or three levels; deeper means a message type
// that refers to itself, which no request has. Stops a walk that would not end.
constexpr int kMaxDepth = 16;
constexpr uint64_t kLargestId = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());

absl::Status TooBig(const std::string& path, size_t size, absl::string_view unit, size_t limit,
                    absl::string_view key) {
  return absl::InvalidArgumentError(absl::StrCat(path, " is ", size, " ", unit, "; the limit is ", limit, " ",
                                                 unit, " (limits.request.", key, " in fleetd.yaml)"));
}

bool IsIdField(const FieldDescriptor& field) {
  return field.cpp_type() == FieldDescriptor::CPPTYPE_UINT64 &&
         (field.name() == "id" || absl::EndsWith(field.name(), "_id"));
}

}  // namespace

size_t RequestLimitOptions::MaxMessageBytes() const {
  size_t largest = max_field_bytes;
  if (max_push_bytes > largest) largest = max_push_bytes;
  if (max_job_spec_bytes > largest) largest = max_job_spec_bytes;
  // A job's files can each be smaller than the total yet add up to it.
  const size_t job = max_job_spec_bytes + std::min(max_job_files_bytes, max_repeated * max_job_file_bytes);
  if (job > largest) largest = job;
  return largest + kMessageOverheadBytes;
}

absl::Status RequestLimits::Check(const Message& request) const {
  if (absl::Status s = CheckMessage(request, request.GetDescriptor()->name(), 0); !s.ok()) return s;
  return CheckJobFilesTotal(request);
}

absl::Status RequestLimits::CheckJobFilesTotal(const Message& request) const {
  const auto* apply = dynamic_cast<const threadfleet::fleet::v1::ApplyJobRequest*>(&request);
  if (apply == nullptr) return absl::OkStatus();
  size_t total = 0;
  for (const threadfleet::fleet::v1::JobFile& file : apply->files()) total += file.content().size();
  if (total <= options_.max_job_files_bytes) return absl::OkStatus();
  return TooBig("ApplyJobRequest.files (all contents together)", total, "bytes", options_.max_job_files_bytes,
                "max_job_files_bytes");
}

absl::Status RequestLimits::CheckMessage(const Message& message, const std::string& path, int depth) const {
  if (depth > kMaxDepth) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": messages nested deeper than ", kMaxDepth));
  }
  const Reflection* reflection = message.GetReflection();
  std::vector<const FieldDescriptor*> fields;
  reflection->ListFields(message, &fields);  // only the fields that are set
  for (const FieldDescriptor* field : fields) {
    const std::string field_path = absl::StrCat(path, ".", field->name());
    size_t limit = options_.max_field_bytes;
    absl::string_view key = "max_field_bytes";
    if (field->full_name() == "threadfleet.fleet.v1.PushFileRequest.content") {
      limit = options_.max_push_bytes;
      key = "max_push_bytes";
    } else if (field->full_name() == "threadfleet.fleet.v1.ApplyJobRequest.spec_yaml") {
      limit = options_.max_job_spec_bytes;
      key = "max_job_spec_bytes";
    } else if (field->full_name() == "threadfleet.fleet.v1.JobFile.content") {
      limit = options_.max_job_file_bytes;
      key = "max_job_file_bytes";
    }
    if (field->is_repeated()) {
      const int count = reflection->FieldSize(message, field);
      if (static_cast<size_t>(count) > options_.max_repeated) {
        return TooBig(field_path, static_cast<size_t>(count), "entries", options_.max_repeated,
                      "max_repeated");
      }
      for (int i = 0; i < count; ++i) {
        // Map entries are messages too: their keys and values are checked
        // as fields of the entry.
        const std::string entry_path = absl::StrCat(field_path, "[", i, "]");
        switch (field->cpp_type()) {
          case FieldDescriptor::CPPTYPE_STRING: {
            std::string scratch;
            const std::string& value = reflection->GetRepeatedStringReference(message, field, i, &scratch);
            if (value.size() > limit) return TooBig(entry_path, value.size(), "bytes", limit, key);
            break;
          }
          case FieldDescriptor::CPPTYPE_MESSAGE:
            if (absl::Status s =
                    CheckMessage(reflection->GetRepeatedMessage(message, field, i), entry_path, depth + 1);
                !s.ok()) {
              return s;
            }
            break;
          default:
            break;
        }
      }
      continue;
    }
    switch (field->cpp_type()) {
      case FieldDescriptor::CPPTYPE_STRING: {
        std::string scratch;
        const std::string& value = reflection->GetStringReference(message, field, &scratch);
        if (value.size() > limit) return TooBig(field_path, value.size(), "bytes", limit, key);
        break;
      }
      case FieldDescriptor::CPPTYPE_MESSAGE:
        if (absl::Status s = CheckMessage(reflection->GetMessage(message, field), field_path, depth + 1);
            !s.ok()) {
          return s;
        }
        break;
      case FieldDescriptor::CPPTYPE_UINT64:
        if (IsIdField(*field) && reflection->GetUInt64(message, field) > kLargestId) {
          return absl::InvalidArgumentError(absl::StrCat(field_path, " is ",
                                                         reflection->GetUInt64(message, field),
                                                         "; ids are at most 2^63-1 (", kLargestId, ")"));
        }
        break;
      default:
        break;
    }
  }
  return absl::OkStatus();
}

}  // namespace threadfleet::fleetd
