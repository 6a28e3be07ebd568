#!/usr/bin/env bash
# Build the libFuzzer targets into build-fuzz/ and run each for a while.
#
#   bash fuzz/run.sh [SECONDS] [TARGET...]     (default: 30 s, every target)
#
# SECONDS 0 only replays the corpus.  FUZZ_JOBS limits how many targets are
# built and run at once (default: the number of CPUs); FUZZ_CC picks clang.
#
# A target passes when it runs its time without a crash, a leak, a timeout or
# a broken invariant.  The committed corpus (fuzz/corpus/<target>/) is copied
# to a temporary directory first and never modified.  A failing input is kept
# as build-fuzz/artifacts/<target>-crash-*; reproduce it with
#   build-fuzz/<target> build-fuzz/artifacts/<target>-crash-...
# Needs clang with libFuzzer (Debian: clang, libclang-rt-dev), OpenSSL,
# libidn2, and for the inbox targets jansson.  The last line is always
# "fuzz: N passed, N failed".
set -u

ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT="$ROOT/build-fuzz"
SECONDS_EACH=${1:-30}
if [ $# -gt 0 ]; then
    shift
fi
CC=${FUZZ_CC:-clang}
JOBS=${FUZZ_JOBS:-$(nproc 2>/dev/null || echo 2)}

case "$SECONDS_EACH" in
'' | *[!0-9]*)
    echo "usage: bash fuzz/run.sh [SECONDS] [TARGET...]" >&2
    echo "fuzz: 0 passed, 1 failed"
    exit 2
    ;;
esac

# shellcheck disable=SC2054 # the commas belong to -fsanitize=
CFLAGS=(-std=c11 -g -O1 -fno-omit-frame-pointer -Wall -Wextra -Wshadow -Wstrict-prototypes
    -Wformat=2 -Wvla -D_DEFAULT_SOURCE -D_POSIX_C_SOURCE=200809L
    -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
    -I"$ROOT/include" -I"$ROOT/src" -I"$ROOT/inbox")
LIBS=(-lssl -lcrypto -lidn2 -lpthread)

# target: sources (relative to the root) | extra libraries | -max_len
spec() {
    case "$1" in
    fuzz_reply) echo "src/smtp/reply.c src/util/buf.c||4096" ;;
    fuzz_engine)
        echo "src/smtp/engine.c src/smtp/ehlo.c src/smtp/auth.c src/smtp/mail.c src/smtp/reply.c" \
            "src/util/buf.c src/error.c||4096"
        ;;
    fuzz_oauth)
        echo "src/smtp/engine.c src/smtp/ehlo.c src/smtp/auth.c src/smtp/mail.c src/smtp/reply.c" \
            "src/util/buf.c src/error.c||4096"
        ;;
    fuzz_address) echo "src/mime/address.c src/mime/encode.c src/util/buf.c||512" ;;
    fuzz_compose)
        echo "src/mime/compose.c src/mime/address.c src/mime/encode.c src/mime/mimetypes.c" \
            "src/util/buf.c src/error.c||8192"
        ;;
    fuzz_dotenv) echo "src/config.c src/util/buf.c src/error.c||4096" ;;
    fuzz_smtpd) echo "inbox/smtpd.c inbox/smtpd_addr.c inbox/smtpd_auth.c inbox/smtpd_data.c inbox/chaos.c src/smtp/reply.c src/util/buf.c|-ljansson|4096" ;;
    fuzz_mimeparse) echo "inbox/mimeparse.c src/util/buf.c||16384" ;;
    fuzz_ingest)
        echo "src/mime/ingest.c src/mime/address.c src/mime/encode.c src/util/buf.c src/error.c||8192"
        ;;
    fuzz_template)
        echo "src/template/mustache.c src/template/mustache_parse.c src/template/html_ctx.c" \
            "src/template/html2text.c src/util/buf.c|-ljansson|4096"
        ;;
    fuzz_doctor) echo "src/doctor/records.c src/doctor/doctor.c src/doctor/dns.c|-lresolv|4096" ;;
    fuzz_dkim) echo "src/dkim/verify.c src/dkim/canon.c src/util/buf.c||8192" ;;
    fuzz_dkimcheck)
        echo "inbox/dkimcheck.c inbox/mimeparse.c src/dkim/verify.c src/dkim/canon.c" \
            "src/util/buf.c|-ljansson|8192"
        ;;
    *) return 1 ;;
    esac
}

ALL="fuzz_reply fuzz_engine fuzz_address fuzz_compose fuzz_dotenv fuzz_smtpd fuzz_mimeparse fuzz_ingest
    fuzz_template fuzz_doctor fuzz_oauth fuzz_dkim fuzz_dkimcheck"
if [ $# -gt 0 ]; then
    TARGETS=""
    for t in "$@"; do
        t=${t%.c}
        t=${t##*/}
        case "$t" in fuzz_*) ;; *) t="fuzz_$t" ;; esac
        TARGETS="$TARGETS $t"
    done
