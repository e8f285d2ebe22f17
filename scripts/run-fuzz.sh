#!/usr/bin/env bash
# Runs one libFuzzer target over its committed seed corpus:
#   run-fuzz.sh BINARY SEED_DIR WORK_DIR [libFuzzer options...]
# New inputs are written to WORK_DIR (never into the committed corpus), a
# crashing, leaking or UB input to WORK_DIR/crash-* (and its path is
# printed). Exit status: libFuzzer's (0: no finding).
set -euo pipefail
bin=$1 seeds=$2 work=$3
shift 3
[ -x "$bin" ] || { echo "run-fuzz: $bin is not built" >&2; exit 1; }
[ -d "$seeds" ] || { echo "run-fuzz: no seed corpus $seeds" >&2; exit 1; }
mkdir -p "$work/corpus"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
exec "$bin" -artifact_prefix="$work/" -print_final_stats=1 "$@" \
  "$work/corpus" "$seeds"
