// fleetd's persistent state, as an interface.
//
// Store is what fleetd must remember across restarts: the inventory's boards,
// scripts pushed (content-addressed by SHA-256), programs started, job
// definitions, runs with their per-board results, events, the audit log and
// bearer tokens (only their hashes). SqliteStore (sqlite_store.h) implements
// it now; a PostgreSQL implementation can follow for sharded fleetd without
// touching the callers.
//
// Example:
//
//   absl::StatusOr<std::unique_ptr<SqliteStore>> store =
//       SqliteStore::Open("/var/lib/fleetd/fleet.db");
//   if (!store.ok()) return store.status();
//   absl::StatusOr<std::string> sha = (*store)->PutScript("print('hi')\n");
//   absl::StatusOr<std::vector<BoardRecord>> boards = (*store)->ListBoards();
//
// Every record here is a plain value (every member has a default, so a
// designated initializer may leave any out); the Store never hands out
// references to its internals. Implementations are thread-safe: any method may be called
// from any thread at any time.
//
// Error codes common to every method (beyond the ones each method states):
// - UNAVAILABLE: the backing database is busy or locked by another process
//   for longer than the implementation's timeout; retrying may succeed.
// - DATA_LOSS: the backing database is corrupt.
// - INTERNAL: any other failure of the backing database.

#ifndef THREADFLEET_SERVER_FLEETD_STORE_STORE_H_
#define THREADFLEET_SERVER_FLEETD_STORE_STORE_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "threadfleet/board/v1/board.pb.h"
#include "threadfleet/fleet/v1/fleet.pb.h"

namespace threadfleet::fleetd {

// Label key -> value, sorted by key.
using Labels = std::map<std::string, std::string, std::less<>>;

// One board of the inventory.
struct BoardRecord {
  std::string name = {};
  // "host:port" of the board's control channel.
  std::string address = {};
  Labels labels = {};
  threadfleet::fleet::v1::BoardOrigin origin = threadfleet::fleet::v1::BOARD_ORIGIN_RUNTIME;
  absl::Time add_time = absl::UnixEpoch();

  friend bool operator==(const BoardRecord&, const BoardRecord&) = default;
};

// A script fleetd has pushed, keyed by the SHA-256 of its content.
struct ScriptRecord {
  // 64 lowercase hex digits.
  std::string sha256_hex = {};
  std::string content = {};
  absl::Time create_time = absl::UnixEpoch();
};

// A program fleetd started on a board.
struct ProgramRecord {
  // Assigned by the store; 0 until then.
  int64_t id = 0;
  std::string board = {};
  // The board's own ids (valid for that board's uptime only).
  uint32_t board_program_id = 0;
  uint32_t main_thread_id = 0;
  std::string name = {};
  // Script path on the board, or "module.function" for StartThread.
  std::string path = {};
  // SHA-256 of the script when fleetd pushed it; empty if unknown. When set,
  // the script must be in the store.
  std::string script_sha256_hex = {};
  std::vector<std::string> args = {};
  // Token name of whoever started it.
  std::string started_by = {};
  absl::Time start_time = absl::UnixEpoch();
  threadfleet::board::v1::ProgramState state = threadfleet::board::v1::PROGRAM_STATE_RUNNING;
  // Set once the program has ended.
  std::optional<absl::Time> end_time = {};
  int32_t exit_code = 0;
};

// A file of one job version, as its spec names it; the content is a stored
// script (PutScript), so every version keeps exactly what was applied.
struct JobFileRecord {
  // Relative to the spec file, e.g. "app.py" or "lib/util.py".
  std::string path = {};
  std::string sha256_hex = {};
  int64_t size_bytes = 0;

