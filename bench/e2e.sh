#!/usr/bin/env bash
# The end-to-end benchmark of the payment pipeline (bench/README.md).
#
#   bench/e2e.sh [--payments N] [--accounts N] [--moderate-rate R]
#                [--moderate-seconds S] [--commit-interval-ms MS]
#                [--commit-min-interval-ms MS] [--runs "NAME..."]
#                [--warmup-seconds S] [--partitions N]
#
# --runs picks some of full-1-account, full-2-accounts and moderate (all
# three by default). Before them a warm-up run (its own topics, the
# moderate rate for --warmup-seconds, default 30; 0 skips it) lets the
# fresh broker's JIT compile its transactional paths, so that the runs
# measure a warm broker; its figures are in the result as "warmup" (the
# broker's JIT threads' CPU is "broker_jit" in every run's cpu figures).
# --partitions (default 12) is every topic's partition count and the
# daemons' --partitions: a transaction writes every partition of its
# outputs and changelogs, one ProduceRequest each (bench/README.md).
#
# On a dedicated broker (127.0.0.1:29092, fresh data) it measures, in one
# run: the broker's raw produce+consume rate for records of a payment's
# size; the sustained end-to-end rate at full speed for a fixed workload
# with one account processor and again with two; latency at a moderate rate;
# the peak RSS of every daemon. It writes build/bench-e2e/result.json and
# build/bench-e2e/e2e.png (throughput and latency over time).
# KPAY_BENCH_BIN=dir runs the daemons from another build (to compare);
# KPAY_BENCH_DAEMON_ARGS="-X linger.ms=5 ..." adds options to every daemon
# (to measure one setting against its default); KPAY_BENCH_LOG_LEVEL
# (warn) is the daemons' --log-level (debug shows librdkafka's -X debug=);
# KPAY_BENCH_KAFKA_PORT and KPAY_BENCH_HTTP_BASE_PORT move it off the
# default ports (29092, 18101...).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
payments=200000
accounts=10000
moderate_rate=2000
moderate_seconds=30
commit_ms=100
commit_min_ms=
runs="full-1-account full-2-accounts moderate"
warmup_seconds=30
partitions=12
while [ $# -gt 0 ]; do
  case "$1" in
  --payments) payments=$2; shift 2 ;;
  --accounts) accounts=$2; shift 2 ;;
  --moderate-rate) moderate_rate=$2; shift 2 ;;
  --moderate-seconds) moderate_seconds=$2; shift 2 ;;
  --commit-interval-ms) commit_ms=$2; shift 2 ;;
  --commit-min-interval-ms) commit_min_ms=$2; shift 2 ;;
  --runs) runs=$2; shift 2 ;;
  --warmup-seconds) warmup_seconds=$2; shift 2 ;;
  --partitions) partitions=$2; shift 2 ;;
  *) echo "usage: $0 [--payments N] [--accounts N] [--moderate-rate R] [--moderate-seconds S] [--commit-interval-ms MS] [--commit-min-interval-ms MS] [--runs \"full-1-account full-2-accounts moderate\"] [--warmup-seconds S] [--partitions N]" >&2; exit 2 ;;
  esac
done

export KPAY_KAFKA_PORT=${KPAY_BENCH_KAFKA_PORT:-29092}
export KPAY_KAFKA_CONTROLLER_PORT=$((KPAY_KAFKA_PORT + 1))
export KPAY_KAFKA_DATA=${KPAY_BENCH_KAFKA_DATA:-$root/build/bench-kafka}
bootstrap=127.0.0.1:$KPAY_KAFKA_PORT
out=$root/build/bench-e2e
"$root/kpay" build
bin=${KPAY_BENCH_BIN:-$root/build/bin}
gen=$root/build/bin/kpay-gen
command -v gnuplot >/dev/null 2>&1 || {
  echo "bench: installing gnuplot for the plot" >&2
  if [ "$(id -u)" -eq 0 ]; then apt-get install -y -q gnuplot-nox >/dev/null 2>&1 || true
  else sudo apt-get install -y -q gnuplot-nox >/dev/null 2>&1 || true; fi
}
rm -rf "$out"
mkdir -p "$out"
"$root/kpay" kafka stop >/dev/null 2>&1 || true
rm -rf "$KPAY_KAFKA_DATA"
"$root/kpay" kafka start
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  "$root/kpay" kafka stop
}
trap cleanup EXIT