else
    TARGETS=$ALL
fi

mkdir -p "$OUT/artifacts" "$OUT/logs"
passed=0
failed=0
skipped=""

if ! echo 'int LLVMFuzzerTestOneInput(const char *d, long n) { return d && n; }' |
    "$CC" -x c -fsanitize=fuzzer,address -o "$OUT/.probe" - >/dev/null 2>&1; then
    echo "fuzz: $CC cannot build libFuzzer targets (install clang and libclang-rt-dev)"
    echo "fuzz: 0 passed, 1 failed"
    exit 1
fi
rm -f "$OUT/.probe"

# At most JOBS background jobs at once (finished ones keep their status
# for the `wait PID` below).
throttle() {
    while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do
        sleep 0.2
    done
}

# ---- build (in parallel) ----
BUILT=""
build() {
    local t=$1 s srcs libs
    s=$(spec "$t") || return 2
    srcs=${s%%|*}
    libs=${s#*|}
    libs=${libs%%|*}
    local files=("$ROOT/fuzz/$t.c") stale=0
    for f in $srcs; do
        files+=("$ROOT/$f")
    done
    # Up to date: newer than its sources and the headers they include.
    [ -x "$OUT/$t" ] || stale=1
    for f in "${files[@]}" "$ROOT"/include/*.h "$ROOT"/src/*.h "$ROOT"/src/*/*.h "$ROOT"/inbox/*.h \
        "$0"; do
        [ -e "$f" ] && [ "$f" -nt "$OUT/$t" ] && stale=1
    done
    [ $stale -eq 0 ] && return 0
    # shellcheck disable=SC2086
    "$CC" "${CFLAGS[@]}" "${files[@]}" $libs "${LIBS[@]}" -o "$OUT/$t" >"$OUT/logs/$t.build" 2>&1
}

pids=()
names=()
for t in $TARGETS; do
    if ! s=$(spec "$t"); then
        echo "$t: unknown target (known: $ALL)"
        failed=$((failed + 1))
        continue
    fi
    missing=""
    for f in "fuzz/$t.c" ${s%%|*}; do
        [ -f "$ROOT/$f" ] || missing="$missing $f"
    done
    if [ -n "$missing" ]; then
        skipped="$skipped $t"
        echo "$t: skipped (missing:$missing)"
        continue
    fi
    throttle
    build "$t" &
    pids+=($!)
    names+=("$t")
done
for i in "${!pids[@]}"; do
    t=${names[$i]}
    if wait "${pids[$i]}"; then
        BUILT="$BUILT $t"
    else
        echo "$t: FAILED to build:"
        tail -n 15 "$OUT/logs/$t.build" | sed 's/^/    /'
        failed=$((failed + 1))
    fi
done

# ---- run (in parallel, one temporary corpus each) ----
run() {
    local t=$1 s max tmp rc
    s=$(spec "$t")
    max=${s##*|}
    tmp=$(mktemp -d "${TMPDIR:-/tmp}/scalr-fuzz-$t.XXXXXX") || return 1
    # 0 seconds: only run the corpus once (a quick regression check)
    local how=(-max_total_time="$SECONDS_EACH")
    [ "$SECONDS_EACH" -eq 0 ] && how=(-runs=0)
    if [ -d "$ROOT/fuzz/corpus/$t" ]; then
        cp -R "$ROOT/fuzz/corpus/$t/." "$tmp/" 2>/dev/null
    fi
    rm -f "$OUT/artifacts/$t"-*
    (cd "$tmp" && ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0} \
        UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
        timeout -k 5 $((SECONDS_EACH + 120)) "$OUT/$t" "${how[@]}" \
        -max_len="$max" -timeout=10 -rss_limit_mb=2560 -print_final_stats=1 \
        -artifact_prefix="$OUT/artifacts/$t-" "$tmp" >"$OUT/logs/$t.log" 2>&1)
    rc=$?
    rm -rf "$tmp"
    return $rc
}

pids=()
names=()
for t in $BUILT; do
    throttle
    run "$t" &
    pids+=($!)
    names+=("$t")
done
for i in "${!pids[@]}"; do
    t=${names[$i]}
    log="$OUT/logs/$t.log"
    wait "${pids[$i]}"
    rc=$?
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    if [ $rc -eq 0 ]; then
        echo "$t: ok (${runs:-?} runs in ${SECONDS_EACH} s)"
        passed=$((passed + 1))
    else
        echo "$t: FAILED (log: ${log#"$ROOT"/})"
        grep -a -m 3 -e "^fuzz_[a-z]*: " -e "ERROR: " -e "runtime error" "$log" | sed 's/^/    /'
        for a in "$OUT/artifacts/$t"-*; do
            [ -e "$a" ] && echo "    input: ${a#"$ROOT"/}"
        done
        failed=$((failed + 1))
    fi
done

if [ -n "$skipped" ]; then
    echo "fuzz: skipped:$skipped"
fi
echo "fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
