#include "server/fleetd/store/sqlite_store.h"

#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/fleetd/store/retention.h"
#include "server/fleetd/store/sha256.h"

namespace threadfleet::fleetd {
namespace {

namespace fleet = ::threadfleet::fleet::v1;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::SizeIs;

// A fresh directory per test, removed afterwards.
class SqliteStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (std::filesystem::temp_directory_path() / "sqlite_store_test.XXXXXX").string();
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
    path_ = (dir_ / "fleet.db").string();
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::unique_ptr<SqliteStore> OpenStore() {
    absl::StatusOr<std::unique_ptr<SqliteStore>> store = SqliteStore::Open(path_);
    EXPECT_TRUE(store.ok()) << store.status();
    return store.ok() ? *std::move(store) : nullptr;
  }

  std::filesystem::path dir_;
  std::string path_;
};

const absl::Time kT0 = absl::FromUnixSeconds(1'700'000'000);

BoardRecord Board(std::string name, fleet::BoardOrigin origin = fleet::BOARD_ORIGIN_RUNTIME) {
  return BoardRecord{.name = name,
                     .address = "127.0.0.1:7001",
                     .labels = {{"lab", "a"}, {"role", "sensor"}},
                     .origin = origin,
                     .add_time = kT0};
}

fleet::Event MakeEvent(std::string board, fleet::Severity severity, std::string message) {
  fleet::Event event;
  event.mutable_time()->set_seconds(1'700'000'000);
  event.set_board(board);
  event.set_kind(fleet::EVENT_KIND_BOARD_EVENT);
  event.set_severity(severity);
  event.set_message(message);
  event.mutable_board_event()->set_kind(board::v1::EVENT_KIND_THREAD_FAILED);
  return event;
}

TEST_F(SqliteStoreTest, OpenCreatesFileAtLatestSchemaVersion) {
  std::unique_ptr<SqliteStore> store = OpenStore();
  ASSERT_NE(store, nullptr);

  EXPECT_TRUE(std::filesystem::exists(path_));
  absl::StatusOr<int> version = store->SchemaVersion();
  ASSERT_TRUE(version.ok()) << version.status();
  EXPECT_EQ(*version, SqliteStore::LatestSchemaVersion());
}

TEST_F(SqliteStoreTest, MigratesAnEmptyExistingFile) {
  std::ofstream(path_).close();
  ASSERT_EQ(std::filesystem::file_size(path_), 0u);

  std::unique_ptr<SqliteStore> store = OpenStore();

  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->SchemaVersion().value_or(-1), SqliteStore::LatestSchemaVersion());
}

TEST_F(SqliteStoreTest, ReopeningACurrentFileRunsNoMigration) {
  OpenStore().reset();

  std::unique_ptr<SqliteStore> again = OpenStore();
  ASSERT_NE(again, nullptr);

  // Each migration recorded exactly once.
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
  sqlite3_stmt* stmt = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(db, "SELECT count(*), max(version) FROM schema_version", -1, &stmt, nullptr),
            SQLITE_OK);
  ASSERT_EQ(sqlite3_step(stmt), SQLITE_ROW);
  EXPECT_EQ(sqlite3_column_int(stmt, 0), SqliteStore::LatestSchemaVersion());
  EXPECT_EQ(sqlite3_column_int(stmt, 1), SqliteStore::LatestSchemaVersion());
  sqlite3_finalize(stmt);
  sqlite3_close(db);
}

TEST_F(SqliteStoreTest, UsesWalMode) {
  std::unique_ptr<SqliteStore> store = OpenStore();
  ASSERT_NE(store, nullptr);

  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
  sqlite3_stmt* stmt = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &stmt, nullptr), SQLITE_OK);
  ASSERT_EQ(sqlite3_step(stmt), SQLITE_ROW);
  EXPECT_STREQ(reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0)), "wal");
  sqlite3_finalize(stmt);
  sqlite3_close(db);
}

