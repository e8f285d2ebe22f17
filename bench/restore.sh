#!/usr/bin/env bash
# The restore benchmark (issue 14, item 5): bench/runtime.sh with
# kpay-bench-runtime --restore, which writes N records (default 1,000,000)
# to the changelog of kpay-testproc's store, starts kpay-testproc with no
# local state and reports its restore rate and CPU as one JSON line (on a
# dedicated broker with fresh data, as bench/runtime.sh).
#   bench/restore.sh [--records N] [--value-size BYTES]
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
exec "$root/bench/runtime.sh" --restore --records 1000000 "$@"
