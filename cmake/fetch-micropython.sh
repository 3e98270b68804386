#!/usr/bin/env bash
# Obtains the MicroPython 1.25.0 source tree and prints its directory.
#
# Order: $MICROPYTHON_SRC (tarball or unpacked tree) -> Debian trixie's
# `micropython` source package through a private apt config (the mirror is read
# from this machine's own apt sources) -> `git clone --branch v1.25.0`.
# The Debian tarball is checked against a pinned sha256; the result is cached in
# ${THREADFLEET_CACHE:-~/.cache/threadfleet} and reused.
set -euo pipefail

readonly VERSION=1.25.0
readonly TARBALL="micropython_${VERSION}+ds.orig.tar.xz"
readonly SHA256=7b25be99a502f070b2de81dafc08da7051d992325d6e67daa9045a918fffdbea
readonly CACHE="${THREADFLEET_CACHE:-$HOME/.cache/threadfleet}"
readonly SRC_DIR="$CACHE/micropython-$VERSION"

log() { echo "fetch-micropython: $*" >&2; }

unpack_tarball() {
  local tarball="$1"
  local sum
  sum=$(sha256sum "$tarball" | cut -d' ' -f1)
  if [[ "$sum" != "$SHA256" ]]; then
    log "sha256 mismatch for $tarball: got $sum, want $SHA256"
    exit 1
  fi
  local tmp="$CACHE/unpack.$$"
  rm -rf "$tmp" && mkdir -p "$tmp"
  tar -xJf "$tarball" -C "$tmp"
  rm -rf "$SRC_DIR"
  mv "$tmp"/micropython-* "$SRC_DIR"
  rm -rf "$tmp"
}

# The mirror URI of Debian's main archive as this machine's apt knows it.
debian_mirror() {
  local uri
  uri=$(grep -rhoE '^(URIs:|deb(-src)?)[[:space:]]+(\[[^]]*\][[:space:]]+)?[a-z]+://[^[:space:]]+/debian/?([[:space:]]|$)' \
    /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null |
    grep -oE '[a-z]+://[^[:space:]]+' | head -n1 || true)
  echo "${uri%/}"
}

fetch_from_debian() {
  local mirror
  mirror=$(debian_mirror)
  [[ -n "$mirror" ]] || return 1
  local apt="$CACHE/apt"
  mkdir -p "$apt"/{etc/sources.list.d,etc/preferences.d,etc/apt.conf.d,state/lists/partial,cache/archives/partial,download}
  echo "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror trixie main" \
    >"$apt/etc/sources.list"
  cat >"$apt/apt.conf" <<CONF
Dir::Etc "$apt/etc";
Dir::Etc::sourcelist "$apt/etc/sources.list";
Dir::Etc::sourceparts "$apt/etc/sources.list.d";
Dir::Etc::preferencesparts "$apt/etc/preferences.d";
Dir::State "$apt/state";
Dir::State::Lists "$apt/state/lists";
Dir::Cache "$apt/cache";
APT::Sandbox::User "root";
CONF
  log "downloading Debian source package micropython (trixie) from $mirror"
  APT_CONFIG="$apt/apt.conf" apt-get -qq update >&2 || return 1
  (cd "$apt/download" && APT_CONFIG="$apt/apt.conf" apt-get -qq source --download-only \
    "micropython=${VERSION}+ds-1" >&2 2>/dev/null ||
    APT_CONFIG="$apt/apt.conf" apt-get -qq source --download-only micropython >&2) || return 1
  [[ -f "$apt/download/$TARBALL" ]] || return 1
  unpack_tarball "$apt/download/$TARBALL"
}

fetch_from_git() {
  command -v git >/dev/null || return 1
  log "falling back to git clone of v$VERSION"
  local tmp="$CACHE/clone.$$"
  git clone -q --depth 1 --branch "v$VERSION" https://github.com/micropython/micropython "$tmp" >&2 || return 1
  rm -rf "$SRC_DIR" && mv "$tmp" "$SRC_DIR"
}

main() {
  mkdir -p "$CACHE"
  if [[ -f "$SRC_DIR/py/mpconfig.h" ]]; then
    echo "$SRC_DIR"
    return
  fi
  if [[ -n "${MICROPYTHON_SRC:-}" ]]; then
    if [[ -d "$MICROPYTHON_SRC" ]]; then
      echo "$(cd "$MICROPYTHON_SRC" && pwd)"
      return
    fi
    unpack_tarball "$MICROPYTHON_SRC"
  elif ! fetch_from_debian; then
    fetch_from_git || { log "could not obtain MicroPython $VERSION source (set MICROPYTHON_SRC)"; exit 1; }
  fi
  echo "$SRC_DIR"
}

main "$@"
