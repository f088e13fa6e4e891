#!/usr/bin/env bash
# A shard with millions of finished transfers in its history gets a new replica, and the move
# finishes (issue 11's acceptance; figures in BENCHMARKS.md).
#
#   scripts/history-move.sh [SECONDS_OF_TRANSFERS] [MIN_HISTORY_ROWS]
#
# With MIN_HISTORY_ROWS, the transfers go on in 120 s rounds until the shard's history holds that
# many rows (SECONDS_OF_TRANSFERS is then the most it waits); issue 11's acceptance is
# `scripts/history-move.sh 3600 4000000` (2,000,000 transfers: a row for each party).
#
# Starts `tuma cluster up --nodes 3 --shards 1 --idempotency-window 60s` (WINDOW=…), drives same-shard transfers into its one shard
# with `tuma bench --target` for SECONDS_OF_TRANSFERS (default 900), then a fourth node joins and
# node 3 is drained, so the shard's replica moves to node 4: a snapshot of the checkpoint and the
# whole history. Prints how long the move took and the history rows on the new replica, and
# fails unless they match the leader's and number at least MIN_HISTORY_ROWS (default 0).
# Needs a release build (`cargo build --release`) and curl; everything runs on loopback.
set -euo pipefail
seconds=${1:-900}
min_rows=${2:-0}
tuma=${TUMA:-./target/release/tuma}
dir=$(mktemp -d /tmp/tuma-history-move.XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ "${KEEP:-0}" != 1 ]; then rm -rf "$dir"; fi
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
shard_field() { # shard_field URL NAME: shard 0's NAME in the node's status (empty if none yet)
  curl -s "$1/admin/v1/cluster" -H "Authorization: Bearer $token" | python3 -c '
import json, sys
try:
    shards = json.load(sys.stdin).get("shards", [])
except ValueError:
    shards = []
print(next((str(s.get(sys.argv[1], "")) for s in shards if s.get("shard") == 0), ""))
' "$2" || true
}

# `tuma bench --target` authenticates with the harness's admin token.
"$tuma" cluster up --plain-http --nodes 3 --shards 1 --data "$dir" --admin-token chaos-harness-admin-token \
  --idempotency-window "${WINDOW:-60s}" \
  >"$dir/up.log" 2>&1 &
pids+=($!)
for _ in $(seq 120); do grep -q "cluster ready" "$dir/up.log" && break; sleep 1; done
grep -q "cluster ready" "$dir/up.log" || { cat "$dir/up.log"; exit 1; }
token=$(cat "$dir/admin-token")
mapfile -t ports < <(grep -A4 '^http_ports' "$dir/cluster.toml" | grep -o '[0-9]\{2,\}')
urls="http://127.0.0.1:${ports[0]},http://127.0.0.1:${ports[1]},http://127.0.0.1:${ports[2]}"
first="http://127.0.0.1:${ports[0]}"
echo "cluster up in $dir ($urls); transfers for ${seconds}s"

loaded_from=$(date +%s)
round=0
while true; do
  left=$(( seconds - ($(date +%s) - loaded_from) ))
  chunk=$(( min_rows > 0 && left > 120 ? 120 : left ))
  [ "$chunk" -ge 1 ] || break
  round=$((round + 1))
  # The first round registers and funds the accounts; each round uses its own request ids.
  setup=(); [ "$round" -gt 1 ] && setup=(--skip-setup)
  "$tuma" bench --target "$urls" --duration "${chunk}s" --warmup 1s --accounts 2000 \
    --clients 64 --seed "$round" "${setup[@]}" --out "$dir/bench-$round" | tail -n 1
  rows=$(shard_field "$first" history_rows)
  echo "after $(( $(date +%s) - loaded_from ))s: ${rows:-?} history rows"
  if [ "$min_rows" -le 0 ] || [ "${rows:-0}" -ge "$min_rows" ]; then break; fi
done

leader_rows=$(shard_field "$first" history_rows)
echo "history rows in the shard: $leader_rows"

peer=$(free_port); http=$(free_port)
"$tuma" node --join "$first" --data "$dir/node-4" --listen-peer "127.0.0.1:$peer" \
  --listen-http "127.0.0.1:$http" --cluster-secret-file "$dir/cluster-secret" \
  --admin-token "$token" >"$dir/node-4.log" 2>&1 &
pids+=($!)
node4=$!
for _ in $(seq 60); do curl -sf "http://127.0.0.1:$http/health" >/dev/null && break; sleep 1; done

started=$(date +%s)
"$tuma" ctl --node "$first" --admin-token "$token" members remove 3
while true; do
  members=$(curl -s "$first/admin/v1/members" -H "Authorization: Bearer $token" || true)
  applied=$(shard_field "http://127.0.0.1:$http" applied_index)
  if grep -q '"moves":\[\]' <<<"$members" && [ -n "$applied" ] && [ "$applied" -gt 0 ]; then
    break
  fi
  if [ $(( $(date +%s) - started )) -gt 3600 ]; then
    echo "the move did not finish within an hour"; exit 1
  fi
  sleep 2
done
elapsed=$(( $(date +%s) - started ))
new_rows=$(shard_field "http://127.0.0.1:$http" history_rows)
bytes=$(grep -o 'bytes=[0-9]*' "$dir/node-4.log" | tail -n 1 || true)
peak=$(awk '/^VmHWM/ { printf "%d MiB", $2 / 1024 }' "/proc/$node4/status" 2>/dev/null || true)
echo "move finished in ${elapsed}s: node 4 holds the shard with $new_rows history rows (leader: $leader_rows); installed snapshot $bytes; node 4's peak resident memory $peak"
if [ "$new_rows" -ne "$leader_rows" ]; then
  echo "node 4's history differs from the leader's"; exit 1
fi
if [ "$new_rows" -lt "$min_rows" ]; then
  echo "fewer than $min_rows history rows: run longer"; exit 1
fi
