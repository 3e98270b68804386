#include "server/fleetd/store/sqlite_store.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "server/common/quoted_input.h"
#include "server/fleetd/store/sha256.h"

namespace threadfleet::fleetd {
namespace {

using ::threadfleet::fleet::v1::BoardOrigin;
using ::threadfleet::fleet::v1::Role;
using ::threadfleet::fleet::v1::RunState;

// Each migration brings the schema from version - 1 to version. Append only:
// a released migration never changes, since files in the field already ran
// it. Times are microseconds since the Unix epoch; enums are their proto
// numbers (stable by proto's own compatibility rules).
struct Migration {
  int version;
  const char* sql;
};

constexpr Migration kMigrations[] = {
    {1, R"sql(
CREATE TABLE boards (
  name TEXT PRIMARY KEY,
  address TEXT NOT NULL,
  origin INTEGER NOT NULL,
  add_time_us INTEGER NOT NULL
) STRICT;
CREATE TABLE board_labels (
  board TEXT NOT NULL REFERENCES boards(name) ON DELETE CASCADE ON UPDATE CASCADE,
  key TEXT NOT NULL,
  value TEXT NOT NULL,
  PRIMARY KEY (board, key)
) STRICT;
CREATE TABLE scripts (
  sha256 TEXT PRIMARY KEY,
  content BLOB NOT NULL,
  create_time_us INTEGER NOT NULL
) STRICT;
-- No foreign key to boards: a program's record outlives its board's removal.
CREATE TABLE programs (
  id INTEGER PRIMARY KEY,
  board TEXT NOT NULL,
  board_program_id INTEGER NOT NULL,
  main_thread_id INTEGER NOT NULL,
  name TEXT NOT NULL,
  path TEXT NOT NULL,
  script_sha256 TEXT REFERENCES scripts(sha256),
  started_by TEXT NOT NULL,
  start_time_us INTEGER NOT NULL,
  state INTEGER NOT NULL,
  end_time_us INTEGER,
  exit_code INTEGER NOT NULL
) STRICT;
CREATE INDEX programs_by_board ON programs(board, id);
CREATE TABLE program_args (
  program_id INTEGER NOT NULL REFERENCES programs(id) ON DELETE CASCADE,
  position INTEGER NOT NULL,
  value TEXT NOT NULL,
  PRIMARY KEY (program_id, position)
) STRICT;
CREATE TABLE jobs (
  name TEXT PRIMARY KEY,
  spec_yaml TEXT NOT NULL,
  version INTEGER NOT NULL,
  create_time_us INTEGER NOT NULL,
  update_time_us INTEGER NOT NULL
) STRICT;
CREATE TABLE runs (
  id INTEGER PRIMARY KEY,
  job_name TEXT NOT NULL REFERENCES jobs(name),
  job_version INTEGER NOT NULL,
  state INTEGER NOT NULL,
  trigger TEXT NOT NULL,
  message TEXT NOT NULL,
  start_time_us INTEGER NOT NULL,
  end_time_us INTEGER
) STRICT;
CREATE INDEX runs_by_job ON runs(job_name, id);
-- body: a serialized threadfleet.fleet.v1.BoardResult.
CREATE TABLE run_results (
  run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
  board TEXT NOT NULL,
  state INTEGER NOT NULL,
  body BLOB NOT NULL,
  PRIMARY KEY (run_id, board)
) STRICT;
-- body: a serialized threadfleet.fleet.v1.Event (its id is the row's id).
CREATE TABLE events (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  time_us INTEGER NOT NULL,
  board TEXT NOT NULL,
  kind INTEGER NOT NULL,
  severity INTEGER NOT NULL,
  body BLOB NOT NULL
) STRICT;
CREATE INDEX events_by_board ON events(board, id);
CREATE TABLE audit_log (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  time_us INTEGER NOT NULL,
  actor TEXT NOT NULL,
  action TEXT NOT NULL,
  target TEXT NOT NULL,
  result_code INTEGER NOT NULL,
  result_message TEXT NOT NULL
) STRICT;
CREATE TABLE tokens (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  name TEXT NOT NULL,
  sha256 TEXT NOT NULL UNIQUE,
  role INTEGER NOT NULL,
  created_by TEXT NOT NULL,
  create_time_us INTEGER NOT NULL,
  revoke_time_us INTEGER
) STRICT;
)sql"},
    // Audit entries written before a mutation runs (state STARTED) and
    // completed after; older entries were all written at the end (DONE).
    // Time indexes let retention find old rows without a table scan.
    {2, R"sql(
ALTER TABLE audit_log ADD COLUMN state INTEGER NOT NULL DEFAULT 1;
CREATE INDEX audit_log_by_time ON audit_log(time_us);
CREATE INDEX events_by_time ON events(time_us);
)sql"},
    // Jobs (issue #12): the files of each job version (content in scripts),
    // deleted jobs kept as tombstones (their runs stay readable and name
    // them), each schedule's last handled fire time, a run's deadline and
    // counts (a serialized threadfleet.fleet.v1.RunCounts), and what jobs
    // remember of each board: its streak of ERROR results and quarantine
    // (error_run_ids: a JSON array of run ids, oldest first).
    {3, R"sql(
ALTER TABLE jobs ADD COLUMN last_fire_time_us INTEGER;
ALTER TABLE jobs ADD COLUMN deleted_time_us INTEGER;
CREATE TABLE job_files (
  job_name TEXT NOT NULL REFERENCES jobs(name),
  version INTEGER NOT NULL,
  path TEXT NOT NULL,
  script_sha256 TEXT NOT NULL REFERENCES scripts(sha256),
  size_bytes INTEGER NOT NULL,
  PRIMARY KEY (job_name, version, path)
) STRICT;
ALTER TABLE runs ADD COLUMN deadline_us INTEGER;
ALTER TABLE runs ADD COLUMN counts BLOB NOT NULL DEFAULT x'';
CREATE INDEX runs_by_state ON runs(state);
CREATE TABLE board_job_health (
  board TEXT PRIMARY KEY,
  error_run_ids TEXT NOT NULL,
  last_error TEXT NOT NULL,
  quarantine_since_us INTEGER,
  quarantine_reason TEXT NOT NULL
) STRICT;
)sql"},
};

int64_t ToMicros(absl::Time t) { return absl::ToUnixMicros(t); }
absl::Time FromMicros(int64_t us) { return absl::FromUnixMicros(us); }

int64_t ToMicros(const google::protobuf::Timestamp& t) { return t.seconds() * 1'000'000 + t.nanos() / 1'000; }

bool IsTerminal(RunState state) {
  return state == threadfleet::fleet::v1::RUN_STATE_PASSED ||
         state == threadfleet::fleet::v1::RUN_STATE_FAILED ||
         state == threadfleet::fleet::v1::RUN_STATE_ERROR ||
         state == threadfleet::fleet::v1::RUN_STATE_CANCELLED;
}

// A JSON array of strings, for `IN (SELECT value FROM json_each(?))`: one
// cached statement serves any number of names.
std::string JsonStringArray(const std::vector<std::string>& items) {
  std::string out = "[";
  for (size_t i = 0; i < items.size(); ++i) {
    if (i > 0) out += ',';
    out += '"';
    for (unsigned char c : items[i]) {
      if (c == '"' || c == '\\') {
        out += '\\';
        out += static_cast<char>(c);
      } else if (c < 0x20) {
        absl::StrAppendFormat(&out, "\\u%04x", c);
      } else {
        out += static_cast<char>(c);
      }
    }
    out += '"';
  }
  out += ']';
  return out;
}

absl::Status CheckLimit(int limit) {
  if (limit <= 0) return absl::InvalidArgumentError(absl::StrCat("limit must be positive, got ", limit));
  return absl::OkStatus();
}

absl::Status CheckBoard(const BoardRecord& board) {
  if (board.name.empty()) return absl::InvalidArgumentError("board name is empty");
  if (board.address.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("board ", board.name, ": address is empty"));
  }
  return absl::OkStatus();
}

}  // namespace

// A cached prepared statement in use: bind, step, read columns. Resets the
// statement and clears its bindings when it goes out of scope, so the cache
// always holds idle statements. Used only while the store's mutex is held;
// the analysis cannot tie store_ to the caller's `this`, hence
// ABSL_NO_THREAD_SAFETY_ANALYSIS on the calls back into the store.
class SqliteStore::Statement {
 public:
  Statement(SqliteStore* store, sqlite3_stmt* stmt) : store_(store), stmt_(stmt) {}
  Statement(Statement&& other) noexcept
      : store_(other.store_), stmt_(std::exchange(other.stmt_, nullptr)), bind_rc_(other.bind_rc_) {}
  Statement& operator=(Statement&&) = delete;
  ~Statement() {
    if (stmt_ == nullptr) return;
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }

  // Bind errors (a wrong index: a bug) are kept and reported by Step().
  Statement& Bind(int index, absl::string_view text) {
    Check(sqlite3_bind_text(stmt_, index, text.data(), static_cast<int>(text.size()), SQLITE_TRANSIENT));
    return *this;
  }
  Statement& BindBlob(int index, absl::string_view bytes) {
    Check(sqlite3_bind_blob(stmt_, index, bytes.data(), static_cast<int>(bytes.size()), SQLITE_TRANSIENT));
    return *this;
  }
  Statement& Bind(int index, int64_t value) {
    Check(sqlite3_bind_int64(stmt_, index, value));
    return *this;
  }
  Statement& BindNull(int index) {
    Check(sqlite3_bind_null(stmt_, index));
    return *this;
  }

  // true when a row is available, false when done.
  absl::StatusOr<bool> Step(absl::string_view what) ABSL_NO_THREAD_SAFETY_ANALYSIS {
    if (bind_rc_ != SQLITE_OK) return store_->Error(bind_rc_, what);
    int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    return store_->Error(rc, what);
  }

  // Steps to the end, ignoring rows (INSERT, UPDATE, DELETE).
  absl::Status Run(absl::string_view what) {
    for (;;) {
      absl::StatusOr<bool> row = Step(what);
      if (!row.ok()) return row.status();
      if (!*row) return absl::OkStatus();
    }
  }

  int64_t Int(int column) const { return sqlite3_column_int64(stmt_, column); }
  bool IsNull(int column) const { return sqlite3_column_type(stmt_, column) == SQLITE_NULL; }
  std::string Text(int column) const {
    const unsigned char* text = sqlite3_column_text(stmt_, column);
    if (text == nullptr) return "";
    return std::string(reinterpret_cast<const char*>(text), sqlite3_column_bytes(stmt_, column));
  }
  std::string Blob(int column) const {
    const void* blob = sqlite3_column_blob(stmt_, column);
    if (blob == nullptr) return "";
    return std::string(static_cast<const char*>(blob), sqlite3_column_bytes(stmt_, column));
  }

 private:
  void Check(int rc) {
    if (rc != SQLITE_OK && bind_rc_ == SQLITE_OK) bind_rc_ = rc;
  }

  SqliteStore* store_;
  sqlite3_stmt* stmt_;
  int bind_rc_ = SQLITE_OK;
};

// BEGIN IMMEDIATE on construction (takes the write lock at once, so a
// transaction never fails half-way for a lock another process took), ROLLBACK
// on destruction unless Commit() succeeded.
class SqliteStore::Transaction {
 public:
  static absl::StatusOr<Transaction> Begin(SqliteStore* store) ABSL_EXCLUSIVE_LOCKS_REQUIRED(store->mu_) {
    if (absl::Status s = store->Exec("BEGIN IMMEDIATE", "begin transaction"); !s.ok()) return s;
    return Transaction(store);
  }
  Transaction(Transaction&& other) noexcept : store_(std::exchange(other.store_, nullptr)) {}
  Transaction& operator=(Transaction&&) = delete;
  ~Transaction() {
    if (store_ != nullptr) sqlite3_exec(store_->db_, "ROLLBACK", nullptr, nullptr, nullptr);
  }

  absl::Status Commit() ABSL_NO_THREAD_SAFETY_ANALYSIS {
    absl::Status s = store_->Exec("COMMIT", "commit transaction");
    if (s.ok()) store_ = nullptr;
    return s;
  }

 private:
  explicit Transaction(SqliteStore* store) : store_(store) {}
  SqliteStore* store_;
};

int SqliteStore::LatestSchemaVersion() { return std::size(kMigrations); }

SqliteStore::SqliteStore(std::string path, sqlite3* db) : path_(std::move(path)), db_(db) {}

SqliteStore::~SqliteStore() {
  absl::MutexLock lock(&mu_);
  for (auto& [sql, stmt] : statements_) sqlite3_finalize(stmt);
  sqlite3_close_v2(db_);
}

absl::StatusOr<std::unique_ptr<SqliteStore>> SqliteStore::Open(absl::string_view path,
                                                               const Options& options) {
  std::string path_str(path);
  // Created 0600 here rather than by SQLite (0644 less the umask): the file
  // holds token hashes and the audit log. SQLite gives the -wal and -shm
  // files the database's mode.
  if (int fd = ::open(path_str.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600); fd >= 0) ::close(fd);
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(path_str.c_str(), &db,
                           SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    std::string message = absl::StrFormat(
        "store %s: cannot open: %s; check that its directory exists and fleetd may write there", path_str,
        db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
    sqlite3_close_v2(db);
    return absl::FailedPreconditionError(message);
  }
  std::unique_ptr<SqliteStore> store(new SqliteStore(std::move(path_str), db));
  if (absl::Status s = store->TightenFileModes(); !s.ok()) return s;
  absl::MutexLock lock(&store->mu_);
  if (absl::Status s = store->Configure(options); !s.ok()) return s;
  if (absl::Status s = store->QuickCheck(); !s.ok()) return s;
  if (absl::Status s = store->Migrate(); !s.ok()) return s;
  // Configure created the -wal and -shm files if missing; an older fleetd
  // may have left them 0644.
  if (absl::Status s = store->TightenFileModes(); !s.ok()) return s;
  return store;
}

absl::Status SqliteStore::TightenFileModes() const {
  for (const char* suffix : {"", "-wal", "-shm"}) {
    const std::string file = absl::StrCat(path_, suffix);
    if (::chmod(file.c_str(), 0600) != 0 && errno != ENOENT) {
      return absl::FailedPreconditionError(
          absl::StrFormat("store %s: cannot make %s private (mode 0600): %s; fleetd must own the file", path_,
                          file, std::strerror(errno)));
    }
  }
  return absl::OkStatus();
}

absl::Status SqliteStore::QuickCheck() {
  std::string problems;
  int lines = 0;
  absl::StatusOr<Statement> check = Prepare("PRAGMA quick_check(20)");
  if (!check.ok()) return check.status();
  for (;;) {
    absl::StatusOr<bool> row = check->Step("check the database's integrity");
    if (!row.ok() && !absl::IsDataLoss(row.status())) return row.status();
    if (!row.ok()) {
      // Damage bad enough that the check itself stops on it.
      if (lines++ > 0) problems += "; ";
      problems += sqlite3_errmsg(db_);
      break;
    }
    if (!*row) break;
    const std::string line = check->Text(0);
    if (line == "ok") return absl::OkStatus();
    if (lines++ > 0) problems += "; ";
    problems += line;
  }
  damage_ = absl::DataLossError(absl::StrFormat(
      "store %s is damaged (quick_check: %s). fleetd will not start on it: stop every fleetd using it, "
      "then restore a backup, or recover what is readable with `sqlite3 %s \".recover\" | sqlite3 "
      "%s.recovered` and point `database:` in fleetd.yaml at the new file",
      path_, problems, path_, path_));
  return damage_;
}

absl::Status SqliteStore::CheckHealth() {
  absl::MutexLock lock(&mu_);
  if (!damage_.ok()) return damage_;
  // One row of each table the API reads and writes on every call.
  for (const char* sql : {"SELECT max(id) FROM audit_log", "SELECT max(id) FROM events",
                          "SELECT max(id) FROM tokens", "SELECT count(*) FROM boards"}) {
    absl::StatusOr<Statement> probe = Prepare(sql);
    if (!probe.ok()) return probe.status();
    absl::StatusOr<bool> row = probe->Step("probe the store's health");
    if (!row.ok()) return row.status();
  }
  return damage_;
}

absl::Status SqliteStore::Error(int rc, absl::string_view what) const {
  std::string detail =
      absl::StrFormat("store %s: %s: %s (%s)", path_, what, sqlite3_errmsg(db_), sqlite3_errstr(rc));
  switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return absl::UnavailableError(absl::StrCat(
          detail,
          "; another process (a second fleetd? a sqlite3 shell?) holds the database, stop it or retry"));
    case SQLITE_NOTADB:
    case SQLITE_CORRUPT: {
      absl::Status damage = absl::DataLossError(absl::StrCat(
          detail, "; the file is not a fleetd store or is damaged: move it aside or restore a backup"));
      if (damage_.ok()) damage_ = damage;
      return damage;
    }
    case SQLITE_CANTOPEN:
    case SQLITE_READONLY:
    case SQLITE_PERM:
      return absl::FailedPreconditionError(
          absl::StrCat(detail, "; check that the file and its directory are writable by fleetd"));
    case SQLITE_FULL:
      return absl::ResourceExhaustedError(absl::StrCat(detail, "; the disk is full"));
    case SQLITE_CONSTRAINT:
      return absl::FailedPreconditionError(detail);
    default:
      return absl::InternalError(detail);
  }
}

absl::Status SqliteStore::Exec(const char* sql, absl::string_view what) {
  int rc = sqlite3_exec(db_, sql, nullptr, nullptr, nullptr);
  if (rc != SQLITE_OK) return Error(rc, what);
  return absl::OkStatus();
}

absl::StatusOr<SqliteStore::Statement> SqliteStore::Prepare(const char* sql) {
  auto it = statements_.find(sql);
  if (it == statements_.end()) {
    sqlite3_stmt* stmt = nullptr;
    int rc = sqlite3_prepare_v3(db_, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
    if (rc != SQLITE_OK) return Error(rc, absl::StrCat("prepare `", sql, "`"));
    it = statements_.emplace(sql, stmt).first;
  }
  return Statement(this, it->second);
}

absl::Status SqliteStore::Configure(const Options& options) {
  sqlite3_extended_result_codes(db_, 1);
  sqlite3_busy_timeout(db_, static_cast<int>(absl::ToInt64Milliseconds(options.busy_timeout)));
  // The first statement reads the file header: a file that is not a
  // database fails here, with the message Error() gives it.
  char* mode = nullptr;
  int rc = sqlite3_exec(
      db_, "PRAGMA journal_mode=WAL",
      [](void* out, int, char** values, char**) {
        if (values[0] != nullptr) *static_cast<char**>(out) = sqlite3_mprintf("%s", values[0]);
        return 0;
      },
      &mode, nullptr);
  std::string journal_mode = mode != nullptr ? mode : "";
  sqlite3_free(mode);
  if (rc != SQLITE_OK) return Error(rc, "switch to WAL mode");
  if (journal_mode != "wal") {
    return absl::FailedPreconditionError(
        absl::StrFormat("store %s: journal mode is \"%s\", not \"wal\"; use a file on a local file system",
                        path_, journal_mode));
  }
  if (absl::Status s = Exec("PRAGMA foreign_keys=ON", "enable foreign keys"); !s.ok()) return s;
  return Exec("PRAGMA synchronous=NORMAL", "set synchronous mode");
}

absl::StatusOr<int> SqliteStore::SchemaVersionLocked() {
  absl::StatusOr<Statement> has_table =
      Prepare("SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = 'schema_version'");
  if (!has_table.ok()) return has_table.status();
  absl::StatusOr<bool> row = has_table->Step("read schema version");
  if (!row.ok()) return row.status();
  if (has_table->Int(0) == 0) return 0;
  absl::StatusOr<Statement> max = Prepare("SELECT COALESCE(MAX(version), 0) FROM schema_version");
  if (!max.ok()) return max.status();
  row = max->Step("read schema version");
  if (!row.ok()) return row.status();
  return static_cast<int>(max->Int(0));
}

absl::StatusOr<int> SqliteStore::SchemaVersion() {
  absl::MutexLock lock(&mu_);
  return SchemaVersionLocked();
}

absl::Status SqliteStore::Migrate() {
  // Read without a write lock first: re-opening a current file writes nothing.
  absl::StatusOr<int> version = SchemaVersionLocked();
  if (!version.ok()) return version.status();
  if (*version == LatestSchemaVersion()) return absl::OkStatus();
  absl::StatusOr<Transaction> tx = Transaction::Begin(this);
  if (!tx.ok()) return tx.status();
  // Another process may have migrated between the read and the lock.
  version = SchemaVersionLocked();
  if (!version.ok()) return version.status();
  if (*version > LatestSchemaVersion()) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "store %s: schema version %d is newer than this fleetd knows (%d); run a newer fleetd", path_,
        *version, LatestSchemaVersion()));
  }
  if (absl::Status s = Exec("CREATE TABLE IF NOT EXISTS schema_version ("
                            " version INTEGER PRIMARY KEY, apply_time_us INTEGER NOT NULL) STRICT",
                            "create schema_version");
      !s.ok()) {
    return s;
  }
  for (const Migration& migration : kMigrations) {
    if (migration.version <= *version) continue;
    if (absl::Status s = Exec(migration.sql, absl::StrCat("migrate to schema version ", migration.version));
        !s.ok()) {
      return s;
    }
    absl::StatusOr<Statement> insert =
        Prepare("INSERT INTO schema_version (version, apply_time_us) VALUES (?, ?)");
    if (!insert.ok()) return insert.status();
    insert->Bind(1, int64_t{migration.version}).Bind(2, ToMicros(absl::Now()));
    if (absl::Status s = insert->Run("record schema version"); !s.ok()) return s;
  }
  return tx->Commit();
}

