#!/usr/bin/env bash
# Refresh the inbox's HTML-check data from the npm package `caniemail`
# (the public caniemail.com data, MIT): inbox/web/caniemail.json and its
# licence.  Usage: bash scripts/update-caniemail.sh [VERSION]  (default: latest)
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "caniemail@${1:-latest}" >/dev/null && tar xzf caniemail-*.tgz)
/usr/bin/python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); assert d["data"] and d["nicenames"]["family"]' \
    "$tmp/package/data/caniemail.json"
cp "$tmp/package/data/caniemail.json" inbox/web/caniemail.json
cp "$tmp/package/LICENSE" inbox/web/caniemail-LICENSE.txt
echo "caniemail $(sed -n 's/.*"version": *"\([^"]*\)".*/\1/p' "$tmp/package/package.json" | head -1):" \
     "$(/usr/bin/python3 -c 'import json; d = json.load(open("inbox/web/caniemail.json")); print(len(d["data"]), "features, updated", d["last_update_date"])')"
