"""The dev inbox's DKIM view: signed mail sent to `scalr-email inbox` verifies
against the records given with --dkim-record; a tampered copy says why not.
The verdict is made when the message arrives and kept in the store; a message
spooled to a file on arrival (over 1 MiB) is checked once, when first listed.
A signature past its x= fails as expired, as dkimpy says too."""

import json
import os
import signal
import sqlite3
import subprocess
import time
import urllib.request
from pathlib import Path

import helpers as H
from test_dkim import DOMAIN, Keys


class InboxDkimView(H.CliTest):
    def start_inbox(self, *args):
        p = subprocess.Popen([str(H.cli_path()), "inbox", "--smtp", "127.0.0.1:0", "--http",
                              "127.0.0.1:0"] + list(args),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)

        def stop():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
            try:
                _, err = p.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.communicate()
                raise AssertionError("the inbox did not stop on SIGTERM")
            if p.returncode != 0:       # e.g. a leak report under the sanitizers
                raise AssertionError("inbox exited %d: %s" % (p.returncode, err[-2000:]))
        self.addCleanup(stop)
        lines = [p.stdout.readline().decode().strip() for _ in range(2)]
        if not lines[0].startswith("smtp: ") or not lines[1].startswith("http: "):
            raise AssertionError("inbox did not start: %r" % lines)
        return int(lines[0].rsplit(":", 1)[1]), lines[1][len("http: "):]

    def get(self, base, path):
        with urllib.request.urlopen(base.rstrip("/") + path, timeout=10) as r:
            return json.loads(r.read())

    def test_view_says_pass_and_why_not(self):
        keys = Keys()
        self.addCleanup(keys.cleanup)
        port, http = self.start_inbox("--dkim-record", keys.record_file)
        if not http.startswith("http"):
            http = "http://" + http
        env = H.base_env(SMTP_HOST="127.0.0.1", SMTP_PORT=port, SMTP_USE_TLS="false",
                         SMTP_FROM=H.SENDER, **keys.env("dual"))
        self.assertSent(H.run_cli(self.send_args(subject="signed", body="Hello\n"), env))
        # the same message's bytes, with one body byte changed, sent raw
        ids = []
        for _ in range(50):
            ids = [m["id"] for m in self.get(http, "/api/scalr/messages")["items"]]
            if ids:
                break
            time.sleep(0.1)
        self.assertEqual(len(ids), 1)
        view = self.get(http, "/api/scalr/messages/%s/dkim" % ids[0])
        self.assertTrue(view["records"])
        self.assertEqual(view["status"], "pass")
        self.assertEqual([s["warnings"] for s in view["signatures"]], [[], []])
        self.assertEqual(self.get(http, "/api/scalr/messages")["items"][0]["dkim"], "pass")
        self.assertEqual([(s["domain"], s["algorithm"], s["ok"]) for s in view["signatures"]],
                         [(DOMAIN, "rsa-sha256", True), (DOMAIN, "ed25519-sha256", True)])
        with urllib.request.urlopen("%s/api/scalr/messages/%s/raw" % (http.rstrip("/"), ids[0]),
                                    timeout=10) as r:
            raw = r.read()
        import smtplib
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as s:
            s.sendmail(H.SENDER, [H.RCPT], raw.replace(b"Hello", b"Hellx"))
        for _ in range(50):
            msgs = self.get(http, "/api/scalr/messages")["items"]
            if len(msgs) == 2:
                break
            time.sleep(0.1)
        other = [m["id"] for m in msgs if m["id"] != ids[0]][0]
        view = self.get(http, "/api/scalr/messages/%s/dkim" % other)
        self.assertEqual([s["ok"] for s in view["signatures"]], [False, False])
        self.assertIn("body hash", view["signatures"][0]["why"])
        self.assertEqual(view["status"], "fail")
        self.assertEqual({m["id"]: m["dkim"] for m in msgs}, {ids[0]: "pass", other: "fail"})

    def wait_items(self, http, n):
        for _ in range(100):
            items = self.get(http, "/api/scalr/messages")["items"]
            if len(items) >= n:
                return items
            time.sleep(0.1)
        raise AssertionError("%d messages did not arrive" % n)

    def test_spooled_message_is_checked_once_when_listed(self):
        keys = Keys()
        self.addCleanup(keys.cleanup)
        db = os.path.join(keys.dir, "inbox.db")
        port, http = self.start_inbox("--dkim-record", keys.record_file, "--db", db)
        big = os.path.join(keys.dir, "big.bin")
        with open(big, "wb") as f:
            f.write(os.urandom(2 << 20))  # over the 1 MiB kept in memory: spooled
        env = H.base_env(SMTP_HOST="127.0.0.1", SMTP_PORT=port, SMTP_USE_TLS="false",
                         SMTP_FROM=H.SENDER, **keys.env("rsa"))
        self.assertSent(H.run_cli(self.send_args("--attach", big, subject="big"), env))
        self.assertSent(H.run_cli(self.send_args(subject="small"), env))
        for _ in range(100):
            with sqlite3.connect(db) as c:
                rows = dict(c.execute("SELECT subject, dkim FROM messages").fetchall())
            if len(rows) == 2:
                break
            time.sleep(0.1)
        # the small one was checked on arrival, the spooled one not yet
        self.assertEqual(json.loads(rows["small"])["status"], "pass")
        self.assertIsNone(rows["big"])
        items = self.wait_items(http, 2)
        self.assertEqual([(m["subject"], m["dkim"]) for m in items],
                         [("small", "pass"), ("big", "pass")])
        with sqlite3.connect(db) as c:
            kept = c.execute("SELECT dkim FROM messages WHERE subject = 'big'").fetchone()[0]
        self.assertEqual(json.loads(kept)["status"], "pass")

    def test_expired_signature_fails_as_in_dkimpy(self):
        keys = Keys()
        self.addCleanup(keys.cleanup)
        port, http = self.start_inbox("--dkim-record", keys.record_file)
        msg = (b"From: app@" + DOMAIN.encode() + b"\r\nTo: dev@example.org\r\nSubject: old\r\n"
               b"Date: Tue, 14 Nov 2023 22:13:20 +0000\r\n\r\nSigned long ago.\r\n")
        signer = Path(__file__).resolve().parents[1] / "inbox/web/lib/dkimpy_sign.py"
        sig = subprocess.run(["/usr/bin/python3", str(signer), keys.rsa, "rsa", DOMAIN, "--expired"],
                             input=msg, capture_output=True, check=True, timeout=30).stdout
        signed = sig + b"\r\n" + msg
        self.assertIn(b"x=1700000600", signed.replace(b"\r\n ", b""))
        self.assertEqual(keys.dkimpy(signed), [False])
        rc, _ = keys.ours(signed)
        self.assertEqual(rc, 65)
        import smtplib
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as s:
            s.sendmail(H.SENDER, [H.RCPT], signed)
        item = self.wait_items(http, 1)[0]
        self.assertEqual(item["dkim"], "fail")
        view = self.get(http, "/api/scalr/messages/%s/dkim" % item["id"])
        self.assertEqual(view["signatures"][0]["why"],
                         "the signature expired at 2023-11-14 22:23:20 UTC (x=)")
        # dkimpy's signature of the same message without an expiry verifies here
        fresh = subprocess.run(["/usr/bin/python3", str(signer), keys.rsa, "rsa", DOMAIN],
                               input=msg, capture_output=True, check=True, timeout=30).stdout
        self.assertEqual(keys.ours(fresh + b"\r\n" + msg), (0, [True]))
