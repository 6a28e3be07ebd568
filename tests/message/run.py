#!/usr/bin/python3
"""Run the message-features suite: inline images, calendar invites, DSN
parameters, the bounce address and proxies.

    /usr/bin/python3 tests/message/run.py [NAME_SUBSTRING ...]

Uses the integration suite's helpers (aiosmtpd servers, the throw-away CA)
and runner; ends with one line  message: N passed, N failed[, N skipped].
The proxy tests start Debian's microsocks and tinyproxy on free loopback
ports and stop them afterwards.
"""

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
INTEG = HERE.parent / "integration"

try:
    import aiosmtpd  # noqa: F401
except ImportError:
    if sys.executable != "/usr/bin/python3" and os.path.exists("/usr/bin/python3"):
        os.execv("/usr/bin/python3", ["/usr/bin/python3", str(Path(__file__).resolve())]
                 + sys.argv[1:])
    sys.stderr.write("run.py: aiosmtpd is missing (apt-get install python3-aiosmtpd)\n")
    sys.exit(2)

sys.path.insert(0, str(HERE))
sys.path.insert(1, str(INTEG))
import importlib.util  # noqa: E402

_spec = importlib.util.spec_from_file_location("integration_run", INTEG / "run.py")
integration_run = importlib.util.module_from_spec(_spec)  # the integration runner
_spec.loader.exec_module(integration_run)

integration_run.HERE = HERE


def main(argv):
    import io
    buf = io.StringIO()
    real = sys.stdout

    class Tee:
        def write(self, s):
            real.write(s.replace("integration: ", "message: ") if s.startswith("integration: ")
                       else s)
            buf.write(s)

        def flush(self):
            real.flush()

    sys.stdout = Tee()
    try:
        return integration_run.main(argv)
    finally:
        sys.stdout = real


if __name__ == "__main__":
    sys.exit(main(sys.argv))
