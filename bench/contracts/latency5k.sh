#!/usr/bin/env bash
# The contract gate's added latency: produce at 5,000 records/s (1 KiB JSON records, acks=all, 4 partitions, 30 s
# after 10 s of warm-up) to plain-json and gate-json (see prepare.js) of one fresh broker, alternating, PAIRS times;
# then the gate's own time per batch from the broker's histogram.
# Usage (from the repository root, after `dotnet build -c Release` of broker/SharedLog.Broker and
# bench/SharedLog.LoadTest, and `npm ci` in tests/compat for avsc):
#   bench/contracts/latency5k.sh [PAIRS=2] [PORT=19980]
set -euo pipefail
pairs=${1:-2}
port=${2:-19980}
. bench/contracts/broker.sh
start_broker "$port"
for _ in $(seq 1 "$pairs"); do
  for topic in plain-json gate-json; do
    result=$($load produce --bootstrap "127.0.0.1:$port" \
      --topic "$topic" --partitions 4 --duration 30 --warmup 10 --rate 5000 --acks all --value-file "$work/values/json.bin" \
      --out "$work/lt" 2>&1 | grep -E '^produce: ' | grep -o 'p50.*')
    echo "$topic $result"
  done
done
curl -s "http://127.0.0.1:$http/metrics" | grep -E '^sharedlog_contract_gate_duration_milliseconds_(bucket.*le="(0.5|1|2.5)"|count)'
