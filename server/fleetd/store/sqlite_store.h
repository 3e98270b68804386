// The Store on SQLite: one database file, in WAL mode, for one fleetd.
//
// Example:
//
//   absl::StatusOr<std::unique_ptr<SqliteStore>> store =
//       SqliteStore::Open("/var/lib/fleetd/fleet.db");
//   if (!store.ok()) {
//     LOG(ERROR) << store.status();  // e.g. "... is not a database ..."
//     return 1;
//   }
//   absl::StatusOr<std::unique_ptr<Inventory>> inventory =
//       Inventory::Open(**store, lab_boards, absl::Now());
//
// Open() creates the file if missing and brings its schema up to date: the
// migrations in sqlite_store.cc run in order, each in its own transaction
// together with its row in `schema_version`, so a crash mid-migration leaves
// the previous version intact and the next Open() retries it. Opening a file
// already up to date changes nothing.
//
// Durability: WAL with synchronous=NORMAL. A committed call survives a crash
// or kill of fleetd (a restart loses nothing); a power loss may roll back the
// last few commits but never corrupts the file.
//
// Integrity: Open() runs `PRAGMA quick_check` and refuses a damaged file
// (DATA_LOSS, saying how to recover). Any later call that meets damage marks
// the store damaged for CheckHealth().
//
// Permissions: the database and its -wal and -shm files are mode 0600 (they
// hold token hashes and the audit log); Open() creates them so and tightens
// existing ones.
//
// Concurrency: one connection guarded by a mutex; calls from many threads
// serialize. Another process writing the same file (a second fleetd, the
// sqlite3 shell) makes calls wait up to Options::busy_timeout, then fail with
// UNAVAILABLE.

#ifndef THREADFLEET_SERVER_FLEETD_STORE_SQLITE_STORE_H_
#define THREADFLEET_SERVER_FLEETD_STORE_SQLITE_STORE_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/fleetd/store/store.h"

struct sqlite3;
struct sqlite3_stmt;

namespace threadfleet::fleetd {

class SqliteStore final : public Store {
 public:
  struct Options {
    // How long a call waits for another process's lock before UNAVAILABLE.
    absl::Duration busy_timeout = absl::Seconds(5);
  };

  // The schema version this build migrates to (the last migration's).
  static int LatestSchemaVersion();

  // Opens (creating if missing, mode 0600) the database at `path`, checks
  // its integrity and migrates it.
  // DATA_LOSS if the file is not a SQLite database or is corrupt (the
  // message says how to restore or recover it);
  // UNAVAILABLE if another process holds a lock longer than busy_timeout;
  // FAILED_PRECONDITION if the schema is newer than this build knows
  // (written by a newer fleetd), or the file cannot be opened for writing
  // (missing directory, permissions); INTERNAL for other SQLite errors.
  // Messages name the file and say what to do.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<SqliteStore>> Open(absl::string_view path,
                                                                         const Options& options);
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<SqliteStore>> Open(absl::string_view path) {
    return Open(path, Options());
  }

  SqliteStore(const SqliteStore&) = delete;
  SqliteStore& operator=(const SqliteStore&) = delete;
  // Finalizes the statements and closes the connection (checkpointing the
  // WAL when no other connection is open).
  ~SqliteStore() override;

  // The schema version of the open file (LatestSchemaVersion() after Open).
  [[nodiscard]] absl::StatusOr<int> SchemaVersion();

  // Store: boards.
  absl::Status PutBoard(const BoardRecord& board) override;
  absl::StatusOr<BoardRecord> GetBoard(absl::string_view name) override;
  absl::StatusOr<std::vector<BoardRecord>> ListBoards() override;
  absl::Status DeleteBoard(absl::string_view name) override;
  absl::Status ReplaceLabFileBoards(const std::vector<BoardRecord>& boards) override;

  // Store: scripts.
  absl::StatusOr<std::string> PutScript(absl::string_view content) override;
  absl::StatusOr<ScriptRecord> GetScript(absl::string_view sha256_hex) override;

  // Store: programs.
  absl::StatusOr<int64_t> AddProgram(const ProgramRecord& program) override;
  absl::Status FinishProgram(int64_t id, threadfleet::board::v1::ProgramState state, int32_t exit_code,
                             absl::Time end_time) override;
  absl::StatusOr<std::vector<ProgramRecord>> ListPrograms(absl::string_view board, int limit) override;

