#!/usr/bin/env bash
# The seed programs the product grew from run on a board unmodified: exactly
# the lines they print, in order per thread, exit status 0, and as long as
# their sleeps take (these are behavioural bounds, not performance ones).
#
# usage: seed_scripts.sh FLEETBOARD SEED_DIR
set -uo pipefail

fleetboard=$1
seeds=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failures=0

fail() {
  echo "FAIL $*" >&2
  failures=$((failures + 1))
}

# Runs SEED_DIR/NAME.py, leaving NAME.out, NAME.err, NAME.rc and NAME.secs.
run_timed() {
  local name=$1 start end rc=0
  start=$(date +%s.%N)
  "$fleetboard" run "$seeds/$name.py" >"$work/$name.out" 2>"$work/$name.err" || rc=$?
  end=$(date +%s.%N)
  echo "$rc" >"$work/$name.rc"
  awk -v s="$start" -v e="$end" 'BEGIN { printf "%.3f\n", e - s }' >"$work/$name.secs"
}

# Exit status 0, nothing on stderr, elapsed time in [expected-0.5, expected+3].
check_run() {
  local name=$1 expected=$2 secs
  secs=$(cat "$work/$name.secs")
  echo "$name: exit $(cat "$work/$name.rc"), ${secs}s (expected ~${expected}s)"
  [[ $(cat "$work/$name.rc") == 0 ]] || fail "$name: exit status $(cat "$work/$name.rc"), expected 0"
  [[ ! -s $work/$name.err ]] || fail "$name: unexpected stderr: $(cat "$work/$name.err")"
  awk -v t="$secs" -v x="$expected" 'BEGIN { exit !(t >= x - 0.5 && t <= x + 3) }' ||
    fail "$name: took ${secs}s, expected ${expected}s (-0.5/+3)"
}

# The lines of NAME.out starting with PREFIX are exactly "PREFIX N" for N in 0..COUNT-1, in order.
check_sequence() {
  local name=$1 prefix=$2 count=$3 actual expected
  actual=$(awk -v p="$prefix" 'index($0, p) == 1' "$work/$name.out")
  expected=$(for ((i = 0; i < count; i++)); do printf '%s %d\n' "$prefix" "$i"; done)
  [[ $actual == "$expected" ]] || fail "$name: lines for '$prefix' are:
$actual
expected:
$expected"
}

check_line_count() {
  local name=$1 count=$2 actual
  actual=$(wc -l <"$work/$name.out")
  [[ $actual == "$count" ]] || fail "$name: $actual output lines, expected $count:
$(cat "$work/$name.out")"
}

# The three run at once: they mostly sleep, and their timings are checked separately.
run_timed thread_basic &
run_timed thread_exceptions &
run_timed thread_lock &
wait

check_run thread_basic 8
check_line_count thread_basic 8
check_sequence thread_basic "Main thread is running: " 3
check_sequence thread_basic "Thread is running: " 5

check_run thread_exceptions 5
check_line_count thread_exceptions 5
check_sequence thread_exceptions "Thread is running: " 5

# thread_lock: both threads bump one counter under the lock; over the whole
# output the values are 1..8, each once, in increasing order.
check_run thread_lock 8
check_line_count thread_lock 8
if grep -v -E '^(Main thread|Thread): Shared variable is  [0-9]+$' "$work/thread_lock.out"; then
  fail "thread_lock: unexpected lines (above)"
fi
values=$(sed -E 's/.* ([0-9]+)$/\1/' "$work/thread_lock.out" | tr '\n' ' ')
[[ $values == "1 2 3 4 5 6 7 8 " ]] || fail "thread_lock: counter values '$values', expected '1 2 3 4 5 6 7 8 '"
main_lines=$(grep -c '^Main thread: ' "$work/thread_lock.out")
thread_lines=$(grep -c '^Thread: ' "$work/thread_lock.out")
[[ $main_lines == 3 && $thread_lines == 5 ]] ||
  fail "thread_lock: $main_lines main-thread and $thread_lines thread lines, expected 3 and 5"

if ((failures > 0)); then
  echo "$failures check(s) failed" >&2
  exit 1
fi
echo "all seed scripts ran unmodified"
