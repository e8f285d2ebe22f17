#!/usr/bin/env bash
# The soak benchmark of issue 13 (bench/README.md): the chaos test's code
# (tests/integration/test_chaos.c) at soak size on a three-broker cluster
# of its own.
#
#   bench/soak.sh [--payments N] [--rate R] [--kills K] [--accounts A]
#                 [--port P] [--seed S]
#
# Defaults: 1,000,000 payments at 2,000/s, 24 processor SIGKILLs spread
# over the run, one broker SIGKILLed and restarted, 1,000 accounts; the
# cluster on 127.0.0.1:29100-29105 (--port P: P..P+5) with fresh data under
# build/bench-soak. It prints the seed, every kill, the invariants (the
# test fails on the first broken one), the time to the last outcome and
# the disk used, and keeps the whole log in build/bench-soak/soak.log.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
payments=1000000 rate=2000 kills=24 accounts=1000 port=29100 seed=""
while [ $# -gt 0 ]; do
  case "$1" in
  --payments) payments=$2; shift 2 ;;
  --rate) rate=$2; shift 2 ;;
  --kills) kills=$2; shift 2 ;;
  --accounts) accounts=$2; shift 2 ;;
  --port) port=$2; shift 2 ;;
  --seed) seed=$2; shift 2 ;;
  *) echo "usage: $0 [--payments N] [--rate R] [--kills K] [--accounts A] [--port P] [--seed S]" >&2; exit 2 ;;
  esac
done
build=${KPAY_BUILD_DIR:-$root/build}
out=$build/bench-soak
KPAY_BUILD_DIR=$build "$root/kpay" build
bin=$build/bin
[ -x "$bin/itest_chaos" ] || { echo "soak: $bin/itest_chaos is not built (KPAY_BUILD_TESTS=ON)" >&2; exit 1; }

export KPAY_KAFKA_PORT=$port KPAY_KAFKA_BROKERS=3 KPAY_KAFKA_DATA=$out/kafka
export KPAY_KAFKA_HEAP=${KPAY_KAFKA_HEAP:-1G}
# The broker SIGKILLed mid-run recovers its logs when it restarts: on a
# busy machine that took longer than ./kpay kafka's default wait (120 s),
# which then stopped it and failed the run. The chaos test's own wait for
# `kpay kafka start` is 300 s.
export KPAY_KAFKA_START_TIMEOUT=${KPAY_KAFKA_START_TIMEOUT:-280}
"$root/kpay" kafka stop >/dev/null 2>&1 || true
rm -rf "$out"
mkdir -p "$out"
trap '"$root/kpay" kafka stop >/dev/null 2>&1 || true' EXIT
"$root/kpay" kafka start --brokers 3

# The kills spread over the time the payments take to send.
send_s=$((payments / rate))
pause_ms=$((send_s * 1000 * 2 / kills))
[ "$pause_ms" -ge 600 ] || pause_ms=600
export KPAY_TEST_BOOTSTRAP=127.0.0.1:$port,127.0.0.1:$((port + 2)),127.0.0.1:$((port + 4))
export KPAY_ADMIN_BIN=$bin/kpay-admin KPAY_INFLIGHT_BIN=$bin/kpay-inflight
export KPAY_ACCOUNT_BIN=$bin/kpay-account KPAY_CONFIRMED_BIN=$bin/kpay-confirmed
export KPAY_GEN_BIN=$bin/kpay-gen KPAY_CHAOS_KPAY=$root/kpay
export KPAY_CHAOS_PAYMENTS=$payments KPAY_CHAOS_RATE=$rate KPAY_CHAOS_KILLS=$kills
export KPAY_CHAOS_ACCOUNTS=$accounts KPAY_CHAOS_PAUSE_MS=$pause_ms
export KPAY_CHAOS_WAIT_S=$((send_s * 3 + 600)) KPAY_CHAOS_SEED=$seed
start=$SECONDS
set +e
"$bin/itest_chaos" 2>&1 | tee "$out/soak.log"
rc=${PIPESTATUS[0]}
set -e
echo "soak: exit $rc after $((SECONDS - start)) s; Kafka data $(du -sh "$out/kafka" | cut -f1); log $out/soak.log"
exit "$rc"
