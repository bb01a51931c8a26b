#!/usr/bin/env bash
# SharedLog's one test command: installs what the tests need, checks formatting, builds, and runs
# every test. Works on a fresh Debian 12 machine that has the .NET 10 SDK; CI runs exactly this.
set -euo pipefail
cd "$(dirname "$0")"
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1

# System packages the tests use: third-party Kafka clients driven by tests/compat.
APT_PACKAGES=(kcat python3-kafka python3-confluent-kafka python3-protobuf python3-requests golang-go golang-github-shopify-sarama-dev)
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
# Node.js and npm usually come with the machine; only a machine without them gets Debian's.
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
fi

# JavaScript client for the compat tests and the s3rver S3 server for the storage tests (pinned in
# tests/compat and tests/tools package-lock.json files).
if [ ! -d tests/compat/node_modules/kafkajs ] || [ ! -d tests/compat/node_modules/@platformatic/kafka ]; then
  npm ci --prefix tests/compat --no-audit --no-fund --loglevel=error
fi
if [ ! -d tests/tools/node_modules/s3rver ]; then
  npm ci --prefix tests/tools --no-audit --no-fund --loglevel=error
fi

if [ ! -d ../shared/kafka-protocol ]; then
  echo "note: ../shared/kafka-protocol not found; spec-driven tests will be reported as not run (CI=true makes that a failure)."
fi

dotnet restore SharedLogBroker.sln
dotnet format SharedLogBroker.sln --verify-no-changes --no-restore --exclude protocol/SharedLog.Protocol/Generated
dotnet build SharedLogBroker.sln -c Release --no-restore

log=$(mktemp)
set +e
dotnet test SharedLogBroker.sln -c Release --no-build 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e

# One closing line for humans and CI: totals over every test project.
passed=$(grep -Eo 'Passed: +[0-9]+' "$log" | awk '{s+=$2} END {print s+0}')
failed=$(grep -Eo 'Failed: +[0-9]+' "$log" | awk '{s+=$2} END {print s+0}')
skipped=$(grep -Eo 'Skipped: +[0-9]+' "$log" | awk '{s+=$2} END {print s+0}')
rm -f "$log"
echo "${passed} passed, ${failed} failed, ${skipped} skipped"
if [ "$status" -ne 0 ] || [ "$failed" -ne 0 ] || [ "$passed" -eq 0 ]; then
  exit 1
fi
