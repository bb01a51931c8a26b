#!/usr/bin/env bash
# Replay throughput: RECORDS 1 KiB Avro records are quarantined by a wrong rule (gate-avro, see prepare.js, with
# every record failing known-currency), then the contract is fixed and the quarantine topic is replayed back into
# gate-avro (through the fixed contract's gate: schema, 5 rules, 1 hashed field) and, for comparison, into
# plain-avro (no contract). Prints each replay's records, seconds and MB/s as `contracts replay` reports them.
#
# Usage (from the repository root, after `dotnet build -c Release` of broker/SharedLog.Broker and
# bench/SharedLog.LoadTest, and `npm ci` in tests/compat for avsc):
#   bench/contracts/replay.sh [RECORDS=500000] [PORT=19960]
set -euo pipefail
records=${1:-500000}
port=${2:-19960}
. bench/contracts/broker.sh
start_broker "$port"
value_bytes=$avro_bytes

contract() { # onFailure currencies
  printf 'topic: gate-avro\nclass: certified\nvalue:\n  strategy: TopicNameStrategy\nrules:\n  - name: positive-amount\n    expr: value.amount > 0.0\n  - name: known-currency\n    expr: value.currency in [%s]\n  - name: quantity-range\n    expr: value.quantity >= 1 && value.quantity <= 1000\n  - name: email-shape\n    expr: value.email.matches('"'"'^[^@]+@[^@]+$'"'"')\n  - name: id-prefix\n    expr: value.id.startsWith('"'"'order-'"'"')\nprivacy:\n  - field: email\n    action: hash\nonFailure: %s\n' "$2" "$1" > "$work/contract.yaml"
  $sl contracts apply "$work/contract.yaml" --url "http://127.0.0.1:$http" > /dev/null
}

# The bad hour: a rule that takes only USD quarantines every (EUR) record.
contract quarantine "'USD'"
$load produce --bootstrap "127.0.0.1:$port" --topic gate-avro --partitions 4 --records "$records" --acks all \
  --value-file "$work/values/avro.bin" --out "$work/lt" 2>&1 | grep -E '^produce: [0-9,]+ records' | tail -1
$load produce --bootstrap "127.0.0.1:$port" --topic plain-avro --partitions 4 --records 1 --acks all \
  --value-file "$work/values/avro.bin" --out "$work/lt" > /dev/null 2>&1 # creates the comparison target
contract quarantine "'EUR', 'USD'"

for target in plain-avro gate-avro; do
  start=$(date +%s.%N)
  # The time includes the CLI's own start (a dotnet process, about 0.2 s).
  out=$($sl contracts replay gate-avro --target "$target" --max-records 1000000 --id "bench-$target" --url "http://127.0.0.1:$http" 2>&1) || true
  echo "$out" | head -3
  end=$(date +%s.%N)
  awk -v s="$start" -v e="$end" -v n="$records" -v b="$value_bytes" -v target="$target" 'BEGIN { t = e - s; printf "  into %s: %.2f s, %.0f records/s, %.1f MB/s of values (%d bytes each)\n", target, t, n / t, n * b / t / 1e6, b }'
done