# A payment as kpay-gen writes it is about 250 bytes.
echo "bench: raw produce+consume rate" >&2
"$root/build/bin/kpay-bench-runtime" -b "$bootstrap" --raw-only \
  --records 500000 --value-size 250 >"$out/raw.json"
raw=$(sed -n 's/.*"raw_records_per_s":\([0-9]*\).*/\1/p' "$out/raw.json")

port=${KPAY_BENCH_HTTP_BASE_PORT:-18100}
# Only given to the daemons when asked: a build older than adaptive
# commits has no such option.
commit_args=(--commit-interval-ms "$commit_ms")
# shellcheck disable=SC2206 # split on purpose: several options
[ -z "${KPAY_BENCH_DAEMON_ARGS:-}" ] || commit_args+=($KPAY_BENCH_DAEMON_ARGS)
[ -z "$commit_min_ms" ] || commit_args+=(--commit-min-interval-ms "$commit_min_ms")
# The librdkafka the daemons run with.
rdkafka=$("$bin/kpay-inflight" --version | sed -n 's/.*(librdkafka \(.*\))$/\1/p')
echo "bench: daemons from $bin, librdkafka ${rdkafka:-unknown}" >&2
start_daemon() { # name prefix instance
  local name=$1 prefix=$2 id=$3
  port=$((port + 1))
  "$bin/kpay-$name" -b "$bootstrap" --topic-prefix "$prefix" --instance-id "$id" \
    --state-dir "$out/state-$prefix/$name-$id" --listen "127.0.0.1:$port" \
    "${commit_args[@]}" --partitions "$partitions" --log-level "${KPAY_BENCH_LOG_LEVEL:-warn}" \
    >>"$out/$prefix-$name-$id.log" 2>&1 &
  pids+=($!)
  echo "$! $name-$id $port" >>"$out/$prefix.daemons"
}

wait_ready() { # prefix
  local pid name p deadline=$((SECONDS + 120))
  while read -r pid name p; do
    until curl -sf "http://127.0.0.1:$p/readyz" >/dev/null 2>&1; do
      kill -0 "$pid" 2>/dev/null || { tail "$out/$1-$name.log" >&2; echo "bench: $name died" >&2; exit 1; }
      [ "$SECONDS" -lt "$deadline" ] || { echo "bench: $name not ready" >&2; exit 1; }
      sleep 0.2
    done
  done <"$out/$1.daemons"
}

# Peak RSS (VmHWM, kB) of every daemon of a run, as JSON.
peak_rss() { # prefix
  local pid name p first=1
  printf '{'
  while read -r pid name p; do
    local kb
    kb=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
    [ "$first" = 1 ] || printf ','
    first=0
    printf '"%s":%s' "$name" "${kb:-0}"
  done <"$out/$1.daemons"
  printf '}'
}

# CPU seconds (user + system) each daemon used, as JSON: the busiest one
# limits the rate.
cpu_seconds() { # prefix
  local pid name p first=1 hz
  hz=$(getconf CLK_TCK)
  printf '{'
  while read -r pid name p; do
    local t
    t=$(awk -v hz="$hz" '{printf "%.1f", ($14 + $15) / hz}' "/proc/$pid/stat" 2>/dev/null || echo 0)
    [ "$first" = 1 ] || printf ','
    first=0
    printf '"%s":%s' "$name" "${t:-0}"
  done <"$out/$1.daemons"
  printf '}'
}

