#!/bin/bash
# The benchmark of issue 6 (and issue 4 item 7), one command, from the repository root:
#
#     bash bench/run.sh
#
# Installs what it needs (Debian packages with apt-get only when missing; Postfix's
# package is only downloaded and unpacked into bench/work/, never installed; npm
# packages into bench/node/ from its package-lock.json), builds build/scalr-email
# with make when it is missing, runs every contender against local sinks on
# 127.0.0.1, stops every server it started, and writes bench/RESULTS.md.
#
# SCALR_EMAIL_BIN   the binary to measure (default build/scalr-email)
# INBOX_BIN         the binary whose `inbox` is measured (default: SCALR_EMAIL_BIN if it has
#                   one, else `make INBOX=1 BUILD=bench/work/build-inbox`)
# BENCH_SCALE       multiplies every message count (default 1; 0.1 for a quick try)
# BENCH_DELAY_MS    the delay proxy's delay each way (default 25)
# BENCH_REPEAT      throughput rows keep the fastest of this many runs (default 2)
# SCALR_EMAIL_LIB   the shared library driven through ctypes (default: beside the binary)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
WORK=${BENCH_WORK:-$ROOT/bench/work}
export BENCH_WORK=$WORK
mkdir -p "$WORK"

say() { printf '[bench] %s\n' "$*" >&2; }

# Whatever happens, no server started by this run outlives it: bench.py stops its
# own; this catches anything left in the process groups it made.
BENCH_PID=
cleanup() {
    if [ -n "$BENCH_PID" ] && kill -0 "$BENCH_PID" 2>/dev/null; then
        kill -TERM "$BENCH_PID" 2>/dev/null || true
        wait "$BENCH_PID" 2>/dev/null || true
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

# --- Debian packages, only the missing ones --------------------------------------------
need=()
have_cmd() { command -v "$1" >/dev/null 2>&1; }
[ -x /usr/bin/python3 ] || need+=(python3)
have_cmd node || need+=(nodejs)
have_cmd npm || need+=(npm)
have_cmd openssl || need+=(openssl)
[ -x /usr/bin/time ] || need+=(time)
[ -x /usr/bin/msmtp ] || need+=(msmtp)      # sendmail mode's comparison
if [ -z "${SCALR_EMAIL_BIN:-}" ] && [ ! -x build/scalr-email ]; then
    have_cmd cc || need+=(gcc)
    have_cmd make || need+=(make)
    have_cmd pkg-config || need+=(pkg-config)
    dpkg -s libssl-dev >/dev/null 2>&1 || need+=(libssl-dev)
fi
if [ -z "${INBOX_BIN:-}" ] && [ -d inbox ]; then      # for `make INBOX=1` if needed below
    for p in gcc make pkg-config libssl-dev libsqlite3-dev libmicrohttpd-dev libjansson-dev; do
        dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
    done
fi
# The template benchmark's reference engines (bench/template_bench.py).
for p in g++ libjansson-dev libmstch-dev libkainjow-mustache-dev python3-pystache; do
    dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
    say "apt-get install ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >&2
fi

# --- Postfix, unpacked (smtp-sink, smtp-source, and the MTA run from the tree) ----------
PF=$WORK/postfix
bash scripts/postfix-unpack.sh "$PF"

# --- npm packages: nodemailer and maildev, exactly as locked ----------------------------
if [ ! -d bench/node/node_modules/nodemailer ] || [ ! -d bench/node/node_modules/maildev ] ||
   [ bench/node/package-lock.json -nt bench/node/node_modules/.package-lock.json ]; then
    say "npm ci in bench/node"
    (cd bench/node && npm ci --no-audit --no-fund --loglevel=error >&2)
fi

# --- the binary to measure --------------------------------------------------------------
if [ -z "${SCALR_EMAIL_BIN:-}" ] && [ ! -x build/scalr-email ]; then
    say "building build/scalr-email"
    if [ -d inbox ]; then
        make INBOX=1 >&2 || make >&2
    else
        make >&2
    fi
fi
export SCALR_EMAIL_BIN=${SCALR_EMAIL_BIN:-$ROOT/build/scalr-email}
[ -x "$SCALR_EMAIL_BIN" ] || { say "no binary at $SCALR_EMAIL_BIN"; exit 1; }
# The inbox: the measured binary's own `inbox` command, else one built with INBOX=1 into
# bench/work/build-inbox; when that fails too, RESULTS.md says the inbox was not measured.
if [ -z "${INBOX_BIN:-}" ]; then
    if "$SCALR_EMAIL_BIN" inbox --help >/dev/null 2>&1; then
        INBOX_BIN=$SCALR_EMAIL_BIN
    elif [ -d inbox ]; then
        ib=$WORK/build-inbox
        say "building an inbox-enabled binary into $ib (log: $WORK/build-inbox.log)"
        if make INBOX=1 BUILD="$ib" "$ib/scalr-email" > "$WORK/build-inbox.log" 2>&1 &&
           "$ib/scalr-email" inbox --help >/dev/null 2>&1; then
            INBOX_BIN=$ib/scalr-email
        else
            say "the inbox does not build; it will be reported as not measured"
        fi
    fi
fi
export INBOX_BIN=${INBOX_BIN:-$SCALR_EMAIL_BIN}

# --- the measures -----------------------------------------------------------------------
say "running (about 10 minutes at BENCH_SCALE=1); logs in $WORK/logs"
/usr/bin/python3 bench/bench.py &
BENCH_PID=$!
rc=0
wait "$BENCH_PID" || rc=$?
BENCH_PID=
[ "$rc" -eq 0 ] && say "done: bench/RESULTS.md"
exit "$rc"
