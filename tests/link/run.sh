#!/usr/bin/env bash
# `make install` into a temporary prefix, build the README's example against
# the installed shared library with pkg-config, and send through the inbox.
# Ends with "link: N passed, N failed".
set -u
cd "$(dirname "$0")/../.."
tmp=$(mktemp -d)
inbox=""
trap '[ -n "$inbox" ] && kill $inbox 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"' EXIT
passed=0 failed=0
check() { # name, then a command that must succeed
    local name=$1
    shift
    if "$@" >"$tmp/out" 2>&1; then
        passed=$((passed + 1)); echo "ok   $name"
    else
        failed=$((failed + 1)); echo "FAIL $name"; sed 's/^/    /' "$tmp/out"
    fi
}

check "make install into a prefix" make -s install PREFIX="$tmp/prefix"
check "the shared library exports the API and nothing else" bash -c '
    syms=$(nm -D --defined-only "$0"/prefix/lib/libscalr-email.so | awk "{sub(/@.*/, \"\", \$3); print \$3}")
    echo "$syms" | grep -qx scalr_email_send || { echo "scalr_email_send not exported"; exit 1; }
    other=$(echo "$syms" | grep -v "^scalr_email_" | grep -v "^SCALR_EMAIL_0$" || true)
    [ -z "$other" ] || { echo "unexpected exports: $other"; exit 1; }' "$tmp"
check "the example builds with pkg-config --cflags --libs scalr-email" bash -c '
    export PKG_CONFIG_PATH="$0/prefix/lib/pkgconfig"
    cc -std=c11 -Wall -Wextra -Werror -o "$0/example" tests/link/example.c $(pkg-config --cflags --libs scalr-email)
    ldd "$0/example" | grep -q "$0/prefix/lib/libscalr-email.so" || LD_LIBRARY_PATH="$0/prefix/lib" ldd "$0/example" | grep -q libscalr-email.so' "$tmp"

check "without SMTP_HOST the example says not configured" bash -c '
    out=$(env -u SMTP_HOST LD_LIBRARY_PATH="$0/prefix/lib" "$0/example"; echo "rc=$?")
    echo "$out"; echo "$out" | grep -q "rc=3"' "$tmp"

build/scalr-email inbox --smtp 127.0.0.1:0 --http 127.0.0.1:0 >"$tmp/inbox.out" &
inbox=$!
for _ in $(seq 100); do grep -q '^http:' "$tmp/inbox.out" && break; sleep 0.1; done
smtp=$(sed -n 's/^smtp: //p' "$tmp/inbox.out")
http=$(sed -n 's/^http: //p' "$tmp/inbox.out")
printf 'attached bytes\n' >"$tmp/note.txt"
check "the example sends through the installed library" bash -c '
    LD_LIBRARY_PATH="$0/prefix/lib" SMTP_HOST=127.0.0.1 SMTP_PORT="${1##*:}" SMTP_USE_TLS=false \
        SMTP_FROM="Acme <hello@acme.example>" "$0/example" "$0/note.txt" | grep -q "^sent <"
    /usr/bin/python3 -c "
import json, sys, urllib.request
d = json.load(urllib.request.urlopen(sys.argv[1] + \"/api/v2/messages\"))
assert d[\"total\"] == 1, d[\"total\"]
assert d[\"items\"][0][\"Content\"][\"Headers\"][\"Subject\"] == [\"Your invoice is ready\"]
" "$2"' "$tmp" "$smtp" "$http"

echo "link: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
