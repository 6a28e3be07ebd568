"""The inbox's fault rules drive `scalr-email send` into each failure, and the
command must answer with the exit code the README promises, one line on
stderr, and nothing stored.  Rules are changed at run time through the API,
between sends, as a project's own tests would.

Run: SCALR_EMAIL_BIN=build/scalr-email /usr/bin/python3 tests/inbox/test_client_faults.py
Ends with "inbox-faults: N passed, N failed"."""

import json
import os
import subprocess
import sys
import time
import traceback
import urllib.request

BIN = os.environ.get("SCALR_EMAIL_BIN", "build/scalr-email")


class Inbox:
    def __init__(self, *args):
        cmd = [BIN, "inbox", "--smtp", "127.0.0.1:0", "--http", "127.0.0.1:0", *args]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        lines = [self.proc.stdout.readline().decode().strip() for _ in range(2)]
        if not (lines[0].startswith("smtp: ") and lines[1].startswith("http: ")):
            self.stop()
            raise AssertionError("inbox did not start: %r" % lines)
        self.port = int(lines[0].rsplit(":", 1)[1])
        self.http = lines[1][len("http: "):]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            self.proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate()

    def api(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.http + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            text = r.read().decode()
        return json.loads(text) if text.strip() else None

    def chaos(self, *rules):
        self.api("DELETE", "/api/scalr/chaos")
        for rule in rules:
            self.api("POST", "/api/scalr/chaos", {"rule": rule})

    def count(self):
        return self.api("GET", "/api/v2/messages")["total"]


def send(inbox, *extra, timeout="5", env_extra=None):
    env = dict(os.environ, SMTP_HOST="127.0.0.1", SMTP_PORT=str(inbox.port), SMTP_USE_TLS="false",
               SMTP_FROM="Acme <billing@acme.example>", SMTP_TIMEOUT=timeout)
    for k in ("SMTP_USERNAME", "SMTP_PASSWORD", "SMTP_USE_SSL"):
        env.pop(k, None)
    env.update(env_extra or {})
    args = [BIN, "send", "--to", "carol@example.net", "--to", "bad@example.net",
            "--subject", "Invoice", "--body", "Hello", *extra]
    p = subprocess.run(args, env=env, capture_output=True, timeout=60)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


def expect_failure(inbox, rules, code, words, **kw):
    inbox.chaos(*rules)
    before = inbox.count()
    rc, out, err = send(inbox, **kw)
    lines = err.strip().splitlines()
    assert rc == code, "rules %r: exit %d, want %d; stderr %r" % (rules, rc, code, err)
    assert len(lines) == 1, "want one stderr line, got %r" % err
    for w in words:
        assert w in lines[0], "%r not in %r" % (w, lines[0])
    assert out == "", "stdout should be empty on failure: %r" % out
    assert inbox.count() == before, "a message was stored despite the failure"


CASES = [
    ("connect 421 is transient (75)", ["connect:421 4.3.2 too busy"], 75, ["421", "too busy"]),
    ("connect 554 is permanent (69)", ["connect:554 5.7.1 go away"], 69, ["554", "go away"]),
    ("EHLO 550 is permanent (69)", ["ehlo:550 5.7.1 not you"], 69, ["550"]),
    ("MAIL 550 is permanent (69)", ["mail:550 5.7.1 sender blocked"], 69, ["550", "sender blocked"]),
    ("MAIL 451 is transient (75)", ["mail:451 4.3.0 try later"], 75, ["451"]),
    ("one RCPT 550 refuses the whole message (69)",
     ["rcpt:550 5.1.1 no such user:match=bad@"], 69, ["bad@example.net", "550", "5.1.1"]),
    ("RCPT 452 is transient (75)", ["rcpt:452 4.2.2 mailbox full:match=bad@"], 75, ["452"]),
    ("DATA 554 is permanent (69)", ["data:554 5.7.1 spam"], 69, ["554", "spam"]),
    ("DATA 451 is transient (75)", ["data:451 4.3.0 local error"], 75, ["451"]),
    ("a disconnect at MAIL is an I/O error (74)", ["mail:disconnect"], 74, []),
    ("a disconnect at DATA is an I/O error (74)", ["data:disconnect"], 74, []),
]


def main():
    passed = failed = 0
    inbox = Inbox()
    auth_inbox = Inbox("--auth", "demo:secret-pass-123")
    try:
        tests = []
        for name, rules, code, words in CASES:
            tests.append((name, lambda r=rules, c=code, w=words: expect_failure(inbox, r, c, w)))
        tests.append(("a reply slower than SMTP_TIMEOUT times out (75)",
                      lambda: expect_failure(inbox, ["rcpt:delay=3000"], 75, ["within"],
                                             timeout="0.5")))

        def wrong_password():
            rc, out, err = send(auth_inbox, env_extra={"SMTP_USERNAME": "demo",
                                                       "SMTP_PASSWORD": "wrong-pass-456"})
            assert rc == 77, "exit %d, want 77: %r" % (rc, err)
            assert "535" in err and "wrong-pass-456" not in err + out
            assert auth_inbox.count() == 0
        tests.append(("wrong credentials are an authentication failure (77)", wrong_password))

        def right_password_then_clear_rules():
            rc, out, err = send(auth_inbox, env_extra={"SMTP_USERNAME": "demo",
                                                       "SMTP_PASSWORD": "secret-pass-123"})
            assert rc == 0, "exit %d: %r" % (rc, err)
            assert auth_inbox.count() == 1
            inbox.chaos()
            before = inbox.count()
            rc, out, err = send(inbox)
            assert rc == 0 and out.startswith("sent <"), (rc, out, err)
            assert inbox.count() == before + 1
        tests.append(("without rules the same sends succeed (0)", right_password_then_clear_rules))

        for name, fn in tests:
            t0 = time.time()
            try:
                fn()
                passed += 1
                print("ok   %s (%.2fs)" % (name, time.time() - t0), flush=True)
            except Exception:
                failed += 1
                print("FAIL %s" % name, flush=True)
                traceback.print_exc()
    finally:
        inbox.stop()
        auth_inbox.stop()
    print("inbox-faults: %d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
