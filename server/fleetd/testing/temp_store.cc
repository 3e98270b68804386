#include "server/fleetd/testing/temp_store.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <system_error>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"

namespace threadfleet::fleetd::testing {

TempStore::~TempStore() {
  store_.reset();
  if (dir_.empty()) return;
  std::error_code ignored;  // a leftover temp dir must not fail the test
  std::filesystem::remove_all(dir_, ignored);
}

void TempStore::Init(absl::string_view name) {
  std::string pattern = (std::filesystem::temp_directory_path() / absl::StrCat(name, ".XXXXXX")).string();
  ASSERT_NE(mkdtemp(pattern.data()), nullptr) << "mkdtemp " << pattern;
  dir_ = pattern;
  ASSERT_NO_FATAL_FAILURE(Reopen());
}

void TempStore::Reopen() {
  store_.reset();
  absl::StatusOr<std::unique_ptr<SqliteStore>> store = SqliteStore::Open((dir_ / "fleet.db").string());
  ASSERT_TRUE(store.ok()) << store.status();
  store_ = *std::move(store);
}

}  // namespace threadfleet::fleetd::testing
