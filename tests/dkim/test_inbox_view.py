"""The dev inbox's DKIM view: signed mail sent to `scalr-email inbox` verifies
against the records given with --dkim-record; a tampered copy says why not."""

import json
import signal
import subprocess
import time
import urllib.request

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
