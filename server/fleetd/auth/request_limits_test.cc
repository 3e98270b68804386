#include "server/fleetd/auth/request_limits.h"

#include <cstdint>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "threadfleet/fleet/v1/fleet.pb.h"

namespace threadfleet::fleetd {
namespace {

namespace fleet = threadfleet::fleet::v1;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;

RequestLimits Limits() {
  return RequestLimits(RequestLimitOptions{.max_field_bytes = 16,
                                           .max_repeated = 3,
                                           .max_push_bytes = 64,
                                           .max_job_spec_bytes = 32,
                                           .max_job_file_bytes = 40,
                                           .max_job_files_bytes = 60});
}

TEST(RequestLimits, ARequestWithinTheLimitsPasses) {
  fleet::KillThreadRequest kill;
  kill.set_board("b01");
  kill.set_thread_id(7);
  EXPECT_TRUE(Limits().Check(kill).ok());
}

TEST(RequestLimits, AnOversizedStringIsRefusedNamingTheFieldAndTheLimitButNotItsContent) {
  fleet::KillThreadRequest kill;
  kill.set_board(std::string(3 << 20, 'b'));
  absl::Status status = Limits().Check(kill);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(),
              AllOf(HasSubstr("KillThreadRequest.board is 3145728 bytes"), HasSubstr("limit is 16 bytes"),
                    HasSubstr("limits.request.max_field_bytes"), Not(HasSubstr("bbbb"))));
}

TEST(RequestLimits, NestedAndRepeatedFieldsAreCheckedWithTheirIndex) {
  fleet::RunProgramRequest run;
  run.set_path("/app.py");
  run.mutable_selector()->add_boards("b01");
  run.mutable_selector()->add_boards(std::string(17, 'x'));
  EXPECT_THAT(Limits().Check(run).message(), HasSubstr("RunProgramRequest.selector.boards[1] is 17 bytes"));

  fleet::RunProgramRequest many;
  for (int i = 0; i < 4; ++i) many.add_args("a");
  EXPECT_THAT(Limits().Check(many).message(), AllOf(HasSubstr("RunProgramRequest.args is 4 entries"),
                                                    HasSubstr("limits.request.max_repeated")));
}

TEST(RequestLimits, MapKeysAndValuesAreChecked) {
  fleet::AddBoardRequest add;
  add.set_name("b01");
  (*add.mutable_labels())["lab"] = std::string(17, 'v');
  EXPECT_THAT(Limits().Check(add).message(), HasSubstr("AddBoardRequest.labels[0].value is 17 bytes"));
}

TEST(RequestLimits, PushContentAndJobSpecHaveLimitsOfTheirOwn) {
  fleet::PushFileRequest push;
  push.set_path("/app.py");
  push.set_content(std::string(64, 'x'));  // over max_field_bytes, within max_push_bytes
  EXPECT_TRUE(Limits().Check(push).ok());
  push.set_content(std::string(65, 'x'));
  EXPECT_THAT(Limits().Check(push).message(), AllOf(HasSubstr("PushFileRequest.content is 65 bytes"),
                                                    HasSubstr("limits.request.max_push_bytes")));

  fleet::ApplyJobRequest job;
  job.set_spec_yaml(std::string(33, 'x'));
  EXPECT_THAT(Limits().Check(job).message(), HasSubstr("limits.request.max_job_spec_bytes"));
}

TEST(RequestLimits, JobFilesHaveALimitEachAndOneTogether) {
  fleet::ApplyJobRequest job;
  job.set_spec_yaml("name: x");
  fleet::JobFile* app = job.add_files();
  app->set_path("app.py");
  app->set_content(std::string(40, 'x'));  // over max_field_bytes, within max_job_file_bytes
  EXPECT_TRUE(Limits().Check(job).ok());
  app->set_content(std::string(41, 'x'));
  EXPECT_THAT(Limits().Check(job).message(), AllOf(HasSubstr("ApplyJobRequest.files[0].content is 41 bytes"),
                                                   HasSubstr("limits.request.max_job_file_bytes")));

  app->set_content(std::string(40, 'x'));
  fleet::JobFile* lib = job.add_files();
  lib->set_path("lib.py");
  lib->set_content(std::string(21, 'y'));  // each within its limit, 61 together
  absl::Status total = Limits().Check(job);
  EXPECT_EQ(total.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(total.message(),
              AllOf(HasSubstr("ApplyJobRequest.files (all contents together) is 61 bytes"),
                    HasSubstr("limit is 60 bytes"), HasSubstr("limits.request.max_job_files_bytes")));
}

TEST(RequestLimits, IdsOf2To63AndMoreAreRefusedInsteadOfWrapping) {
  fleet::RevokeTokenRequest revoke;
  revoke.set_id(uint64_t{1} << 63);
  absl::Status status = Limits().Check(revoke);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("RevokeTokenRequest.id is 9223372036854775808"));
  revoke.set_id((uint64_t{1} << 63) - 1);
  EXPECT_TRUE(Limits().Check(revoke).ok());

  fleet::ListEventsRequest events;
  events.set_after_id(UINT64_MAX);
  EXPECT_THAT(Limits().Check(events).message(), HasSubstr("ListEventsRequest.after_id"));
  fleet::ListAuditRequest audit;
  audit.set_before_id(UINT64_MAX);
  EXPECT_THAT(Limits().Check(audit).message(), HasSubstr("ListAuditRequest.before_id"));
}

TEST(RequestLimits, TheLargestMessageLeavesRoomForTheLargestField) {
  RequestLimitOptions options;
  EXPECT_GT(options.MaxMessageBytes(), options.max_push_bytes);
  EXPECT_LT(options.MaxMessageBytes(), 2 * options.max_job_files_bytes);
}

TEST(RequestLimits, TheLargestMessageHoldsAJobSpecWithAllItsFiles) {
  RequestLimitOptions options;
  EXPECT_GT(options.MaxMessageBytes(), options.max_job_spec_bytes + options.max_job_files_bytes);
}

}  // namespace
}  // namespace threadfleet::fleetd
