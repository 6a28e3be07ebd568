#!/usr/bin/env bash
# Install what scalr-email needs to build and test, from Debian's packages.
# Idempotent: asks apt only when something is missing.  Runs as root (or sudo).
set -euo pipefail

pkgs=(gcc make pkg-config libssl-dev libidn2-dev libsqlite3-dev sqlite3 libmicrohttpd-dev libjansson-dev libcurl4-openssl-dev
      openssl ca-certificates python3 python3-aiosmtpd
      libpq-dev postgresql
      libcurl4-openssl-dev # OAuth2: the refresh-token grant over HTTPS
      iproute2 util-linux # ip and unshare: the inbox test of a non-loopback client
      dnsmasq-base # the DNS server of the doctor and dkim suites
      python3-dkim opendkim # DKIM: the verifiers our signatures must satisfy (tests/dkim)
      # the sendmail suite's real callers, and msmtp to compare with
      php-cli git-email libmailtools-perl msmtp s-nail time
      w3m python3-pystache # templates: the derived text part and a reference engine
      microsocks tinyproxy # real SOCKS5 and HTTP CONNECT proxies for tests/message
      python3-django python3-pytest) # the Django backend and the mail_inbox fixture (python/tests)
pkgs+=("$@")
# node and npm (the inbox's web tests, the template tests' mustache.js): Debian's packages only
# when there is no node at all; a node from elsewhere (NodeSource's bundles npm) is kept.
command -v npm >/dev/null 2>&1 || pkgs+=(nodejs npm)

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
