"""pytest plugin: the `mail_inbox` fixture catches the mail a test sends.

    def test_signup_sends_welcome(mail_inbox, client):
        client.post("/signup", {"email": "ann@example.com"})
        (msg,) = mail_inbox.wait_for(count=1)
        assert msg.to == ["ann@example.com"]
        assert "Welcome" in msg.subject

The fixture starts `scalr-email inbox` on free 127.0.0.1 ports, points the
SMTP_* variables at it for the test (SMTP_HOST, SMTP_PORT, SMTP_USE_TLS=
false, SMTP_USE_SSL=false, SMTP_FROM if unset; no credentials), and stops it
afterwards, even when the test fails.  The command is $SCALR_EMAIL_BIN, else
`scalr-email` on PATH.

One inbox per test by default; `scalr_email_inbox_scope = session` in the
pytest ini file (or `-o scalr_email_inbox_scope=session`) shares one inbox
for the whole session, emptied before each test that uses it.

Registered through the `pytest11` entry point when the package is installed;
without it, add `pytest_plugins = ["scalr_email.pytest_plugin"]` to a
conftest.py.
"""

import email
import email.policy
import email.utils
import json
import os
import selectors
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.request

import pytest

__all__ = ["Inbox", "CaughtMessage", "mail_inbox"]

_START_TIMEOUT = 10.0  # seconds for the inbox to print where it listens
_HTTP_TIMEOUT = 5.0
_INSTALL_HINT = ("install scalr-email (`make` in the repository, then put build/ on PATH) "
                 "or set SCALR_EMAIL_BIN to its path")


def pytest_addoption(parser):
    parser.addini("scalr_email_inbox_scope",
                  "scope of the mail_inbox server: function (default) or session",
                  default="function")


class CaughtMessage:
    """One message the inbox caught, parsed with the email package."""

    def __init__(self, raw, envelope_to=()):
        self.raw = raw
        self.message = email.message_from_bytes(raw, policy=email.policy.default)
        m = self.message
        self.headers = m
        self.subject = str(m.get("Subject", ""))
        self.from_ = str(m.get("From", ""))
        self.to = _addresses(m, "To")
        self.cc = _addresses(m, "Cc")
        self.reply_to = _addresses(m, "Reply-To")
        self.message_id = str(m.get("Message-ID", ""))
        self.envelope_to = list(envelope_to)
        self.bcc = [a for a in self.envelope_to
                    if a.lower() not in {x.lower() for x in _bare(self.to + self.cc)}]
        text = m.get_body(preferencelist=("plain",))
        html = m.get_body(preferencelist=("html",))
        self.text = text.get_content() if text is not None else None
        self.html = html.get_content() if html is not None else None
        self.attachments = [
            (part.get_filename(), part.get_payload(decode=True), part.get_content_type())
            for part in m.iter_attachments()]

    def __repr__(self):
        return f"<CaughtMessage {self.subject!r} to {self.to!r}>"


def _addresses(m, name):
    value = m.get(name)
    if value is None:
        return []
    return [str(a) for a in getattr(value, "addresses", ())] or [str(value)]


def _bare(addrs):
    return [email.utils.parseaddr(a)[1] for a in addrs]