# "name ticks" (user + system clock ticks) of every daemon of a run and of
# the broker: sampled before and after the workload, so that start-up and
# restore are not counted.
cpu_ticks() { # prefix
  local pid name p bpid
  while read -r pid name p; do
    awk -v n="$name" '{print n, $14 + $15}' "/proc/$pid/stat" 2>/dev/null || echo "$name 0"
  done <"$out/$1.daemons"
  bpid=$(cat "$KPAY_KAFKA_DATA/kafka.pid" 2>/dev/null || true)
  if [ -n "$bpid" ]; then
    awk '{print "broker", $14 + $15}' "/proc/$bpid/stat" 2>/dev/null || echo "broker 0"
    # Of which the JIT compiler threads (C1, C2): a fresh broker's cost.
    # Only the threads alive at the sample count (HotSpot stops idle
    # compiler threads), so it is a lower bound.
    local t jit=0 v
    for t in /proc/"$bpid"/task/*; do
      case $(cat "$t/comm" 2>/dev/null) in
      C[12]\ Compiler*)
        # The name holds a space: fields count from after its ')'.
        v=$(sed 's/.*) //' "$t/stat" 2>/dev/null | awk '{print $12 + $13}' || echo 0)
        jit=$((jit + ${v:-0})) ;;
      esac
    done
    echo "broker_jit $jit"
  fi
}

# "name time committed seconds" of every daemon of a run: its transactions
# committed and the seconds they took in all (kpay_commit_latency_seconds),
# sampled before and after the workload like cpu_ticks.
commit_sample() { # prefix
  local pid name p
  while read -r pid name p; do
    curl -sf -m 5 "http://127.0.0.1:$p/metrics" | awk -v n="$name" -v t="$(date +%s.%N)" '
      /^kpay_transactions_committed_total / { c = $2 }
      /^kpay_commit_latency_seconds_sum / { s = $2 }
      END { print n, t, c + 0, s + 0 }'
  done <"$out/$1.daemons"
}

# Commits per second and the mean time of a commit (ms) of each daemon
# over the workload, as JSON, from two commit_sample files: at a moderate
# rate a hop's latency is mostly its commit's duration (bench/README.md).
commit_stats() { # before-file after-file
  awk 'FNR == NR { t[$1] = $2; c[$1] = $3; s[$1] = $4; next }
    { dc = $3 - c[$1]; dt = $2 - t[$1]
      o = o (o ? "," : "") sprintf("\"%s\":{\"commits_per_s\":%.1f,\"commit_ms\":%.1f}", $1,
        dt > 0 ? dc / dt : 0, dc > 0 ? ($4 - s[$1]) * 1000 / dc : 0) }
    END { printf "{%s}", o }' "$1" "$2"
}

# CPU microseconds per payment of each daemon and of the broker, as JSON,
# from two cpu_ticks samples and the payments sent (funding included).
cpu_us_per_payment() { # before-file after-file payments
  awk -v hz="$(getconf CLK_TCK)" -v n="$3" '
    FNR == NR { b[$1] = $2; next }
    { o = o (o ? "," : "") sprintf("\"%s\":%.1f", $1, ($2 - b[$1]) * 1e6 / hz / n) }
    END { printf "{%s}", o }' "$1" "$2"
}

# Records and bytes per payment by topic (changelogs included) and the
# transaction markers per payment, from kpay-bench-runtime --count-topics.
# Percentiles of each stage (kpay-gen's --stages-file columns: complete_ms
# e2e intake debit credit; -1 = stamps missing) as one JSON object.
stages_summary() { # stages-file
  local col name first=1
  printf '{'
  for col in 2:e2e 3:intake 4:debit 5:credit; do
    name=${col#*:}
    [ "$first" = 1 ] || printf ','
    first=0
    printf '"%s":' "$name"
    awk -v c="${col%%:*}" '$c >= 0 { print $c }' "$1" | sort -n | awk '
      { v[++n] = $1 }
      function at(q,  i) { i = int(q * n + 0.999999); if (i < 1) i = 1; return v[i] }
      END {
        if (!n) { printf "null"; exit }
        printf "{\"count\":%d,\"p50\":%d,\"p95\":%d,\"p99\":%d,\"max\":%d}", n, at(0.5), at(0.95), at(0.99), v[n]
      }'
  done
  printf '}'
}

per_payment_by_topic() { # count-json payments
  tr '{},' '\n\n\n' <"$1" | awk -v n="$2" -F: '
    /^"[^"]*":$/ { t = $1 }
    /^"records":/ { r[t] = $2 } /^"bytes":/ { b[t] = $2 } /^"offsets":/ { o[t] = $2; ts[++k] = t }
    END {
      for (i = 1; i <= k; i++) { t = ts[i]; rr = rr (i > 1 ? "," : "") sprintf("%s:%.3f", t, r[t] / n);
        bb = bb (i > 1 ? "," : "") sprintf("%s:%.1f", t, b[t] / n); R += r[t]; B += b[t]; M += o[t] - r[t] }
      printf "{\"records\":{%s},\"bytes\":{%s},\"records_total\":%.3f,\"bytes_total\":%.1f,\"markers_and_aborted\":%.3f}", rr, bb, R / n, B / n, M / n }'
}

# Records the daemons wrote (outputs, changelogs, dead letters).
records_out() { # prefix
  local pid name p sum=0 v
  while read -r pid name p; do
    v=$(curl -sf "http://127.0.0.1:$p/metrics" | sed -n 's/^kpay_records_out_total \([0-9]*\)/\1/p')
    sum=$((sum + ${v:-0}))
  done <"$out/$1.daemons"
  echo "$sum"
}

stop_run() { # prefix
  local pid name p
  while read -r pid name p; do kill -TERM "$pid" 2>/dev/null || true; done <"$out/$1.daemons"
  while read -r pid name p; do
    while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
  done <"$out/$1.daemons"
}

# Samples the confirmed processor's input counter once a second.
sampler() { # prefix port file
  while :; do
    v=$(curl -sf "http://127.0.0.1:$2/metrics" | sed -n 's/^kpay_records_in_total \([0-9]*\)/\1/p')
    echo "$(date +%s.%N) ${v:-0}" >>"$3"
    sleep 1
  done
}

# Restores kpay-inflight's stores from nothing (its state wiped) after a
# run, and records the changelog records replayed, the time and the rate
# (the daemon's own "restored N changelog records in M ms" line).
restore_run() { # prefix label
  local prefix=$1 label=$2 log="$out/$1-restore.log"
  rm -rf "$out/state-$prefix/inflight-1"
  port=$((port + 1))
  "$bin/kpay-inflight" -b "$bootstrap" --topic-prefix "$prefix" --instance-id 1 \
    --state-dir "$out/state-$prefix/inflight-1" --listen "127.0.0.1:$port" \
    "${commit_args[@]}" --partitions "$partitions" --log-level info >"$log" 2>&1 &
  local pid=$! deadline=$((SECONDS + 300))
  pids+=($pid)
  until curl -sf "http://127.0.0.1:$port/readyz" >/dev/null 2>&1; do
    kill -0 "$pid" 2>/dev/null || { tail "$log" >&2; echo "bench: restore died" >&2; exit 1; }
    [ "$SECONDS" -lt "$deadline" ] || { echo "bench: restore not ready" >&2; exit 1; }
    sleep 0.2
  done
  local rss
  rss=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
  kill -TERM "$pid" 2>/dev/null || true
  while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
  # Every assignment restores; sum them.
  sed -n 's/.*restored \([0-9]*\) changelog records in \([0-9]*\) ms.*/\1 \2/p' "$log" |
    awk -v rss="${rss:-0}" '{ r += $1; ms += $2 } END {
      printf "{\"records\":%d,\"ms\":%d,\"records_per_s\":%.0f,\"peak_rss_kb\":%d}", r, ms, ms ? r * 1000 / ms : 0, rss }' \
    >"$out/$label.restore.json"
}

