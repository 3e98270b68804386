// The inventory: which boards exist, where they listen and what labels they
// carry. Nothing here talks to a board (that is board_link.h) or decides what
// to run on one (jobs); it only answers "which boards?".
//
// Boards come from two places:
// - lab.yaml, read at each start: the file is the truth for its boards, so
//   they cannot be removed or relabelled at run time (edit the file);
// - AddBoard at run time, persisted in the store until RemoveBoard.
// A name in lab.yaml takes over a runtime board of the same name.
//
//   boards:
//     - name: b01
//       address: 127.0.0.1:7001
//       labels: {lab: a, role: sensor}
//
// Example:
//
//   absl::StatusOr<std::vector<BoardRecord>> lab = ReadLabFile("lab.yaml");
//   if (!lab.ok()) return lab.status();  // "lab.yaml:7: board b03: ..."
//   absl::StatusOr<std::unique_ptr<Inventory>> inventory =
//       Inventory::Open(store, *lab, absl::Now());
//   fleet::v1::Selector selector;
//   selector.set_labels("lab=a,role!=spare");
//   absl::StatusOr<std::vector<BoardRecord>> picked = (*inventory)->Select(selector);
//
// Label selectors ("lab=a,role!=spare") are an AND of terms `key=value` or
// `key!=value`; a board without the key matches `key!=value`. Whitespace
// around terms is ignored; an empty selector matches every board.

#ifndef THREADFLEET_SERVER_FLEETD_INVENTORY_INVENTORY_H_
#define THREADFLEET_SERVER_FLEETD_INVENTORY_INVENTORY_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/fleetd/store/store.h"
#include "threadfleet/fleet/v1/fleet.pb.h"

namespace threadfleet::fleetd {

// OK if `name` can name a board: 1 to 64 letters, digits, '.', '_' or '-',
// starting with a letter or digit. INVALID_ARGUMENT saying what is wrong
// otherwise.
[[nodiscard]] absl::Status ValidateBoardName(absl::string_view name);

// OK if `address` is "host:port": a host name, IPv4 address or [IPv6]
// address, and a port 1-65535. INVALID_ARGUMENT saying what is wrong
// otherwise.
[[nodiscard]] absl::Status ValidateAddress(absl::string_view address);

// OK if a label's key and value are each 1 to 63 letters, digits, '.', '_',
// '-' or '/' (so any label can be written in a selector). INVALID_ARGUMENT
// saying what is wrong otherwise.
[[nodiscard]] absl::Status ValidateLabel(absl::string_view key, absl::string_view value);

// A parsed label selector.
class LabelSelector {
 public:
  // Parses "key=value,key!=value,...". INVALID_ARGUMENT, quoting the selector
  // and naming the term (1-based), for an empty term (",," or a trailing
  // comma), a term without "=" or "!=", an empty key or value, or a key or
  // value with characters ValidateLabel rejects.
  [[nodiscard]] static absl::StatusOr<LabelSelector> Parse(absl::string_view text);

  // True when every term holds for `labels` (always, for an empty selector).
  [[nodiscard]] bool Matches(const Labels& labels) const;

  [[nodiscard]] bool empty() const { return terms_.empty(); }

 private:
  struct Term {
    std::string key;
    std::string value;
    // true: key=value; false: key!=value.
    bool equal;
  };

  std::vector<Term> terms_;
};

// Parses lab.yaml's text (`file_name` only labels the messages). Returns its
// boards, of origin LAB_FILE, in file order. INVALID_ARGUMENT, as
// "<file_name>:<line>: board <name>: <what>", for YAML syntax errors, a top
// level that is not a map with only `boards`, entries that are not maps or
// have unknown keys, a missing or invalid name or address, invalid labels,
// and names defined twice.
[[nodiscard]] absl::StatusOr<std::vector<BoardRecord>> ParseLabFile(absl::string_view text,
                                                                    absl::string_view file_name);

// Reads and parses the lab file at `path`. Errors reading it as
// common::ReadTextFile (NOT_FOUND if it does not exist, PERMISSION_DENIED,
// FAILED_PRECONDITION for a directory, INTERNAL); then as ParseLabFile.
[[nodiscard]] absl::StatusOr<std::vector<BoardRecord>> ReadLabFile(const std::string& path);

// The boards fleetd knows, kept in a Store. Thread-safe: changes serialize on
// a mutex, reads go to the store. Store errors (UNAVAILABLE, DATA_LOSS,
// INTERNAL) pass through unchanged from every method.
class Inventory {
 public:
  // Makes `lab_boards` (from ParseLabFile) the store's lab-file boards and
  // opens the inventory over it. A lab board already stored keeps its
  // add_time; new ones get `now`. REQUIRES: `store` outlives the inventory.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<Inventory>> Open(Store& store,
                                                                       std::vector<BoardRecord> lab_boards,
                                                                       absl::Time now);

  // The boards a selector picks, sorted by name: every board for an empty
  // selector; with labels, those matching; with board names, those named;
  // with both, those named and matching. INVALID_ARGUMENT for a malformed
  // label selector; NOT_FOUND naming every unknown board name.
  [[nodiscard]] absl::StatusOr<std::vector<BoardRecord>> Select(
      const threadfleet::fleet::v1::Selector& selector);

  // One board. NOT_FOUND if no board has that name.
  [[nodiscard]] absl::StatusOr<BoardRecord> Get(absl::string_view name);

  // Adds a runtime board and returns it. INVALID_ARGUMENT for a bad name,
  // address or label; ALREADY_EXISTS if the name is taken.
  [[nodiscard]] absl::StatusOr<BoardRecord> Add(absl::string_view name, absl::string_view address,
                                                Labels labels, absl::Time now);

  // Removes a runtime board. NOT_FOUND if unknown; FAILED_PRECONDITION for a
  // lab-file board.
  [[nodiscard]] absl::Status Remove(absl::string_view name);

  // Sets the labels in `set` and removes the keys in `remove` (missing keys
  // are fine) on a runtime board, and returns it. NOT_FOUND if unknown;
  // INVALID_ARGUMENT for a bad label (nothing changes); FAILED_PRECONDITION
  // for a lab-file board.
  [[nodiscard]] absl::StatusOr<BoardRecord> SetLabels(absl::string_view name, const Labels& set,
                                                      const std::vector<std::string>& remove);

 private:
  explicit Inventory(Store& store) : store_(store) {}

  // The board, if it may be changed at run time.
  absl::StatusOr<BoardRecord> GetMutable(absl::string_view name) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  Store& store_;
  // Serializes read-modify-write sequences on the store.
  absl::Mutex mu_;
};

}  // namespace threadfleet::fleetd

#endif  // THREADFLEET_SERVER_FLEETD_INVENTORY_INVENTORY_H_
