#include "server/cli/json_output.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "threadfleet/fleet/v1/fleet.pb.h"

namespace threadfleet::cli {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

TEST(JsonOutputTest, LinesUseProtoFieldNamesAndPrintDefaults) {
  fleet::v1::StartThreadResponse response;
  response.set_program_id(3);
  EXPECT_EQ(MessageToJson(response, JsonLayout::kLine), "{\"program_id\":3,\"thread_id\":0}\n");
}

TEST(JsonOutputTest, EnumsPrintAsNames) {
  fleet::v1::PushFileResponse response;
  response.set_board("b01");
  response.set_stage(fleet::v1::PUSH_STAGE_DONE);
  const std::string json = MessageToJson(response, JsonLayout::kLine);
  EXPECT_THAT(json, HasSubstr("\"stage\":\"PUSH_STAGE_DONE\""));
  EXPECT_THAT(json, HasSubstr("\"sent_bytes\":\"0\""));  // 64-bit integers are strings in proto JSON
  EXPECT_THAT(json, Not(HasSubstr("sentBytes")));
}

TEST(JsonOutputTest, PrettyLayoutSpansLinesAndEndsWithOneNewline) {
  fleet::v1::ListBoardsResponse response;
  fleet::v1::Board* board = response.add_boards();
  board->set_name("b01");
  board->set_state(fleet::v1::BOARD_STATE_ONLINE);
  const std::string json = MessageToJson(response, JsonLayout::kPretty);
  EXPECT_THAT(json, HasSubstr("\n \"boards\": ["));
  EXPECT_THAT(json, HasSubstr("\"state\": \"BOARD_STATE_ONLINE\""));
  EXPECT_THAT(json, HasSubstr("\"state_reason\": \"\""));
  ASSERT_GE(json.size(), 2u);
  EXPECT_EQ(json.back(), '\n');
  EXPECT_NE(json[json.size() - 2], '\n');
}

}  // namespace
}  // namespace threadfleet::cli
