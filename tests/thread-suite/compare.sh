#!/usr/bin/env bash
# Runs MicroPython 1.25's test suite (run-thread-suite.sh: basics micropython
# extmod float misc stress thread io) against our binary and against stock
# MicroPython, and fails if ours does worse.
#
#   compare.sh OURS_BINARY STOCK_BINARY OUTDIR
#
# Prints both summaries and the tests that pass on stock but not on ours.
# Exits non-zero if a suite run did not complete, if ours passes fewer tests
# than stock, or if a test that passes on stock does not pass on ours.
# Tests that skip.txt marks `board` (they need the host's file system or a
# unix-only feature) run on stock only and are not held against ours.
#
# Flaky stock tests: a test that passed on stock and failed on ours is re-run
# THREAD_SUITE_RERUNS times (default 5) on both binaries. If stock also fails
# at least once in the re-runs, the test is flaky on stock itself and is
# reported but not held against ours (stock 1.25's unix port has such a test:
# thread/stress_recurse.py, see README.md). If stock passes every re-run, the
# test counts as failing on ours, whatever ours does in its re-runs.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
readonly HERE
readonly RUN="$HERE/run-thread-suite.sh"

[[ $# -eq 3 ]] || { echo "usage: $0 OURS_BINARY STOCK_BINARY OUTDIR" >&2; exit 2; }
readonly OURS="$1" STOCK="$2"
mkdir -p "$3"
OUT="$(cd "$3" && pwd)"
readonly OUT
readonly RERUNS="${THREAD_SUITE_RERUNS:-5}"

# run_suite NAME BINARY: full suite into OUT/NAME, log in OUT/NAME.log.
run_suite() {
  local name="$1" binary="$2" side="$3" rc=0
  THREAD_SUITE_SIDE="$side" "$RUN" "$binary" "$OUT/$name" >"$OUT/$name.log" 2>&1 || rc=$?
  echo "=== $name: $binary"
  # run-tests' summary (and our failure diffs) start at "N tests performed".
  sed -n '/^[0-9]* tests performed/,$p' "$OUT/$name.log"
  if [[ $rc -ne 0 ]]; then
    tail -n 30 "$OUT/$name.log"
    echo "compare: the $name suite run did not complete (see $OUT/$name.log)"
    exit 1
  fi
}

# rerun NAME BINARY TEST...: runs each TEST RERUNS times (one at a time: the
# copies share a directory) into OUT/rerun-NAME; OUT/rerun-NAME/passed.txt
# then lists a test once per passing run.
rerun() {
  local name="$1" binary="$2" tests=()
  shift 2
  for t in "$@"; do
    for ((i = 0; i < RERUNS; i++)); do tests+=("$t"); done
  done
  THREAD_SUITE_JOBS=1 THREAD_SUITE_TESTS="${tests[*]}" "$RUN" "$binary" "$OUT/rerun-$name" \
    >"$OUT/rerun-$name.log" 2>&1 ||
    { echo "compare: re-run on $name did not complete (see $OUT/rerun-$name.log)"; exit 1; }
}

run_suite stock "$STOCK" stock
run_suite ours "$OURS" board

# skip.txt's `board` tests, sorted: run on stock only.
awk '$2 == "board" {print $1}' "$HERE/skip.txt" | sort >"$OUT/board-skips.txt"
comm -12 "$OUT/stock/passed.txt" "$OUT/board-skips.txt" >"$OUT/stock/passed-board-skips.txt"
comm -23 "$OUT/stock/passed.txt" "$OUT/board-skips.txt" >"$OUT/stock/passed-comparable.txt"

stock_passed=$(wc -l <"$OUT/stock/passed-comparable.txt")
stock_board_skips=$(wc -l <"$OUT/stock/passed-board-skips.txt")
ours_passed=$(wc -l <"$OUT/ours/passed.txt")

# Tests that pass on stock but not on ours (failed, skipped, or missing).
mapfile -t missing < <(comm -23 "$OUT/stock/passed-comparable.txt" "$OUT/ours/passed.txt")

# Only those that failed on ours are re-run: a skip is no accident (the
# feature is missing), a failure may be a flaky test.
mapfile -t to_rerun < <(printf '%s\n' "${missing[@]}" | comm -12 - "$OUT/ours/failed.txt" | grep . || true)
regressions=()
flaky_stock=()
for t in "${missing[@]}"; do
  [[ -n "$t" ]] || continue
  if ! printf '%s\n' "${to_rerun[@]}" | grep -qxF "$t"; then
    regressions+=("$t (skipped or not run on ours)")
  fi
done
if [[ ${#to_rerun[@]} -gt 0 ]]; then
  rerun stock "$STOCK" "${to_rerun[@]}"
  rerun ours "$OURS" "${to_rerun[@]}"
  for t in "${to_rerun[@]}"; do
    s=$(grep -cxF "$t" "$OUT/rerun-stock/passed.txt" || true)
    o=$(grep -cxF "$t" "$OUT/rerun-ours/passed.txt" || true)
    if [[ $s -lt $RERUNS ]]; then
      flaky_stock+=("$t (re-runs passed: stock $s/$RERUNS, ours $o/$RERUNS)")
    else
      regressions+=("$t (re-runs passed: stock $s/$RERUNS, ours $o/$RERUNS)")
    fi
  done
fi

echo "=== comparison"
echo "stock: passed=$((stock_passed + stock_board_skips)) ($stock_board_skips of them skip.txt's board-only tests) skipped=$(wc -l <"$OUT/stock/skipped.txt") failed=$(wc -l <"$OUT/stock/failed.txt")"
echo "ours:  passed=$ours_passed skipped=$(wc -l <"$OUT/ours/skipped.txt") failed=$(wc -l <"$OUT/ours/failed.txt")"
echo "not held against ours (skip.txt, board only): $stock_board_skips passing on stock"
echo "pass on stock but not on ours: ${#missing[@]}"
for t in "${missing[@]}"; do [[ -n "$t" ]] && echo "  $t"; done
if [[ ${#flaky_stock[@]} -gt 0 ]]; then
  echo "flaky on stock too (not held against ours):"
  printf '  %s\n' "${flaky_stock[@]}"
fi
extra=$(comm -13 "$OUT/stock/passed.txt" "$OUT/ours/passed.txt" | sed 's/^/  /')
[[ -z "$extra" ]] || printf 'pass on ours but not on stock:\n%s\n' "$extra"

# Counts, with skip.txt's board-only tests and tests that are flaky on stock
# left out of the stock side.
stock_effective=$((stock_passed - ${#flaky_stock[@]}))
status=0
if [[ $ours_passed -lt $stock_effective ]]; then
  echo "compare: FAIL: ours passes $ours_passed tests, stock $stock_effective (not counting skip.txt's board-only tests or tests flaky on stock)"
  status=1
fi
if [[ ${#regressions[@]} -gt 0 ]]; then
  echo "compare: FAIL: tests passing on stock fail on ours:"
  printf '  %s\n' "${regressions[@]}"
  status=1
fi
[[ $status -ne 0 ]] || echo "compare: OK: ours passes every test stock passes"
exit $status