TEST_F(SqliteStoreTest, ProgramsNeedTheirScriptStored) {
  std::unique_ptr<SqliteStore> store = OpenStore();
  ProgramRecord program{.board = "b01", .script_sha256_hex = Sha256Hex("never stored")};

  absl::StatusOr<int64_t> id = store->AddProgram(program);

  EXPECT_EQ(id.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(id.status().message(), HasSubstr("PutScript it first"));
}

TEST_F(SqliteStoreTest, NewerSchemaIsRefusedWithAClearError) {
  OpenStore().reset();
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "INSERT INTO schema_version VALUES (999, 0)", nullptr, nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close(db);

  absl::StatusOr<std::unique_ptr<SqliteStore>> store = SqliteStore::Open(path_);

  EXPECT_EQ(store.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(store.status().message(), HasSubstr("schema version 999 is newer"));
  EXPECT_THAT(store.status().message(), HasSubstr(path_));
}

TEST_F(SqliteStoreTest, CorruptFileGivesDataLossNamingTheFile) {
  std::ofstream(path_) << std::string(8192, 'x');

  absl::StatusOr<std::unique_ptr<SqliteStore>> store = SqliteStore::Open(path_);

  EXPECT_EQ(store.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(store.status().message(), HasSubstr(path_));
  EXPECT_THAT(store.status().message(), HasSubstr("not a database"));
}

TEST_F(SqliteStoreTest, MissingDirectoryGivesFailedPrecondition) {
  absl::StatusOr<std::unique_ptr<SqliteStore>> store =
      SqliteStore::Open((dir_ / "no/such/dir/fleet.db").string());

  EXPECT_EQ(store.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(store.status().message(), HasSubstr("no/such/dir/fleet.db"));
}

TEST_F(SqliteStoreTest, LockedDatabaseGivesUnavailableAfterTheBusyTimeout) {
  absl::StatusOr<std::unique_ptr<SqliteStore>> store =
      SqliteStore::Open(path_, SqliteStore::Options{.busy_timeout = absl::Milliseconds(50)});
  ASSERT_TRUE(store.ok()) << store.status();
  // Another process (here: another connection) holds the write lock.
  sqlite3* other = nullptr;
  ASSERT_EQ(sqlite3_open(path_.c_str(), &other), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(other, "BEGIN EXCLUSIVE", nullptr, nullptr, nullptr), SQLITE_OK);

  absl::Status put = (*store)->PutBoard(Board("b01"));

  EXPECT_EQ(put.code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(put.message(), HasSubstr("locked"));
  EXPECT_THAT(put.message(), HasSubstr("another process"));
  // Once the lock is gone, the store works again.
  ASSERT_EQ(sqlite3_exec(other, "COMMIT", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(other);
  EXPECT_TRUE((*store)->PutBoard(Board("b01")).ok());
}

TEST_F(SqliteStoreTest, OpeningAFileLockedByAnotherProcessGivesUnavailable) {
  sqlite3* other = nullptr;
  ASSERT_EQ(sqlite3_open(path_.c_str(), &other), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(other, "BEGIN EXCLUSIVE; CREATE TABLE t (x INTEGER)", nullptr, nullptr, nullptr),
            SQLITE_OK);

  absl::StatusOr<std::unique_ptr<SqliteStore>> store =
      SqliteStore::Open(path_, SqliteStore::Options{.busy_timeout = absl::Milliseconds(50)});

  EXPECT_EQ(store.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(store.status().message(), HasSubstr(path_));
  EXPECT_THAT(store.status().message(), HasSubstr("another process"));
  sqlite3_exec(other, "ROLLBACK", nullptr, nullptr, nullptr);
  sqlite3_close(other);
}

TEST_F(SqliteStoreTest, RestartLosesNothing) {
  int64_t program_id = 0;
  int64_t run_id = 0;
  std::string sha;
  {
    std::unique_ptr<SqliteStore> store = OpenStore();
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->PutBoard(Board("b01")).ok());
    ASSERT_TRUE(store->ReplaceLabFileBoards({Board("lab1", fleet::BOARD_ORIGIN_LAB_FILE)}).ok());
    sha = store->PutScript("print('hello')\n").value();
    program_id = store
                     ->AddProgram(ProgramRecord{.board = "b01",
                                                .board_program_id = 3,
                                                .main_thread_id = 5,
                                                .name = "app.py",
                                                .path = "/app.py",
                                                .script_sha256_hex = sha,
                                                .args = {"one", "two"},
                                                .started_by = "alice",
                                                .start_time = kT0})
                     .value();
    ASSERT_TRUE(
        store->FinishProgram(program_id, board::v1::PROGRAM_STATE_FINISHED, 0, kT0 + absl::Seconds(2)).ok());
    ASSERT_TRUE(store->PutJob("smoke", "name: smoke\n", {}, kT0).ok());
    run_id = store->CreateRun("smoke", "manual:alice", kT0, std::nullopt).value().id;
    fleet::BoardResult result;
    result.set_board("b01");
    result.set_state(fleet::RUN_STATE_PASSED);
    result.add_steps()->set_kind("push");
    ASSERT_TRUE(store->PutBoardResult(run_id, result).ok());
    ASSERT_TRUE(
        store->UpdateRun(run_id, fleet::RUN_STATE_PASSED, "all passed", {}, kT0 + absl::Seconds(9)).ok());
    ASSERT_TRUE(store->AppendEvent(MakeEvent("b01", fleet::SEVERITY_WARNING, "thread 7 failed")).ok());
    ASSERT_TRUE(store
                    ->AppendAudit(AuditRecord{.time = kT0,
                                              .actor = "alice",
                                              .action = "Fleet.KillThread",
                                              .target = "b01/7",
                                              .result_code = absl::StatusCode::kNotFound,
                                              .result_message = "no thread 7"})
                    .ok());
    ASSERT_TRUE(store
                    ->AddToken(TokenRecord{.name = "ci",
                                           .sha256_hex = Sha256Hex("secret"),
                                           .role = fleet::ROLE_OPERATOR,
                                           .created_by = "admin",
                                           .create_time = kT0})
                    .ok());
  }

  std::unique_ptr<SqliteStore> store = OpenStore();
  ASSERT_NE(store, nullptr);

  absl::StatusOr<std::vector<BoardRecord>> boards = store->ListBoards();
  ASSERT_TRUE(boards.ok()) << boards.status();
  EXPECT_THAT(*boards, ElementsAre(Board("b01"), Board("lab1", fleet::BOARD_ORIGIN_LAB_FILE)));
  EXPECT_EQ(store->GetScript(sha).value().content, "print('hello')\n");
  std::vector<ProgramRecord> programs = store->ListPrograms("b01", 10).value();
  ASSERT_THAT(programs, SizeIs(1));
  EXPECT_EQ(programs[0].id, program_id);
  EXPECT_EQ(programs[0].main_thread_id, 5u);
  EXPECT_THAT(programs[0].args, ElementsAre("one", "two"));
  EXPECT_EQ(programs[0].state, board::v1::PROGRAM_STATE_FINISHED);
  EXPECT_EQ(programs[0].end_time, kT0 + absl::Seconds(2));
  RunRecord run = store->GetRun(run_id).value();
  EXPECT_EQ(run.state, fleet::RUN_STATE_PASSED);
  EXPECT_EQ(run.message, "all passed");
  EXPECT_EQ(run.end_time, kT0 + absl::Seconds(9));
  std::vector<fleet::BoardResult> results = store->ListBoardResults(run_id).value();
  ASSERT_THAT(results, SizeIs(1));
  EXPECT_EQ(results[0].steps(0).kind(), "push");
  std::vector<fleet::Event> events = store->ListEvents(EventQuery{}).value();
  ASSERT_THAT(events, SizeIs(1));
  EXPECT_EQ(events[0].message(), "thread 7 failed");
  EXPECT_EQ(events[0].board_event().kind(), board::v1::EVENT_KIND_THREAD_FAILED);
  std::vector<AuditRecord> audit = store->ListAudit(AuditQuery{.limit = 10}).value();
  ASSERT_THAT(audit, SizeIs(1));
  EXPECT_EQ(audit[0].result_code, absl::StatusCode::kNotFound);
  EXPECT_EQ(audit[0].target, "b01/7");
  EXPECT_EQ(store->FindTokenByHash(Sha256Hex("secret")).value().role, fleet::ROLE_OPERATOR);
}

TEST_F(SqliteStoreTest, PutBoardReplacesAddressAndLabels) {
  std::unique_ptr<SqliteStore> store = OpenStore();
  ASSERT_TRUE(store->PutBoard(Board("b01")).ok());
  BoardRecord changed = Board("b01");
  changed.address = "127.0.0.1:7002";
  changed.labels = {{"lab", "b"}};

  ASSERT_TRUE(store->PutBoard(changed).ok());

  EXPECT_EQ(store->GetBoard("b01").value(), changed);
}

TEST_F(SqliteStoreTest, UnknownBoardIsNotFound) {
  std::unique_ptr<SqliteStore> store = OpenStore();

  EXPECT_EQ(store->GetBoard("nope").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store->DeleteBoard("nope").code(), absl::StatusCode::kNotFound);
}

// Needs foreign keys on (the labels' ON DELETE CASCADE).
TEST_F(SqliteStoreTest, DeleteBoardDeletesItsLabels) {
  std::unique_ptr<SqliteStore> store = OpenStore();
  ASSERT_TRUE(store->PutBoard(Board("b01")).ok());

  ASSERT_TRUE(store->DeleteBoard("b01").ok());
  BoardRecord bare = Board("b01");
  bare.labels.clear();
  ASSERT_TRUE(store->PutBoard(bare).ok());

  EXPECT_THAT(store->GetBoard("b01").value().labels, IsEmpty());
}

TEST_F(SqliteStoreTest, ReplaceLabFileBoardsKeepsRuntimeBoardsAndDropsOldLabBoards) {
  std::unique_ptr<SqliteStore> store = OpenStore();
  ASSERT_TRUE(store->PutBoard(Board("rt")).ok());
  ASSERT_TRUE(store->PutBoard(Board("taken")).ok());
  ASSERT_TRUE(store->ReplaceLabFileBoards({Board("old", fleet::BOARD_ORIGIN_LAB_FILE)}).ok());

  ASSERT_TRUE(store
                  ->ReplaceLabFileBoards({Board("new", fleet::BOARD_ORIGIN_LAB_FILE),
                                          Board("taken", fleet::BOARD_ORIGIN_LAB_FILE)})
                  .ok());

  std::vector<std::string> names;
  std::vector<BoardRecord> boards = store->ListBoards().value();
  for (const BoardRecord& b : boards) names.push_back(b.name + "/" + std::to_string(b.origin));
  EXPECT_THAT(names, ElementsAre("new/1", "rt/2", "taken/1"));
}

TEST_F(SqliteStoreTest, ReplaceLabFileBoardsRejectsDuplicatesAndChangesNothing) {
  std::unique_ptr<SqliteStore> store = OpenStore();
  ASSERT_TRUE(store->ReplaceLabFileBoards({Board("a", fleet::BOARD_ORIGIN_LAB_FILE)}).ok());

  absl::Status s = store->ReplaceLabFileBoards(
      {Board("b", fleet::BOARD_ORIGIN_LAB_FILE), Board("b", fleet::BOARD_ORIGIN_LAB_FILE)});

  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("b is listed twice"));
  EXPECT_THAT(store->ListBoards().value(), ElementsAre(Board("a", fleet::BOARD_ORIGIN_LAB_FILE)));
}

TEST_F(SqliteStoreTest, ScriptsAreContentAddressed) {
  std::unique_ptr<SqliteStore> store = OpenStore();

  std::string first = store->PutScript("x = 1\n").value();
  std::string again = store->PutScript("x = 1\n").value();

  EXPECT_EQ(first, again);
  EXPECT_EQ(first, Sha256Hex("x = 1\n"));
  EXPECT_NE(store->PutScript("x = 2\n").value(), first);
  EXPECT_EQ(store->GetScript(Sha256Hex("absent")).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(SqliteStoreTest, ScriptsKeepBinaryContent) {
  std::unique_ptr<SqliteStore> store = OpenStore();
  std::string bytes("a\0b\xff", 4);

  std::string sha = store->PutScript(bytes).value();

  EXPECT_EQ(store->GetScript(sha).value().content, bytes);
}

TEST_F(SqliteStoreTest, PutJobBumpsVersionOnlyWhenTheSpecChanges) {
  std::unique_ptr<SqliteStore> store = OpenStore();

  JobRecord v1 = store->PutJob("smoke", "a: 1\n", {}, kT0).value();
  JobRecord same = store->PutJob("smoke", "a: 1\n", {}, kT0 + absl::Seconds(1)).value();
  JobRecord v2 = store->PutJob("smoke", "a: 2\n", {}, kT0 + absl::Seconds(2)).value();

  EXPECT_EQ(v1.version, 1);
  EXPECT_EQ(same.version, 1);
  EXPECT_EQ(same.update_time, kT0);
  EXPECT_EQ(v2.version, 2);
  EXPECT_EQ(v2.create_time, kT0);
  EXPECT_EQ(v2.update_time, kT0 + absl::Seconds(2));
  EXPECT_EQ(store->GetJob("smoke").value().spec_yaml, "a: 2\n");
}

TEST_F(SqliteStoreTest, PutJobBumpsVersionWhenAFileChangesAndKeepsEachVersionsFiles) {
  std::unique_ptr<SqliteStore> store = OpenStore();
  std::string one = store->PutScript("print(1)\n").value();
  std::string two = store->PutScript("print(2)\n").value();

  JobRecord v1 =
      store->PutJob("smoke", "a: 1\n", {{.path = "app.py", .sha256_hex = one, .size_bytes = 9}}, kT0).value();
  JobRecord same =
      store->PutJob("smoke", "a: 1\n", {{.path = "app.py", .sha256_hex = one, .size_bytes = 9}}, kT0).value();
  JobRecord v2 =
      store->PutJob("smoke", "a: 1\n", {{.path = "app.py", .sha256_hex = two, .size_bytes = 9}}, kT0).value();

  EXPECT_EQ(v1.version, 1);
  EXPECT_EQ(same.version, 1);
  EXPECT_EQ(v2.version, 2);
  JobRecord stored = store->GetJob("smoke").value();
  ASSERT_THAT(stored.files, SizeIs(1));
  EXPECT_EQ(stored.files[0].sha256_hex, two);
}

TEST_F(SqliteStoreTest, PutJobRefusesAFileWhoseContentIsNotStored) {
  std::unique_ptr<SqliteStore> store = OpenStore();

  absl::StatusOr<JobRecord> job = store->PutJob(
      "smoke", "a: 1\n", {{.path = "app.py", .sha256_hex = Sha256Hex("x"), .size_bytes = 1}}, kT0);

  EXPECT_EQ(job.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(job.status().message(), HasSubstr("app.py"));
  EXPECT_EQ(store->GetJob("smoke").status().code(), absl::StatusCode::kNotFound);
}

TEST_F(SqliteStoreTest, DeletedJobKeepsItsRunsAndContinuesItsVersionsWhenAppliedAgain) {
  std::unique_ptr<SqliteStore> store = OpenStore();
  ASSERT_TRUE(store->PutJob("smoke", "a: 1\n", {}, kT0).ok());
  int64_t run = store->CreateRun("smoke", "schedule", kT0, std::nullopt).value().id;

  ASSERT_TRUE(store->DeleteJob("smoke", kT0).ok());

  EXPECT_EQ(store->GetJob("smoke").status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(store->ListJobs().value(), IsEmpty());
  EXPECT_EQ(store->CreateRun("smoke", "schedule", kT0, std::nullopt).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(store->DeleteJob("smoke", kT0).code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store->GetRun(run).value().job_name, "smoke");
  EXPECT_EQ(store->PutJob("smoke", "a: 1\n", {}, kT0).value().version, 2);
}

TEST_F(SqliteStoreTest, RunsKeepDeadlineCountsAndPageByBeforeId) {
  std::unique_ptr<SqliteStore> store = OpenStore();
  ASSERT_TRUE(store->PutJob("smoke", "a: 1\n", {}, kT0).ok());
  std::vector<int64_t> ids;
  for (int i = 0; i < 5; ++i) {
    ids.push_back(store->CreateRun("smoke", "schedule", kT0, kT0 + absl::Minutes(2)).value().id);
  }
  fleet::RunCounts counts;
  counts.set_boards(4);
  counts.set_failed(1);
  ASSERT_TRUE(store->UpdateRun(ids[0], fleet::RUN_STATE_CANCELLED, "cancelled by alice", counts, kT0).ok());

  RunRecord first = store->GetRun(ids[0]).value();
  EXPECT_EQ(first.deadline, kT0 + absl::Minutes(2));
  EXPECT_EQ(first.counts.failed(), 1);
  EXPECT_EQ(first.end_time, kT0);
  std::vector<RunRecord> page =
      store->ListRuns(RunQuery{.job_name = "smoke", .before_id = ids[3], .limit = 2}).value();
  ASSERT_THAT(page, SizeIs(2));
  EXPECT_EQ(page[0].id, ids[2]);
  EXPECT_EQ(page[1].id, ids[1]);
}

TEST_F(SqliteStoreTest, InterruptActiveRunsEndsQueuedAndRunningOnes) {
  std::unique_ptr<SqliteStore> store = OpenStore();
  ASSERT_TRUE(store->PutJob("smoke", "a: 1\n", {}, kT0).ok());
  int64_t queued = store->CreateRun("smoke", "schedule", kT0, std::nullopt).value().id;
  int64_t running = store->CreateRun("smoke", "schedule", kT0, std::nullopt).value().id;
  int64_t passed = store->CreateRun("smoke", "schedule", kT0, std::nullopt).value().id;
  ASSERT_TRUE(store->UpdateRun(running, fleet::RUN_STATE_RUNNING, "", {}, kT0).ok());
  ASSERT_TRUE(store->UpdateRun(passed, fleet::RUN_STATE_PASSED, "", {}, kT0).ok());

  std::vector<int64_t> ids = store->InterruptActiveRuns("interrupted", kT0 + absl::Seconds(5)).value();

  EXPECT_THAT(ids, ElementsAre(queued, running));
  EXPECT_EQ(store->GetRun(running).value().state, fleet::RUN_STATE_ERROR);
  EXPECT_EQ(store->GetRun(running).value().message, "interrupted");
  EXPECT_EQ(store->GetRun(queued).value().end_time, kT0 + absl::Seconds(5));
  EXPECT_EQ(store->GetRun(passed).value().state, fleet::RUN_STATE_PASSED);
}

TEST_F(SqliteStoreTest, PruneRunsKeepsTheNewestAndUnfinishedRuns) {
  std::unique_ptr<SqliteStore> store = OpenStore();
  ASSERT_TRUE(store->PutJob("smoke", "a: 1\n", {}, kT0).ok());
  std::vector<int64_t> ids;
  for (int i = 0; i < 5; ++i)
    ids.push_back(store->CreateRun("smoke", "schedule", kT0, std::nullopt).value().id);
  for (int i = 1; i < 5; ++i)
    ASSERT_TRUE(store->UpdateRun(ids[i], fleet::RUN_STATE_PASSED, "", {}, kT0).ok());
  fleet::BoardResult result;
  result.set_board("b01");
  ASSERT_TRUE(store->PutBoardResult(ids[1], result).ok());

  EXPECT_EQ(store->PruneRuns("smoke", 2).value(), 2);

  std::vector<RunRecord> runs = store->ListRuns(RunQuery{.job_name = "smoke"}).value();
  std::vector<int64_t> left;
  for (const RunRecord& run : runs) left.push_back(run.id);
  EXPECT_THAT(left, ElementsAre(ids[4], ids[3], ids[0]));
  EXPECT_THAT(store->ListBoardResults(ids[1]).value(), IsEmpty());
}

TEST_F(SqliteStoreTest, JobLastFireAndBoardJobHealthSurviveARestart) {
  {
    std::unique_ptr<SqliteStore> store = OpenStore();
    ASSERT_TRUE(store->PutJob("smoke", "a: 1\n", {}, kT0).ok());
    ASSERT_TRUE(store->SetJobLastFire("smoke", kT0 + absl::Minutes(5)).ok());
    ASSERT_TRUE(store
                    ->PutBoardJobHealth(BoardJobHealth{.board = "b01",
                                                       .error_run_ids = {7, 8, 9},
                                                       .last_error = "connection lost",
                                                       .quarantine_since = kT0,
                                                       .quarantine_reason = "3 in a row"})
                    .ok());
    ASSERT_TRUE(store->PutBoardJobHealth(BoardJobHealth{.board = "b02", .error_run_ids = {4}}).ok());
  }
  std::unique_ptr<SqliteStore> store = OpenStore();

  EXPECT_EQ(store->GetJob("smoke").value().last_fire_time, kT0 + absl::Minutes(5));
  BoardJobHealth b01 = store->GetBoardJobHealth("b01").value();
  EXPECT_THAT(b01.error_run_ids, ElementsAre(7, 8, 9));
  EXPECT_EQ(b01.quarantine_since, kT0);
  std::vector<BoardJobHealth> quarantined = store->ListQuarantinedBoards().value();
  ASSERT_THAT(quarantined, SizeIs(1));
  EXPECT_EQ(quarantined[0], b01);
  EXPECT_EQ(store->GetBoardJobHealth("b03").value(), BoardJobHealth{.board = "b03"});
  EXPECT_EQ(store->SetJobLastFire("ghost", kT0).code(), absl::StatusCode::kNotFound);
}

TEST_F(SqliteStoreTest, RunsOfUnknownJobsAreNotFound) {
  std::unique_ptr<SqliteStore> store = OpenStore();

  EXPECT_EQ(store->CreateRun("ghost", "schedule", kT0, std::nullopt).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(store->GetRun(42).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store->UpdateRun(42, fleet::RUN_STATE_RUNNING, "", {}, kT0).code(), absl::StatusCode::kNotFound);
  fleet::BoardResult result;
  result.set_board("b01");
  EXPECT_EQ(store->PutBoardResult(42, result).code(), absl::StatusCode::kNotFound);
}

TEST_F(SqliteStoreTest, RunsRecordTheJobVersionAndListNewestFirst) {
  std::unique_ptr<SqliteStore> store = OpenStore();
  ASSERT_TRUE(store->PutJob("smoke", "a: 1\n", {}, kT0).ok());
  RunRecord first = store->CreateRun("smoke", "schedule", kT0, std::nullopt).value();
  ASSERT_TRUE(store->PutJob("smoke", "a: 2\n", {}, kT0).ok());
  RunRecord second = store->CreateRun("smoke", "manual:bob", kT0, std::nullopt).value();

  ASSERT_TRUE(store->UpdateRun(second.id, fleet::RUN_STATE_RUNNING, "", {}, kT0 + absl::Seconds(1)).ok());

  EXPECT_EQ(first.job_version, 1);
  EXPECT_EQ(first.state, fleet::RUN_STATE_QUEUED);
  std::vector<RunRecord> runs = store->ListRuns(RunQuery{.job_name = "smoke", .limit = 10}).value();
  ASSERT_THAT(runs, SizeIs(2));
  EXPECT_EQ(runs[0].id, second.id);
  EXPECT_EQ(runs[0].job_version, 2);
  EXPECT_EQ(runs[0].state, fleet::RUN_STATE_RUNNING);
  EXPECT_FALSE(runs[0].end_time.has_value());
  EXPECT_THAT(store->ListRuns(RunQuery{.job_name = "smoke", .limit = 1}).value(), SizeIs(1));
}

TEST_F(SqliteStoreTest, PutBoardResultReplacesTheBoardsEarlierResult) {
  std::unique_ptr<SqliteStore> store = OpenStore();
  ASSERT_TRUE(store->PutJob("smoke", "a: 1\n", {}, kT0).ok());
  int64_t run = store->CreateRun("smoke", "schedule", kT0, std::nullopt).value().id;
  fleet::BoardResult result;
  result.set_board("b02");
  result.set_state(fleet::RUN_STATE_RUNNING);
  ASSERT_TRUE(store->PutBoardResult(run, result).ok());
  result.set_state(fleet::RUN_STATE_FAILED);
  result.set_message("expect failed");
  ASSERT_TRUE(store->PutBoardResult(run, result).ok());
  result.set_board("b01");
  ASSERT_TRUE(store->PutBoardResult(run, result).ok());

  std::vector<fleet::BoardResult> results = store->ListBoardResults(run).value();

  ASSERT_THAT(results, SizeIs(2));
  EXPECT_EQ(results[0].board(), "b01");
  EXPECT_EQ(results[1].state(), fleet::RUN_STATE_FAILED);
  EXPECT_EQ(results[1].message(), "expect failed");
}

TEST_F(SqliteStoreTest, PutBoardResultsWritesEveryBoardOrNoneWhenOneHasNoName) {
  std::unique_ptr<SqliteStore> store = OpenStore();
  ASSERT_TRUE(store->PutJob("smoke", "a: 1\n", {}, kT0).ok());
  int64_t run = store->CreateRun("smoke", "schedule", kT0, std::nullopt).value().id;
  std::vector<fleet::BoardResult> batch(3);
  for (int i = 0; i < 3; ++i) {
    batch[i].set_board(absl::StrCat("b0", i + 1));
    batch[i].set_state(fleet::RUN_STATE_RUNNING);
  }
  ASSERT_TRUE(store->PutBoardResults(run, batch).ok());
  batch[0].set_state(fleet::RUN_STATE_PASSED);
  batch[1].clear_board();

  EXPECT_EQ(store->PutBoardResults(run, batch).code(), absl::StatusCode::kInvalidArgument);

  std::vector<fleet::BoardResult> results = store->ListBoardResults(run).value();
  ASSERT_THAT(results, SizeIs(3));
  EXPECT_EQ(results[0].state(), fleet::RUN_STATE_RUNNING) << "the refused batch changed nothing";
}

TEST_F(SqliteStoreTest, EventsFilterByCursorBoardAndSeverity) {
  std::unique_ptr<SqliteStore> store = OpenStore();
  int64_t first = store->AppendEvent(MakeEvent("b01", fleet::SEVERITY_INFO, "one")).value();
  ASSERT_TRUE(store->AppendEvent(MakeEvent("b02", fleet::SEVERITY_ERROR, "two")).ok());
  ASSERT_TRUE(store->AppendEvent(MakeEvent("b\"3", fleet::SEVERITY_WARNING, "three")).ok());
  ASSERT_TRUE(store->AppendEvent(MakeEvent("", fleet::SEVERITY_INFO, "fleet-wide")).ok());

  auto messages = [&](const EventQuery& query) {
    std::vector<std::string> out;
    std::vector<fleet::Event> events = store->ListEvents(query).value();
    for (const fleet::Event& e : events) out.push_back(e.message());
    return out;
  };

  EXPECT_THAT(messages({}), ElementsAre("one", "two", "three", "fleet-wide"));
  EXPECT_THAT(messages({.after_id = first}), ElementsAre("two", "three", "fleet-wide"));
  EXPECT_THAT(messages({.boards = {"b02", "b\"3"}}), ElementsAre("two", "three"));
  EXPECT_THAT(messages({.min_severity = fleet::SEVERITY_WARNING}), ElementsAre("two", "three"));
  EXPECT_THAT(messages({.limit = 2}), ElementsAre("one", "two"));
  EXPECT_EQ(store->ListEvents({.limit = 0}).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(SqliteStoreTest, EventIdsIncreaseAndComeBackInTheEvent) {
  std::unique_ptr<SqliteStore> store = OpenStore();

  int64_t a = store->AppendEvent(MakeEvent("b01", fleet::SEVERITY_INFO, "a")).value();
  int64_t b = store->AppendEvent(MakeEvent("b01", fleet::SEVERITY_INFO, "b")).value();

  EXPECT_LT(a, b);
  std::vector<fleet::Event> events = store->ListEvents({}).value();
  EXPECT_EQ(static_cast<int64_t>(events[1].id()), b);
}

TEST_F(SqliteStoreTest, TokenHashesAreUniqueAndRevokeKeepsTheFirstTime) {
  std::unique_ptr<SqliteStore> store = OpenStore();
  TokenRecord token{
      .name = "ci", .sha256_hex = Sha256Hex("s"), .role = fleet::ROLE_VIEWER, .create_time = kT0};
  int64_t id = store->AddToken(token).value();

  EXPECT_EQ(store->AddToken(token).status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(store->RevokeToken(id, kT0 + absl::Seconds(1)).value().revoke_time, kT0 + absl::Seconds(1));
  EXPECT_EQ(store->RevokeToken(id, kT0 + absl::Seconds(5)).value().revoke_time, kT0 + absl::Seconds(1));
  EXPECT_EQ(store->RevokeToken(id + 1, kT0).status().code(), absl::StatusCode::kNotFound);
  token.sha256_hex = "not-a-hash";
  EXPECT_EQ(store->AddToken(token).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(SqliteStoreTest, FourConcurrentWritersLoseNothing) {
  std::unique_ptr<SqliteStore> store = OpenStore();
  ASSERT_TRUE(store->PutJob("load", "a: 1\n", {}, kT0).ok());
  constexpr int kThreads = 4;
  constexpr int kPerThread = 50;
  std::vector<std::thread> writers;
  std::vector<absl::Status> errors(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    writers.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        std::string board = absl::StrCat("b", t, "-", i);
        absl::Status s =
            store->PutBoard(BoardRecord{.name = board, .address = "h:1", .labels = {{"t", "x"}}});
        if (s.ok()) s = store->AppendEvent(MakeEvent(board, fleet::SEVERITY_INFO, board)).status();
        if (s.ok()) s = store->AppendAudit(AuditRecord{.actor = board, .action = "x"}).status();
        if (s.ok()) s = store->CreateRun("load", board, kT0, std::nullopt).status();
        if (s.ok()) s = store->PutScript(board).status();
        if (!s.ok()) {
          errors[t] = s;
          return;
        }
      }
    });
  }
  for (std::thread& w : writers) w.join();

  for (const absl::Status& s : errors) EXPECT_TRUE(s.ok()) << s;
  EXPECT_THAT(store->ListBoards().value(), SizeIs(kThreads * kPerThread));
  EXPECT_THAT(store->ListEvents({.limit = 1000}).value(), SizeIs(kThreads * kPerThread));
  EXPECT_THAT(store->ListAudit(AuditQuery{.limit = 1000}).value(), SizeIs(kThreads * kPerThread));
  EXPECT_THAT(store->ListRuns(RunQuery{.job_name = "load", .limit = 1000}).value(),
              SizeIs(kThreads * kPerThread));
}

// ---- Integrity, permissions

// Overwrites one page in the middle of the file with garbage, as a disk or
// a careless copy might.
void DamagePage(const std::string& path, int page) {
  std::fstream file(path, std::ios::in | std::ios::out | std::ios::binary);
  file.seekp(static_cast<std::streamoff>(page) * 4096);
  const std::string garbage(4096, '\x5a');
  file.write(garbage.data(), static_cast<std::streamsize>(garbage.size()));
}

TEST_F(SqliteStoreTest, ADamagedFileIsRefusedAtOpenSayingHowToRecover) {
  {
    std::unique_ptr<SqliteStore> store = OpenStore();
    ASSERT_NE(store, nullptr);
    for (int i = 0; i < 2000; ++i) {
      ASSERT_TRUE(
          store->AppendAudit(AuditRecord{.actor = "a", .action = "x", .target = std::string(200, 't')}).ok());
    }
  }  // closing checkpoints the WAL into the file
  ASSERT_GT(std::filesystem::file_size(path_), 40u * 4096);
  DamagePage(path_, 30);

  absl::StatusOr<std::unique_ptr<SqliteStore>> reopened = SqliteStore::Open(path_);
  EXPECT_EQ(reopened.status().code(), absl::StatusCode::kDataLoss) << reopened.status();
  const std::string message(reopened.status().message());
  EXPECT_THAT(message, HasSubstr("quick_check"));
  EXPECT_THAT(message, HasSubstr(".recover"));
  EXPECT_THAT(message, HasSubstr("restore a backup"));
}

TEST_F(SqliteStoreTest, CheckHealthFailsWhileATableTheApiUsesCannotBeRead) {
  std::unique_ptr<SqliteStore> store = OpenStore();
  ASSERT_TRUE(store->CheckHealth().ok());
  sqlite3* other = nullptr;
  ASSERT_EQ(sqlite3_open(path_.c_str(), &other), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(other, "DROP TABLE events", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(other);

  absl::Status health = store->CheckHealth();
  EXPECT_FALSE(health.ok());
  EXPECT_THAT(health.message(), HasSubstr("events"));
}

mode_t ModeOf(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
  return st.st_mode & 0777;
}

TEST_F(SqliteStoreTest, DatabaseWalAndShmFilesAreMode0600) {
  const mode_t old_umask = ::umask(022);
  {
    std::unique_ptr<SqliteStore> store = OpenStore();
    ASSERT_TRUE(store->PutBoard(Board("b01")).ok());
    for (const char* suffix : {"", "-wal", "-shm"}) EXPECT_EQ(ModeOf(path_ + suffix), 0600u) << suffix;
  }
  // A file an older fleetd left 0644 is tightened.
  ASSERT_EQ(::chmod(path_.c_str(), 0644), 0);
  std::unique_ptr<SqliteStore> store = OpenStore();
  ::umask(old_umask);
  EXPECT_EQ(ModeOf(path_), 0600u);
}

// ---- Audit: intent, outcome, paging

TEST_F(SqliteStoreTest, AStartedEntryIsCompletedByFinishAuditOnce) {
  std::unique_ptr<SqliteStore> store = OpenStore();
  const int64_t id = store
                         ->AppendAudit(AuditRecord{.actor = "op",
                                                   .action = "Fleet.RevokeToken",
                                                   .target = "token id 3",
                                                   .state = fleet::AUDIT_STATE_STARTED})
                         .value();
  EXPECT_EQ(store->ListAudit(AuditQuery{}).value()[0].state, fleet::AUDIT_STATE_STARTED);

  ASSERT_TRUE(store->FinishAudit(id, "token ci", absl::StatusCode::kOk, "id 3").ok());
  const AuditRecord done = store->ListAudit(AuditQuery{}).value()[0];
  EXPECT_EQ(done.state, fleet::AUDIT_STATE_DONE);
  EXPECT_EQ(done.target, "token ci");
  EXPECT_EQ(done.result_message, "id 3");
  EXPECT_EQ(store->FinishAudit(id, "x", absl::StatusCode::kOk, "").code(), absl::StatusCode::kNotFound);
}

TEST_F(SqliteStoreTest, EntriesStillStartedAtTheNextStartBecomeOutcomeUnknown) {
  std::unique_ptr<SqliteStore> store = OpenStore();
  ASSERT_TRUE(
      store->AppendAudit(AuditRecord{.action = "Fleet.PushFile", .state = fleet::AUDIT_STATE_STARTED}).ok());
  ASSERT_TRUE(store->AppendAudit(AuditRecord{.action = "Fleet.KillThread"}).ok());

  EXPECT_EQ(store->AbandonStartedAudits("fleetd stopped").value(), 1);

  const std::vector<AuditRecord> audit = store->ListAudit(AuditQuery{}).value();
  ASSERT_THAT(audit, SizeIs(2));
  EXPECT_EQ(audit[1].action, "Fleet.PushFile");
  EXPECT_EQ(audit[1].state, fleet::AUDIT_STATE_OUTCOME_UNKNOWN);
  EXPECT_EQ(audit[1].result_message, "fleetd stopped");
  EXPECT_EQ(audit[0].state, fleet::AUDIT_STATE_DONE);
}

TEST_F(SqliteStoreTest, AuditListsNewestFirstBetweenTheCursors) {
  std::unique_ptr<SqliteStore> store = OpenStore();
  for (int i = 1; i <= 5; ++i) ASSERT_TRUE(store->AppendAudit(AuditRecord{.target = absl::StrCat(i)}).ok());
  auto targets = [&](AuditQuery q) {
    std::vector<std::string> out;
    const std::vector<AuditRecord> records = store->ListAudit(q).value();
    for (const AuditRecord& r : records) out.push_back(r.target);
    return out;
  };
  EXPECT_THAT(targets({.limit = 2}), ElementsAre("5", "4"));
  EXPECT_THAT(targets({.before_id = 4, .limit = 2}), ElementsAre("3", "2"));
  EXPECT_THAT(targets({.after_id = 3}), ElementsAre("5", "4"));
  EXPECT_THAT(targets({.after_id = 1, .before_id = 4}), ElementsAre("3", "2"));
}

// ---- Retention

TEST_F(SqliteStoreTest, PruneEventsDeletesTheOldestBeyondTheRowLimitInBatches) {
  std::unique_ptr<SqliteStore> store = OpenStore();
  for (int i = 0; i < 25; ++i) {
    ASSERT_TRUE(store->AppendEvent(MakeEvent("b01", fleet::SEVERITY_INFO, absl::StrCat(i))).ok());
  }
  const RetentionRule rule{.max_rows = 10, .batch = 4};
  std::vector<int64_t> batches;
  for (int pass = 0; pass < 10; ++pass) {
    const int64_t deleted = store->PruneEvents(rule, kT0).value();
    batches.push_back(deleted);
    if (deleted < rule.batch) break;
  }
  EXPECT_THAT(batches, ElementsAre(4, 4, 4, 3));
  const std::vector<fleet::Event> kept = store->ListEvents(EventQuery{.limit = 100}).value();
  ASSERT_THAT(kept, SizeIs(10));
  EXPECT_EQ(kept.front().message(), "15");
  EXPECT_EQ(kept.back().message(), "24");
}

TEST_F(SqliteStoreTest, PruneEventsDeletesEventsOlderThanTheMaxAge) {
  std::unique_ptr<SqliteStore> store = OpenStore();
  for (int day : {40, 35, 2, 1}) {
    fleet::Event e = MakeEvent("b01", fleet::SEVERITY_INFO, absl::StrCat(day, " days old"));
    e.mutable_time()->set_seconds(absl::ToUnixSeconds(kT0 - absl::Hours(24 * day)));
    ASSERT_TRUE(store->AppendEvent(e).ok());
  }
  EXPECT_EQ(store->PruneEvents(RetentionRule{.max_age = absl::Hours(24 * 30)}, kT0).value(), 2);
  const std::vector<fleet::Event> kept = store->ListEvents(EventQuery{}).value();
  ASSERT_THAT(kept, SizeIs(2));
  EXPECT_EQ(kept[0].message(), "2 days old");
}

TEST_F(SqliteStoreTest, PruneAuditKeepsEntriesOfCallsStillRunning) {
  std::unique_ptr<SqliteStore> store = OpenStore();
  ASSERT_TRUE(
      store
          ->AppendAudit(AuditRecord{
              .time = kT0 - absl::Hours(24 * 400), .target = "running", .state = fleet::AUDIT_STATE_STARTED})
          .ok());
  ASSERT_TRUE(store->AppendAudit(AuditRecord{.time = kT0 - absl::Hours(24 * 400), .target = "old"}).ok());
  ASSERT_TRUE(store->AppendAudit(AuditRecord{.time = kT0, .target = "new"}).ok());

  EXPECT_EQ(store->PruneAudit(RetentionRule{.max_age = absl::Hours(24 * 365)}, kT0).value(), 1);
  std::vector<std::string> kept;
  const std::vector<AuditRecord> records = store->ListAudit(AuditQuery{}).value();
  for (const AuditRecord& r : records) kept.push_back(r.target);
  EXPECT_THAT(kept, ElementsAre("new", "running"));
}

TEST_F(SqliteStoreTest, RetentionPrunesBothTablesToTheirLimits) {
  std::unique_ptr<SqliteStore> store = OpenStore();
  for (int i = 0; i < 30; ++i) {
    ASSERT_TRUE(store->AppendEvent(MakeEvent("b01", fleet::SEVERITY_INFO, "e")).ok());
    ASSERT_TRUE(store->AppendAudit(AuditRecord{.time = absl::Now(), .target = "a"}).ok());
  }
  Retention retention(*store, RetentionOptions{.events = {.max_rows = 5, .batch = 2},
                                               .audit = {.max_rows = 7, .batch = 3},
                                               .pause = absl::ZeroDuration()});
  EXPECT_EQ(retention.PruneOnce(absl::Now()), 25 + 23);
  EXPECT_THAT(store->ListEvents(EventQuery{.limit = 100}).value(), SizeIs(5));
  EXPECT_THAT(store->ListAudit(AuditQuery{.limit = 100}).value(), SizeIs(7));
}

TEST_F(SqliteStoreTest, TwoStoresOnOneFileBothWrite) {
  std::unique_ptr<SqliteStore> a = OpenStore();
  std::unique_ptr<SqliteStore> b = OpenStore();

  ASSERT_TRUE(a->PutBoard(Board("from-a")).ok());
  ASSERT_TRUE(b->PutBoard(Board("from-b")).ok());

  EXPECT_THAT(a->ListBoards().value(), SizeIs(2));
}

}  // namespace
}  // namespace threadfleet::fleetd