run() { # label account-instances gen-args...
  local label=$1 n=$2
  shift 2
  local prefix="b-$label."
  # The daemons' own kpay-admin: it makes the changelogs as they expect them.
  local admin=$bin/kpay-admin
  [ -x "$admin" ] || admin=$root/build/bin/kpay-admin
  "$admin" topics -b "$bootstrap" --topic-prefix "$prefix" --partitions "$partitions" >/dev/null
  start_daemon inflight "$prefix" 1
  for i in $(seq 1 "$n"); do start_daemon account "$prefix" "$i"; done
  start_daemon confirmed "$prefix" 1
  wait_ready "$prefix"
  local cport
  cport=$(awk '$2 == "confirmed-1" {print $3}' "$out/$prefix.daemons")
  sampler "$prefix" "$cport" "$out/$label.samples" &
  local sp=$!
  echo "bench: $label" >&2
  cpu_ticks "$prefix" >"$out/$label.ticks0"
  commit_sample "$prefix" >"$out/$label.commits0"
  "$gen" -b "$bootstrap" --topic-prefix "$prefix" --accounts "$accounts" --fund \
    --seed 7 --wait --wait-timeout 900 --json --quiet \
    --latency-file "$out/$label.latency" --stages-file "$out/$label.stages" \
    "$@" >"$out/$label.json"
  cpu_ticks "$prefix" >"$out/$label.ticks1"
  commit_sample "$prefix" >"$out/$label.commits1"
  local rss cpu sent
  rss=$(peak_rss "$prefix")
  cpu=$(cpu_seconds "$prefix")
  records_out "$prefix" >"$out/$label.records_out"
  kill "$sp" 2>/dev/null || true
  stop_run "$prefix"
  printf '%s' "$rss" >"$out/$label.rss.json"
  printf '%s' "$cpu" >"$out/$label.cpu.json"
  sent=$(sed -n 's/.*"sent":\([0-9]*\).*/\1/p' "$out/$label.json")
  cpu_us_per_payment "$out/$label.ticks0" "$out/$label.ticks1" "$sent" >"$out/$label.cpu_us.json"
  commit_stats "$out/$label.commits0" "$out/$label.commits1" >"$out/$label.commit.json"
  "$root/build/bin/kpay-bench-runtime" -b "$bootstrap" --count-topics "$prefix" >"$out/$label.topics.json"
  per_payment_by_topic "$out/$label.topics.json" "$sent" >"$out/$label.per_payment.json"
  stages_summary "$out/$label.stages" >"$out/$label.stages.json"
  if [ "$label" = full-1-account ]; then
    echo "bench: $label: restoring kpay-inflight from nothing" >&2
    restore_run "$prefix" "$label"
  else
    printf 'null' >"$out/$label.restore.json"
  fi
}