  friend bool operator==(const JobFileRecord&, const JobFileRecord&) = default;
};

// A job definition (its YAML spec as applied, with its files).
struct JobRecord {
  std::string name = {};
  std::string spec_yaml = {};
  // 1 at creation, one more on each PutJob that changed the spec or a file.
  int64_t version = 0;
  absl::Time create_time = absl::UnixEpoch();
  absl::Time update_time = absl::UnixEpoch();
  // The files of `version`, sorted by path.
  std::vector<JobFileRecord> files = {};
  // The latest schedule fire time the scheduler handled (fired, or skipped);
  // nullopt until the first.
  std::optional<absl::Time> last_fire_time = {};
};

// One run of a job, without its per-board results.
struct RunRecord {
  int64_t id = 0;
  std::string job_name = {};
  int64_t job_version = 0;
  threadfleet::fleet::v1::RunState state = threadfleet::fleet::v1::RUN_STATE_QUEUED;
  // "schedule", "schedule (catch-up)" or "manual:<token name>".
  std::string trigger = {};
  std::string message = {};
  absl::Time start_time = absl::UnixEpoch();
  // Set once the run has ended.
  std::optional<absl::Time> end_time = {};
  // When the run stops waiting or running; nullopt for none.
  std::optional<absl::Time> deadline = {};
  threadfleet::fleet::v1::RunCounts counts = {};
};

// Which runs ListRuns returns: newest first, ids below before_id.
struct RunQuery {
  // Only this job's runs; every job's when empty.
  std::string job_name = {};
  // Only runs with a smaller id; 0: from the newest.
  int64_t before_id = 0;
  // At most this many. REQUIRES: limit > 0.
  int limit = 20;
};

// What jobs remember of a board across runs and restarts: its streak of
// runs that ended ERROR on it, and its quarantine.
struct BoardJobHealth {
  std::string board = {};
  // The runs in a row (oldest first) whose result on this board was ERROR;
  // empty after a PASSED or FAILED result.
  std::vector<int64_t> error_run_ids = {};
  // The message of the latest ERROR result of the streak.
  std::string last_error = {};
  // Set while the board is quarantined.
  std::optional<absl::Time> quarantine_since = {};
  std::string quarantine_reason = {};

  friend bool operator==(const BoardJobHealth&, const BoardJobHealth&) = default;
};

// One mutating or refused call, as the audit log keeps it.
struct AuditRecord {
  // Assigned by the store; 0 until then.
  int64_t id = 0;
  absl::Time time = absl::UnixEpoch();
  // Who: the token's name, or "local" for fleetd itself.
  std::string actor = {};
  // What: the call, e.g. "Fleet.KillThread".
  std::string action = {};
  // On what, e.g. "b01/7" or "job:smoke".
  std::string target = {};
  // The result: OK or the error the caller got (meaningful once DONE).
  absl::StatusCode result_code = absl::StatusCode::kOk;
  std::string result_message = {};
  // DONE for a refusal or an ended call; STARTED while a mutation runs;
  // OUTCOME_UNKNOWN when fleetd stopped before it ended.
  threadfleet::fleet::v1::AuditState state = threadfleet::fleet::v1::AUDIT_STATE_DONE;
};

// Which audit entries ListAudit returns: newest first, ids in
// (after_id, before_id).
struct AuditQuery {
  // Only entries with a larger id; 0: no lower bound.
  int64_t after_id = 0;
  // Only entries with a smaller id; 0: no upper bound.
  int64_t before_id = 0;
  // At most this many. REQUIRES: limit > 0.
  int limit = 100;
};

// What one retention pass may delete from a table (events or the audit log):
// rows older than max_age, and the oldest rows beyond the newest max_rows
// (by id). At most `batch` rows per call, so no call holds the write lock
// for long.
struct RetentionRule {
  absl::Duration max_age = absl::InfiniteDuration();
  int64_t max_rows = 0;  // 0: no row limit
  int batch = 1000;
};

// A bearer token; the secret itself is never stored.
struct TokenRecord {
  int64_t id = 0;
  std::string name = {};
  // SHA-256 of the secret, 64 lowercase hex digits.
  std::string sha256_hex = {};
  threadfleet::fleet::v1::Role role = threadfleet::fleet::v1::ROLE_UNSPECIFIED;
  std::string created_by = {};
  absl::Time create_time = absl::UnixEpoch();
  // Set once revoked.
  std::optional<absl::Time> revoke_time = {};
};

// Which events ListEvents returns.
struct EventQuery {
  // Only events with a larger id.
  int64_t after_id = 0;
  // Only events of these boards; empty means every event, fleet-wide ones
  // (board "") included.
  std::vector<std::string> boards = {};
  // Only events at least this severe.
  threadfleet::fleet::v1::Severity min_severity = threadfleet::fleet::v1::SEVERITY_UNSPECIFIED;
  // At most this many (oldest first). REQUIRES: limit > 0.
  int limit = 100;
};

// fleetd's persistent state. See the file comment for the error codes every
// method may return.
class Store {
 public:
  virtual ~Store() = default;

