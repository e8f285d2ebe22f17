#!/usr/bin/env bash
# How soon a kpay-metrics window closes after its end plus the grace period
# with no traffic at all (issue 10: "windows close within grace + 1 s of
# wall-clock"). A figure, not a pass/fail bound: integration.metrics only
# checks that the window becomes final, never before end + grace.
#   bench/metrics-close.sh [--runs N]
# Builds, starts a dedicated broker (127.0.0.1:29092, KPAY_BENCH_KAFKA_PORT
# to move it) with fresh data, and runs integration.metrics' closing test
# (test_closing_and_bad_input) N times against it: each run counts three
# outcomes in a second a few seconds ahead, then sends nothing. Prints one
# JSON line per run (closed_after_ms: closed_ms - (end + grace)) and a
# summary (min, median, max).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
runs=5
while [ $# -gt 0 ]; do
  case "$1" in
  --runs) runs=$2; shift 2 ;;
  *) echo "usage: $0 [--runs N]" >&2; exit 2 ;;
  esac
done
build=${KPAY_BUILD_DIR:-$root/build}
work=$build/bench-metrics-close
bin=$build/bin
export KPAY_KAFKA_PORT=${KPAY_BENCH_KAFKA_PORT:-29092}
export KPAY_KAFKA_CONTROLLER_PORT=$((KPAY_KAFKA_PORT + 1))
export KPAY_KAFKA_DATA=$work/kafka
KPAY_BUILD_DIR=$build "$root/kpay" build
[ -x "$bin/itest_metrics" ] || { echo "$0: $bin/itest_metrics is not built (KPAY_BUILD_TESTS=ON)" >&2; exit 1; }
"$root/kpay" kafka stop >/dev/null 2>&1 || true
rm -rf "$work"
mkdir -p "$work"
"$root/kpay" kafka start
trap '"$root/kpay" kafka stop >/dev/null 2>&1 || true' EXIT
export KPAY_TEST_BOOTSTRAP=127.0.0.1:$KPAY_KAFKA_PORT
export KPAY_ADMIN_BIN=$bin/kpay-admin KPAY_METRICS_BIN=$bin/kpay-metrics
export KPAY_IT_FILTER=test_closing_and_bad_input
all=()
for run in $(seq 1 "$runs"); do
  log=$work/run.$run.log
  "$bin/itest_metrics" >"$log" 2>&1 || { tail -30 "$log" >&2; exit 1; }
  ms=$(sed -n 's/^closing: window end + grace [0-9]*, closed \(-\{0,1\}[0-9]*\) ms after$/\1/p' "$log")
  [ -n "$ms" ] || { echo "$0: no closing figure in $log" >&2; exit 1; }
  all+=("$ms")
  printf '{"run":%d,"closed_after_ms":%d}\n' "$run" "$ms"
done
sorted=$(printf '%s\n' "${all[@]}" | sort -n)
min=$(echo "$sorted" | head -1) max=$(echo "$sorted" | tail -1)
median=$(echo "$sorted" | sed -n "$(((runs + 1) / 2))p")
printf '{"runs":%d,"min_ms":%d,"median_ms":%d,"max_ms":%d,"load":"%s"}\n' \
  "$runs" "$min" "$median" "$max" "$(cut -d' ' -f1-3 /proc/loadavg)"
