#!/usr/bin/env bash
# Install what building and testing the scalr_email Python package needs.
# Idempotent: installs only what is missing, runs `apt-get update` at most
# once, and never touches an index other than Debian's.
set -euo pipefail

pkgs=(python3-dev python3-pip python3-venv python3-setuptools python3-wheel python3-wheel-whl
      libssl-dev libsqlite3-dev libpq-dev libcurl4-openssl-dev libjansson-dev python3-aiosmtpd python3-psycopg gcc
      python3-django python3-pytest)

missing=()
for p in "${pkgs[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done

SUDO=""
if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null; then
    SUDO="sudo"
fi

if [ "${#missing[@]}" -gt 0 ]; then
    echo "install-deps: apt-get install ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null
fi

# The default python3 (e.g. a pyenv build) may lack the `wheel` module that
# setuptools needs for `pip install --no-build-isolation`.  Debian ships a
# wheel of it (python3-wheel-whl); install that offline.
for py in python3 /usr/bin/python3; do
    command -v "$py" >/dev/null || continue
    if ! "$py" -c 'import wheel' 2>/dev/null; then
        whl=$(ls /usr/share/python-wheels/wheel-*.whl 2>/dev/null | head -n1 || true)
        if [ -z "$whl" ]; then
            echo "install-deps: no wheel-*.whl in /usr/share/python-wheels" >&2
            exit 1
        fi
        echo "install-deps: installing $(basename "$whl") for $py"
        extra=()
        if "$py" -m pip install --help 2>/dev/null | grep -q -- --break-system-packages; then
            # Only Debian's own python is "externally managed".
            [ "$py" = /usr/bin/python3 ] && extra=(--break-system-packages)
        fi
        "$py" -m pip install -q --no-index "${extra[@]}" "$whl"
    fi
done
echo "install-deps: ok"
