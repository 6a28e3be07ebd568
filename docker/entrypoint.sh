#!/bin/sh
# The inbox container's entrypoint: `scalr-email inbox` listening on all
# interfaces (1025 SMTP, 8025 web), answering the compose service names
# given in INBOX_ALLOW_HOSTS, with any extra arguments passed through.
#   entrypoint.sh [inbox options...]   run the inbox (exec: it gets SIGTERM)
#   entrypoint.sh health               exit 0 when the web side answers
# Environment: INBOX_SMTP (0.0.0.0:1025), INBOX_HTTP (0.0.0.0:8025),
# INBOX_ALLOW_HOSTS ("mail mailhog", space-separated), INBOX_DB (a SQLite
# file; default: in memory), INBOX_BIN (scalr-email).
set -eu
set -f # host names are words, never globs
bin=${INBOX_BIN:-scalr-email}
http=${INBOX_HTTP:-0.0.0.0:8025}

if [ "${1:-}" = health ]; then
    # No curl in the image: bash's /dev/tcp, one request, 5 s at most.
    port=${http##*:}
    exec timeout 5 bash -c '
        exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
        printf "GET /api/v2/messages?limit=1 HTTP/1.0\r\nHost: localhost\r\n\r\n" >&3
        IFS= read -r status <&3 || exit 1
        case $status in "HTTP/1."?" 200 "*) exit 0 ;; *) exit 1 ;; esac
    ' health "$port" 2>/dev/null
fi

set -- --smtp "${INBOX_SMTP:-0.0.0.0:1025}" --http "$http" "$@"
for h in ${INBOX_ALLOW_HOSTS-mail mailhog}; do
    set -- "$@" --allow-host "$h"
done
if [ -n "${INBOX_DB:-}" ]; then
    set -- "$@" --db "$INBOX_DB"
fi
exec "$bin" inbox "$@"
