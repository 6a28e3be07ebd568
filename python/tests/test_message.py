"""inline=, calendar=, envelope_from= and the DSN arguments (issue 17)."""
import email
import email.policy
import os
import tempfile

import scalr_email
from scalr_email import compose, send

from base import EnvTestCase

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(64))
ICS = ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nMETHOD:REQUEST\r\nBEGIN:VEVENT\r\n"
       "UID:1@acme.test\r\nDTSTART:20270301T100000Z\r\nSUMMARY:Demo\r\nEND:VEVENT\r\n"
       "END:VCALENDAR\r\n")


def shape(part):
    if part.is_multipart():
        return (part.get_content_type(), [shape(p) for p in part.iter_parts()])
    return part.get_content_type()


class Message(EnvTestCase):
    def parse(self, data):
        return email.message_from_bytes(data, policy=email.policy.default)

    def test_inline_from_bytes_and_path_with_calendar(self):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "qr.png")
            with open(path, "wb") as f:
                f.write(PNG)
            m = self.parse(compose("a@example.com", "Ticket", "text",
                                   '<img src="cid:logo.png"><img src="cid:qr.png">',
                                   "from@acme.test", inline=[("logo.png", PNG), path],
                                   attachments=[("t.txt", b"x", "text/plain")], calendar=ICS))
        self.assertEqual(shape(m), ("multipart/mixed", [
            ("multipart/alternative", ["text/plain",
                                       ("multipart/related", ["text/html", "image/png",
                                                              "image/png"]),
                                       "text/calendar"]),
            "text/plain"]))
        ids = [p["Content-ID"] for p in m.walk() if p["Content-ID"]]
        self.assertEqual(ids, ["<logo.png>", "<qr.png>"])
        cal = [p for p in m.walk() if p.get_content_type() == "text/calendar"][0]
        self.assertEqual(cal.get_param("method"), "REQUEST")

    def test_refusals_are_invalid_message_errors(self):
        cases = [dict(body_html='<img src="cid:x.png">'),
                 dict(inline=[("x.png", PNG)]),
                 dict(calendar="BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n"),
                 dict(dsn_notify=["never", "success"]),
                 dict(dsn_ret="body")]
        for kw in cases:
            with self.subTest(kw=list(kw)):
                with self.assertRaises(scalr_email.InvalidMessageError):
                    compose("a@example.com", "s", "b", sender="from@acme.test", **kw)

    def test_envelope_from_and_dsn_without_the_extension(self):
        srv = self.smtp_server()
        send("user@example.com", "Hi", "x", envelope_from="bounces@acme.test",
             dsn_notify=["failure", "delay"], dsn_ret="hdrs", envid="order-1")
        [got] = srv.wait_messages(1)
        self.assertEqual(got.mail_from, "bounces@acme.test")
        self.assertNotIn("From: bounces", got.message.as_string())
