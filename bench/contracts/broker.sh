# Sourced by the scripts in bench/contracts: starts one broker on PORT (PORT+1 HTTP, PORT+2 registry) with a fresh data
# directory, stops it and removes the directory on exit, and prepares the gate benchmark's schemas, contracts and
# records (prepare.js). Sets: work, broker, http, registry, sl (the broker's command), load (the load tool's command),
# avro_bytes and json_bytes (the prepared values' sizes). BROKER_ENV passes environment variables to the broker.
start_broker() {
  local port=$1
  http=$((port + 1))
  registry=$((port + 2))
  work=$(mktemp -d)
  sl="dotnet broker/SharedLog.Broker/bin/Release/net10.0/SharedLog.Broker.dll"
  load="dotnet bench/SharedLog.LoadTest/bin/Release/net10.0/SharedLog.LoadTest.dll"
  env ${BROKER_ENV:-SHAREDLOG_BENCH=1} $sl --port "$port" --http-port "$http" --registry-port "$registry" \
    --data-dir "$work/data" > "$work/broker.log" 2>&1 &
  broker=$!
  trap 'kill -TERM $broker 2>/dev/null; wait $broker 2>/dev/null; rm -rf "$work"' EXIT
  for _ in $(seq 1 150); do curl -sf -o /dev/null "http://127.0.0.1:$http/health" && break; sleep 0.2; done
  local prepared
  prepared=$(node bench/contracts/prepare.js "http://127.0.0.1:$registry" "http://127.0.0.1:$http" "$work/values")
  avro_bytes=$(sed -E 's/^avro id [0-9]+ \(([0-9]+) bytes\).*/\1/' <<< "$prepared")
  json_bytes=$(sed -E 's/.*json id [0-9]+ \(([0-9]+) bytes\).*/\1/' <<< "$prepared")
}

# Waits until the broker's upload backlog is under 1 MiB, so a run does not pay for the uploads of the one before it.
drain_uploads() {
  for _ in $(seq 1 300); do
    pending=$(curl -s "http://127.0.0.1:$http/metrics" | awk '/^sharedlog_upload_pending_bytes/ {print $2}')
    [ "${pending:-0}" -lt 1048576 ] && return
    sleep 0.2
  done
  echo "upload backlog did not drain within 60 s" >&2
}
