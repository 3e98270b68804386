// The published job specs against the parser: every example in
// examples/jobs/ parses (and names only files that exist beside it), and
// every spec in testdata/bad-specs/ is refused with the message its first
// line gives ("# refused: FILE:LINE:COL: ..."). spec_schema_test.py checks
// the same files against docs/jobs.schema.json.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/strip.h"
#include "server/fleetd/jobs/job_spec.h"

namespace threadfleet::fleetd::jobs {
namespace {

namespace fs = std::filesystem;

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

std::vector<fs::path> SpecsIn(const fs::path& dir) {
  std::vector<fs::path> specs;
  for (const fs::directory_entry& entry : fs::directory_iterator(dir)) {
    if (entry.path().extension() == ".yaml") specs.push_back(entry.path());
  }
  std::sort(specs.begin(), specs.end());
  return specs;
}

TEST(JobSpecExamplesTest, EveryExampleParsesAndItsFilesExist) {
  const fs::path dir = fs::path(THREADFLEET_SOURCE_DIR) / "examples" / "jobs";
  const std::vector<fs::path> specs = SpecsIn(dir);
  ASSERT_GE(specs.size(), 3u);
  bool some_scheduled = false;
  for (const fs::path& path : specs) {
    absl::StatusOr<JobSpec> spec = ParseJobSpec(ReadFile(path), path.filename().string());
    ASSERT_TRUE(spec.ok()) << spec.status();
    EXPECT_EQ(spec->name + ".yaml", path.filename().string()) << "an example's file is named after its job";
    for (const JobSpec::File& file : spec->files) {
      EXPECT_TRUE(fs::is_regular_file(dir / file.path)) << path << " names " << file.path;
    }
    some_scheduled = some_scheduled || spec->schedule.has_value();
  }
  EXPECT_TRUE(some_scheduled) << "at least one example shows a schedule";
}

TEST(JobSpecExamplesTest, EveryBadSpecIsRefusedWithItsMessage) {
  const std::vector<fs::path> specs =
      SpecsIn(fs::path(THREADFLEET_SOURCE_DIR) / "server" / "fleetd" / "jobs" / "testdata" / "bad-specs");
  ASSERT_GE(specs.size(), 5u);
  for (const fs::path& path : specs) {
    const std::string text = ReadFile(path);
    absl::string_view first_line = absl::string_view(text).substr(0, text.find('\n'));
    ASSERT_TRUE(absl::ConsumePrefix(&first_line, "# refused: ")) << path << " says what it is refused for";
    absl::StatusOr<JobSpec> spec = ParseJobSpec(text, "bad.yaml");
    EXPECT_EQ(spec.status().code(), absl::StatusCode::kInvalidArgument) << path;
    EXPECT_TRUE(absl::StartsWith(spec.status().message(), first_line))
        << path << "\n  got:  " << spec.status().message() << "\n  want: " << first_line;
  }
}

}  // namespace
}  // namespace threadfleet::fleetd::jobs
