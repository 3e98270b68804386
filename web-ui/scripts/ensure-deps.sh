#!/bin/sh
# Installs web-ui/'s npm packages (npm ci, exactly package-lock.json) when
# node_modules is missing or was installed from another package-lock.json
# (a stamp holds the SHA-256 of the one installed). Cheap when up to date:
# deploy/bootstrap and the CMake target web-ui both call it.
set -eu
cd "$(dirname "$0")/.."
stamp=node_modules/.threadfleet-lock.sha256
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ -d node_modules ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
  exit 0
fi
command -v npm >/dev/null || { echo "web-ui: npm not found; run deploy/bootstrap" >&2; exit 1; }
echo "web-ui: npm ci (package-lock.json changed or node_modules missing)" >&2
npm ci --no-audit --no-fund --loglevel=error >&2
echo "$want" >"$stamp"
