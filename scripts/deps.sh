#!/usr/bin/env bash
# Install what scalr-email needs to build and test, from Debian's packages.
# Idempotent: asks apt only when something is missing.  Runs as root (or sudo).
set -euo pipefail

pkgs=(gcc make pkg-config libssl-dev libidn2-dev libsqlite3-dev sqlite3 libmicrohttpd-dev libjansson-dev
      openssl ca-certificates python3 python3-aiosmtpd
      libpq-dev postgresql
      iproute2 util-linux  # ip and unshare: the inbox test of a non-loopback client
      python3-dkim opendkim  # DKIM: the verifiers our signatures must satisfy (tests/dkim)
      dnsmasq-base)          # a real DNS server for `dkim verify --dns` (tests/dkim)
pkgs+=("$@")

missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "installing: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
