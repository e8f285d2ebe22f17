#!/usr/bin/env bash
# The CTest fixture of the integration tests: a fresh single-node broker on
# the port and data directory that tests/CMakeLists.txt passes in the
# environment (KPAY_KAFKA_PORT, KPAY_KAFKA_DATA).
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
stop)
  exec "$root/kpay" kafka stop
  ;;
*)
  echo "usage: $0 start|stop" >&2
  exit 2
  ;;
esac
