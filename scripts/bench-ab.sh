#!/usr/bin/env bash
# Compares two builds of tuma on this machine by running their `tuma bench` alternately, so a
# shared machine's drift hits both alike. Prints one line per run: the build, the shards, the
# round, the bench's last line and its machine CPU per confirmed transfer.
#
#   scripts/bench-ab.sh OLD_TUMA NEW_TUMA [ROUNDS] [SHARDS...]
#   scripts/bench-ab.sh /tmp/old/tuma target/release/tuma 3 6 64
set -euo pipefail
if [ $# -lt 2 ]; then
  echo "usage: $0 OLD_TUMA NEW_TUMA [ROUNDS] [SHARDS...]" >&2
  exit 2
fi
old=$1 new=$2 rounds=${3:-3}
shift $(( $# < 3 ? $# : 3 ))
shards=("${@:-6}")
out=$(mktemp -d -t tuma-bench-ab-XXXX)
for n in "${shards[@]}"; do
  for round in $(seq 1 "$rounds"); do
    for build in old new; do
      bin=$old
      [ "$build" = new ] && bin=$new
      dir=$out/$build-$n-$round
      line=$("$bin" bench --nodes 3 --duration 20s --warmup 3s --workload transfers \
        --accounts 200 --clients 64 --shards "$n" --out "$dir" 2>&1 | tail -1)
      cpu=$(grep -o '\*\*[0-9]* µs' "$dir/result.md" | tr -d '*' || echo "n/a")
      echo "$build shards=$n round=$round $line cpu=$cpu"
    done
  done
done
echo "results under $out"
