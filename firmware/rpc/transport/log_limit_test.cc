// The refusal log's rate limit, on a clock the test controls.
#include "firmware/rpc/transport/log_limit.h"

#include <gtest/gtest.h>

namespace {

TEST(LogLimit, AFloodPassesAtMostTheLimitPerWindowAndTheNextLineCountsTheRest) {
  rpc_log_limit_t limit = RPC_LOG_LIMIT_INIT(3, 1000);
  uint64_t suppressed = 99;
  int passed = 0;
  for (int i = 0; i < 100; i++) {  // 100 refusals within 100 ms
    if (rpc_log_limit_admit(&limit, 5000 + i, &suppressed)) {
      passed++;
      EXPECT_EQ(suppressed, 0u);
    }
  }
  EXPECT_EQ(passed, 3);

  ASSERT_TRUE(rpc_log_limit_admit(&limit, 6000, &suppressed)) << "a new window";
  EXPECT_EQ(suppressed, 97u) << "the first line of it says how many were left out";
  ASSERT_TRUE(rpc_log_limit_admit(&limit, 6001, &suppressed));
  EXPECT_EQ(suppressed, 0u) << "and the count starts again";
}

TEST(LogLimit, LinesUnderTheLimitAllPass) {
  rpc_log_limit_t limit = RPC_LOG_LIMIT_INIT(10, 10000);
  uint64_t suppressed = 0;
  for (int i = 0; i < 30; i++) {
    EXPECT_TRUE(rpc_log_limit_admit(&limit, int64_t{i} * 5000, &suppressed)) << i;  // 2 per 10 s window
    EXPECT_EQ(suppressed, 0u);
  }
}

}  // namespace
