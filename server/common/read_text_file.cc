#include "server/common/read_text_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace threadfleet::common {
namespace {

// The status for `err` (an errno value) from opening or reading `path`.
absl::Status OpenError(int err, const std::filesystem::path& path, absl::string_view what) {
  switch (err) {
    case ENOENT:
    case ENOTDIR:
      return absl::NotFoundError(absl::StrCat(what, " ", path.string(), " does not exist"));
    case EACCES:
    case EPERM:
      return absl::PermissionDeniedError(absl::StrCat(
          "cannot read ", what, " ", path.string(), ": permission denied; check that this user may read it"));
    case EISDIR:
      return absl::FailedPreconditionError(
          absl::StrCat(what, " ", path.string(), " is a directory, not a file"));
    default:
      return absl::InternalError(
          absl::StrCat("cannot read ", what, " ", path.string(), ": ", std::strerror(err)));
  }
}

// Closes the descriptor on every return path.
class FileDescriptor {
 public:
  explicit FileDescriptor(int fd) : fd_(fd) {}
  ~FileDescriptor() {
    if (fd_ >= 0) close(fd_);
  }
  FileDescriptor(const FileDescriptor&) = delete;
  FileDescriptor& operator=(const FileDescriptor&) = delete;

  int get() const { return fd_; }

 private:
  int fd_;
};

}  // namespace

absl::StatusOr<std::string> ReadTextFile(const std::filesystem::path& path, absl::string_view what) {
  FileDescriptor file(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (file.get() < 0) return OpenError(errno, path, what);
  struct stat info;
  if (fstat(file.get(), &info) != 0) return OpenError(errno, path, what);
  // open() succeeds on a directory; read() would then fail with EISDIR.
  if (S_ISDIR(info.st_mode)) return OpenError(EISDIR, path, what);

  std::string text;
  if (S_ISREG(info.st_mode)) text.reserve(static_cast<size_t>(info.st_size));
  char buffer[64 * 1024];
  for (;;) {
    const ssize_t n = read(file.get(), buffer, sizeof buffer);
    if (n == 0) return text;
    if (n < 0) {
      if (errno == EINTR) continue;
      return OpenError(errno, path, what);
    }
    text.append(buffer, static_cast<size_t>(n));
  }
}

absl::StatusOr<std::string> ReadPemFile(const std::filesystem::path& path, absl::string_view what) {
  absl::StatusOr<std::string> text = ReadTextFile(path, what);
  if (text.ok() && text->empty()) {
    return absl::InvalidArgumentError(absl::StrCat(what, " ", path.string(), " is empty"));
  }
  return text;
}

}  // namespace threadfleet::common
