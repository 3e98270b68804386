#!/usr/bin/env bash
# Runs MicroPython 1.25's own test suite (tests/run-tests.py -d basics
# micropython extmod float misc stress thread io) against a
# MicroPython-compatible binary.
#
#   run-thread-suite.sh MICROPYTHON_BINARY OUTDIR
#
# The binary is called the way run-tests.py calls the unix port:
#   BINARY -X emit=bytecode [-X heapsize=N] /abs/path/test.py   (normal tests)
#   BINARY thread/thread_exc2.py, BINARY /abs/feature_check/x.py (special tests)
#   BINARY (no arguments, stdin/stdout on a pty)                  (REPL feature checks)
#
# run-tests.py and the test files are copied to OUTDIR/tests so neither it nor
# the binary under test (which runs with cwd = the test's directory) can write
# into the cached source tree; results (.exp/.out of failures, _results.json,
# run.log, passed.txt/skipped.txt/failed.txt) go to OUTDIR.
#
# Prints run-tests' summary and then
#   thread-suite: passed=N skipped=M failed=K
# Tests listed in skip.txt are left out: those marked `both` always, those
# marked `board` when THREAD_SUITE_SIDE=board (compare.sh's run of fleetboard).
# Exits 0 iff the run completed (whatever the number of failures; the caller
# judges them), non-zero if it could not run (bad binary, platform detection
# failed, run-tests crashed).
#
# Env: MICROPYTHON_DIR (source tree; default: cmake/fetch-micropython.sh),
#      THREAD_SUITE_JOBS (parallel tests, default 2), THREAD_SUITE_ARGS (extra
#      run-tests.py arguments, e.g. "--heapsize 256k" or "-e stress_"),
#      THREAD_SUITE_DIRS (test directories, default the eight above),
#      THREAD_SUITE_TESTS (run these test files, e.g.
#      "thread/stress_recurse.py", instead of the directories; a file may be
#      repeated to run it several times), THREAD_SUITE_SIDE (stock|board,
#      default stock: which skip.txt entries to leave out).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
readonly HERE REPO
readonly CPYTHON=/usr/bin/python3

log() { echo "thread-suite: $*" >&2; }

[[ $# -eq 2 ]] || { echo "usage: $0 MICROPYTHON_BINARY OUTDIR" >&2; exit 2; }
[[ -x "$1" && -f "$1" ]] || { log "not an executable: $1"; exit 2; }
BINARY="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
mkdir -p "$2"
OUT="$(cd "$2" && pwd)"
readonly BINARY OUT

SRC="${MICROPYTHON_DIR:-}"
if [[ -z "$SRC" ]]; then
  SRC="$("$REPO/cmake/fetch-micropython.sh")"
fi
[[ -f "$SRC/tests/run-tests.py" && -d "$SRC/tests/thread" ]] ||
  { log "no tests/run-tests.py in $SRC"; exit 1; }

# Private copy of tests/ (8.6 MB). run-tests.py resolves feature_check/ next to
# itself and puts ../extmod on MICROPYPATH: link that one read-only-in-practice
# directory back to the source tree.
rm -rf "$OUT/tests" "$OUT/results" "$OUT/extmod"
cp -a "$SRC/tests" "$OUT/tests"
ln -s "$SRC/extmod" "$OUT/extmod"
mkdir -p "$OUT/results"

# CPython used by run-tests for the expected output of tests without a .exp
# file must be /usr/bin/python3, whatever `python3` is on PATH.
export MICROPY_CPYTHON3="$CPYTHON"
export MICROPY_MICROPYTHON="$BINARY"
export PYTHONDONTWRITEBYTECODE=1
# extmod/select_poll_fd.py polls 6000 fds and expects EINVAL past OPEN_MAX,
# which holds at MicroPython CI's limit (`ulimit -n 1024`), not above it.
ulimit -n 1024
# run-tests skips thread/stress_schedule.py when it believes it runs on GitHub
# Actions; keep the test set the same everywhere.
unset GITHUB_ACTIONS

jobs="${THREAD_SUITE_JOBS:-2}"
# skip.txt -> "-e REGEX" per test to leave out (run-tests matches by re.search).
excludes=()
side="${THREAD_SUITE_SIDE:-stock}"
while read -r test where _; do
  [[ -z "$test" || "$test" == \#* ]] && continue
  if [[ "$where" == both || ("$where" == board && "$side" == board) ]]; then
    excludes+=(-e "^${test//./\\.}\$")
  fi
done <"$HERE/skip.txt"
if [[ -n "${THREAD_SUITE_TESTS:-}" ]]; then
  read -r -a selection <<<"$THREAD_SUITE_TESTS"
else
  read -r -a dirs <<<"${THREAD_SUITE_DIRS:-basics micropython extmod float misc stress thread io}"
  selection=(-d "${dirs[@]}")
fi
read -r -a extra_args <<<"${THREAD_SUITE_ARGS:-}"
set +e
(cd "$OUT/tests" &&
  "$CPYTHON" -B "$HERE/run-tests-whole-lines.py" run-tests.py -j "$jobs" \
    --result-dir "$OUT/results" "${excludes[@]}" "${extra_args[@]}" "${selection[@]}") 2>&1 | tee "$OUT/run.log"
rc=${PIPESTATUS[0]}
set -e

# Completed runs always print "N tests performed" and write _results.json;
# rc is 1 when some tests failed, anything else (or no summary) is a crash.
if ! grep -qE '^[0-9]+ tests performed' "$OUT/run.log" ||
  [[ ! -f "$OUT/results/_results.json" ]] || [[ $rc -ne 0 && $rc -ne 1 ]]; then
  log "run-tests.py did not complete (exit $rc); see $OUT/run.log"
  echo "thread-suite: incomplete"
  exit 1
fi

awk '$1 == "pass" {print $2}' "$OUT/run.log" | sort >"$OUT/passed.txt"
awk '$1 == "skip" {print $2}' "$OUT/run.log" | sort >"$OUT/skipped.txt"
awk '$1 == "FAIL" {print $2}' "$OUT/run.log" | sort >"$OUT/failed.txt"
passed=$(wc -l <"$OUT/passed.txt")
skipped=$(wc -l <"$OUT/skipped.txt")
failed=$(wc -l <"$OUT/failed.txt")

if [[ $failed -gt 0 ]]; then
  echo "--- failures (expected vs. actual output in $OUT/results) ---"
  while read -r t; do
    b="${t//\//_}"
    if [[ -f "$OUT/results/$b.exp" ]]; then
      diff -u "$OUT/results/$b.exp" "$OUT/results/$b.out" | head -n 30 || true
    else
      head -n 30 "$OUT/results/$b.out" || true
    fi
  done <"$OUT/failed.txt"
fi
echo "thread-suite: passed=$passed skipped=$skipped failed=$failed"
