#!/usr/bin/env bash
# The inbox's web tests: the MailHog API through the `mailhog` npm client and
# the UI in Debian's chromium (playwright-core).  Needs node, npm, chromium and
# a built build/scalr-email (or SCALR_EMAIL=...).  Ends with the line
# "inbox-web: N passed, N failed".  Options are passed to run.js:
#   --screenshots docs   refresh docs/inbox-list.png and docs/inbox-message.png
#   --only api|ui|queue|templates|tools|dkim  one suite;  a last argument filters tests by name
set -euo pipefail
cd "$(dirname "$0")"
if [ ! -d node_modules/playwright-core ] || [ ! -d node_modules/mailhog ]; then
    npm ci --no-audit --no-fund --loglevel=error >&2
fi
if [ ! -x "${CHROMIUM:-/usr/bin/chromium}" ]; then
    echo "inbox-web: chromium is missing (apt-get install chromium)" >&2
    echo "inbox-web: 0 passed, 1 failed"
    exit 1
fi
args=()
while [ $# -gt 0 ]; do
    if [ "$1" = --screenshots ] && [ $# -gt 1 ]; then
        args+=(--screenshots "$(cd "$OLDPWD" && mkdir -p "$2" && cd "$2" && pwd)")
        shift 2
    else
        args+=("$1")
        shift
    fi
done
exec node run.js "${args[@]}"
