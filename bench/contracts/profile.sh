#!/usr/bin/env bash
# Samples the broker with perf while the load tool produces to one prepared topic (see broker.sh), and prints the
# functions holding the most samples (inclusive and self). Needs perf (linux-perf) and python3.
#
# Usage (from the repository root, after the Release builds compare.sh needs):
#   bench/contracts/profile.sh [TOPIC=gate-json] [SECONDS=15] [PORT=19950]
# TOPIC is one of plain-json, gate-json, plain-avro, gate-avro, plain-proto, gate-proto. The perf script output stays in $OUT (default
# /tmp/sharedlog-profile.txt) for bench/contracts/perf_summary.py FILE [self|incl] [N] [FUNCTION], or for its diff mode
# against another run's output (each run's records: the rate it printed times SECONDS).
set -euo pipefail
topic=${1:-gate-json}
seconds=${2:-15}
port=${3:-19950}
out=${OUT:-/tmp/sharedlog-profile.txt}
# The JIT's perf map names managed frames; W^X off keeps the map's addresses valid.
BROKER_ENV="SHAREDLOG_BENCH=1 DOTNET_PerfMapEnabled=1 DOTNET_EnableWriteXorExecute=0"
. bench/contracts/broker.sh
start_broker "$port"
values="$work/values/${topic#*-}.bin"
$load produce --bootstrap "127.0.0.1:$port" --topic "$topic" --partitions 4 --duration 5 --acks all --value-file "$values" --out "$work/lt" > /dev/null 2>&1 # warm-up
drain_uploads
$load produce --bootstrap "127.0.0.1:$port" --topic "$topic" --partitions 4 --duration $((seconds + 4)) --acks all --value-file "$values" --out "$work/lt" > "$work/load.txt" 2>&1 &
load_pid=$!
sleep 2 # past the load tool's start
perf record -F 999 -g -p "$broker" -o "$work/perf.data" -- sleep "$seconds" > /dev/null 2>&1
wait $load_pid
grep -E '^produce:' "$work/load.txt" | tail -1
perf script -i "$work/perf.data" > "$out" 2> /dev/null
python3 bench/contracts/perf_summary.py "$out" incl 40
