#!/usr/bin/env bash
# Checks the Prometheus alert rules (deploy/prometheus/tuma-alerts.yml) with promtool: their
# syntax, and their unit tests (tuma-alerts.test.yml). promtool comes from Debian's
# `prometheus` package, installed here if missing (its own service is stopped and disabled:
# only the binary is wanted). The Grafana dashboard and the rules' metric names are checked
# against the code by `tests/tests/metrics_catalogue.rs`.
#
#   scripts/check-monitoring.sh
#
# Exits non-zero when a check fails; exits 3 (and says so) when promtool cannot be had.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=()
if [ "$(id -u)" != 0 ]; then SUDO=(sudo -n); fi

if ! command -v promtool >/dev/null 2>&1; then
  echo "installing promtool (Debian package prometheus)"
  if ! { "${SUDO[@]}" apt-get update -qq &&
         DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -qq --no-install-recommends prometheus >/dev/null; }; then
    echo "promtool could not be installed: the alert rules were not checked" >&2
    exit 3
  fi
  if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    "${SUDO[@]}" systemctl disable --now prometheus.service >/dev/null 2>&1 || true
  fi
  if [ -x /etc/init.d/prometheus ]; then
    "${SUDO[@]}" /etc/init.d/prometheus stop >/dev/null 2>&1 || true
  fi
  "${SUDO[@]}" pkill -x prometheus >/dev/null 2>&1 || true
fi

promtool check rules deploy/prometheus/tuma-alerts.yml
(cd deploy/prometheus && promtool test rules tuma-alerts.test.yml)
