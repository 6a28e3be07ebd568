"""The mail_inbox pytest fixture, as a user meets it: Debian's python3-pytest
runs a sample project's suite (sample_project/, a Django app sending
through scalr_email.django) in a subprocess; the plugin comes from the
installed package's pytest11 entry point, nothing else is configured."""
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))

try:
    import pytest  # noqa: F401
    import django  # noqa: F401
    HAVE = True
except ImportError:  # counted as skipped, never passed
    HAVE = False

BIN = os.environ.get("SCALR_EMAIL_BIN") or shutil.which("scalr-email")


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


@unittest.skipUnless(HAVE, "python3-pytest or python3-django is not importable")
@unittest.skipUnless(BIN, "no scalr-email command (SCALR_EMAIL_BIN or PATH)")
class MailInboxFixture(unittest.TestCase):
    def setUp(self):
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        self.dir = tmp.name
        for name in ("sample_project", "sample_failing"):
            shutil.copytree(os.path.join(HERE, name), os.path.join(self.dir, name))
        self.pid_log = os.path.join(self.dir, "pids")

    def pytest(self, target, *extra, env_extra=None):
        env = {k: v for k, v in os.environ.items() if not k.startswith("SMTP_")}
        env.update(SCALR_EMAIL_BIN=os.path.abspath(BIN), SAMPLE_PID_LOG=self.pid_log,
                   PYTHONDONTWRITEBYTECODE="1")
        env.pop("DJANGO_SETTINGS_MODULE", None)
        env.update(env_extra or {})
        return subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *extra,
             os.path.join(self.dir, target)],
            cwd=self.dir, env=env, capture_output=True, text=True, timeout=120)

    def pids(self):
        with open(self.pid_log) as f:
            return [int(x) for x in f.read().split()]

    def assert_all_stopped(self, pids):
        for pid in pids:
            deadline = time.monotonic() + 5  # reaping by init is asynchronous
            while alive(pid) and time.monotonic() < deadline:
                time.sleep(0.02)
            self.assertFalse(alive(pid), f"inbox {pid} outlived the pytest run")

    def test_sample_suite_passes_with_one_inbox_per_test(self):
        out = self.pytest("sample_project")
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        self.assertRegex(out.stdout, r"\b5 passed\b")
        pids = self.pids()
        self.assertEqual(len(pids), 2)
        self.assertNotEqual(pids[0], pids[1])  # function scope: a fresh inbox
        self.assert_all_stopped(pids)

    def test_session_scope_shares_one_inbox_emptied_per_test(self):
        out = self.pytest("sample_project", "-o", "scalr_email_inbox_scope=session")
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        self.assertRegex(out.stdout, r"\b5 passed\b")
        pids = self.pids()
        self.assertEqual(len(set(pids)), 1)
        self.assert_all_stopped(pids)

    def test_bad_scope_is_a_usage_error(self):
        out = self.pytest("sample_project", "-o", "scalr_email_inbox_scope=module")
        self.assertNotEqual(out.returncode, 0)
        self.assertIn("scalr_email_inbox_scope must be function or session",
                      out.stdout + out.stderr)

    def test_failing_test_leaves_no_process(self):
        out = self.pytest("sample_failing")
        self.assertEqual(out.returncode, 1, out.stdout + out.stderr)
        self.assertIn("failing on purpose", out.stdout)
        self.assertRegex(out.stdout, r"\b1 failed\b")
        pids = self.pids()
        self.assertEqual(len(pids), 1)
        self.assert_all_stopped(pids)

    def test_missing_command_fails_with_one_line_saying_how_to_install(self):
        empty = os.path.join(self.dir, "emptybin")
        os.mkdir(empty)
        env = {"SCALR_EMAIL_BIN": "", "PATH": empty}
        out = self.pytest("sample_project", "-k", "starts_empty", env_extra=env)
        self.assertEqual(out.returncode, 1, out.stdout + out.stderr)
        lines = [ln for ln in out.stdout.splitlines() if "mail_inbox:" in ln]
        self.assertTrue(lines, out.stdout)
        self.assertIn("scalr-email not found on PATH", lines[0])
        self.assertIn("SCALR_EMAIL_BIN", lines[0])
        self.assertRegex(out.stdout, r"\b1 error\b")


if __name__ == "__main__":
    unittest.main()
