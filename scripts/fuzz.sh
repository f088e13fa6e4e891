#!/usr/bin/env bash
# Runs every fuzz target (fuzz/fuzz_targets/) for a bounded time with the nightly toolchain and
# cargo-fuzz (installed from crates.io if missing), starting from the seed corpus in the repo
# (fuzz/corpus/<target>/, read only: new inputs go to a scratch directory).
#
#   scripts/fuzz.sh                 every target, 30 s each
#   scripts/fuzz.sh 600             every target, 10 min each
#   scripts/fuzz.sh 60 peer_frames  one target
#
# Prints one line per target (`fuzz: <target> runs=… corpus=… seconds=… crashes=0`) and a
# total; exits 1 if any target crashed (the input is kept in fuzz/artifacts/<target>/: replay
# it with `cargo +nightly fuzz run <target> <file>` and turn it into a regression test), and 3
# if the nightly toolchain is not installed.
set -euo pipefail

SECONDS_PER_TARGET="${1:-30}"
shift || true
cd "$(dirname "$0")/../fuzz"

if ! rustup run nightly rustc --version >/dev/null 2>&1; then
  echo "fuzz: the nightly toolchain is not installed (rustup toolchain install nightly); not run"
  exit 3
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  echo "fuzz: installing cargo-fuzz"
  cargo +nightly install cargo-fuzz --locked --quiet
fi

# Beside the workspace's own build when CARGO_TARGET_DIR is set (CI keeps one target dir),
# else fuzz/target.
if [ -n "${CARGO_TARGET_DIR:-}" ]; then
  target_dir=(--target-dir "$CARGO_TARGET_DIR/fuzz")
else
  target_dir=(--target-dir "$PWD/target")
fi
unset CARGO_TARGET_DIR

targets=("$@")
if [ "${#targets[@]}" -eq 0 ]; then
  mapfile -t targets < <(cargo +nightly fuzz list)
fi

echo "fuzz: building ${#targets[@]} targets (nightly, address sanitizer)"
cargo +nightly fuzz build -O "${target_dir[@]}" >/dev/null

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
crashed=0
total_runs=0
for target in "${targets[@]}"; do
  mkdir -p "$scratch/$target" "corpus/$target"
  log="$scratch/$target.log"
  if cargo +nightly fuzz run -O "${target_dir[@]}" "$target" "$scratch/$target" "corpus/$target" -- \
      -max_total_time="$SECONDS_PER_TARGET" -rss_limit_mb=2048 -timeout=10 \
      -print_final_stats=1 >"$log" 2>&1; then
    result=0
  else
    result=1
    crashed=$((crashed + 1))
  fi
  runs=$(grep -oP 'stat::number_of_executed_units:\s*\K[0-9]+' "$log" | tail -1 || true)
  corpus=$(find "$scratch/$target" "corpus/$target" -type f | wc -l)
  total_runs=$((total_runs + ${runs:-0}))
  echo "fuzz: $target runs=${runs:-0} corpus=$corpus seconds=$SECONDS_PER_TARGET crashes=$result"
  if [ "$result" != 0 ]; then
    grep -E "panicked|ERROR|SUMMARY|Test unit written" "$log" | head -20 || tail -40 "$log"
  fi
done
echo "fuzz: targets=${#targets[@]} runs=$total_runs seconds=$((SECONDS_PER_TARGET * ${#targets[@]})) crashed=$crashed"
[ "$crashed" = 0 ]
