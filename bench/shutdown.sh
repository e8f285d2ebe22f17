#!/usr/bin/env bash
# The shutdown bound (issue 13, defect 9): how long kpay-inflight takes to
# exit after SIGTERM when its broker is gone, and with which status.
# Builds, starts a dedicated broker (127.0.0.1:29092, fresh data), creates
# the topics, and for each run: starts kpay-inflight, streams payments into
# it with kpay-gen (so a transaction is open), stops the broker, sends
# SIGTERM, measures until the process is gone, starts the broker again.
#   bench/shutdown.sh [--runs N] [--shutdown-timeout-ms MS]
# Prints one JSON line per run and a summary line.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
runs=3
sto=10000
while [ $# -gt 0 ]; do
  case "$1" in
  --runs) runs=$2; shift 2 ;;
  --shutdown-timeout-ms) sto=$2; shift 2 ;;
  *) echo "usage: $0 [--runs N] [--shutdown-timeout-ms MS]" >&2; exit 2 ;;
  esac
done
export KPAY_KAFKA_PORT=${KPAY_BENCH_KAFKA_PORT:-29092}
export KPAY_KAFKA_CONTROLLER_PORT=$((KPAY_KAFKA_PORT + 1))
export KPAY_KAFKA_DATA=${KPAY_BENCH_KAFKA_DATA:-$root/build/bench-kafka}
work=$root/build/bench-shutdown
bin=$root/build/bin
b=127.0.0.1:$KPAY_KAFKA_PORT
prefix="bench-shutdown-$$."
"$root/kpay" build
"$root/kpay" kafka stop >/dev/null 2>&1 || true
rm -rf "$KPAY_KAFKA_DATA" "$work"
mkdir -p "$work"
"$root/kpay" kafka start
trap '"$root/kpay" kafka stop >/dev/null 2>&1 || true' EXIT
"$bin/kpay-admin" topics -b "$b" --topic-prefix "$prefix" --partitions 12 >/dev/null
max=0
for run in $(seq 1 "$runs"); do
  log=$work/inflight.$run.log
  "$bin/kpay-inflight" -b "$b" --topic-prefix "$prefix" --instance-id bench-1 \
    --state-dir "$work/state" --listen 127.0.0.1:0 \
    --shutdown-timeout-ms "$sto" >"$log" 2>&1 &
  pid=$!
  until grep -q 'STARTING -> RUNNING\|RESTORING -> RUNNING' "$log"; do
    kill -0 "$pid" 2>/dev/null || { tail -20 "$log" >&2; exit 1; }
    sleep 0.2
  done
  "$bin/kpay-gen" -b "$b" --topic-prefix "$prefix" --rate 500 --duration 5 \
    >"$work/gen.$run.log" 2>&1
  "$bin/kpay-gen" -b "$b" --topic-prefix "$prefix" --rate 500 --duration 30 \
    >>"$work/gen.$run.log" 2>&1 &
  gen=$!
  sleep 1
  "$root/kpay" kafka stop >/dev/null 2>&1
  t0=$(date +%s%N)
  kill -TERM "$pid"
  rc=0
  wait "$pid" || rc=$?
  ms=$((($(date +%s%N) - t0) / 1000000))
  kill "$gen" 2>/dev/null || true
  wait "$gen" 2>/dev/null || true
  [ "$ms" -gt "$max" ] && max=$ms
  printf '{"run":%d,"exit_status":%d,"exit_ms":%d,"shutdown_timeout_ms":%d}\n' \
    "$run" "$rc" "$ms" "$sto"
  "$root/kpay" kafka start >/dev/null
done
printf '{"runs":%d,"max_exit_ms":%d,"shutdown_timeout_ms":%d}\n' "$runs" "$max" "$sto"
