#!/usr/bin/env bash
# Quarantine-path produce throughput: a contract on gate-avro whose one rule fails every record (onFailure: quarantine),
# so each record is kept out of the topic and copied to gate-avro.quarantine. LOADERS load tools (one connection each)
# produce RECORDS 1 KiB Avro records each at once; prints each one's summary and the total records/s.
#
# Usage (from the repository root, after `dotnet build -c Release` of broker/SharedLog.Broker and
# bench/SharedLog.LoadTest, and `npm ci` in tests/compat for avsc):
#   bench/contracts/quarantine.sh [RECORDS=150000] [LOADERS=2] [PORT=19970]
set -euo pipefail
records=${1:-150000}
loaders=${2:-2}
port=${3:-19970}
. bench/contracts/broker.sh
start_broker "$port"
printf 'topic: gate-avro\nclass: certified\nvalue:\n  strategy: TopicNameStrategy\nrules:\n  - name: known-currency\n    expr: value.currency in [%s]\nonFailure: quarantine\n' "'USD'" > "$work/contract.yaml"
$sl contracts apply "$work/contract.yaml" --url "http://127.0.0.1:$http" > /dev/null
# Creates the topic (4 partitions) and the quarantine topic before the timed part.
$load produce --bootstrap "127.0.0.1:$port" --topic gate-avro --partitions 4 --records 1000 --acks all \
  --value-file "$work/values/avro.bin" --out "$work/lt" > /dev/null 2>&1
pids=()
start=$(date +%s.%N)
for i in $(seq 1 "$loaders"); do
  $load produce --bootstrap "127.0.0.1:$port" --topic gate-avro --records "$records" --acks all \
    --value-file "$work/values/avro.bin" --out "$work/lt$i" > "$work/out$i" 2>&1 &
  pids+=($!)
done
for pid in "${pids[@]}"; do wait "$pid"; done
end=$(date +%s.%N)
for i in $(seq 1 "$loaders"); do grep -E '^produce: [0-9,]+ records' "$work/out$i" | tail -1; done
awk -v s="$start" -v e="$end" -v n="$((records * loaders))" 'BEGIN { printf "all loaders: %d records in %.2f s = %.0f records/s\n", n, e - s, n / (e - s) }'