  // ---- Boards

  // Inserts a board or replaces the one with the same name (labels included).
  // INVALID_ARGUMENT if name or address is empty.
  [[nodiscard]] virtual absl::Status PutBoard(const BoardRecord& board) = 0;

  // NOT_FOUND if no board has that name.
  [[nodiscard]] virtual absl::StatusOr<BoardRecord> GetBoard(absl::string_view name) = 0;

  // Every board, sorted by name.
  [[nodiscard]] virtual absl::StatusOr<std::vector<BoardRecord>> ListBoards() = 0;

  // NOT_FOUND if no board has that name.
  [[nodiscard]] virtual absl::Status DeleteBoard(absl::string_view name) = 0;

  // In one transaction: makes `boards` (all of origin LAB_FILE) the store's
  // lab-file boards, replacing any board with the same name whatever its
  // origin, and deletes every other lab-file board. Runtime boards with other
  // names are kept. INVALID_ARGUMENT (and nothing changes) if a board is not
  // of origin LAB_FILE, has an empty name or address, or two share a name.
  [[nodiscard]] virtual absl::Status ReplaceLabFileBoards(const std::vector<BoardRecord>& boards) = 0;

  // ---- Scripts

  // Stores a script and returns the SHA-256 of its content (64 lowercase hex
  // digits). Storing the same content again is a no-op returning the same
  // hash.
  [[nodiscard]] virtual absl::StatusOr<std::string> PutScript(absl::string_view content) = 0;

  // NOT_FOUND if no script has that hash.
  [[nodiscard]] virtual absl::StatusOr<ScriptRecord> GetScript(absl::string_view sha256_hex) = 0;

  // ---- Programs

  // Records a program start and returns its id (program.id is ignored).
  // INVALID_ARGUMENT if board is empty; FAILED_PRECONDITION if
  // script_sha256_hex is set but that script is not stored.
  [[nodiscard]] virtual absl::StatusOr<int64_t> AddProgram(const ProgramRecord& program) = 0;

  // Records a program's end. NOT_FOUND if the id is unknown.
  [[nodiscard]] virtual absl::Status FinishProgram(int64_t id, threadfleet::board::v1::ProgramState state,
                                                   int32_t exit_code, absl::Time end_time) = 0;

  // The latest `limit` programs of a board (all boards for ""), newest
  // first. REQUIRES: limit > 0.
  [[nodiscard]] virtual absl::StatusOr<std::vector<ProgramRecord>> ListPrograms(absl::string_view board,
                                                                                int limit) = 0;

  // ---- Jobs and runs

  // Creates a job or replaces its spec and files. Returns the stored record:
  // version 1 when created, one more when the spec or a file changed,
  // unchanged when both are the same. A deleted job applied again continues
  // its version count (its old runs keep naming the versions they ran).
  // INVALID_ARGUMENT if name or spec is empty or two files share a path;
  // FAILED_PRECONDITION if a file's script is not stored (PutScript first).
  [[nodiscard]] virtual absl::StatusOr<JobRecord> PutJob(absl::string_view name, absl::string_view spec_yaml,
                                                         const std::vector<JobFileRecord>& files,
                                                         absl::Time now) = 0;

