#!/usr/bin/env bash
# The main job: build scalr-email, start a local catcher on 127.0.0.1,
# send a sample message (text, HTML, an attachment) with `scalr-email send`,
# and show what arrived.  Stops the catcher when done.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
make -j"$(nproc)" >/dev/null

work=$(mktemp -d)
port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
/usr/bin/python3 scripts/catcher.py "$port" "$work" &
catcher=$!
trap 'kill $catcher 2>/dev/null; wait $catcher 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 50); do
    /usr/bin/python3 -c "import socket; socket.create_connection(('127.0.0.1',$port),0.2)" 2>/dev/null && break
    sleep 0.1
done

printf 'Invoice 2026-117\nAmount: 42.00 EUR\n' >"$work/invoice.txt"
echo "== scalr-email send (local catcher, SMTP_USE_TLS=false)"
SMTP_HOST=127.0.0.1 SMTP_PORT=$port SMTP_USE_TLS=false SMTP_FROM='Acme <hello@acme.test>' \
    build/scalr-email send -v --to 'Zoë Example <zoe@example.test>' \
    --subject 'Your invoice is ready ✅' \
    --body $'Hello Zoë,\n\nyour invoice is attached.\n' \
    --html '<p>Hello Zoë,</p><p>your invoice is <b>attached</b>.</p>' \
    --attach "$work/invoice.txt"

echo "== what the catcher received"
/usr/bin/python3 - "$work/1.eml" <<'PY'
import email, email.policy, sys
m = email.message_from_bytes(open(sys.argv[1], "rb").read(), policy=email.policy.default)
for h in ("From", "To", "Subject", "Date", "Message-ID"):
    print(f"{h}: {m[h]}")
print("text:", m.get_body(("plain",)).get_content().strip())
print("html:", m.get_body(("html",)).get_content().strip())
for a in m.iter_attachments():
    print(f"attachment: {a.get_filename()} ({a.get_content_type()}, {len(a.get_content())} bytes)")
PY
