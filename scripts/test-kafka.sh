#!/usr/bin/env bash
# The CTest fixture of the integration tests: a fresh single-node broker (a
# SASL_SSL one with KPAY_KAFKA_SECURE=1, the kafka_secure fixture) on
# the port and data directory that tests/CMakeLists.txt passes in the
# environment (KPAY_KAFKA_PORT, KPAY_KAFKA_DATA).
#
#   start  wipe the data and start a fresh broker (the fixture's setup)
#   stop   stop the broker (the fixture's cleanup)
#   down   stop the broker during a test, keeping its data
#   up     start it again on the same data and wait until it answers
#
# down/up are what it_broker_stop()/it_broker_start() (tests/integration/
# it_util.h) run to take the broker away from the processes under test.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
: "${KPAY_KAFKA_DATA:?set by the CTest fixture}"
case "${1:-}" in
start)
  # A broker left over from an interrupted run is stopped and its data
  # wiped, so every run starts from an empty cluster.
  "$root/kpay" kafka stop >/dev/null 2>&1 || true
  rm -rf "$KPAY_KAFKA_DATA"
  exec "$root/kpay" kafka start
  ;;
stop|down)
  exec "$root/kpay" kafka stop
  ;;
up)
  exec "$root/kpay" kafka start
  ;;
*)
  echo "usage: $0 start|stop|down|up" >&2
  exit 2
  ;;
esac
