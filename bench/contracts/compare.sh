#!/usr/bin/env bash
# Contract gate cost: produce throughput of 1 KiB JSON and Avro records to topics with a contract
# (schema + 5 rules + 1 hashed field, see prepare.js) against the same load on topics without one, in
# one broker run. Before every run it waits until the broker has no upload backlog, so a run does not pay
# for the uploads of the one before it, and odd rounds run plain first, even rounds gated first.
#
# Usage (from the repository root, after `dotnet build -c Release` of broker/SharedLog.Broker and
# bench/SharedLog.LoadTest, and `npm ci` in tests/compat for avsc):
#   bench/contracts/compare.sh [ROUNDS=3] [SECONDS=10] [PORT=19900]
# Set BROKER_ENV to pass environment variables to the broker (e.g. BROKER_ENV="DOTNET_gcServer=0").
set -euo pipefail
rounds=${1:-3}
seconds=${2:-10}
port=${3:-19900}
http=$((port + 1))
registry=$((port + 2))
work=$(mktemp -d)
load="dotnet bench/SharedLog.LoadTest/bin/Release/net10.0/SharedLog.LoadTest.dll"

env ${BROKER_ENV:-SHAREDLOG_BENCH=1} dotnet broker/SharedLog.Broker/bin/Release/net10.0/SharedLog.Broker.dll \
  --port "$port" --http-port "$http" --registry-port "$registry" --data-dir "$work/data" > "$work/broker.log" 2>&1 &
broker=$!
trap 'kill -TERM $broker 2>/dev/null; wait $broker 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 1 150); do curl -sf -o /dev/null "http://127.0.0.1:$http/health" && break; sleep 0.2; done
node bench/contracts/prepare.js "http://127.0.0.1:$registry" "http://127.0.0.1:$http" "$work/values" > /dev/null

drain() {
  for _ in $(seq 1 300); do
    pending=$(curl -s "http://127.0.0.1:$http/metrics" | awk '/^sharedlog_upload_pending_bytes/ {print $2}')
    [ "${pending:-0}" -lt 1048576 ] && return
    sleep 0.2
  done
  echo "upload backlog did not drain within 60 s" >&2
}

produce() { # topic seconds -> records/s
  local topic=$1 duration=$2
  $load produce --bootstrap "127.0.0.1:$port" --topic "$topic" --partitions 4 --duration "$duration" --acks all \
    --value-file "$work/values/${topic#*-}.bin" --out "$work/lt" 2>&1 | grep -oE '= [0-9,]+ rec/s' | tr -d '=, ' | sed 's|rec/s||'
}

for topic in plain-json gate-json plain-avro gate-avro; do produce "$topic" 4 > /dev/null; done # warm-up, not counted
declare -A sum
for round in $(seq 1 "$rounds"); do
  for kind in json avro; do
    order="plain-$kind gate-$kind"
    [ $((round % 2)) -eq 0 ] && order="gate-$kind plain-$kind"
    for topic in $order; do
      drain
      rate=$(produce "$topic" "$seconds")
      echo "round $round $topic $rate rec/s"
      sum[$topic]=$(( ${sum[$topic]:-0} + rate ))
    done
  done
done
for kind in json avro; do
  plain=$(( sum[plain-$kind] / rounds )); gated=$(( sum[gate-$kind] / rounds ))
  echo "$kind: plain $plain rec/s, gated $gated rec/s, contract cost $(( (plain - gated) * 100 / plain )) %"
done
