#!/usr/bin/env bash
# kcat (librdkafka) against a SharedLog broker: metadata, produce, consume from the beginning, and
# read back exactly what was written. Usage: kcat.sh BOOTSTRAP TOPIC
set -euo pipefail
bootstrap=$1
topic=$2
kcat -b "$bootstrap" -L -J > /dev/null
seq 1 200 | sed 's/^/line-/' | kcat -b "$bootstrap" -P -t "$topic" -z snappy
got=$(kcat -b "$bootstrap" -C -t "$topic" -o beginning -e -q)
want=$(seq 1 200 | sed 's/^/line-/')
if [ "$got" != "$want" ]; then
  echo "kcat read back different records" >&2
  diff <(echo "$want") <(echo "$got") | head -5 >&2
  exit 1
fi
echo "kcat ok: 200 records"