  // Store: jobs and runs.
  absl::StatusOr<JobRecord> PutJob(absl::string_view name, absl::string_view spec_yaml,
                                   const std::vector<JobFileRecord>& files, absl::Time now) override;
  absl::StatusOr<JobRecord> GetJob(absl::string_view name) override;
  absl::StatusOr<std::vector<JobRecord>> ListJobs() override;
  absl::Status DeleteJob(absl::string_view name, absl::Time now) override;
  absl::Status SetJobLastFire(absl::string_view name, absl::Time fire_time) override;
  absl::StatusOr<RunRecord> CreateRun(absl::string_view job_name, absl::string_view trigger, absl::Time now,
                                      std::optional<absl::Time> deadline) override;
  absl::Status UpdateRun(int64_t id, threadfleet::fleet::v1::RunState state, absl::string_view message,
                         const threadfleet::fleet::v1::RunCounts& counts, absl::Time now) override;
  absl::StatusOr<RunRecord> GetRun(int64_t id) override;
  absl::StatusOr<std::vector<RunRecord>> ListRuns(const RunQuery& query) override;
  absl::StatusOr<std::vector<int64_t>> InterruptActiveRuns(absl::string_view message,
                                                           absl::Time now) override;
  absl::StatusOr<int64_t> PruneRuns(absl::string_view job_name, int keep) override;
  absl::Status PutBoardResult(int64_t run_id, const threadfleet::fleet::v1::BoardResult& result) override;
  absl::Status PutBoardResults(int64_t run_id,
                               const std::vector<threadfleet::fleet::v1::BoardResult>& results) override;
  absl::StatusOr<std::vector<threadfleet::fleet::v1::BoardResult>> ListBoardResults(int64_t run_id) override;

  // Store: board health for jobs.
  absl::StatusOr<BoardJobHealth> GetBoardJobHealth(absl::string_view board) override;
  absl::Status PutBoardJobHealth(const BoardJobHealth& health) override;
  absl::StatusOr<std::vector<BoardJobHealth>> ListQuarantinedBoards() override;

  // Store: events.
  absl::StatusOr<int64_t> AppendEvent(const threadfleet::fleet::v1::Event& event) override;
  absl::StatusOr<std::vector<threadfleet::fleet::v1::Event>> ListEvents(const EventQuery& query) override;

  // Store: audit log.
  absl::StatusOr<int64_t> AppendAudit(const AuditRecord& record) override;
  absl::Status FinishAudit(int64_t id, absl::string_view target, absl::StatusCode code,
                           absl::string_view message) override;
  absl::StatusOr<int64_t> AbandonStartedAudits(absl::string_view message) override;
  absl::StatusOr<std::vector<AuditRecord>> ListAudit(const AuditQuery& query) override;

  // Store: retention.
  absl::StatusOr<int64_t> PruneEvents(const RetentionRule& rule, absl::Time now) override;
  absl::StatusOr<int64_t> PruneAudit(const RetentionRule& rule, absl::Time now) override;

  // Whether the store works, for /healthz: the first damage any call met
  // (DATA_LOSS, kept until fleetd restarts: damage does not heal, and a
  // restart's integrity check refuses the file), else the result of a small
  // read of every table. OK when both are fine.
  [[nodiscard]] absl::Status CheckHealth();

  // Store: tokens.
  absl::StatusOr<int64_t> AddToken(const TokenRecord& token) override;
  absl::StatusOr<TokenRecord> FindTokenByHash(absl::string_view sha256_hex) override;
  absl::StatusOr<std::vector<TokenRecord>> ListTokens() override;
  absl::StatusOr<TokenRecord> RevokeToken(int64_t id, absl::Time now) override;

 private:
  class Statement;
  class Transaction;

  SqliteStore(std::string path, sqlite3* db);

  // Turns the connection's last error into a status naming the file and
  // `what` was being done.
  absl::Status Error(int rc, absl::string_view what) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Runs SQL without results (pragmas, DDL, BEGIN/COMMIT).
  absl::Status Exec(const char* sql, absl::string_view what) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The cached prepared statement for `sql`, reset and unbound. `sql` must be
  // a string literal: the cache is keyed by its address.
  absl::StatusOr<Statement> Prepare(const char* sql) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status Configure(const Options& options) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status Migrate() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<int> SchemaVersionLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status PutBoardLocked(const BoardRecord& board) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<Labels> LabelsOf(absl::string_view board) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<std::vector<std::string>> ArgsOf(int64_t program_id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<TokenRecord> GetTokenLocked(int64_t id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<RunRecord> GetRunLocked(int64_t id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The job's row, deleted or not (nullopt when none), with `version`'s files.
  absl::StatusOr<std::optional<JobRecord>> FindJobLocked(absl::string_view name, bool with_deleted)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<bool> JobDeletedLocked(absl::string_view name) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<std::vector<JobFileRecord>> JobFilesLocked(absl::string_view name, int64_t version)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status QuickCheck() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status TightenFileModes() const;

  const std::string path_;
  absl::Mutex mu_;
  sqlite3* const db_ ABSL_GUARDED_BY(mu_);
  // Prepared once, reused for the connection's life.
  absl::flat_hash_map<const char*, sqlite3_stmt*> statements_ ABSL_GUARDED_BY(mu_);
  // The first DATA_LOSS any call met; OK while none did.
  mutable absl::Status damage_ ABSL_GUARDED_BY(mu_);
};

}  // namespace threadfleet::fleetd

#endif  // THREADFLEET_SERVER_FLEETD_STORE_SQLITE_STORE_H_
