#!/usr/bin/env bash
# scripts/ui-deps.sh DIR: installs kpay-web's npm packages (web-tier/ui/
# package.json + package-lock.json: Swagger UI, uPlot, and for the tests
# playwright-core and ajv) into DIR/node_modules with `npm ci`, unless DIR
# already holds exactly that lock file's install. DIR is in the build
# directory (CMake passes <build>/ui-npm): node_modules is never in the
# source tree. No install script runs (--ignore-scripts) and playwright
# downloads no browser: the tests drive Debian's chromium.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
dir=${1:?usage: $0 DIR}
src=$root/web-tier/ui
command -v npm >/dev/null 2>&1 ||
  { echo "ui-deps: npm is not installed (./kpay deps installs nodejs and npm)" >&2; exit 1; }
mkdir -p "$dir"
stamp=$dir/.installed
want=$(cat "$src/package.json" "$src/package-lock.json" | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -d "$dir/node_modules" ]; then
  exit 0
fi
# A lock so that two builds of the same directory never race.
exec 9>"$dir/.lock"
flock 9
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -d "$dir/node_modules" ]; then
  exit 0
fi
rm -f "$stamp"
cp "$src/package.json" "$src/package-lock.json" "$dir/"
log=$dir/npm-ci.log
if ! (cd "$dir" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 SCARF_ANALYTICS=false \
  npm ci --ignore-scripts --no-audit --no-fund --loglevel=error) >"$log" 2>&1; then
  cat "$log" >&2
  echo "ui-deps: npm ci failed in $dir (log: $log)" >&2
  exit 1
fi
echo "$want" >"$stamp"
