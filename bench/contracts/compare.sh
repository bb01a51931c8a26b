#!/usr/bin/env bash
# Contract gate cost: produce throughput of 1 KiB JSON and Avro records to topics with a contract
# (schema + 5 rules + 1 hashed field, see prepare.js) against the same load on topics without one, in
# one broker run. Before every run it waits until the broker has no upload backlog, so a run does not pay
# for the uploads of the one before it, and odd rounds run plain first, even rounds gated first.
#
# Usage (from the repository root, after `dotnet build -c Release` of broker/SharedLog.Broker and
# bench/SharedLog.LoadTest, and `npm ci` in tests/compat for avsc):
#   bench/contracts/compare.sh [ROUNDS=3] [SECONDS=10] [PORT=19900]
# Set BROKER_ENV to pass environment variables to the broker (e.g. BROKER_ENV="DOTNET_gcServer=0"), and
# LOAD_EXTRA to pass more load-tool arguments (e.g. LOAD_EXTRA="--compression lz4"), and WARMUP to change
# the seconds of unmeasured load each topic gets first (default 4). KINDS picks the record formats (default "json avro";
# "proto" is the same record as proto3).
set -euo pipefail
rounds=${1:-3}
seconds=${2:-10}
port=${3:-19900}
. bench/contracts/broker.sh
start_broker "$port"

produce() { # topic seconds -> "records/s records"
  local topic=$1 duration=$2
  $load produce --bootstrap "127.0.0.1:$port" --topic "$topic" --partitions 4 --duration "$duration" --acks all \
    --value-file "$work/values/${topic#*-}.bin" --out "$work/lt" ${LOAD_EXTRA:-} 2>&1 | grep -E '^produce: [0-9,]+ records' | tail -1 \
    | sed -E 's/^produce: ([0-9,]+) records.*= ([0-9,]+) rec\/s.*/\2 \1/' | tr -d ','
}

# The broker's user + system CPU so far, in clock ticks (/proc/PID/stat fields 14 and 15).
broker_ticks() { awk '{print $14 + $15}' "/proc/$broker/stat"; }
ticks_per_second=$(getconf CLK_TCK)
per_record() { awk -v u="$1" -v n="$2" 'BEGIN { printf "%.2f", u / n }'; } # microseconds records -> us/record

kinds=${KINDS:-json avro}
for kind in $kinds; do for topic in "plain-$kind" "gate-$kind"; do produce "$topic" "${WARMUP:-4}" > /dev/null; done; done # warm-up, not counted
declare -A sum cpu_us records
for round in $(seq 1 "$rounds"); do
  for kind in $kinds; do
    order="plain-$kind gate-$kind"
    [ $((round % 2)) -eq 0 ] && order="gate-$kind plain-$kind"
    for topic in $order; do
      drain_uploads
      before=$(broker_ticks)
      read -r rate count < <(produce "$topic" "$seconds")
      used_us=$(( ($(broker_ticks) - before) * 1000000 / ticks_per_second ))
      echo "round $round $topic $rate rec/s, broker CPU $(per_record "$used_us" "$count") us/record"
      sum[$topic]=$(( ${sum[$topic]:-0} + rate ))
      cpu_us[$topic]=$(( ${cpu_us[$topic]:-0} + used_us ))
      records[$topic]=$(( ${records[$topic]:-0} + count ))
    done
  done
done
# Throughput is what the goal is about; broker CPU per record is steadier from hour to hour on a shared VM
# (the load tool shares the cores, so throughput also moves with the load tool's own cost).
for kind in $kinds; do
  plain=$(( sum[plain-$kind] / rounds )); gated=$(( sum[gate-$kind] / rounds ))
  echo "$kind: plain $plain rec/s, gated $gated rec/s, contract cost $(( (plain - gated) * 100 / plain )) %;" \
    "broker CPU $(per_record "${cpu_us[plain-$kind]}" "${records[plain-$kind]}") / $(per_record "${cpu_us[gate-$kind]}" "${records[gate-$kind]}") us/record"
done
