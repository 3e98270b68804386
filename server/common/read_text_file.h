// Reading a whole file the user named (a config file, a lab file, a
// certificate, a script to push) with an error that says what went wrong and
// what the file was for. fleetd and fleetctl read every such file through
// here, so the same problem reads the same everywhere.
//
// Example:
//
//   absl::StatusOr<std::string> text = common::ReadTextFile("/etc/fleetd/lab.yaml", "lab file");
//   if (!text.ok()) return text.status();  // "lab file /etc/fleetd/lab.yaml does not exist"
//   ParseLabFile(*text, ...);

#ifndef THREADFLEET_SERVER_COMMON_READ_TEXT_FILE_H_
#define THREADFLEET_SERVER_COMMON_READ_TEXT_FILE_H_

#include <filesystem>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace threadfleet::common {

// Returns every byte of the file at `path` (no newline translation, so
// binary content comes back unchanged; an empty file gives ""). `what` names
// the file's role for the error messages ("config file", "CA certificate").
//
// Every error message names `what` and `path`:
// - NOT_FOUND: "<what> <path> does not exist" (also when a directory on the
//   way is missing or is a file).
// - PERMISSION_DENIED: "cannot read <what> <path>: permission denied; check
//   that this user may read it".
// - FAILED_PRECONDITION: "<what> <path> is a directory, not a file".
// - INTERNAL: "cannot read <what> <path>: <reason>" for any other failure to
//   open or read it (e.g. a name too long, an I/O error).
//
// A FIFO or device is read like a file, until its end.
[[nodiscard]] absl::StatusOr<std::string> ReadTextFile(const std::filesystem::path& path,
                                                       absl::string_view what);

// A certificate or key in PEM: ReadTextFile, and INVALID_ARGUMENT
// "<what> <path> is empty" for an empty file (TLS libraries would otherwise
// fail later with a message that names no file).
[[nodiscard]] absl::StatusOr<std::string> ReadPemFile(const std::filesystem::path& path,
                                                      absl::string_view what);

}  // namespace threadfleet::common

#endif  // THREADFLEET_SERVER_COMMON_READ_TEXT_FILE_H_
