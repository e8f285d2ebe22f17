#!/usr/bin/env bash
# The runtime benchmark (issue: runtime throughput beside the broker's):
# builds, starts a dedicated broker on 127.0.0.1:29092 with fresh data,
# runs kpay-bench-runtime, prints its JSON line, stops the broker.
#   bench/runtime.sh [--restore] [--records N] [--value-size BYTES] [--commit-interval-ms MS]
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export KPAY_KAFKA_PORT=${KPAY_BENCH_KAFKA_PORT:-29092}
export KPAY_KAFKA_CONTROLLER_PORT=$((KPAY_KAFKA_PORT + 1))
export KPAY_KAFKA_DATA=${KPAY_BENCH_KAFKA_DATA:-$root/build/bench-kafka}
"$root/kpay" build
"$root/kpay" kafka stop >/dev/null 2>&1 || true
rm -rf "$KPAY_KAFKA_DATA"
"$root/kpay" kafka start
trap '"$root/kpay" kafka stop' EXIT
"$root/build/bin/kpay-bench-runtime" -b "127.0.0.1:$KPAY_KAFKA_PORT" \
  --testproc "$root/build/bin/kpay-testproc" \
  --state-dir "$root/build/bench-state" "$@" | tee "$root/build/bench-runtime.json"
