// ReadTextFile on real files in a temporary directory: what it returns, and
// which code and message each kind of failure gives.
#include "server/common/read_text_file.h"

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace threadfleet::common {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

constexpr uid_t kNobody = 65534;

class ReadTextFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (std::filesystem::temp_directory_path() / "read_text_file_test.XXXXXX").string();
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }
  void TearDown() override {
    std::error_code ignored;
    std::filesystem::permissions(dir_ / "secret.yaml", std::filesystem::perms::owner_all, ignored);
    std::filesystem::remove_all(dir_);
  }

  std::string Write(const std::string& name, const std::string& content) {
    const std::string path = (dir_ / name).string();
    std::ofstream(path, std::ios::binary) << content;
    return path;
  }

  std::filesystem::path dir_;
};

TEST_F(ReadTextFileTest, ReturnsEveryByteUnchanged) {
  const std::string content("line 1\r\nline 2\n\0binary\xff", 23);
  const std::string path = Write("f.txt", content);

  absl::StatusOr<std::string> text = ReadTextFile(path, "test file");

  ASSERT_TRUE(text.ok()) << text.status();
  EXPECT_EQ(*text, content);
}

TEST_F(ReadTextFileTest, EmptyFileIsEmptyText) {
  const std::string path = Write("empty.txt", "");

  absl::StatusOr<std::string> text = ReadTextFile(path, "test file");

  ASSERT_TRUE(text.ok()) << text.status();
  EXPECT_EQ(*text, "");
}

TEST_F(ReadTextFileTest, FileLargerThanOneReadComesBackWhole) {
  const std::string content(200 * 1024 + 7, 'x');
  const std::string path = Write("big.txt", content);

  absl::StatusOr<std::string> text = ReadTextFile(path, "test file");

  ASSERT_TRUE(text.ok()) << text.status();
  EXPECT_EQ(text->size(), content.size());
}

TEST_F(ReadTextFileTest, MissingFileIsNotFoundNamingWhatAndPath) {
  const std::string path = (dir_ / "nope.yaml").string();

  absl::Status status = ReadTextFile(path, "lab file").status();

  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(status.message(), "lab file " + path + " does not exist");
}

TEST_F(ReadTextFileTest, PathThroughAFileIsNotFound) {
  const std::string file = Write("plain", "x");

  absl::Status status = ReadTextFile(file + "/child.yaml", "config file").status();

  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(status.message()), HasSubstr(file + "/child.yaml"));
}

TEST_F(ReadTextFileTest, DirectoryIsFailedPreconditionNamingWhatAndPath) {
  absl::Status status = ReadTextFile(dir_, "CA certificate").status();

  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(status.message(), "CA certificate " + dir_.string() + " is a directory, not a file");
}

TEST_F(ReadTextFileTest, UnreadableFileIsPermissionDeniedNamingWhatAndPath) {
  const std::string path = Write("secret.yaml", "token: x\n");
  ASSERT_EQ(chmod(path.c_str(), 0), 0);
  ASSERT_EQ(chmod(dir_.c_str(), 0755), 0);
  const std::string expected = "cannot read config file " + path + ": permission denied";

  // root reads every file, so the read runs in a child that gave up root.
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    if (geteuid() == 0 && setuid(kNobody) != 0) _exit(2);
    absl::Status status = ReadTextFile(path, "config file").status();
    const bool as_specified =
        status.code() == absl::StatusCode::kPermissionDenied && absl::StartsWith(status.message(), expected);
    _exit(as_specified ? 0 : 1);
  }
  int wait_status = 0;
  ASSERT_EQ(waitpid(child, &wait_status, 0), child);

  ASSERT_TRUE(WIFEXITED(wait_status));
  EXPECT_EQ(WEXITSTATUS(wait_status), 0)
      << "1: not PERMISSION_DENIED starting \"" << expected << "\"; 2: setuid failed";
}

TEST_F(ReadTextFileTest, OtherFailuresAreInternalNamingWhatAndPathAndReason) {
  const std::string path = (dir_ / std::string(300, 'n')).string();  // NAME_MAX is 255

  absl::Status status = ReadTextFile(path, "script").status();

  EXPECT_EQ(status.code(), absl::StatusCode::kInternal);
  EXPECT_THAT(std::string(status.message()), StartsWith("cannot read script " + path + ": "));
  EXPECT_THAT(std::string(status.message()), HasSubstr("too long"));
}

}  // namespace
}  // namespace threadfleet::common
