#!/usr/bin/env bash
# An upgrade, by hand: a local cluster made by one build is stopped and started again by another
# on the same data directories; balances, a statement and an answered request id must survive,
# and a new transfer must confirm. Used for the move of the log and history out of sled
# (BENCHMARKS.md): build the older commit in a worktree and pass both binaries. Passed the other
# way round (NEW OLD) it must fail: a build from before the move sees an empty data directory.
#
#   scripts/upgrade-check.sh OLD_TUMA NEW_TUMA
set -uo pipefail
if [ $# -ne 2 ]; then
  echo "usage: $0 OLD_TUMA NEW_TUMA" >&2
  exit 2
fi
old=$1 new=$2
dir=$(mktemp -d -t tuma-upgrade-XXXX)
pid=
up() { # binary, log → the first node's URL
  "$1" cluster up --nodes 3 --data "$dir/data" --demo --plain-http > "$2" 2>&1 &
  pid=$!
  for _ in $(seq 1 120); do grep -q "cluster ready" "$2" && break; sleep 0.5; done
  grep -o "http=http://[0-9.:]*" "$2" | head -1 | cut -d= -f2
}
down() { # stops the cluster and waits for its nodes to exit
  kill "$pid" 2>/dev/null
  for _ in $(seq 1 60); do pgrep -f "tuma node --id .* --data $dir/" > /dev/null || break; sleep 0.5; done
  pkill -9 -f "tuma node --id .* --data $dir/"
  wait 2>/dev/null
}
trap down EXIT
send() { # url, request id → the transfer's answer
  curl -s -X POST "$1/v1/transfers" -H 'content-type: application/json' \
    -d "{\"request_id\":\"$2\",\"kind\":\"send_money\",\"from\":\"254700000001\",\"to\":\"254700000002\",\"amount\":\"10.00\",\"pin\":\"1234\"}"
}
state() { # url → balances of both parties and the payer's statement
  for msisdn in 254700000001 254700000002; do
    curl -s "$1/v1/accounts/$msisdn/balance" -H 'X-Tuma-Pin: 1234'; echo
  done
  curl -s "$1/v1/accounts/254700000001/statement" -H 'X-Tuma-Pin: 1234'; echo
}
url=$(up "$old" "$dir/old.log")
[ -n "$url" ] || { echo "the old build's cluster did not start: $dir/old.log"; exit 1; }
for i in $(seq 1 20); do send "$url" "upgrade-$i" > /dev/null; done
first=$(send "$url" upgrade-1)
state "$url" > "$dir/before"
down
url=$(up "$new" "$dir/new.log")
[ -n "$url" ] || { echo "the new build did not start on the old data: $dir/new.log"; exit 1; }
state "$url" > "$dir/after"
if ! cmp -s "$dir/before" "$dir/after"; then
  echo "FAILED: balances or statement changed across the upgrade"; diff "$dir/before" "$dir/after"; exit 1
fi
again=$(send "$url" upgrade-1)
if [ "$again" != "$first" ]; then
  echo "FAILED: an answered request id got another answer: $first / $again"; exit 1
fi
if ! send "$url" upgrade-new | grep -q '"status":"confirmed"'; then
  echo "FAILED: a new transfer did not confirm"; exit 1
fi
echo "upgrade kept balances, the statement and an answered request id; a new transfer confirmed"
