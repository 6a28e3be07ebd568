#!/usr/bin/env bash
# The test command: installs what is missing, builds, and runs every suite,
# then the C unit and end-to-end suites again under ASan + UBSan.
# Ends with one line "tests: N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."

bash scripts/deps.sh chromium clang libclang-rt-14-dev || { echo "tests: 0 passed, 1 failed (dependencies)"; exit 1; }
# Postfix unpacked, not installed (tests/dkim relays through it)
bash scripts/postfix-unpack.sh || { echo "tests: 0 passed, 1 failed (dependencies: postfix)"; exit 1; }

log=$(mktemp -d)
trap 'rm -rf "$log"' EXIT
passed=0 failed=0 skipped=0
times=""

# run NAME CMD...: run a suite, echo its output, add up its summary line
# "<name>: N passed, N failed".  A suite that dies without one counts as failed.
run() {
    local name=$1
    shift
    echo "== $name"
    local t0=$SECONDS
    "$@" 2>&1 | tee "$log/$name.out"
    local rc=${PIPESTATUS[0]}
    times+="$name $((SECONDS - t0))s; "
    local line
    line=$(grep -E '^[a-z-]+: [0-9]+ passed, [0-9]+ failed' "$log/$name.out" | tail -n 1)
    if [ -z "$line" ]; then
        echo "$name: no summary line (exit $rc)"
        failed=$((failed + 1))
        return
    fi
    local p f
    p=$(sed -E 's/^[^:]+: ([0-9]+) passed.*/\1/' <<<"$line")
    f=$(sed -E 's/^[^:]+: [0-9]+ passed, ([0-9]+) failed.*/\1/' <<<"$line")
    passed=$((passed + p))
    failed=$((failed + f))
    if [[ $line =~ ,\ ([0-9]+)\ skipped ]]; then
        skipped=$((skipped + BASH_REMATCH[1]))
    fi
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        echo "$name: exited $rc"
        failed=$((failed + 1))
    fi
}

build() {
    make -j"$(nproc)" "$@" >"$log/build.out" 2>&1 || { cat "$log/build.out"; return 1; }
}

if build; then
    run unit build/unit-tests
    run queue-store-pg bash tests/queue/run_store.sh build
    SCALR_EMAIL_BIN=build/scalr-email run integration /usr/bin/python3 tests/integration/run.py
    SCALR_EMAIL_BIN=build/scalr-email run pool /usr/bin/python3 tests/pool/run.py
    SCALR_EMAIL_BIN=build/scalr-email run message /usr/bin/python3 tests/message/run.py
    SCALR_EMAIL_BIN=build/scalr-email run oauth /usr/bin/python3 tests/oauth/run.py
    SCALR_EMAIL_BIN=build/scalr-email run inbox-smtp /usr/bin/python3 tests/inbox/test_smtp_side.py
    SCALR_EMAIL_BIN=build/scalr-email run inbox-faults /usr/bin/python3 tests/inbox/test_client_faults.py
    SCALR_EMAIL_BIN=build/scalr-email run inbox-release /usr/bin/python3 tests/inbox/test_release.py
    SCALR_EMAIL_BIN=build/scalr-email run inbox-links /usr/bin/python3 tests/inbox/test_links.py
    SCALR_EMAIL_BIN=build/scalr-email run inbox-container /usr/bin/python3 tests/inbox/test_container.py
    SCALR_EMAIL="$PWD/build/scalr-email" run inbox-web bash tests/inbox/web/run.sh
    SCALR_EMAIL_BIN=build/scalr-email run queue /usr/bin/python3 tests/queue/run.py
    SCALR_EMAIL_BIN=build/scalr-email run queue-profiles /usr/bin/python3 tests/queue/profiles.py
    SCALR_EMAIL_BIN=build/scalr-email run sendmail /usr/bin/python3 tests/sendmail/run.py
    SCALR_EMAIL_BIN=build/scalr-email run template /usr/bin/python3 tests/template/run.py
    SCALR_EMAIL_BIN=build/scalr-email run doctor /usr/bin/python3 tests/doctor/run.py
    SCALR_EMAIL_BIN=build/scalr-email run dkim /usr/bin/python3 tests/dkim/run.py
    run link bash tests/link/run.sh
    run python bash python/tests/run.sh
else
    echo "build failed"
    failed=$((failed + 1))
fi

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:halt_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
if build SAN=1 BUILD=build-san; then
    run unit-san build-san/unit-tests
    run queue-store-pg-san bash tests/queue/run_store.sh build-san
    SCALR_EMAIL_BIN=build-san/scalr-email run integration-san /usr/bin/python3 tests/integration/run.py
    SCALR_EMAIL_BIN=build-san/scalr-email run pool-san /usr/bin/python3 tests/pool/run.py
    SCALR_EMAIL_BIN=build-san/scalr-email run message-san /usr/bin/python3 tests/message/run.py
    SCALR_EMAIL_BIN=build-san/scalr-email run oauth-san /usr/bin/python3 tests/oauth/run.py
    SCALR_EMAIL_BIN=build-san/scalr-email QUEUE_SOAK_N=200 run queue-san /usr/bin/python3 tests/queue/run.py
    SCALR_EMAIL_BIN=build-san/scalr-email run queue-profiles-san /usr/bin/python3 tests/queue/profiles.py
    # not Memory: under ASan the peak RSS measures the sanitizer
    SCALR_EMAIL_BIN=build-san/scalr-email run sendmail-san /usr/bin/python3 tests/sendmail/run.py RealCallers Flags Encoding Queue
    SCALR_EMAIL_BIN=build-san/scalr-email run doctor-san /usr/bin/python3 tests/doctor/run.py
    SCALR_EMAIL_BIN=build-san/scalr-email run dkim-san /usr/bin/python3 tests/dkim/run.py
    SCALR_EMAIL_BIN=build-san/scalr-email run inbox-smtp-san /usr/bin/python3 tests/inbox/test_smtp_side.py
    SCALR_EMAIL_BIN=build-san/scalr-email TEMPLATE_CORPUS_N=500 run template-san /usr/bin/python3 tests/template/run.py
    SCALR_EMAIL_BIN=build-san/scalr-email run inbox-release-san /usr/bin/python3 tests/inbox/test_release.py
    SCALR_EMAIL_BIN=build-san/scalr-email run inbox-links-san /usr/bin/python3 tests/inbox/test_links.py
else
    echo "sanitizer build failed"
    failed=$((failed + 1))
fi

run fuzz bash fuzz/run.sh 5

echo "time per suite: ${times%; } (total ${SECONDS}s)"
if [ "$skipped" -gt 0 ]; then
    echo "tests: $passed passed, $failed failed, $skipped skipped"
else
    echo "tests: $passed passed, $failed failed"
fi
[ "$failed" -eq 0 ]
