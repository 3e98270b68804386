#!/usr/bin/env bash
# Builds the stock MicroPython 1.25 unix port (standard variant) as the
# baseline that benchmarks and the thread-suite comparison run against.
#
#   build.sh OUTDIR     -> OUTDIR/micropython (path printed as the last stdout line)
#
# STOCK_MICROPYTHON_OPT (default -Os, the unix port's own) is the C
# optimisation level: cmake passes fleetvm's (-O2 for the default preset, -O3
# for release) so that a benchmark compares the ports, not the compilers.
#
# The fetched source tree (cmake/fetch-micropython.sh, or $MICROPYTHON_DIR) is
# never modified: it is copied to OUTDIR/src and built there. Idempotent: does
# nothing if OUTDIR/micropython was built from this script, manifest and source.
# Build output goes to stderr and OUTDIR/build.log.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
SCRIPT="$HERE/$(basename "${BASH_SOURCE[0]}")"
readonly HERE REPO SCRIPT
readonly MANIFEST_SRC="$HERE/manifest.py"

log() { echo "stock-micropython: $*" >&2; }

[[ $# -eq 1 ]] || { echo "usage: $0 OUTDIR" >&2; exit 2; }
mkdir -p "$1"
OUT="$(cd "$1" && pwd)"
readonly OUT
readonly BIN="$OUT/micropython"

SRC="${MICROPYTHON_DIR:-}"
if [[ -z "$SRC" ]]; then
  SRC="$("$REPO/cmake/fetch-micropython.sh")"
fi
[[ -f "$SRC/py/mpconfig.h" && -f "$SRC/ports/unix/Makefile" ]] ||
  { log "not a MicroPython source tree: $SRC"; exit 1; }

# OUTDIR may be shared by several build trees (cmake/StockMicroPython.cmake
# puts it in the build cache): one builds while the others wait, then find
# it built. The stamp records what the binary was built from.
exec 9>"$OUT/.lock"
flock 9
readonly OPT="${STOCK_MICROPYTHON_OPT:--Os}"
[[ "$OPT" =~ ^-O[0-3sg]$ ]] || { log "STOCK_MICROPYTHON_OPT must be -O0..-O3, -Os or -Og, not '$OPT'"; exit 2; }
readonly STAMP="$OUT/stamp"
want="$(cat "$SCRIPT" "$MANIFEST_SRC" | sha256sum | cut -d' ' -f1) $SRC $OPT"
if [[ -x "$BIN" && -f "$STAMP" && "$(cat "$STAMP")" == "$want" ]]; then
  log "up to date: $BIN"
  echo "$BIN"
  exit 0
fi

# Fresh private copy every time we build: make does not track flag changes,
# and a half-copied tree from an interrupted run must not be reused.
log "copying $SRC -> $OUT/src"
rm -rf "$OUT/src" "$OUT/src.tmp"
cp -a "$SRC" "$OUT/src.tmp"
mv "$OUT/src.tmp" "$OUT/src"

# Manifest (only asyncio) and an empty micropython-lib stand-in (make only
# checks that MPY_LIB_DIR/README.md exists), both inside OUTDIR.
cp "$MANIFEST_SRC" "$OUT/manifest.py"
mkdir -p "$OUT/mpy-lib"
: >"$OUT/mpy-lib/README.md"

# The copy has no .git of its own; without this, makeversionhdr.py would run
# `git describe` and pick up whatever repository OUTDIR lives in.
export MICROPY_GIT_TAG=v1.25.0
export GIT_CEILING_DIRECTORIES="$OUT"
JOBS="${STOCK_MICROPYTHON_JOBS:-2}"
# MicroPython's code generators run under Debian's python3, not whatever
# `python3` is first on PATH (e.g. a pyenv shim).
readonly PY=/usr/bin/python3

start=$(date +%s)
{
  make -C "$OUT/src/mpy-cross" -j"$JOBS" PYTHON="$PY"
  make -C "$OUT/src/ports/unix" -j"$JOBS" PYTHON="$PY" \
    VARIANT=standard \
    COPT="$OPT -DNDEBUG -fdata-sections -ffunction-sections" \
    MICROPY_PY_FFI=0 MICROPY_PY_BTREE=0 MICROPY_PY_SSL=0 MICROPY_SSL_MBEDTLS=0 \
    FROZEN_MANIFEST="$OUT/manifest.py" \
    MPY_LIB_DIR="$OUT/mpy-lib"
} >"$OUT/build.log" 2>&1 || {
  tail -n 40 "$OUT/build.log" >&2
  log "build failed (full log: $OUT/build.log)"
  exit 1
}
log "built with $OPT in $(( $(date +%s) - start )) s (log: $OUT/build.log)"

built="$OUT/src/ports/unix/build-standard/micropython"
[[ -x "$built" ]] || { log "no binary at $built"; exit 1; }
cp "$built" "$BIN.tmp"
mv "$BIN.tmp" "$BIN"
echo "$want" >"$STAMP"
"$BIN" -c 'import sys; print("stock-micropython:", sys.version, sys.implementation._machine)' >&2
echo "$BIN"