  // NOT_FOUND if no job has that name (deleted jobs included).
  [[nodiscard]] virtual absl::StatusOr<JobRecord> GetJob(absl::string_view name) = 0;

  // Every job, sorted by name (deleted ones left out).
  [[nodiscard]] virtual absl::StatusOr<std::vector<JobRecord>> ListJobs() = 0;

  // Removes a job from GetJob/ListJobs and CreateRun; its runs, their
  // results and its files stay readable. NOT_FOUND if no job has that name.
  [[nodiscard]] virtual absl::Status DeleteJob(absl::string_view name, absl::Time now) = 0;

  // Records that the scheduler handled the job's fire time `fire_time`.
  // NOT_FOUND if no job has that name.
  [[nodiscard]] virtual absl::Status SetJobLastFire(absl::string_view name, absl::Time fire_time) = 0;

  // Creates a run of a job's current version, QUEUED, with `deadline`, and
  // returns it. NOT_FOUND if no job has that name.
  [[nodiscard]] virtual absl::StatusOr<RunRecord> CreateRun(absl::string_view job_name,
                                                            absl::string_view trigger, absl::Time now,
                                                            std::optional<absl::Time> deadline) = 0;

  // Sets a run's state, message and counts; a terminal state (PASSED,
  // FAILED, ERROR, CANCELLED) also sets its end time to `now`. NOT_FOUND if
  // the id is unknown.
  [[nodiscard]] virtual absl::Status UpdateRun(int64_t id, threadfleet::fleet::v1::RunState state,
                                               absl::string_view message,
                                               const threadfleet::fleet::v1::RunCounts& counts,
                                               absl::Time now) = 0;

  // NOT_FOUND if the id is unknown.
  [[nodiscard]] virtual absl::StatusOr<RunRecord> GetRun(int64_t id) = 0;

  // Runs matching the query, newest first.
  [[nodiscard]] virtual absl::StatusOr<std::vector<RunRecord>> ListRuns(const RunQuery& query) = 0;

  // Marks every QUEUED or RUNNING run ERROR with `message` and end time
  // `now`, and returns their ids, oldest first. For a fleetd starting up: no
  // run of an earlier process still runs.
  [[nodiscard]] virtual absl::StatusOr<std::vector<int64_t>> InterruptActiveRuns(absl::string_view message,
                                                                                 absl::Time now) = 0;

  // Deletes the job's ended runs (with their results) beyond its newest
  // `keep` runs, and returns how many. REQUIRES: keep > 0.
  [[nodiscard]] virtual absl::StatusOr<int64_t> PruneRuns(absl::string_view job_name, int keep) = 0;

  // Inserts or replaces the result of result.board() in a run (evidence
  // and output kept as given). NOT_FOUND if the run id is unknown;
  // INVALID_ARGUMENT if the board is empty.
  // As PutBoardResult for many boards of one run, in one transaction (a run
  // on many boards writes its progress in batches).
  [[nodiscard]] virtual absl::Status PutBoardResults(
      int64_t run_id, const std::vector<threadfleet::fleet::v1::BoardResult>& results) = 0;

  [[nodiscard]] virtual absl::Status PutBoardResult(int64_t run_id,
                                                    const threadfleet::fleet::v1::BoardResult& result) = 0;

  // A run's per-board results, sorted by board name (empty for an unknown
  // run).
  [[nodiscard]] virtual absl::StatusOr<std::vector<threadfleet::fleet::v1::BoardResult>> ListBoardResults(
      int64_t run_id) = 0;

  // ---- Board health for jobs (streaks and quarantine)

