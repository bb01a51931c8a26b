#!/usr/bin/env bash
# What a replay does to live traffic: a produce load at 5,000 records/s (1 KiB, acks=all, 4 partitions, 30 s after 5 s
# of warm-up) on topic `live`, alone, and with a replay of RECORDS quarantined records (see replay.sh) into plain-avro
# starting 8 s into it, once unthrottled and once with --max-bytes-per-second RATE. Prints the live load's latency
# for each case and how long each replay took.
#
# Usage (from the repository root, after `dotnet build -c Release` of broker/SharedLog.Broker and
# bench/SharedLog.LoadTest, and `npm ci` in tests/compat for avsc):
#   bench/contracts/replay-impact.sh [RECORDS=300000] [RATE=20000000] [PORT=19970]
set -euo pipefail
records=${1:-300000}
rate=${2:-20000000}
port=${3:-19970}
. bench/contracts/broker.sh
start_broker "$port"

# Every record of the bad period fails a rule that takes only USD, and is quarantined; then the rule is fixed.
apply() { printf 'topic: gate-avro\nclass: certified\nvalue:\n  strategy: TopicNameStrategy\nrules:\n  - name: known-currency\n    expr: value.currency in [%s]\nonFailure: quarantine\n' "$1" > "$work/contract.yaml"; $sl contracts apply "$work/contract.yaml" --url "http://127.0.0.1:$http" > /dev/null; }
apply "'USD'"
$load produce --bootstrap "127.0.0.1:$port" --topic gate-avro --partitions 4 --records "$records" --acks all --value-file "$work/values/avro.bin" --out "$work/lt" > /dev/null 2>&1
$load produce --bootstrap "127.0.0.1:$port" --topic plain-avro --partitions 4 --records 1 --acks all --value-file "$work/values/avro.bin" --out "$work/lt" > /dev/null 2>&1
apply "'EUR', 'USD'"

live() { $load produce --bootstrap "127.0.0.1:$port" --topic live --partitions 4 --record-size 1024 --acks all --duration 30 --warmup 5 --rate 5000 --out "$work/lt" 2>&1 | grep -E '^produce:' | sed -E 's/.*(latency .*); errors.*/\1/'; }

for case in alone unthrottled throttled; do
  drain_uploads
  live > "$work/live.txt" &
  lt=$!
  replayed="no replay"
  if [ "$case" != alone ]; then
    sleep 8
    extra=()
    [ "$case" = throttled ] && extra=(--max-bytes-per-second "$rate")
    start=$(date +%s.%N)
    $sl contracts replay gate-avro --target plain-avro --max-records 1000000 --id "impact-$case" "${extra[@]}" --url "http://127.0.0.1:$http" > "$work/replay.txt" 2>&1 || true
    replayed="replay $(head -1 "$work/replay.txt" | sed -E 's/.*: ([0-9]+ matched, [0-9]+ written).*/\1/') in $(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }') s"
  fi
  wait $lt
  echo "$case: live $(cat "$work/live.txt"); $replayed"
done
