#!/usr/bin/env bash
# The issue-4 load runs against a fresh single broker (1 KiB records, acks=all, 4 partitions), each on its own
# data directory, deleted at the end. Usage, from the repository root after `dotnet build -c Release` of
# broker/SharedLog.Broker and bench/SharedLog.LoadTest:
#   bench/broker/run.sh max [SECONDS=15]   maximum produce rate, from a cold start
#   bench/broker/run.sh produce5k          produce latency at 5,000 records/s (30 s after 10 s of warm-up)
#   bench/broker/run.sh e2e5k              produce-to-consume latency at 5,000 records/s (same timing)
#   bench/broker/run.sh segment5k          900,000 records as fast as possible (about 0.9 GiB of WAL), then produce5k's
#                                          load, during which the WAL moves into its second 1 GiB segment and the first
#                                          one is deleted once uploaded
#   bench/broker/run.sh consume5g          produce 5 GB, wait until it is all offloaded to objects, consume it
# Set PORT to move the broker's ports (PORT, PORT+1 for HTTP, PORT+2 for the registry); the broker's log and metrics
# after the run are left in $OUT (default /tmp/sharedlog-bench).
set -euo pipefail
mode=${1:?mode: max, produce5k, e2e5k, segment5k or consume5g}
port=${PORT:-39092}
out=${OUT:-/tmp/sharedlog-bench}
mkdir -p "$out"
data=$(mktemp -d)
load=bench/SharedLog.LoadTest/bin/Release/net10.0/SharedLog.LoadTest
dotnet broker/SharedLog.Broker/bin/Release/net10.0/SharedLog.Broker.dll --port "$port" --http-port $((port + 1)) \
  --registry-port $((port + 2)) --data-dir "$data" > "$out/broker-$mode.log" 2>&1 &
broker=$!
trap 'kill -TERM $broker 2>/dev/null; wait $broker 2>/dev/null; rm -rf "$data"' EXIT
for _ in $(seq 1 150); do curl -sf -o /dev/null "http://127.0.0.1:$((port + 1))/health" && break; sleep 0.2; done
common=(--bootstrap "127.0.0.1:$port" --partitions 4 --acks all --record-size 1024)
case "$mode" in
  max) $load produce --topic max "${common[@]}" --duration "${2:-15}" | grep -E '^produce:' ;;
  produce5k) $load produce --topic t5k "${common[@]}" --duration 30 --warmup 10 --rate 5000 | grep -E '^produce:' ;;
  segment5k)
    $load produce --topic fill "${common[@]}" --records 900000 > /dev/null
    $load produce --topic t5k "${common[@]}" --duration 30 --warmup 10 --rate 5000 | grep -E '^produce:' ;;
  e2e5k) $load e2e --topic t5k "${common[@]}" --duration 30 --warmup 10 --rate 5000 | grep -E '^e2e:' ;;
  consume5g)
    $load produce --topic c5g "${common[@]}" --records 5120000 | grep -E '^produce:'
    for _ in $(seq 1 600); do
      pending=$(curl -s "http://127.0.0.1:$((port + 1))/metrics" | awk '/^sharedlog_upload_pending_bytes/ {print $2}')
      [ "${pending:-1}" = "0" ] && break
      sleep 0.5
    done
    echo "upload backlog before consuming: ${pending:-unknown} bytes"
    $load consume --bootstrap "127.0.0.1:$port" --topic c5g --records 5120000 --record-size 1024 --consumers 1 | grep -E '^consume:' ;;
  *) echo "unknown mode $mode" >&2; exit 2 ;;
esac
curl -s "http://127.0.0.1:$((port + 1))/metrics" > "$out/metrics-$mode.txt"