// ---------------------------------------------------------------------------
// Boards

absl::StatusOr<Labels> SqliteStore::LabelsOf(absl::string_view board) {
  absl::StatusOr<Statement> select =
      Prepare("SELECT key, value FROM board_labels WHERE board = ? ORDER BY key");
  if (!select.ok()) return select.status();
  select->Bind(1, board);
  Labels labels;
  for (;;) {
    absl::StatusOr<bool> row = select->Step("read board labels");
    if (!row.ok()) return row.status();
    if (!*row) return labels;
    labels.emplace(select->Text(0), select->Text(1));
  }
}

absl::Status SqliteStore::PutBoardLocked(const BoardRecord& board) {
  absl::StatusOr<Statement> upsert = Prepare(
      "INSERT INTO boards (name, address, origin, add_time_us) VALUES (?1, ?2, ?3, ?4)"
      " ON CONFLICT (name) DO UPDATE SET address = ?2, origin = ?3, add_time_us = ?4");
  if (!upsert.ok()) return upsert.status();
  upsert->Bind(1, board.name)
      .Bind(2, board.address)
      .Bind(3, int64_t{board.origin})
      .Bind(4, ToMicros(board.add_time));
  if (absl::Status s = upsert->Run(absl::StrCat("write board ", board.name)); !s.ok()) return s;
  absl::StatusOr<Statement> clear = Prepare("DELETE FROM board_labels WHERE board = ?");
  if (!clear.ok()) return clear.status();
  clear->Bind(1, board.name);
  if (absl::Status s = clear->Run(absl::StrCat("write labels of board ", board.name)); !s.ok()) return s;
  for (const auto& [key, value] : board.labels) {
    absl::StatusOr<Statement> insert =
        Prepare("INSERT INTO board_labels (board, key, value) VALUES (?, ?, ?)");
    if (!insert.ok()) return insert.status();
    insert->Bind(1, board.name).Bind(2, key).Bind(3, value);
    if (absl::Status s = insert->Run(absl::StrCat("write labels of board ", board.name)); !s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::Status SqliteStore::PutBoard(const BoardRecord& board) {
  if (absl::Status s = CheckBoard(board); !s.ok()) return s;
  absl::MutexLock lock(&mu_);
  absl::StatusOr<Transaction> tx = Transaction::Begin(this);
  if (!tx.ok()) return tx.status();
  if (absl::Status s = PutBoardLocked(board); !s.ok()) return s;
  return tx->Commit();
}

absl::StatusOr<BoardRecord> SqliteStore::GetBoard(absl::string_view name) {
  absl::MutexLock lock(&mu_);
  absl::StatusOr<Statement> select =
      Prepare("SELECT name, address, origin, add_time_us FROM boards WHERE name = ?");
  if (!select.ok()) return select.status();
  select->Bind(1, name);
  absl::StatusOr<bool> row = select->Step(absl::StrCat("read board ", name));
  if (!row.ok()) return row.status();
  if (!*row) return absl::NotFoundError(absl::StrCat("no board named ", common::QuoteInput(name)));
  BoardRecord board{.name = select->Text(0),
                    .address = select->Text(1),
                    .origin = static_cast<BoardOrigin>(select->Int(2)),
                    .add_time = FromMicros(select->Int(3))};
  absl::StatusOr<Labels> labels = LabelsOf(board.name);
  if (!labels.ok()) return labels.status();
  board.labels = *std::move(labels);
  return board;
}

absl::StatusOr<std::vector<BoardRecord>> SqliteStore::ListBoards() {
  absl::MutexLock lock(&mu_);
  absl::StatusOr<Statement> select =
      Prepare("SELECT name, address, origin, add_time_us FROM boards ORDER BY name");
  if (!select.ok()) return select.status();
  std::vector<BoardRecord> boards;
  for (;;) {
    absl::StatusOr<bool> row = select->Step("list boards");
    if (!row.ok()) return row.status();
    if (!*row) break;
    boards.push_back(BoardRecord{.name = select->Text(0),
                                 .address = select->Text(1),
                                 .origin = static_cast<BoardOrigin>(select->Int(2)),
                                 .add_time = FromMicros(select->Int(3))});
  }
  for (BoardRecord& board : boards) {
    absl::StatusOr<Labels> labels = LabelsOf(board.name);
    if (!labels.ok()) return labels.status();
    board.labels = *std::move(labels);
  }
  return boards;
}

absl::Status SqliteStore::DeleteBoard(absl::string_view name) {
  absl::MutexLock lock(&mu_);
  absl::StatusOr<Statement> del = Prepare("DELETE FROM boards WHERE name = ?");
  if (!del.ok()) return del.status();
  del->Bind(1, name);
  if (absl::Status s = del->Run(absl::StrCat("delete board ", name)); !s.ok()) return s;
  if (sqlite3_changes64(db_) == 0)
    return absl::NotFoundError(absl::StrCat("no board named ", common::QuoteInput(name)));
  return absl::OkStatus();
}

absl::Status SqliteStore::ReplaceLabFileBoards(const std::vector<BoardRecord>& boards) {
  absl::flat_hash_map<absl::string_view, int> seen;
  for (const BoardRecord& board : boards) {
    if (absl::Status s = CheckBoard(board); !s.ok()) return s;
    if (board.origin != threadfleet::fleet::v1::BOARD_ORIGIN_LAB_FILE) {
      return absl::InvalidArgumentError(absl::StrCat("board ", board.name, " is not a lab-file board"));
    }
    if (++seen[board.name] > 1)
      return absl::InvalidArgumentError(absl::StrCat("board ", board.name, " is listed twice"));
  }
  absl::MutexLock lock(&mu_);
  absl::StatusOr<Transaction> tx = Transaction::Begin(this);
  if (!tx.ok()) return tx.status();
  absl::StatusOr<Statement> del = Prepare("DELETE FROM boards WHERE origin = ?");
  if (!del.ok()) return del.status();
  del->Bind(1, int64_t{threadfleet::fleet::v1::BOARD_ORIGIN_LAB_FILE});
  if (absl::Status s = del->Run("delete lab-file boards"); !s.ok()) return s;
  for (const BoardRecord& board : boards) {
    if (absl::Status s = PutBoardLocked(board); !s.ok()) return s;
  }
  return tx->Commit();
}

// ---------------------------------------------------------------------------
// Scripts

absl::StatusOr<std::string> SqliteStore::PutScript(absl::string_view content) {
  std::string sha = Sha256Hex(content);
  absl::MutexLock lock(&mu_);
  absl::StatusOr<Statement> insert = Prepare(
      "INSERT INTO scripts (sha256, content, create_time_us) VALUES (?, ?, ?) ON CONFLICT (sha256) DO "
      "NOTHING");
  if (!insert.ok()) return insert.status();
  insert->Bind(1, sha).BindBlob(2, content).Bind(3, ToMicros(absl::Now()));
  if (absl::Status s = insert->Run(absl::StrCat("write script ", sha)); !s.ok()) return s;
  return sha;
}

absl::StatusOr<ScriptRecord> SqliteStore::GetScript(absl::string_view sha256_hex) {
  absl::MutexLock lock(&mu_);
  absl::StatusOr<Statement> select =
      Prepare("SELECT sha256, content, create_time_us FROM scripts WHERE sha256 = ?");
  if (!select.ok()) return select.status();
  select->Bind(1, sha256_hex);
  absl::StatusOr<bool> row = select->Step(absl::StrCat("read script ", sha256_hex));
  if (!row.ok()) return row.status();
  if (!*row)
    return absl::NotFoundError(absl::StrCat("no script with sha256 ", common::QuoteInput(sha256_hex)));
  return ScriptRecord{
      .sha256_hex = select->Text(0), .content = select->Blob(1), .create_time = FromMicros(select->Int(2))};
}

// ---------------------------------------------------------------------------
// Programs

absl::StatusOr<int64_t> SqliteStore::AddProgram(const ProgramRecord& program) {
  if (program.board.empty()) return absl::InvalidArgumentError("program's board is empty");
  absl::MutexLock lock(&mu_);
  absl::StatusOr<Transaction> tx = Transaction::Begin(this);
  if (!tx.ok()) return tx.status();
  if (!program.script_sha256_hex.empty()) {
    absl::StatusOr<Statement> script = Prepare("SELECT 1 FROM scripts WHERE sha256 = ?");
    if (!script.ok()) return script.status();
    script->Bind(1, program.script_sha256_hex);
    absl::StatusOr<bool> row = script->Step("look up program's script");
    if (!row.ok()) return row.status();
    if (!*row) {
      return absl::FailedPreconditionError(
          absl::StrCat("program's script ", program.script_sha256_hex, " is not stored; PutScript it first"));
    }
  }
  absl::StatusOr<Statement> insert = Prepare(
      "INSERT INTO programs (board, board_program_id, main_thread_id, name, path, script_sha256, started_by,"
      " start_time_us, state, end_time_us, exit_code) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
  if (!insert.ok()) return insert.status();
  insert->Bind(1, program.board)
      .Bind(2, int64_t{program.board_program_id})
      .Bind(3, int64_t{program.main_thread_id})
      .Bind(4, program.name)
      .Bind(5, program.path)
      .Bind(7, program.started_by)
      .Bind(8, ToMicros(program.start_time))
      .Bind(9, int64_t{program.state})
      .Bind(11, int64_t{program.exit_code});
  if (program.script_sha256_hex.empty()) {
    insert->BindNull(6);
  } else {
    insert->Bind(6, program.script_sha256_hex);
  }
  if (program.end_time.has_value()) {
    insert->Bind(10, ToMicros(*program.end_time));
  } else {
    insert->BindNull(10);
  }
  if (absl::Status s = insert->Run("record program"); !s.ok()) return s;
  int64_t id = sqlite3_last_insert_rowid(db_);
  for (size_t i = 0; i < program.args.size(); ++i) {
    absl::StatusOr<Statement> arg =
        Prepare("INSERT INTO program_args (program_id, position, value) VALUES (?, ?, ?)");
    if (!arg.ok()) return arg.status();
    arg->Bind(1, id).Bind(2, static_cast<int64_t>(i)).Bind(3, program.args[i]);
    if (absl::Status s = arg->Run("record program arguments"); !s.ok()) return s;
  }
  if (absl::Status s = tx->Commit(); !s.ok()) return s;
  return id;
}

absl::Status SqliteStore::FinishProgram(int64_t id, threadfleet::board::v1::ProgramState state,
                                        int32_t exit_code, absl::Time end_time) {
  absl::MutexLock lock(&mu_);
  absl::StatusOr<Statement> update =
      Prepare("UPDATE programs SET state = ?, exit_code = ?, end_time_us = ? WHERE id = ?");
  if (!update.ok()) return update.status();
  update->Bind(1, int64_t{state}).Bind(2, int64_t{exit_code}).Bind(3, ToMicros(end_time)).Bind(4, id);
  if (absl::Status s = update->Run(absl::StrCat("finish program ", id)); !s.ok()) return s;
  if (sqlite3_changes64(db_) == 0) return absl::NotFoundError(absl::StrCat("no program with id ", id));
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::string>> SqliteStore::ArgsOf(int64_t program_id) {
  absl::StatusOr<Statement> select =
      Prepare("SELECT value FROM program_args WHERE program_id = ? ORDER BY position");
  if (!select.ok()) return select.status();
  select->Bind(1, program_id);
  std::vector<std::string> args;
  for (;;) {
    absl::StatusOr<bool> row = select->Step("read program arguments");
    if (!row.ok()) return row.status();
    if (!*row) return args;
    args.push_back(select->Text(0));
  }
}

absl::StatusOr<std::vector<ProgramRecord>> SqliteStore::ListPrograms(absl::string_view board, int limit) {
  if (absl::Status s = CheckLimit(limit); !s.ok()) return s;
  absl::MutexLock lock(&mu_);
  absl::StatusOr<Statement> select = Prepare(
      "SELECT id, board, board_program_id, main_thread_id, name, path, script_sha256, started_by,"
      " start_time_us, state, end_time_us, exit_code FROM programs"
      " WHERE ?1 = '' OR board = ?1 ORDER BY id DESC LIMIT ?2");
  if (!select.ok()) return select.status();
  select->Bind(1, board).Bind(2, int64_t{limit});
  std::vector<ProgramRecord> programs;
  for (;;) {
    absl::StatusOr<bool> row = select->Step("list programs");
    if (!row.ok()) return row.status();
    if (!*row) break;
    ProgramRecord& p = programs.emplace_back();
    p.id = select->Int(0);
    p.board = select->Text(1);
    p.board_program_id = static_cast<uint32_t>(select->Int(2));
    p.main_thread_id = static_cast<uint32_t>(select->Int(3));
    p.name = select->Text(4);
    p.path = select->Text(5);
    p.script_sha256_hex = select->Text(6);
    p.started_by = select->Text(7);
    p.start_time = FromMicros(select->Int(8));
    p.state = static_cast<threadfleet::board::v1::ProgramState>(select->Int(9));
    if (!select->IsNull(10)) p.end_time = FromMicros(select->Int(10));
    p.exit_code = static_cast<int32_t>(select->Int(11));
  }
  for (ProgramRecord& p : programs) {
    absl::StatusOr<std::vector<std::string>> args = ArgsOf(p.id);
    if (!args.ok()) return args.status();
    p.args = *std::move(args);
  }
  return programs;
}

// ---------------------------------------------------------------------------
// Jobs and runs

namespace {

constexpr char kSelectJob[] =
    "SELECT name, spec_yaml, version, create_time_us, update_time_us, last_fire_time_us, deleted_time_us"
    " FROM jobs WHERE name = ?";

constexpr char kSelectRunColumns[] =
    "SELECT id, job_name, job_version, state, trigger, message, start_time_us, end_time_us, deadline_us,"
    " counts FROM runs";

JobRecord ReadJob(const auto& select) {
  JobRecord job{.name = select.Text(0),
                .spec_yaml = select.Text(1),
                .version = select.Int(2),
                .create_time = FromMicros(select.Int(3)),
                .update_time = FromMicros(select.Int(4))};
  if (!select.IsNull(5)) job.last_fire_time = FromMicros(select.Int(5));
  return job;
}

absl::StatusOr<RunRecord> ReadRun(const auto& select, absl::string_view path) {
  RunRecord run{.id = select.Int(0),
                .job_name = select.Text(1),
                .job_version = select.Int(2),
                .state = static_cast<RunState>(select.Int(3)),
                .trigger = select.Text(4),
                .message = select.Text(5),
                .start_time = FromMicros(select.Int(6))};
  if (!select.IsNull(7)) run.end_time = FromMicros(select.Int(7));
  if (!select.IsNull(8)) run.deadline = FromMicros(select.Int(8));
  if (!run.counts.ParseFromString(select.Blob(9))) {
    return absl::DataLossError(absl::StrFormat("store %s: counts of run %d do not parse", path, run.id));
  }
  return run;
}

// Run ids as a JSON array, the form board_job_health keeps them in.
std::string JsonIntArray(const std::vector<int64_t>& ids) {
  std::string out = "[";
  for (size_t i = 0; i < ids.size(); ++i) absl::StrAppend(&out, i > 0 ? "," : "", ids[i]);
  return out + "]";
}

}  // namespace

absl::StatusOr<std::vector<JobFileRecord>> SqliteStore::JobFilesLocked(absl::string_view name,
                                                                       int64_t version) {
  absl::StatusOr<Statement> select = Prepare(
      "SELECT path, script_sha256, size_bytes FROM job_files WHERE job_name = ? AND version = ? ORDER BY "
      "path");
  if (!select.ok()) return select.status();
  select->Bind(1, name).Bind(2, version);
  std::vector<JobFileRecord> files;
  for (;;) {
    absl::StatusOr<bool> row = select->Step(absl::StrCat("read files of job ", name));
    if (!row.ok()) return row.status();
    if (!*row) return files;
    files.push_back(
        JobFileRecord{.path = select->Text(0), .sha256_hex = select->Text(1), .size_bytes = select->Int(2)});
  }
}

absl::StatusOr<std::optional<JobRecord>> SqliteStore::FindJobLocked(absl::string_view name,
                                                                    bool with_deleted) {
  absl::StatusOr<Statement> select = Prepare(kSelectJob);
  if (!select.ok()) return select.status();
  select->Bind(1, name);
  absl::StatusOr<bool> row = select->Step(absl::StrCat("read job ", name));
  if (!row.ok()) return row.status();
  if (!*row || (!with_deleted && !select->IsNull(6))) return std::nullopt;
  JobRecord job = ReadJob(*select);
  absl::StatusOr<std::vector<JobFileRecord>> files = JobFilesLocked(job.name, job.version);
  if (!files.ok()) return files.status();
  job.files = *std::move(files);
  return job;
}

absl::StatusOr<bool> SqliteStore::JobDeletedLocked(absl::string_view name) {
  absl::StatusOr<Statement> select = Prepare("SELECT deleted_time_us IS NOT NULL FROM jobs WHERE name = ?");
  if (!select.ok()) return select.status();
  select->Bind(1, name);
  absl::StatusOr<bool> row = select->Step(absl::StrCat("read job ", name));
  if (!row.ok()) return row.status();
  return *row && select->Int(0) != 0;
}

absl::StatusOr<JobRecord> SqliteStore::PutJob(absl::string_view name, absl::string_view spec_yaml,
                                              const std::vector<JobFileRecord>& files, absl::Time now) {
  if (name.empty()) return absl::InvalidArgumentError("job name is empty");
  if (spec_yaml.empty()) return absl::InvalidArgumentError(absl::StrCat("job ", name, ": spec is empty"));
  std::vector<JobFileRecord> sorted = files;
  std::sort(sorted.begin(), sorted.end(),
            [](const JobFileRecord& a, const JobFileRecord& b) { return a.path < b.path; });
  for (size_t i = 1; i < sorted.size(); ++i) {
    if (sorted[i].path == sorted[i - 1].path) {
      return absl::InvalidArgumentError(
          absl::StrCat("job ", name, ": file ", sorted[i].path, " is given twice"));
    }
  }
  absl::MutexLock lock(&mu_);
  absl::StatusOr<Transaction> tx = Transaction::Begin(this);
  if (!tx.ok()) return tx.status();
  JobRecord job{.name = std::string(name),
                .spec_yaml = std::string(spec_yaml),
                .version = 1,
                .create_time = now,
                .update_time = now,
                .files = sorted};
  absl::StatusOr<std::optional<JobRecord>> stored = FindJobLocked(name, /*with_deleted=*/true);
  if (!stored.ok()) return stored.status();
  if (stored->has_value()) {
    JobRecord& current = **stored;
    absl::StatusOr<bool> deleted = JobDeletedLocked(name);
    if (!deleted.ok()) return deleted.status();
    if (!*deleted && current.spec_yaml == spec_yaml && current.files == sorted) return current;
    job.version = current.version + 1;
    job.last_fire_time = current.last_fire_time;
    if (!*deleted) job.create_time = current.create_time;
  }
  absl::StatusOr<Statement> upsert = Prepare(
      "INSERT INTO jobs (name, spec_yaml, version, create_time_us, update_time_us) VALUES (?1, ?2, ?3, ?4, "
      "?5)"
      " ON CONFLICT (name) DO UPDATE SET spec_yaml = ?2, version = ?3, create_time_us = ?4,"
      " update_time_us = ?5, deleted_time_us = NULL");
  if (!upsert.ok()) return upsert.status();
  upsert->Bind(1, job.name)
      .Bind(2, job.spec_yaml)
      .Bind(3, job.version)
      .Bind(4, ToMicros(job.create_time))
      .Bind(5, ToMicros(job.update_time));
  if (absl::Status s = upsert->Run(absl::StrCat("write job ", name)); !s.ok()) return s;
  for (const JobFileRecord& file : sorted) {
    absl::StatusOr<Statement> insert = Prepare(
        "INSERT INTO job_files (job_name, version, path, script_sha256, size_bytes) VALUES (?, ?, ?, ?, ?)");
    if (!insert.ok()) return insert.status();
    insert->Bind(1, job.name)
        .Bind(2, job.version)
        .Bind(3, file.path)
        .Bind(4, file.sha256_hex)
        .Bind(5, file.size_bytes);
    absl::Status s = insert->Run(absl::StrCat("write file ", file.path, " of job ", name));
    if (absl::IsFailedPrecondition(s) && sqlite3_extended_errcode(db_) == SQLITE_CONSTRAINT_FOREIGNKEY) {
      return absl::FailedPreconditionError(absl::StrCat("job ", name, ": file ", file.path, "'s content ",
                                                        file.sha256_hex,
                                                        " is not stored; PutScript it first"));
    }
    if (!s.ok()) return s;
  }
  if (absl::Status s = tx->Commit(); !s.ok()) return s;
  return job;
}

absl::StatusOr<JobRecord> SqliteStore::GetJob(absl::string_view name) {
  absl::MutexLock lock(&mu_);
  absl::StatusOr<std::optional<JobRecord>> job = FindJobLocked(name, /*with_deleted=*/false);
  if (!job.ok()) return job.status();
  if (!job->has_value()) return absl::NotFoundError(absl::StrCat("no job named ", common::QuoteInput(name)));
  return **std::move(job);
}

absl::StatusOr<std::vector<JobRecord>> SqliteStore::ListJobs() {
  absl::MutexLock lock(&mu_);
  absl::StatusOr<Statement> select = Prepare(
      "SELECT name, spec_yaml, version, create_time_us, update_time_us, last_fire_time_us FROM jobs"
      " WHERE deleted_time_us IS NULL ORDER BY name");
  if (!select.ok()) return select.status();
  std::vector<JobRecord> jobs;
  for (;;) {
    absl::StatusOr<bool> row = select->Step("list jobs");
    if (!row.ok()) return row.status();
    if (!*row) break;
    jobs.push_back(ReadJob(*select));
  }
  for (JobRecord& job : jobs) {
    absl::StatusOr<std::vector<JobFileRecord>> files = JobFilesLocked(job.name, job.version);
    if (!files.ok()) return files.status();
    job.files = *std::move(files);
  }
  return jobs;
}

absl::Status SqliteStore::DeleteJob(absl::string_view name, absl::Time now) {
  absl::MutexLock lock(&mu_);
  absl::StatusOr<Statement> update =
      Prepare("UPDATE jobs SET deleted_time_us = ? WHERE name = ? AND deleted_time_us IS NULL");
  if (!update.ok()) return update.status();
  update->Bind(1, ToMicros(now)).Bind(2, name);
  if (absl::Status s = update->Run(absl::StrCat("delete job ", name)); !s.ok()) return s;
  if (sqlite3_changes64(db_) == 0)
    return absl::NotFoundError(absl::StrCat("no job named ", common::QuoteInput(name)));
  return absl::OkStatus();
}

absl::Status SqliteStore::SetJobLastFire(absl::string_view name, absl::Time fire_time) {
  absl::MutexLock lock(&mu_);
  absl::StatusOr<Statement> update =
      Prepare("UPDATE jobs SET last_fire_time_us = ? WHERE name = ? AND deleted_time_us IS NULL");
  if (!update.ok()) return update.status();
  update->Bind(1, ToMicros(fire_time)).Bind(2, name);
  if (absl::Status s = update->Run(absl::StrCat("record fire time of job ", name)); !s.ok()) return s;
  if (sqlite3_changes64(db_) == 0)
    return absl::NotFoundError(absl::StrCat("no job named ", common::QuoteInput(name)));
  return absl::OkStatus();
}

absl::StatusOr<RunRecord> SqliteStore::GetRunLocked(int64_t id) {
  static const std::string sql = absl::StrCat(kSelectRunColumns, " WHERE id = ?");
  absl::StatusOr<Statement> select = Prepare(sql.c_str());
  if (!select.ok()) return select.status();
  select->Bind(1, id);
  absl::StatusOr<bool> row = select->Step(absl::StrCat("read run ", id));
  if (!row.ok()) return row.status();
  if (!*row) return absl::NotFoundError(absl::StrCat("no run with id ", id));
  return ReadRun(*select, path_);
}

absl::StatusOr<RunRecord> SqliteStore::CreateRun(absl::string_view job_name, absl::string_view trigger,
                                                 absl::Time now, std::optional<absl::Time> deadline) {
  absl::MutexLock lock(&mu_);
  absl::StatusOr<Transaction> tx = Transaction::Begin(this);
  if (!tx.ok()) return tx.status();
  int64_t version = 0;
  {
    absl::StatusOr<Statement> select = Prepare(kSelectJob);
    if (!select.ok()) return select.status();
    select->Bind(1, job_name);
    absl::StatusOr<bool> row = select->Step(absl::StrCat("read job ", job_name));
    if (!row.ok()) return row.status();
    if (!*row || !select->IsNull(6)) {
      return absl::NotFoundError(absl::StrCat("no job named ", common::QuoteInput(job_name)));
    }
    version = select->Int(2);
  }
  absl::StatusOr<Statement> insert = Prepare(
      "INSERT INTO runs (job_name, job_version, state, trigger, message, start_time_us, deadline_us)"
      " VALUES (?, ?, ?, ?, '', ?, ?)");
  if (!insert.ok()) return insert.status();
  insert->Bind(1, job_name)
      .Bind(2, version)
      .Bind(3, int64_t{threadfleet::fleet::v1::RUN_STATE_QUEUED})
      .Bind(4, trigger)
      .Bind(5, ToMicros(now));
  if (deadline.has_value()) {
    insert->Bind(6, ToMicros(*deadline));
  } else {
    insert->BindNull(6);
  }
  if (absl::Status s = insert->Run(absl::StrCat("create run of job ", job_name)); !s.ok()) return s;
  absl::StatusOr<RunRecord> run = GetRunLocked(sqlite3_last_insert_rowid(db_));
  if (!run.ok()) return run.status();
  if (absl::Status s = tx->Commit(); !s.ok()) return s;
  return run;
}

absl::Status SqliteStore::UpdateRun(int64_t id, RunState state, absl::string_view message,
                                    const threadfleet::fleet::v1::RunCounts& counts, absl::Time now) {
  absl::MutexLock lock(&mu_);
  absl::StatusOr<Statement> update = Prepare(
      "UPDATE runs SET state = ?1, message = ?2, counts = ?6,"
      " end_time_us = CASE WHEN ?3 THEN ?4 ELSE end_time_us END WHERE id = ?5");
  if (!update.ok()) return update.status();
  update->Bind(1, int64_t{state})
      .Bind(2, message)
      .Bind(3, int64_t{IsTerminal(state)})
      .Bind(4, ToMicros(now))
      .Bind(5, id)
      .BindBlob(6, counts.SerializeAsString());
  if (absl::Status s = update->Run(absl::StrCat("update run ", id)); !s.ok()) return s;
  if (sqlite3_changes64(db_) == 0) return absl::NotFoundError(absl::StrCat("no run with id ", id));
  return absl::OkStatus();
}

absl::StatusOr<RunRecord> SqliteStore::GetRun(int64_t id) {
  absl::MutexLock lock(&mu_);
  return GetRunLocked(id);
}

absl::StatusOr<std::vector<RunRecord>> SqliteStore::ListRuns(const RunQuery& query) {
  if (absl::Status s = CheckLimit(query.limit); !s.ok()) return s;
  static const std::string sql =
      absl::StrCat(kSelectRunColumns,
                   " WHERE (?1 = '' OR job_name = ?1) AND (?2 = 0 OR id < ?2) ORDER BY id DESC LIMIT ?3");
  absl::MutexLock lock(&mu_);
  absl::StatusOr<Statement> select = Prepare(sql.c_str());
  if (!select.ok()) return select.status();
  select->Bind(1, query.job_name).Bind(2, query.before_id).Bind(3, int64_t{query.limit});
  std::vector<RunRecord> runs;
  for (;;) {
    absl::StatusOr<bool> row = select->Step("list runs");
    if (!row.ok()) return row.status();
    if (!*row) return runs;
    absl::StatusOr<RunRecord> run = ReadRun(*select, path_);
    if (!run.ok()) return run.status();
    runs.push_back(*std::move(run));
  }
}

absl::StatusOr<std::vector<int64_t>> SqliteStore::InterruptActiveRuns(absl::string_view message,
                                                                      absl::Time now) {
  absl::MutexLock lock(&mu_);
  absl::StatusOr<Transaction> tx = Transaction::Begin(this);
  if (!tx.ok()) return tx.status();
  std::vector<int64_t> ids;
  {
    absl::StatusOr<Statement> select = Prepare("SELECT id FROM runs WHERE state IN (?, ?) ORDER BY id");
    if (!select.ok()) return select.status();
    select->Bind(1, int64_t{threadfleet::fleet::v1::RUN_STATE_QUEUED})
        .Bind(2, int64_t{threadfleet::fleet::v1::RUN_STATE_RUNNING});
    for (;;) {
      absl::StatusOr<bool> row = select->Step("find unfinished runs");
      if (!row.ok()) return row.status();
      if (!*row) break;
      ids.push_back(select->Int(0));
    }
  }
  absl::StatusOr<Statement> update =
      Prepare("UPDATE runs SET state = ?1, message = ?2, end_time_us = ?3 WHERE state IN (?4, ?5)");
  if (!update.ok()) return update.status();
  update->Bind(1, int64_t{threadfleet::fleet::v1::RUN_STATE_ERROR})
      .Bind(2, message)
      .Bind(3, ToMicros(now))
      .Bind(4, int64_t{threadfleet::fleet::v1::RUN_STATE_QUEUED})
      .Bind(5, int64_t{threadfleet::fleet::v1::RUN_STATE_RUNNING});
  if (absl::Status s = update->Run("mark unfinished runs interrupted"); !s.ok()) return s;
  if (absl::Status s = tx->Commit(); !s.ok()) return s;
  return ids;
}

absl::StatusOr<int64_t> SqliteStore::PruneRuns(absl::string_view job_name, int keep) {
  if (absl::Status s = CheckLimit(keep); !s.ok()) return s;
  absl::MutexLock lock(&mu_);
  // Results go with their run (ON DELETE CASCADE). Runs still going are kept
  // whatever their age: their workers still write to them.
  absl::StatusOr<Statement> prune = Prepare(
      "DELETE FROM runs WHERE job_name = ?1 AND end_time_us IS NOT NULL AND id < coalesce("
      " (SELECT id FROM runs WHERE job_name = ?1 ORDER BY id DESC LIMIT 1 OFFSET ?2 - 1), 0)");
  if (!prune.ok()) return prune.status();
  prune->Bind(1, job_name).Bind(2, int64_t{keep});
  if (absl::Status s = prune->Run(absl::StrCat("prune runs of job ", job_name)); !s.ok()) return s;
  return int64_t{sqlite3_changes(db_)};
}

absl::Status SqliteStore::PutBoardResult(int64_t run_id, const threadfleet::fleet::v1::BoardResult& result) {
  return PutBoardResults(run_id, {result});
}

absl::Status SqliteStore::PutBoardResults(int64_t run_id,
                                          const std::vector<threadfleet::fleet::v1::BoardResult>& results) {
  for (const threadfleet::fleet::v1::BoardResult& result : results) {
    if (result.board().empty()) return absl::InvalidArgumentError("board result without a board");
  }
  absl::MutexLock lock(&mu_);
  absl::StatusOr<Transaction> tx = Transaction::Begin(this);
  if (!tx.ok()) return tx.status();
  if (absl::StatusOr<RunRecord> run = GetRunLocked(run_id); !run.ok()) return run.status();
  for (const threadfleet::fleet::v1::BoardResult& result : results) {
    absl::StatusOr<Statement> upsert = Prepare(
        "INSERT INTO run_results (run_id, board, state, body) VALUES (?1, ?2, ?3, ?4)"
        " ON CONFLICT (run_id, board) DO UPDATE SET state = ?3, body = ?4");
    if (!upsert.ok()) return upsert.status();
    upsert->Bind(1, run_id)
        .Bind(2, result.board())
        .Bind(3, int64_t{result.state()})
        .BindBlob(4, result.SerializeAsString());
    if (absl::Status s =
            upsert->Run(absl::StrCat("write result of board ", result.board(), " in run ", run_id));
        !s.ok()) {
      return s;
    }
  }
  return tx->Commit();
}

absl::StatusOr<std::vector<threadfleet::fleet::v1::BoardResult>> SqliteStore::ListBoardResults(
    int64_t run_id) {
  absl::MutexLock lock(&mu_);
  absl::StatusOr<Statement> select =
      Prepare("SELECT board, body FROM run_results WHERE run_id = ? ORDER BY board");
  if (!select.ok()) return select.status();
  select->Bind(1, run_id);
  std::vector<threadfleet::fleet::v1::BoardResult> results;
  for (;;) {
    absl::StatusOr<bool> row = select->Step(absl::StrCat("list results of run ", run_id));
    if (!row.ok()) return row.status();
    if (!*row) return results;
    if (!results.emplace_back().ParseFromString(select->Blob(1))) {
      return absl::DataLossError(absl::StrFormat("store %s: result of board %s in run %d does not parse",
                                                 path_, select->Text(0), run_id));
    }
  }
}

// ---------------------------------------------------------------------------
// Board health for jobs

namespace {

constexpr char kSelectBoardJobHealth[] =
    "SELECT board, error_run_ids, last_error, quarantine_since_us, quarantine_reason FROM board_job_health";

BoardJobHealth ReadBoardJobHealth(const auto& select) {
  BoardJobHealth health{
      .board = select.Text(0), .last_error = select.Text(2), .quarantine_reason = select.Text(4)};
  const std::string ids = select.Text(1);
  for (absl::string_view id :
       absl::StrSplit(absl::StripSuffix(absl::StripPrefix(ids, "["), "]"), ',', absl::SkipEmpty())) {
    int64_t value = 0;
    if (absl::SimpleAtoi(id, &value)) health.error_run_ids.push_back(value);
  }
  if (!select.IsNull(3)) health.quarantine_since = FromMicros(select.Int(3));
  return health;
}

}  // namespace

absl::StatusOr<BoardJobHealth> SqliteStore::GetBoardJobHealth(absl::string_view board) {
  static const std::string sql = absl::StrCat(kSelectBoardJobHealth, " WHERE board = ?");
  absl::MutexLock lock(&mu_);
  absl::StatusOr<Statement> select = Prepare(sql.c_str());
  if (!select.ok()) return select.status();
  select->Bind(1, board);
  absl::StatusOr<bool> row = select->Step(absl::StrCat("read job health of board ", board));
  if (!row.ok()) return row.status();
  if (!*row) return BoardJobHealth{.board = std::string(board)};
  return ReadBoardJobHealth(*select);
}

absl::Status SqliteStore::PutBoardJobHealth(const BoardJobHealth& health) {
  if (health.board.empty()) return absl::InvalidArgumentError("board job health without a board");
  absl::MutexLock lock(&mu_);
  absl::StatusOr<Statement> upsert = Prepare(
      "INSERT INTO board_job_health (board, error_run_ids, last_error, quarantine_since_us, "
      "quarantine_reason)"
      " VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (board) DO UPDATE SET error_run_ids = ?2, last_error = ?3,"
      " quarantine_since_us = ?4, quarantine_reason = ?5");
  if (!upsert.ok()) return upsert.status();
  upsert->Bind(1, health.board)
      .Bind(2, JsonIntArray(health.error_run_ids))
      .Bind(3, health.last_error)
      .Bind(5, health.quarantine_reason);
  if (health.quarantine_since.has_value()) {
    upsert->Bind(4, ToMicros(*health.quarantine_since));
  } else {
    upsert->BindNull(4);
  }
  return upsert->Run(absl::StrCat("write job health of board ", health.board));
}

absl::StatusOr<std::vector<BoardJobHealth>> SqliteStore::ListQuarantinedBoards() {
  static const std::string sql =
      absl::StrCat(kSelectBoardJobHealth, " WHERE quarantine_since_us IS NOT NULL ORDER BY board");
  absl::MutexLock lock(&mu_);
  absl::StatusOr<Statement> select = Prepare(sql.c_str());
  if (!select.ok()) return select.status();
  std::vector<BoardJobHealth> boards;
  for (;;) {
    absl::StatusOr<bool> row = select->Step("list quarantined boards");
    if (!row.ok()) return row.status();
    if (!*row) return boards;
    boards.push_back(ReadBoardJobHealth(*select));
  }
}

// ---------------------------------------------------------------------------
// Events

absl::StatusOr<int64_t> SqliteStore::AppendEvent(const threadfleet::fleet::v1::Event& event) {
  threadfleet::fleet::v1::Event body = event;
  body.clear_id();
  absl::MutexLock lock(&mu_);
  absl::StatusOr<Statement> insert =
      Prepare("INSERT INTO events (time_us, board, kind, severity, body) VALUES (?, ?, ?, ?, ?)");
  if (!insert.ok()) return insert.status();
  insert->Bind(1, ToMicros(event.time()))
      .Bind(2, event.board())
      .Bind(3, int64_t{event.kind()})
      .Bind(4, int64_t{event.severity()})
      .BindBlob(5, body.SerializeAsString());
  if (absl::Status s = insert->Run("append event"); !s.ok()) return s;
  return sqlite3_last_insert_rowid(db_);
}

absl::StatusOr<std::vector<threadfleet::fleet::v1::Event>> SqliteStore::ListEvents(const EventQuery& query) {
  if (absl::Status s = CheckLimit(query.limit); !s.ok()) return s;
  absl::MutexLock lock(&mu_);
  absl::StatusOr<Statement> select = Prepare(
      "SELECT id, body FROM events WHERE id > ?1 AND severity >= ?2"
      " AND (?3 IS NULL OR board IN (SELECT value FROM json_each(?3))) ORDER BY id LIMIT ?4");
  if (!select.ok()) return select.status();
  select->Bind(1, query.after_id).Bind(2, int64_t{query.min_severity}).Bind(4, int64_t{query.limit});
  if (query.boards.empty()) {
    select->BindNull(3);
  } else {
    select->Bind(3, JsonStringArray(query.boards));
  }
  std::vector<threadfleet::fleet::v1::Event> events;
  for (;;) {
    absl::StatusOr<bool> row = select->Step("list events");
    if (!row.ok()) return row.status();
    if (!*row) return events;
    threadfleet::fleet::v1::Event& event = events.emplace_back();
    if (!event.ParseFromString(select->Blob(1))) {
      return absl::DataLossError(absl::StrFormat("store %s: event %d does not parse", path_, select->Int(0)));
    }
    event.set_id(static_cast<uint64_t>(select->Int(0)));
  }
}

// ---------------------------------------------------------------------------
// Audit log

absl::StatusOr<int64_t> SqliteStore::AppendAudit(const AuditRecord& record) {
  absl::MutexLock lock(&mu_);
  absl::StatusOr<Statement> insert = Prepare(
      "INSERT INTO audit_log (time_us, actor, action, target, result_code, result_message, state)"
      " VALUES (?, ?, ?, ?, ?, ?, ?)");
  if (!insert.ok()) return insert.status();
  insert->Bind(1, ToMicros(record.time))
      .Bind(2, record.actor)
      .Bind(3, record.action)
      .Bind(4, record.target)
      .Bind(5, static_cast<int64_t>(record.result_code))
      .Bind(6, record.result_message)
      .Bind(7, static_cast<int64_t>(record.state));
  if (absl::Status s = insert->Run("append audit entry"); !s.ok()) return s;
  return sqlite3_last_insert_rowid(db_);
}

absl::Status SqliteStore::FinishAudit(int64_t id, absl::string_view target, absl::StatusCode code,
                                      absl::string_view message) {
  absl::MutexLock lock(&mu_);
  absl::StatusOr<Statement> update = Prepare(
      "UPDATE audit_log SET target = ?, result_code = ?, result_message = ?, state = ?"
      " WHERE id = ? AND state = ?");
  if (!update.ok()) return update.status();
  update->Bind(1, target)
      .Bind(2, static_cast<int64_t>(code))
      .Bind(3, message)
      .Bind(4, int64_t{threadfleet::fleet::v1::AUDIT_STATE_DONE})
      .Bind(5, id)
      .Bind(6, int64_t{threadfleet::fleet::v1::AUDIT_STATE_STARTED});
  if (absl::Status s = update->Run("complete audit entry"); !s.ok()) return s;
  if (sqlite3_changes(db_) == 0) {
    return absl::NotFoundError(absl::StrCat("audit entry ", id, " is not a started one"));
  }
  return absl::OkStatus();
}

absl::StatusOr<int64_t> SqliteStore::AbandonStartedAudits(absl::string_view message) {
  absl::MutexLock lock(&mu_);
  absl::StatusOr<Statement> update =
      Prepare("UPDATE audit_log SET state = ?, result_code = ?, result_message = ? WHERE state = ?");
  if (!update.ok()) return update.status();
  update->Bind(1, int64_t{threadfleet::fleet::v1::AUDIT_STATE_OUTCOME_UNKNOWN})
      .Bind(2, static_cast<int64_t>(absl::StatusCode::kUnknown))
      .Bind(3, message)
      .Bind(4, int64_t{threadfleet::fleet::v1::AUDIT_STATE_STARTED});
  if (absl::Status s = update->Run("mark unfinished audit entries"); !s.ok()) return s;
  return int64_t{sqlite3_changes(db_)};
}

absl::StatusOr<std::vector<AuditRecord>> SqliteStore::ListAudit(const AuditQuery& query) {
  if (absl::Status s = CheckLimit(query.limit); !s.ok()) return s;
  absl::MutexLock lock(&mu_);
  absl::StatusOr<Statement> select = Prepare(
      "SELECT id, time_us, actor, action, target, result_code, result_message, state FROM audit_log"
      " WHERE id > ?1 AND (?2 = 0 OR id < ?2) ORDER BY id DESC LIMIT ?3");
  if (!select.ok()) return select.status();
  select->Bind(1, query.after_id).Bind(2, query.before_id).Bind(3, int64_t{query.limit});
  std::vector<AuditRecord> records;
  for (;;) {
    absl::StatusOr<bool> row = select->Step("list audit log");
    if (!row.ok()) return row.status();
    if (!*row) return records;
    records.push_back(AuditRecord{.id = select->Int(0),
                                  .time = FromMicros(select->Int(1)),
                                  .actor = select->Text(2),
                                  .action = select->Text(3),
                                  .target = select->Text(4),
                                  .result_code = static_cast<absl::StatusCode>(select->Int(5)),
                                  .result_message = select->Text(6),
                                  .state = static_cast<threadfleet::fleet::v1::AuditState>(select->Int(7))});
  }
}

// ---------------------------------------------------------------------------
// Retention
//
// Both tables grow at the tail (ids rise with time), so the rows to prune are
// always the oldest: each call deletes one bounded batch from the head, in
// its own short transaction, and the caller paces the batches.

namespace {

// Rows older than this (microseconds since the epoch) may go; INT64_MIN
// keeps every row.
int64_t AgeCutoff(const RetentionRule& rule, absl::Time now) {
  if (rule.max_age == absl::InfiniteDuration()) return std::numeric_limits<int64_t>::min();
  return ToMicros(now - rule.max_age);
}

}  // namespace

absl::StatusOr<int64_t> SqliteStore::PruneEvents(const RetentionRule& rule, absl::Time now) {
  if (absl::Status s = CheckLimit(rule.batch); !s.ok()) return s;
  absl::MutexLock lock(&mu_);
  // The cut is the larger of: the id of the newest row older than the age
  // cutoff (found through the time index), and max(id) - max_rows. Both
  // subqueries run once; the delete walks ids from the oldest, so a pass
  // costs its batch, not the table.
  absl::StatusOr<Statement> prune = Prepare(
      "DELETE FROM events WHERE id IN (SELECT id FROM events WHERE id <= max("
      " coalesce((SELECT id FROM events WHERE time_us < ?1 ORDER BY time_us DESC LIMIT 1), 0),"
      " CASE WHEN ?2 > 0 THEN coalesce((SELECT max(id) FROM events), 0) - ?2 ELSE 0 END)"
      " ORDER BY id LIMIT ?3)");
  if (!prune.ok()) return prune.status();
  prune->Bind(1, AgeCutoff(rule, now)).Bind(2, rule.max_rows).Bind(3, int64_t{rule.batch});
  if (absl::Status s = prune->Run("prune events"); !s.ok()) return s;
  return int64_t{sqlite3_changes(db_)};
}

absl::StatusOr<int64_t> SqliteStore::PruneAudit(const RetentionRule& rule, absl::Time now) {
  if (absl::Status s = CheckLimit(rule.batch); !s.ok()) return s;
  absl::MutexLock lock(&mu_);
  // As PruneEvents; a STARTED entry is a call still running, kept.
  absl::StatusOr<Statement> prune = Prepare(
      "DELETE FROM audit_log WHERE id IN (SELECT id FROM audit_log WHERE state != ?4 AND id <= max("
      " coalesce((SELECT id FROM audit_log WHERE time_us < ?1 ORDER BY time_us DESC LIMIT 1), 0),"
      " CASE WHEN ?2 > 0 THEN coalesce((SELECT max(id) FROM audit_log), 0) - ?2 ELSE 0 END)"
      " ORDER BY id LIMIT ?3)");
  if (!prune.ok()) return prune.status();
  prune->Bind(1, AgeCutoff(rule, now))
      .Bind(2, rule.max_rows)
      .Bind(3, int64_t{rule.batch})
      .Bind(4, int64_t{threadfleet::fleet::v1::AUDIT_STATE_STARTED});
  if (absl::Status s = prune->Run("prune audit log"); !s.ok()) return s;
  return int64_t{sqlite3_changes(db_)};
}

// ---------------------------------------------------------------------------
// Tokens

absl::StatusOr<int64_t> SqliteStore::AddToken(const TokenRecord& token) {
  if (!IsSha256Hex(token.sha256_hex)) {
    return absl::InvalidArgumentError("token hash must be 64 lowercase hex digits");
  }
  if (token.role == threadfleet::fleet::v1::ROLE_UNSPECIFIED) {
    return absl::InvalidArgumentError(absl::StrCat("token ", token.name, ": role is unspecified"));
  }
  absl::MutexLock lock(&mu_);
  absl::StatusOr<Statement> insert = Prepare(
      "INSERT INTO tokens (name, sha256, role, created_by, create_time_us, revoke_time_us)"
      " VALUES (?, ?, ?, ?, ?, ?)");
  if (!insert.ok()) return insert.status();
  insert->Bind(1, token.name)
      .Bind(2, token.sha256_hex)
      .Bind(3, int64_t{token.role})
      .Bind(4, token.created_by)
      .Bind(5, ToMicros(token.create_time));
  if (token.revoke_time.has_value()) {
    insert->Bind(6, ToMicros(*token.revoke_time));
  } else {
    insert->BindNull(6);
  }
  absl::Status s = insert->Run(absl::StrCat("add token ", token.name));
  if (absl::IsFailedPrecondition(s) && sqlite3_extended_errcode(db_) == SQLITE_CONSTRAINT_UNIQUE) {
    return absl::AlreadyExistsError(
        absl::StrCat("a token with this hash exists already (adding ", token.name, ")"));
  }
  if (!s.ok()) return s;
  return sqlite3_last_insert_rowid(db_);
}

namespace {
TokenRecord ReadToken(const auto& select) {
  TokenRecord token{.id = select.Int(0),
                    .name = select.Text(1),
                    .sha256_hex = select.Text(2),
                    .role = static_cast<Role>(select.Int(3)),
                    .created_by = select.Text(4),
                    .create_time = FromMicros(select.Int(5))};
  if (!select.IsNull(6)) token.revoke_time = FromMicros(select.Int(6));
  return token;
}
}  // namespace

absl::StatusOr<TokenRecord> SqliteStore::FindTokenByHash(absl::string_view sha256_hex) {
  absl::MutexLock lock(&mu_);
  absl::StatusOr<Statement> select = Prepare(
      "SELECT id, name, sha256, role, created_by, create_time_us, revoke_time_us FROM tokens WHERE sha256 = "
      "?");
  if (!select.ok()) return select.status();
  select->Bind(1, sha256_hex);
  absl::StatusOr<bool> row = select->Step("look up token");
  if (!row.ok()) return row.status();
  if (!*row) return absl::NotFoundError("no token with this hash");
  return ReadToken(*select);
}

absl::StatusOr<TokenRecord> SqliteStore::GetTokenLocked(int64_t id) {
  absl::StatusOr<Statement> select = Prepare(
      "SELECT id, name, sha256, role, created_by, create_time_us, revoke_time_us FROM tokens WHERE id = ?");
  if (!select.ok()) return select.status();
  select->Bind(1, id);
  absl::StatusOr<bool> row = select->Step(absl::StrCat("read token ", id));
  if (!row.ok()) return row.status();
  if (!*row) return absl::NotFoundError(absl::StrCat("no token with id ", id));
  return ReadToken(*select);
}

absl::StatusOr<std::vector<TokenRecord>> SqliteStore::ListTokens() {
  absl::MutexLock lock(&mu_);
  absl::StatusOr<Statement> select = Prepare(
      "SELECT id, name, sha256, role, created_by, create_time_us, revoke_time_us FROM tokens ORDER BY id");
  if (!select.ok()) return select.status();
  std::vector<TokenRecord> tokens;
  for (;;) {
    absl::StatusOr<bool> row = select->Step("list tokens");
    if (!row.ok()) return row.status();
    if (!*row) return tokens;
    tokens.push_back(ReadToken(*select));
  }
}

absl::StatusOr<TokenRecord> SqliteStore::RevokeToken(int64_t id, absl::Time now) {
  absl::MutexLock lock(&mu_);
  absl::StatusOr<Statement> update =
      Prepare("UPDATE tokens SET revoke_time_us = ? WHERE id = ? AND revoke_time_us IS NULL");
  if (!update.ok()) return update.status();
  update->Bind(1, ToMicros(now)).Bind(2, id);
  if (absl::Status s = update->Run(absl::StrCat("revoke token ", id)); !s.ok()) return s;
  return GetTokenLocked(id);
}

}  // namespace threadfleet::fleetd
