#!/usr/bin/python3
"""Run the DKIM interoperability suite.

    /usr/bin/python3 tests/dkim/run.py [NAME_SUBSTRING ...]

Messages signed by scalr-email (sent to a real aiosmtpd server and read back)
are verified by Debian's dkimpy (python3-dkim) and OpenDKIM (`opendkim -t`
with TestPublicKeys); tampered copies must fail both.  Ends with one line
"dkim: N passed, N failed[, N skipped]".  Uses tests/integration's helpers
and runner; $SCALR_EMAIL_BIN names the binary (default build/scalr-email).
"""

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
INTEGRATION = HERE.parent / "integration"

try:
    import aiosmtpd  # noqa: F401
    import dkim  # noqa: F401
except ImportError:
    if sys.executable != "/usr/bin/python3" and os.path.exists("/usr/bin/python3"):
        os.execv("/usr/bin/python3", ["/usr/bin/python3", str(Path(__file__).resolve())]
                 + sys.argv[1:])
    sys.stderr.write("run.py: needs python3-aiosmtpd and python3-dkim (scripts/deps.sh)\n")
    print("dkim: 0 passed, 1 failed")
    sys.exit(2)

sys.path.insert(0, str(HERE))
sys.path.insert(1, str(INTEGRATION))
import importlib.util  # noqa: E402

spec = importlib.util.spec_from_file_location("integration_run", INTEGRATION / "run.py")
runner = importlib.util.module_from_spec(spec)
spec.loader.exec_module(runner)


def main(argv):
    import io
    import re
    runner.HERE = HERE               # discover tests/dkim/test_*.py
    buf = io.StringIO()
    real = sys.stdout
    # the runner names its summary "integration:"; this suite is "dkim:"

    class Tee:
        def write(self, s):
            real.write(re.sub(r"^integration: ", "dkim: ", s, flags=re.M))
            buf.write(s)

        def flush(self):
            real.flush()
    sys.stdout = Tee()
    try:
        return runner.main(argv)
    finally:
        sys.stdout = real


if __name__ == "__main__":
    sys.exit(main(sys.argv))
