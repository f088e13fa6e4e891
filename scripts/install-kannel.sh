#!/usr/bin/env bash
# Installs Kannel (Debian packages `kannel` and `kannel-extras`) for the SMS channel's
# end-to-end test, and makes sure the package's own `kannel` service is neither left
# running nor enabled: the test starts its own bearerbox/smsbox/fakesmsc as the calling
# user with its own config (see scripts/kannel/NOTES.md).
#
#   scripts/install-kannel.sh        install if missing, then print the binary paths
#
# Idempotent: when both packages are already installed it only re-checks the service
# and prints the paths. Exits non-zero if the install fails or a binary is missing.
set -euo pipefail

SUDO=()
if [ "$(id -u)" != 0 ]; then SUDO=(sudo -n); fi

installed() {
  [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" = "install ok installed" ]
}

# Stops and disables the Debian package's kannel service (sysv script + systemd unit),
# and kills any bearerbox/smsbox/wapbox it started, by the pid files it wrote.
disable_service() {
  if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    "${SUDO[@]}" systemctl stop kannel.service >/dev/null 2>&1 || true
    "${SUDO[@]}" systemctl disable kannel.service >/dev/null 2>&1 || true
  fi
  if [ -x /etc/init.d/kannel ]; then
    "${SUDO[@]}" /etc/init.d/kannel stop >/dev/null 2>&1 || true
  fi
  if command -v update-rc.d >/dev/null 2>&1 && [ -e /etc/init.d/kannel ]; then
    "${SUDO[@]}" update-rc.d kannel disable >/dev/null 2>&1 || true
  fi
  # The init script's pid files, in case `stop` did not work (no start-stop-daemon etc.).
  local pf pid
  for pf in /var/run/kannel/kannel_bearerbox.pid /var/run/kannel/kannel_smsbox.pid \
            /var/run/kannel/kannel_wapbox.pid; do
    [ -r "$pf" ] || continue
    pid=$(cat "$pf" 2>/dev/null || true)
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
      "${SUDO[@]}" kill "$pid" 2>/dev/null || true
    fi
  done
  # Belt and braces: keep the init script from starting any box at boot.
  if [ -f /etc/default/kannel ]; then
    "${SUDO[@]}" sed -i -E 's/^(START_(WAPBOX|SMSBOX)=.*)$/#\1/' /etc/default/kannel || true
  fi
}

if installed kannel && installed kannel-extras; then
  echo "kannel and kannel-extras already installed" >&2
else
  echo "installing kannel and kannel-extras from the Debian packages" >&2
  export DEBIAN_FRONTEND=noninteractive
  # A policy-rc.d that forbids starting services, so that the postinst does not start
  # the package's bearerbox/wapbox as a system service. Only ours, removed afterwards.
  policy=/usr/sbin/policy-rc.d
  own_policy=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | "${SUDO[@]}" tee "$policy" >/dev/null
    "${SUDO[@]}" chmod 755 "$policy"
    own_policy=1
  fi
  cleanup() { if [ "$own_policy" = 1 ]; then "${SUDO[@]}" rm -f "$policy"; fi; }
  trap cleanup EXIT
  # An `apt-get update` only when the package lists do not know kannel yet.
  if ! apt-cache show kannel-extras >/dev/null 2>&1; then
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
  fi
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
    kannel kannel-extras >&2
  cleanup
  trap - EXIT
fi

disable_service

find_bin() {
  # $1 = binary name, $2 = package that ships it
  local p
  p=$(command -v "$1" 2>/dev/null || true)
  if [ -z "$p" ]; then
    p=$(dpkg -L "$2" 2>/dev/null | grep -E "/$1\$" | head -n 1 || true)
  fi
  if [ -z "$p" ] || [ ! -x "$p" ]; then
    echo "error: $1 not found (package $2)" >&2
    exit 1
  fi
  echo "$p"
}

echo "bearerbox=$(find_bin bearerbox kannel)"
echo "smsbox=$(find_bin smsbox kannel)"
echo "fakesmsc=$(find_bin fakesmsc kannel-extras)"