  // The board's record; one with only `board` set when none is stored.
  [[nodiscard]] virtual absl::StatusOr<BoardJobHealth> GetBoardJobHealth(absl::string_view board) = 0;

  // Inserts or replaces the board's record. INVALID_ARGUMENT if the board is
  // empty.
  [[nodiscard]] virtual absl::Status PutBoardJobHealth(const BoardJobHealth& health) = 0;

  // Every quarantined board's record, sorted by board name.
  [[nodiscard]] virtual absl::StatusOr<std::vector<BoardJobHealth>> ListQuarantinedBoards() = 0;

  // ---- Events

  // Stores an event and returns its id, larger than every earlier one
  // (event.id is ignored). The caller sets event.time.
  [[nodiscard]] virtual absl::StatusOr<int64_t> AppendEvent(const threadfleet::fleet::v1::Event& event) = 0;

  // Stored events matching the query, oldest first, with their ids.
  [[nodiscard]] virtual absl::StatusOr<std::vector<threadfleet::fleet::v1::Event>> ListEvents(
      const EventQuery& query) = 0;

  // ---- Audit log

  // Appends an entry and returns its id (record.id is ignored). An entry
  // with state STARTED is a mutation's intent: FinishAudit completes it.
  [[nodiscard]] virtual absl::StatusOr<int64_t> AppendAudit(const AuditRecord& record) = 0;

  // Completes a STARTED entry: its final target (a call may learn it while
  // running, e.g. a token's name), the code and message the client got, and
  // state DONE. NOT_FOUND if no entry with that id is STARTED.
  [[nodiscard]] virtual absl::Status FinishAudit(int64_t id, absl::string_view target, absl::StatusCode code,
                                                 absl::string_view message) = 0;

  // Marks every STARTED entry OUTCOME_UNKNOWN with `message`, and returns how
  // many. For a fleetd starting up: no call of an earlier process still runs.
  [[nodiscard]] virtual absl::StatusOr<int64_t> AbandonStartedAudits(absl::string_view message) = 0;

  // Entries matching the query, newest first.
  [[nodiscard]] virtual absl::StatusOr<std::vector<AuditRecord>> ListAudit(const AuditQuery& query) = 0;

  // ---- Retention

  // Deletes at most rule.batch of the oldest events that `rule` lets go
  // (older than now - max_age, or beyond the newest max_rows), and returns
  // how many it deleted: fewer than rule.batch when none are left.
  [[nodiscard]] virtual absl::StatusOr<int64_t> PruneEvents(const RetentionRule& rule, absl::Time now) = 0;

  // As PruneEvents, for the audit log; entries still STARTED are kept.
  [[nodiscard]] virtual absl::StatusOr<int64_t> PruneAudit(const RetentionRule& rule, absl::Time now) = 0;

  // ---- Tokens

  // Stores a token and returns its id (token.id is ignored). ALREADY_EXISTS
  // if a token with the same hash exists; INVALID_ARGUMENT if the hash is not
  // 64 hex digits or the role is unspecified.
  [[nodiscard]] virtual absl::StatusOr<int64_t> AddToken(const TokenRecord& token) = 0;

  // The token with that hash, revoked or not. NOT_FOUND if none.
  [[nodiscard]] virtual absl::StatusOr<TokenRecord> FindTokenByHash(absl::string_view sha256_hex) = 0;

  // Every token, by id.
  [[nodiscard]] virtual absl::StatusOr<std::vector<TokenRecord>> ListTokens() = 0;

  // Marks a token revoked at `now` and returns it; a revoked token keeps its
  // first revoke time. NOT_FOUND if the id is unknown.
  [[nodiscard]] virtual absl::StatusOr<TokenRecord> RevokeToken(int64_t id, absl::Time now) = 0;
};

}  // namespace threadfleet::fleetd

#endif  // THREADFLEET_SERVER_FLEETD_STORE_STORE_H_
