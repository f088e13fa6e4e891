#!/usr/bin/env bash
# Checks the deployment examples: the systemd unit (deploy/systemd/tuma.service) with
# `systemd-analyze verify` and its sandboxing with `systemd-analyze security` (exposure must
# stay "OK", at most 2.0), against the binary this checkout built.
#
#   scripts/check-deploy.sh            (after a build: it uses target/debug/tuma)
#
# Exits 3 (and says so) where systemd-analyze is not installed.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v systemd-analyze >/dev/null 2>&1; then
  echo "systemd-analyze is not installed: the systemd unit was not checked" >&2
  exit 3
fi
binary="$(realpath "${CARGO_TARGET_DIR:-target}/debug/tuma")"
[ -x "$binary" ] || { echo "build first: no $binary" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
sed "s#/usr/local/bin/tuma#$binary#g" deploy/systemd/tuma.service > "$work/tuma.service"
systemd-analyze verify "$work/tuma.service"
exposure=$(systemd-analyze security --offline=yes "$work/tuma.service" |
  sed -nE 's/.*Overall exposure level for [^:]*: ([0-9.]+).*/\1/p')
echo "systemd unit: verified; exposure $exposure"
awk -v e="$exposure" 'BEGIN { exit !(e <= 2.0) }' || { echo "exposure $exposure is above 2.0" >&2; exit 1; }