class Inbox:
    """A running `scalr-email inbox`; see the module documentation."""

    def __init__(self, binary):
        self._stderr = tempfile.TemporaryFile()
        try:
            self._proc = subprocess.Popen(
                [binary, "inbox", "--smtp", "127.0.0.1:0", "--http", "127.0.0.1:0"],
                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self._stderr)
        except OSError as e:
            self._stderr.close()
            raise RuntimeError(f"mail_inbox: cannot run {binary}: {e.strerror}; "
                               f"{_INSTALL_HINT}") from None
        try:
            self._read_ready()
        except BaseException:
            self.stop()
            raise
        # Drain later output so the inbox never blocks on a full pipe.
        threading.Thread(target=self._proc.stdout.read, daemon=True).start()

    def _read_ready(self):
        deadline = time.monotonic() + _START_TIMEOUT
        sel = selectors.DefaultSelector()
        sel.register(self._proc.stdout, selectors.EVENT_READ)
        buf = b""
        self.smtp_port = self.http_url = None
        try:
            while self.smtp_port is None or self.http_url is None:
                left = deadline - time.monotonic()
                if left <= 0 or not sel.select(left):
                    raise RuntimeError(f"mail_inbox: scalr-email inbox did not start within "
                                       f"{_START_TIMEOUT:g} s")
                chunk = os.read(self._proc.stdout.fileno(), 4096)
                if not chunk:
                    raise RuntimeError("mail_inbox: scalr-email inbox exited: " +
                                       self._stderr_tail())
                buf += chunk
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    text = line.decode("utf-8", "replace").strip()
                    if text.startswith("smtp: "):
                        self.smtp_port = int(text.rsplit(":", 1)[1])
                    elif text.startswith("http: "):
                        self.http_url = text[6:].strip()
        finally:
            sel.close()
        self.smtp_host = "127.0.0.1"

    def _stderr_tail(self):
        self._stderr.seek(0)
        lines = self._stderr.read().decode("utf-8", "replace").strip().splitlines()
        return lines[-1] if lines else "(no message)"

    def _api(self, method, path):
        req = urllib.request.Request(self.http_url + path, method=method)
        with urllib.request.urlopen(req, timeout=_HTTP_TIMEOUT) as r:
            return r.read()

    @property
    def messages(self):
        """Every caught message, oldest first (a fresh list at each access)."""
        out, start = [], 0
        while True:
            page = json.loads(self._api("GET", f"/api/v2/messages?start={start}&limit=250"))
            items = page.get("items") or []
            for it in items:
                rcpts = [f"{t['Mailbox']}@{t['Domain']}" for t in it.get("To") or ()]
                raw = self._api("GET", f"/api/v1/messages/{it['ID']}/download")
                out.append((int(it["ID"]), CaughtMessage(raw, rcpts)))
            start += len(items)
            if not items or start >= page.get("total", 0):
                break
        return [m for _, m in sorted(out, key=lambda p: p[0])]

    def count(self):
        return json.loads(self._api("GET", "/api/v2/messages?start=0&limit=1")).get("total", 0)

    def wait_for(self, count=1, timeout=5):
        """Wait until at least `count` messages were caught; return them all.
        Fails the test (AssertionError) after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            n = self.count()
            if n >= count:
                return self.messages
            if time.monotonic() >= deadline:
                raise AssertionError(f"mail_inbox: {n} message(s) caught within {timeout:g} s, "
                                     f"expected {count}")
            time.sleep(0.02)

    def clear(self):
        """Delete every caught message."""
        self._api("DELETE", "/api/v1/messages")

    def env(self):
        """The SMTP_* variables that point at this inbox."""
        return {"SMTP_HOST": self.smtp_host, "SMTP_PORT": str(self.smtp_port),
                "SMTP_USE_TLS": "false", "SMTP_USE_SSL": "false"}

    def stop(self):
        proc = getattr(self, "_proc", None)
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc is not None and proc.stdout:
            proc.stdout.close()
        self._stderr.close()


def _binary():
    path = os.environ.get("SCALR_EMAIL_BIN")
    if path:
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            pytest.fail(f"mail_inbox: SCALR_EMAIL_BIN={path} is not an executable file; "
                        f"{_INSTALL_HINT}", pytrace=False)
        return path
    found = shutil.which("scalr-email")
    if not found:
        pytest.fail(f"mail_inbox: scalr-email not found on PATH; {_INSTALL_HINT}",
                    pytrace=False)
    return found


def _scope(fixture_name, config):
    scope = (config.getini("scalr_email_inbox_scope") or "function").strip()
    if scope not in ("function", "session"):
        raise pytest.UsageError(f"scalr_email_inbox_scope must be function or session, "
                                f"not {scope!r}")
    return scope


@pytest.fixture(scope=_scope)
def _scalr_email_inbox_server():
    try:
        inbox = Inbox(_binary())
    except RuntimeError as e:
        pytest.fail(str(e), pytrace=False)
    try:
        yield inbox
    finally:
        inbox.stop()


_SMTP_VARS = ("SMTP_HOST", "SMTP_PORT", "SMTP_USERNAME", "SMTP_PASSWORD", "SMTP_USE_TLS",
              "SMTP_USE_SSL")


@pytest.fixture
def mail_inbox(_scalr_email_inbox_server, monkeypatch):
    """A running `scalr-email inbox`, with SMTP_* pointing at it for this test.

    mail_inbox.messages                   caught messages, oldest first
    mail_inbox.wait_for(count=1, timeout=5)
    mail_inbox.clear()
    """
    inbox = _scalr_email_inbox_server
    inbox.clear()  # a shared (session) inbox starts each test empty
    for name in _SMTP_VARS:
        monkeypatch.delenv(name, raising=False)
    for name, value in inbox.env().items():
        monkeypatch.setenv(name, value)
    if not os.environ.get("SMTP_FROM"):
        monkeypatch.setenv("SMTP_FROM", "test@scalr-email.test")
    return inbox
