#!/usr/bin/env bash
# Installs OpenSSL's development headers and pkg-config (Debian packages `libssl-dev` and
# `pkg-config`), which the Rust `mpesa` client library needs: the business API's
# compatibility test (`cargo test -p tuma-tests --features daraja-client --test
# daraja_client`) drives every endpoint with it. Nothing else in Tuma links OpenSSL.
#
#   scripts/install-openssl-dev.sh     install if missing, then print the version found
#
# Idempotent; exits non-zero if the install fails.
set -euo pipefail

SUDO=()
if [ "$(id -u)" != 0 ]; then SUDO=(sudo -n); fi

installed() {
  [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" = "install ok installed" ]
}

missing=()
for package in libssl-dev pkg-config; do
  installed "$package" || missing+=("$package")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "installing ${missing[*]}"
  "${SUDO[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null
fi
echo "openssl $(pkg-config --modversion openssl)"