[ "$warmup_seconds" -gt 0 ] && runs="warmup $runs"
for l in $runs; do
  case "$l" in
  warmup) run warmup 1 --rate "$moderate_rate" --duration "$warmup_seconds" ;;
  full-1-account) run full-1-account 1 --count "$payments" --rate 0 ;;
  full-2-accounts) run full-2-accounts 2 --count "$payments" --rate 0 ;;
  moderate) run moderate 1 --rate "$moderate_rate" --duration "$moderate_seconds" ;;
  *) echo "bench: unknown run $l" >&2; exit 2 ;;
  esac
done

# The summary.
{
  printf '{"raw":%s,' "$(cat "$out/raw.json")"
  printf '"commit_interval_ms":%s,"commit_min_interval_ms":"%s","accounts":%s,' \
    "$commit_ms" "${commit_min_ms:-default}" "$accounts"
  printf '"librdkafka":"%s",' "$rdkafka"
  for l in $runs; do
    printf '"%s":{"gen":%s,"peak_rss_kb":%s,"cpu_s":%s,"cpu_us_per_payment":%s,"commits":%s,"per_payment":%s,"stages_ms":%s,"restore":%s,"daemon_records_out":%s},' \
      "$l" "$(cat "$out/$l.json")" "$(cat "$out/$l.rss.json")" \
      "$(cat "$out/$l.cpu.json")" "$(cat "$out/$l.cpu_us.json")" "$(cat "$out/$l.commit.json")" \
      "$(cat "$out/$l.per_payment.json")" "$(cat "$out/$l.stages.json")" \
      "$(cat "$out/$l.restore.json")" "$(cat "$out/$l.records_out")"
  done
  printf '"raw_records_per_s":%s}\n' "$raw"
} >"$out/result.json"

