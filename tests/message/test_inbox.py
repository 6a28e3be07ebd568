"""The dev inbox shows inline images inside the HTML view (served from its
own API as data: URLs, still sandboxed) and a calendar part as a card."""

import json
import os
import shutil
import signal
import subprocess
import tempfile
import urllib.request

import helpers
from helpers import CliTest

from test_compose import ICS, PNG


class Inbox:
    def __init__(self, test):
        self.proc = subprocess.Popen([str(helpers.cli_path()), "inbox", "--smtp", "127.0.0.1:0",
                                      "--http", "127.0.0.1:0"], stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL)
        test.addCleanup(self.stop)
        smtp = self.proc.stdout.readline().decode().strip()
        http = self.proc.stdout.readline().decode().strip()
        if not smtp.startswith("smtp: ") or not http.startswith("http: "):
            raise AssertionError("inbox did not start: %r %r" % (smtp, http))
        self.port = int(smtp.rsplit(":", 1)[1])
        self.http = http[len("http: "):]

    def get(self, path):
        with urllib.request.urlopen(self.http + path, timeout=30) as r:
            return r.read()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()


class InboxTest(CliTest):
    def test_inline_image_and_calendar_card(self):
        ib = Inbox(self)
        d = tempfile.mkdtemp(prefix="scalr-msg-inbox-")
        self.addCleanup(shutil.rmtree, d, True)
        logo, ics = os.path.join(d, "logo.png"), os.path.join(d, "invite.ics")
        with open(logo, "wb") as f:
            f.write(PNG)
        with open(ics, "w") as f:
            f.write(ICS.replace("SUMMARY:Kick-off – room 2\r\n",
                                "SUMMARY:Kick-off\\, room 2\r\n LONG\r\nLOCATION:Room 2\r\n"))
        env = helpers.base_env(SMTP_HOST="127.0.0.1", SMTP_PORT=ib.port, SMTP_USE_TLS="false",
                               SMTP_FROM=helpers.SENDER)
        self.assertSent(helpers.run_cli(self.send_args(
            "--html", '<p>Hi</p><img src="cid:logo.png">', "--inline", logo,
            "--calendar", ics), env))
        [item] = json.loads(ib.get("/api/scalr/messages"))["items"]
        m = json.loads(ib.get("/api/scalr/messages/%d" % item["id"]))
        self.assertEqual(m["calendar"], [{
            "method": "REQUEST", "summary": "Kick-off, room 2LONG", "location": "Room 2",
            "start": "20270301T100000Z", "end": "20270301T110000Z",
            "organizer": "sender@example.org", "events": 1}])
        html = ib.get("/api/scalr/messages/%d/html" % item["id"]).decode()
        self.assertNotIn("cid:logo.png", html)
        self.assertIn("data:image/png;base64,", html)
        inline = [a for a in m["attachments"] if a["content_id"] == "logo.png"]
        self.assertEqual(len(inline), 1)
        self.assertTrue(inline[0]["inline"])
