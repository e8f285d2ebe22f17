#!/usr/bin/env bash
# The restore benchmark (issue 14, item 5): builds, starts a dedicated
# broker with fresh data, writes N records (default 1,000,000) to the
# changelog of kpay-testproc's store, starts kpay-testproc with no local
# state and reports its restore rate (kpay-bench-runtime --restore) as one
# JSON line, then stops the broker.
#   bench/restore.sh [--records N] [--value-size BYTES]
# KPAY_BENCH_KAFKA_PORT (default 29092) and KPAY_BENCH_KAFKA_DATA choose the
# broker, as for bench/runtime.sh.
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
  --testproc "$root/build/bin/kpay-testproc" --restore --records 1000000 \
  --state-dir "$root/build/bench-restore-state" "$@" | tee "$root/build/bench-restore.json"