# Throughput (completed payments per second) and p99 latency per second,
# from the latency files ("complete_ms latency_ms" lines).
series() { # latency-file: "second completed p99" per second of the run
  awk '{ print int($1 / 1000), $2 }' "$1" | sort -k1,1n -k2,2n | awk '
    function flush() {
      if (n) {
        idx = int(0.99 * n + 0.999999); if (idx < 1) idx = 1
        print cur - first, n, v[idx]
      }
    }
    NR == 1 { first = $1; cur = $1 }
    $1 != cur { flush(); n = 0; cur = $1 }
    { v[++n] = $2 }
    END { flush() }'
}
for l in $runs; do
  series "$out/$l.latency" >"$out/$l.series"
done
# End-to-end throughput of the stream: payments with an outcome divided by
# the time from the first payment's creation to the last outcome.
e2e_rate() {
  awk 'NR == 1 || $1 - $2 < lo { lo = $1 - $2 } $1 > hi { hi = $1 }
       END { if (hi > lo) printf "%.0f", NR * 1000 / (hi - lo); else print 0 }' "$1"
}
for l in $runs; do
  echo "bench: $l: $(e2e_rate "$out/$l.latency") payments/s end to end" >&2
done
# Payments/s x records written per payment (the gen's payment plus what the
# daemons wrote for it) / raw records/s: how close to the broker's limit.
{
  for l in $runs; do
    rate=$(e2e_rate "$out/$l.latency")
    sent=$(sed -n 's/.*"sent":\([0-9]*\).*/\1/p' "$out/$l.json")
    recs=$(cat "$out/$l.records_out")
    awk -v l="$l" -v rate="$rate" -v sent="$sent" -v recs="$recs" -v raw="$raw" 'BEGIN {
      w = (sent + recs) / sent
      printf "{\"run\":\"%s\",\"payments_per_s\":%s,\"records_written_per_payment\":%.2f,\"ratio_to_raw\":%.3f}\n", l, rate, w, rate * w / raw }'
  done
} >"$out/rates.jsonl"
cat "$out/result.json" "$out/rates.jsonl"

if command -v gnuplot >/dev/null 2>&1 && [ -s "$out/full-1-account.series" ] &&
  [ -s "$out/moderate.series" ]; then
  gnuplot <<GP
set terminal png size 1200,800
set output "$out/e2e.png"
set multiplot layout 2,1 title "kpay end to end (commit interval ${commit_ms} ms)"
set xlabel "seconds"
set ylabel "payments/s"
set y2label "p99 latency (ms)"
set y2tics
set title "full speed, one account processor"
plot "$out/full-1-account.series" using 1:2 with lines title "completed/s", \
     "$out/full-1-account.series" using 1:3 axes x1y2 with lines title "p99 ms"
set title "moderate rate (${moderate_rate}/s)"
plot "$out/moderate.series" using 1:2 with lines title "completed/s", \
     "$out/moderate.series" using 1:3 axes x1y2 with lines title "p99 ms"
unset multiplot
GP
  echo "bench: plot in $out/e2e.png" >&2
fi
