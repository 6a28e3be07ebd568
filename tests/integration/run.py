#!/usr/bin/python3
"""Run the scalr-email end-to-end suite.

    /usr/bin/python3 tests/integration/run.py [NAME_SUBSTRING ...]

Discovers tests/integration/test_*.py, prints one line per test, and ends
with exactly one summary line:  integration: N passed, N failed[, N skipped]
Exit status 0 only when nothing failed.  The binary under test is
$SCALR_EMAIL_BIN (default build/scalr-email, relative to the repository root).
Needs python3-aiosmtpd (Debian's /usr/bin/python3); when started by another
interpreter without aiosmtpd, re-executes itself with /usr/bin/python3.
"""

import os
import sys
import time
import traceback
import unittest
from pathlib import Path

HERE = Path(__file__).resolve().parent

try:
    import aiosmtpd  # noqa: F401
except ImportError:
    if sys.executable != "/usr/bin/python3" and os.path.exists("/usr/bin/python3"):
        os.execv("/usr/bin/python3", ["/usr/bin/python3", str(Path(__file__).resolve())]
                 + sys.argv[1:])
    sys.stderr.write("run.py: aiosmtpd is missing (apt-get install python3-aiosmtpd)\n")
    sys.exit(2)

sys.path.insert(0, str(HERE))
import helpers  # noqa: E402


class Result(unittest.TestResult):
    """Collects per-test outcomes (a test with a failing subTest fails)."""

    def __init__(self, stream):
        super().__init__()
        self.stream = stream
        self.outcome = {}      # test id -> "ok" | "FAIL" | "skip"
        self.details = {}      # test id -> [text]
        self.started = {}

    def _note(self, test, status, text=None):
        tid = test.id()
        if status == "FAIL" or tid not in self.outcome:
            self.outcome[tid] = status
        elif self.outcome[tid] != "FAIL":
            self.outcome[tid] = status
        if text:
            self.details.setdefault(tid, []).append(text)

    def startTest(self, test):
        super().startTest(test)
        self.started[test.id()] = time.monotonic()

    def stopTest(self, test):
        super().stopTest(test)
        tid = test.id()
        status = self.outcome.setdefault(tid, "ok")
        took = time.monotonic() - self.started.get(tid, time.monotonic())
        self.stream.write("%-4s %s (%.2fs)\n" % (status, tid, took))
        if status == "FAIL":
            for d in self.details.get(tid, []):
                self.stream.write("     " + d.rstrip().replace("\n", "\n     ") + "\n")
        self.stream.flush()

    def addSuccess(self, test):
        self._note(test, "ok")

    def addFailure(self, test, err):
        self._note(test, "FAIL", self._exc_info_to_string(err, test))

    def addError(self, test, err):
        self._note(test, "FAIL", self._exc_info_to_string(err, test))

    def addSkip(self, test, reason):
        self._note(test, "skip", reason)

    def addExpectedFailure(self, test, err):
        self._note(test, "FAIL", "expected failures are not allowed in this suite")

    def addUnexpectedSuccess(self, test):
        self._note(test, "FAIL", "unexpected success")

    def addSubTest(self, test, subtest, err):
        if err is not None:
            self._note(test, "FAIL", "%s\n%s" % (subtest.id(),
                                                   self._exc_info_to_string(err, test)))

    def _exc_info_to_string(self, err, test):
        return "".join(traceback.format_exception(*err))


def flatten(suite):
    for t in suite:
        if isinstance(t, unittest.TestSuite):
            yield from flatten(t)
        else:
            yield t


def main(argv):
    filters = argv[1:]
    loader = unittest.TestLoader()
    suite = loader.discover(str(HERE), pattern="test_*.py", top_level_dir=str(HERE))
    tests = list(flatten(suite))
    broken = [t for t in tests if t.__class__.__name__ in ("_FailedTest", "ModuleImportFailure")]
    if filters:
        tests = [t for t in tests if t in broken or any(f in t.id() for f in filters)]
    out = sys.stdout
    binary = helpers.cli_path()
    if not os.access(binary, os.X_OK):
        out.write("warning: %s is not an executable file; every test will fail\n" % binary)
    out.write("testing %s (%d tests)\n" % (binary, len(tests)))
    out.flush()
    result = Result(out)
    t0 = time.monotonic()
    unittest.TestSuite(tests).run(result)
    # errors outside a test (setUpClass / module fixtures) count as failures
    for test, text in result.errors + result.failures:
        if test.id() not in result.outcome:
            result.outcome[test.id()] = "FAIL"
            out.write("FAIL %s\n     %s\n" % (test.id(), text.rstrip().replace("\n", "\n     ")))
    values = list(result.outcome.values())
    passed, failed, skipped = values.count("ok"), values.count("FAIL"), values.count("skip")
    out.write("(%.1fs)\n" % (time.monotonic() - t0))
    line = "integration: %d passed, %d failed" % (passed, failed)
    if skipped:
        line += ", %d skipped" % skipped
    out.write(line + "\n")
    out.flush()
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
