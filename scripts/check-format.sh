#!/usr/bin/env bash
# Checks the project's C sources against the committed .clang-format.
# With --fix, reformats them in place instead.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
command -v clang-format >/dev/null 2>&1 || {
  echo "check-format: clang-format is not installed (./kpay deps installs it)" >&2
  exit 1
}
mapfile -t files < <(git ls-files -co --exclude-standard -- '*.c' '*.h' 2>/dev/null ||
  find . -path ./build -prune -o \( -name '*.c' -o -name '*.h' \) -print)
[ "${#files[@]}" -gt 0 ] || { echo "check-format: no sources found" >&2; exit 1; }
if [ "${1:-}" = "--fix" ]; then
  clang-format -i "${files[@]}"
  exit 0
fi
if ! clang-format --dry-run -Werror "${files[@]}"; then
  echo "check-format: run scripts/check-format.sh --fix" >&2
  exit 1
fi
echo "check-format: ${#files[@]} files formatted"
