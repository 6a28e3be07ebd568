#!/usr/bin/env bash
# Make a self-contained copy of the Python package, with the C library's
# sources vendored in csrc/, e.g. for an app's packages/email-py:
#
#     python/export.sh /path/to/app/packages/email-py
#
# The copy builds with `pip install --no-build-isolation <dir>` anywhere
# (gcc, Python headers and libssl-dev needed; no package index).
set -euo pipefail

[ $# -eq 1 ] || { echo "usage: $0 DEST" >&2; exit 2; }
PKG=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$PKG")
DEST=$1

mkdir -p "$DEST"
tar -C "$PKG" --exclude=./.gitignore --exclude=./build --exclude=./csrc --exclude=./dist \
    --exclude='*.so' --exclude='*.egg-info' --exclude=__pycache__ -cf - . | tar -C "$DEST" -xf -
# The copy keeps its vendored sources under version control.
grep -v "^/csrc/\$" "$PKG/.gitignore" >"$DEST/.gitignore"
rm -rf "$DEST/csrc"
mkdir -p "$DEST/csrc"
(cd "$ROOT" && find include src \( -name '*.c' -o -name '*.h' \) -print0 |
    tar --null -T - -cf -) | tar -C "$DEST/csrc" -xf -
echo "exported scalr_email to $DEST (C library in $DEST/csrc)"
