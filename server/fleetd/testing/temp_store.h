// Test support for fleetd's unit tests: a real SqliteStore in a fresh
// temporary directory, removed again when the test ends. Built only for tests
// (target fleetd_testing_store); needs no sockets and no boards.
//
// Example (in a GoogleTest fixture):
//
//   class TokenAuthorityTest : public ::testing::Test {
//    protected:
//     void SetUp() override {
//       ASSERT_NO_FATAL_FAILURE(temp_.Init("token_test"));  // /tmp/token_test.XXXXXX/fleet.db
//       tokens_ = std::make_unique<TokenAuthority>(temp_.store());
//     }
//     testing::TempStore temp_;  // declared first: destroyed after what uses its store
//     std::unique_ptr<TokenAuthority> tokens_;
//   };
#ifndef THREADFLEET_SERVER_FLEETD_TESTING_TEMP_STORE_H_
#define THREADFLEET_SERVER_FLEETD_TESTING_TEMP_STORE_H_

#include <filesystem>
#include <memory>
#include <string>

#include "absl/strings/string_view.h"
#include "server/fleetd/store/sqlite_store.h"

namespace threadfleet::fleetd::testing {

// Owns a temporary directory and the SqliteStore open on `fleet.db` in it.
// Not copyable; one per test.
class TempStore {
 public:
  TempStore() = default;
  // Closes the store, then removes the directory and everything in it.
  ~TempStore();

  TempStore(const TempStore&) = delete;
  TempStore& operator=(const TempStore&) = delete;

  // Creates a fresh directory `<system temp dir>/<name>.XXXXXX` and opens the
  // store in it. A failure is a fatal test failure (use
  // ASSERT_NO_FATAL_FAILURE). REQUIRES: called once, before store().
  void Init(absl::string_view name);

  // Closes the store and opens the same file again, as a fleetd restart
  // would. Everything holding the old store() must be gone. A failure is a
  // fatal test failure.
  void Reopen();

  // The open store. REQUIRES: Init() succeeded.
  SqliteStore& store() { return *store_; }
  // The temporary directory (for other files a test needs beside the store).
  const std::filesystem::path& dir() const { return dir_; }

 private:
  std::filesystem::path dir_;
  std::unique_ptr<SqliteStore> store_;
};

}  // namespace threadfleet::fleetd::testing

#endif  // THREADFLEET_SERVER_FLEETD_TESTING_TEMP_STORE_H_
