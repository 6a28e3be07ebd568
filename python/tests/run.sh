#!/usr/bin/env bash
# Build and install scalr_email into throw-away venvs for the default python3
# (a regular install) and Debian's /usr/bin/python3 (an editable install),
# then run python/tests/test_*.py with each against aiosmtpd servers on
# 127.0.0.1 (test_django.py: the Django backend with python3-django;
# test_pytest_plugin.py: pytest runs sample_project/ with mail_inbox).
# Ends with one line "python: N passed, N failed"; exits non-zero on any
# failure.  Nothing is written to the checkout.
set -u

HERE=$(cd "$(dirname "$0")" && pwd)
PKG=$(dirname "$HERE")
ROOT=$(dirname "$PKG")
WORK=$(mktemp -d /tmp/scalr-email-py.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

passed=0 failed=0 skipped=0

# The mail_inbox fixture's tests run `scalr-email inbox`: the checkout's build
# unless the caller names another (they are skipped, and counted so, without).
if [ -z "${SCALR_EMAIL_BIN:-}" ] && [ -x "$ROOT/build/scalr-email" ]; then
    export SCALR_EMAIL_BIN="$ROOT/build/scalr-email"
fi

"$PKG/install-deps.sh" >"$WORK/deps.log" 2>&1 || {
    echo "run.sh: install-deps.sh failed:"; tail -n 20 "$WORK/deps.log"; }

# label, interpreter, pip install mode
INTERPS=("default python3 regular" "debian /usr/bin/python3 editable")

build() {
    local label=$1 py=$2 mode=$3 dir="$WORK/$1"
    mkdir -p "$dir"
    # A private copy of python/, so builds never touch the checkout and the
    # two interpreters never share build/ directories.
    tar -C "$PKG" --exclude=./build --exclude=./csrc --exclude='*.so' \
        --exclude='*.egg-info' --exclude=__pycache__ -cf - . | (mkdir -p "$dir/pkg" &&
        tar -C "$dir/pkg" -xf -) || return 1
    # pip comes from the base interpreter (seen through --system-site-packages).
    "$py" -m venv --without-pip --system-site-packages "$dir/venv" || return 1
    local editable=()
    [ "$mode" = editable ] && editable=(-e)
    SCALR_EMAIL_SRC="$ROOT" "$dir/venv/bin/python" -m pip install -q --no-index \
        --no-build-isolation --disable-pip-version-check "${editable[@]}" "$dir/pkg"
}

# Build both at once (2 cores); the C library is compiled into each.
for spec in "${INTERPS[@]}"; do
    set -- $spec
    if ! command -v "$2" >/dev/null; then
        echo "run.sh: $2 not found"; failed=$((failed + 1)); continue
    fi
    ( build "$1" "$2" "$3" >"$WORK/$1.build.log" 2>&1; echo $? >"$WORK/$1.build.rc" ) &
done
wait

for spec in "${INTERPS[@]}"; do
    set -- $spec
    label=$1 dir="$WORK/$1"
    [ -f "$WORK/$label.build.rc" ] || continue
    if [ "$(cat "$WORK/$label.build.rc")" != 0 ]; then
        echo "== $label ($2): build FAILED"
        tail -n 40 "$WORK/$label.build.log"
        failed=$((failed + 1))
        continue
    fi
    echo "== $label ($2): built and installed ($3 install)"
    py="$dir/venv/bin/python"
    pattern="test_*.py"
    pypath=""
    if ! "$py" -c 'import aiosmtpd' 2>/dev/null; then
        # A pyenv python does not see Debian's dist-packages: expose only
        # aiosmtpd and its pure-Python dependencies to the tests.
        shim="$WORK/$label.shim"
        mkdir -p "$shim"
        # Also Django and pytest (with their pure-Python dependencies) for
        # test_django.py and test_pytest_plugin.py.
        for m in aiosmtpd public attr attrs psycopg typing_extensions.py \
                 django asgiref pytz sqlparse pytest _pytest pluggy iniconfig packaging py py.py; do
            [ -e "/usr/lib/python3/dist-packages/$m" ] &&
                ln -sf "/usr/lib/python3/dist-packages/$m" "$shim/$m"
        done
        pypath="$shim"
        if ! PYTHONPATH="$pypath" "$py" -c 'import aiosmtpd.smtp' 2>/dev/null; then
            echo "run.sh: aiosmtpd not importable by $2: running only the tests without servers"
            pattern="test_api.py"
        fi
    fi
    (cd "$WORK" && PYTHONPATH="$pypath" timeout 300 "$py" "$HERE/runner.py" \
        "$WORK/$label.counts" "$pattern")
    if [ -s "$WORK/$label.counts" ]; then
        read -r p f s <"$WORK/$label.counts"
        passed=$((passed + p)) failed=$((failed + f)) skipped=$((skipped + s))
    else
        echo "run.sh: the $label test run died"
        failed=$((failed + 1))
    fi
done

[ "$skipped" -gt 0 ] && echo "($skipped skipped)"
echo "python: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
