#!/usr/bin/env bash
# `fleetboard run` failures a user meets, with their exit codes and messages.
#
# usage: run_errors.sh FLEETBOARD uncaught-exception|missing-script
set -uo pipefail

fleetboard=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failures=0

fail() {
  echo "FAIL $*" >&2
  failures=$((failures + 1))
}

# An uncaught exception: exit 1, the traceback on stderr naming file and line.
uncaught_exception() {
  cat >"$work/app.py" <<'PY'
print("before")
def fail():
    raise ValueError("bad value")
fail()
PY
  local rc=0
  (cd "$work" && "$fleetboard" run app.py >out 2>err) || rc=$?
  [[ $rc == 1 ]] || fail "exit status $rc, expected 1"
  [[ $(cat "$work/out") == before ]] || fail "stdout '$(cat "$work/out")', expected 'before'"
  local want
  for want in 'Traceback (most recent call last):' 'File "app.py", line 4' 'File "app.py", line 3, in fail' \
    'ValueError: bad value'; do
    grep -qF -- "$want" "$work/err" || fail "stderr lacks '$want':
$(cat "$work/err")"
  done
}

# A script that does not exist: exit 2 and a message naming it.
missing_script() {
  local rc=0
  (cd "$work" && "$fleetboard" run missing.py >out 2>err) || rc=$?
  [[ $rc == 2 ]] || fail "exit status $rc, expected 2"
  [[ ! -s $work/out ]] || fail "unexpected stdout: $(cat "$work/out")"
  grep -qF "missing.py" "$work/err" && grep -qiF "no such file" "$work/err" ||
    fail "stderr does not say missing.py does not exist: '$(cat "$work/err")'"
}

case ${2:-} in
  uncaught-exception) uncaught_exception ;;
  missing-script) missing_script ;;
  *)
    echo "usage: run_errors.sh FLEETBOARD uncaught-exception|missing-script" >&2
    exit 2
    ;;
esac
if ((failures > 0)); then
  exit 1
fi
echo "ok"
