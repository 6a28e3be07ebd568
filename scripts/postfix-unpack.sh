#!/usr/bin/env bash
# Debian's postfix package, downloaded and unpacked (never installed: no daemon on
# port 25, /etc and /usr/sbin/sendmail untouched) into DIR/root, for the tests' relay
# (tests/dkim) and the benchmark's smtp-sink and MTA (bench/run.sh).
#
#     bash scripts/postfix-unpack.sh [DIR]      (default bench/work/postfix)
#
# Idempotent; installs only the shared libraries the binaries link against.
set -euo pipefail
cd "$(dirname "$0")/.."
PF=${1:-bench/work/postfix}
say() { printf '[postfix] %s\n' "$*" >&2; }
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

need=()
for p in libdb5.3 libicu72 libnsl2 libsasl2-2 libssl3; do
    dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
updated=
if [ ${#need[@]} -gt 0 ]; then
    say "apt-get install ${need[*]}"
    $SUDO apt-get update -qq
    updated=1
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
fi
if [ ! -x "$PF/root/usr/sbin/smtp-sink" ] || [ ! -x "$PF/root/usr/lib/postfix/sbin/master" ]; then
    say "downloading and unpacking Debian's postfix package into $PF (not installed)"
    rm -rf "$PF"
    mkdir -p "$PF/deb"
    [ -n "$updated" ] || $SUDO apt-get update -qq
    # apt drops privileges to _apt for downloads; give it a directory it may write.
    chmod 777 "$PF/deb"
    (cd "$PF/deb" && apt-get download -q postfix >&2)
    deb=$(ls "$PF"/deb/postfix_*.deb | head -n1)
    dpkg-deb -x "$deb" "$PF/root.tmp"
    dpkg-deb -f "$deb" Version >"$PF/VERSION"
    mv "$PF/root.tmp" "$PF/root"
fi
missing=$(LD_LIBRARY_PATH=$PF/root/usr/lib/postfix ldd "$PF/root/usr/lib/postfix/sbin/smtpd" \
          "$PF/root/usr/sbin/smtp-sink" | awk '/not found/ {print $1}' | sort -u)
if [ -n "$missing" ]; then
    say "Postfix needs libraries that are not installed: $missing"
    exit 1
fi
getent passwd nobody >/dev/null || { say "no user 'nobody' for Postfix's mail_owner"; exit 1; }
getent group mail >/dev/null || { say "no group 'mail' for Postfix's setgid_group"; exit 1; }
