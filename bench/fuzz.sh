#!/usr/bin/env bash
# A longer fuzzing campaign than the `fuzz` tests of ./kpay test
# (bench/README.md): every libFuzzer target for SECONDS (default 600)
# over the committed seed corpus, new inputs kept in build/fuzz/work.
#
#   bench/fuzz.sh [SECONDS] [TARGET...]
#
# A crash, a leak or undefined behaviour stops that target and leaves the
# input in build/fuzz/work/<target>/crash-* (or leak-*); minimize it with
# `build/fuzz/bin/fuzz_<target> -minimize_crash=1 <file>`, add it to the
# seed corpus once fixed (fuzz/corpus/<target>) with a unit test.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${KPAY_BUILD_DIR:-$root/build}
seconds=${1:-600}
[ $# -gt 0 ] && shift
targets=("$@")
[ "${#targets[@]}" -gt 0 ] || targets=(payment account_cmd http conf)
KPAY_BUILD_DIR=$build "$root/kpay" build
rc=0
for t in "${targets[@]}"; do
  echo "=== fuzz_$t for ${seconds}s"
  if ! "$root/scripts/run-fuzz.sh" "$build/fuzz/bin/fuzz_$t" \
    "$root/fuzz/corpus/$t" "$build/fuzz/work/$t" \
    -max_total_time="$seconds" 2>"$build/fuzz/work/$t.log"; then
    rc=1
    echo "fuzz_$t: FINDING (log $build/fuzz/work/$t.log)"
    grep -E '^(==|SUMMARY|.*runtime error)' "$build/fuzz/work/$t.log" | head -n 5 || true
  fi
  grep -E '^stat::(number_of_executed_units|new_units_added)' "$build/fuzz/work/$t.log" || true
done
exit "$rc"
