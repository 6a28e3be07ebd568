#!/usr/bin/env bash
# The main job: build scalr-email, start `scalr-email inbox` (the local mail
# catcher, SMTP on 127.0.0.1:1025 and the web UI on http://127.0.0.1:8025, or
# free ports when those are taken), send a sample message (text, HTML, an
# attachment) with `scalr-email send`, and show what the inbox's API returns.
# The inbox then keeps running until Ctrl-C; `--no-wait` stops it at once.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
make -j"$(nproc)" >/dev/null

free_port() {
    /usr/bin/python3 - "$1" <<'PY'
import socket, sys
for port in (int(sys.argv[1]), 0):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
        print(s.getsockname()[1])
        break
    except OSError:
        pass
    finally:
        s.close()
PY
}
smtp_port=$(free_port 1025)
http_port=$(free_port 8025)

work=$(mktemp -d)
build/scalr-email inbox --smtp "127.0.0.1:$smtp_port" --http "127.0.0.1:$http_port" >"$work/inbox.out" &
inbox=$!
trap 'kill $inbox 2>/dev/null; wait $inbox 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 100); do
    grep -q '^http:' "$work/inbox.out" && break
    kill -0 $inbox || { echo "the inbox did not start"; exit 1; }
    sleep 0.1
done
cat "$work/inbox.out"

printf 'Invoice 2026-117\nAmount: 42.00 EUR\n' >"$work/invoice-117.txt"
echo
echo "== scalr-email send -v (to the local inbox, SMTP_USE_TLS=false)"
SMTP_HOST=127.0.0.1 SMTP_PORT=$smtp_port SMTP_USE_TLS=false SMTP_FROM='Acme Billing <billing@acme.test>' \
    build/scalr-email send -v --to 'Zoë Example <zoe@example.test>' \
    --subject 'Your invoice is ready ✅' \
    --body $'Hello Zoë,\n\nyour invoice 2026-117 is attached.\n' \
    --html '<p>Hello Zoë,</p><p>your invoice <b>2026-117</b> is attached.</p>' \
    --attach "$work/invoice-117.txt"

echo
echo "== GET http://127.0.0.1:$http_port/api/v2/messages (MailHog-compatible API)"
/usr/bin/python3 - "$http_port" <<'PY'
import json, sys, urllib.request
from email.header import decode_header, make_header

def dec(v):
    return str(make_header(decode_header(v)))

with urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/api/v2/messages") as r:
    data = json.load(r)
print(f"total: {data['total']}")
for m in data["items"]:
    h = m["Content"]["Headers"]
    print(f"  #{m['ID']}  from {dec(h['From'][0])}  to {dec(h['To'][0])}  "
          f"subject {dec(h['Subject'][0])!r}  {m['Content']['Size']} bytes")
    print(f"  raw Subject header: {h['Subject'][0]}")
PY

echo
echo "Open http://127.0.0.1:$http_port in a browser to see the message."
if [ "${1:-}" = --no-wait ]; then
    exit 0
fi
echo "The inbox keeps running; press Ctrl-C to stop it."
wait $inbox
