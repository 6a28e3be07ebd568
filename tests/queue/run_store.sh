#!/usr/bin/env bash
# The queue store's unit tests (tests/unit/test_qstore.c) again, on a private
# PostgreSQL (tests/queue/pgserver.py), stopped and removed whatever happens.
#   run_store.sh [BUILD]   (default build)
set -uo pipefail
cd "$(dirname "$0")/../.."
BUILD=${1:-build}
dir=$(mktemp -d /tmp/se-pgq.XXXXXX)
chmod 755 "$dir"
trap '/usr/bin/python3 tests/queue/pgserver.py stop "$dir/pg" >/dev/null 2>&1; rm -rf "$dir"' EXIT
if ! url=$(/usr/bin/python3 tests/queue/pgserver.py start "$dir/pg"); then
    echo "queue-store-pg: 0 passed, 1 failed (PostgreSQL did not start)"
    exit 1
fi
TH_SUITE=queue-store-pg SCALR_EMAIL_TEST_QUEUE_URL=$url "$BUILD/unit-tests" qstore_
