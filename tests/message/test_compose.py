"""Inline images and calendar invites: `send --print`, parsed back with
Python's email package; refusals before anything is sent."""

import email
import email.policy
import os
import shutil
import tempfile

import helpers
from helpers import CliTest, SENDER, RCPT

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256))
ICS = ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nMETHOD:REQUEST\r\n"
       "BEGIN:VEVENT\r\nUID:42@example.org\r\nDTSTART:20270301T100000Z\r\n"
       "DTEND:20270301T110000Z\r\nSUMMARY:Kick-off – room 2\r\n"
       "ORGANIZER:mailto:sender@example.org\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")


def shape(part):
    """The MIME tree as nested (type, [children]) / type strings."""
    if part.is_multipart():
        return (part.get_content_type(), [shape(p) for p in part.iter_parts()])
    return part.get_content_type()


class Files:
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="scalr-msg-")
        self.addCleanup(shutil.rmtree, self.dir, True)

    def file(self, name, data):
        p = os.path.join(self.dir, name)
        with open(p, "wb") as f:
            f.write(data if isinstance(data, bytes) else data.encode("utf-8"))
        return p

    def compose(self, *args, html=None):
        extra = list(args)
        if html is not None:
            extra += ["--html", html]
        rc, out, err = helpers.run_cli(self.send_args(*extra) + ["--print"],
                                       helpers.base_env(SMTP_FROM=SENDER), raw=True)
        self.assertEqual(rc, 0, err)
        return email.message_from_bytes(out, policy=email.policy.default)


class InlineTest(Files, CliTest):
    def test_inline_image_sits_with_the_html_in_related(self):
        logo = self.file("logo.png", PNG)
        m = self.compose("--inline", logo, html='<p>Hi</p><img src="cid:logo.png">')
        self.assertEqual(shape(m), ("multipart/alternative",
                                    ["text/plain",
                                     ("multipart/related", ["text/html", "image/png"])]))
        img = list(m.walk())[-1]
        self.assertEqual(img["Content-ID"], "<logo.png>")
        self.assertEqual(img.get_content_disposition(), "inline")
        self.assertEqual(img.get_filename(), "logo.png")
        self.assertEqual(img.get_content(), PNG)

    def test_attachments_stay_outside_in_mixed(self):
        logo = self.file("logo.png", PNG)
        qr = self.file("qr.png", PNG[::-1])
        doc = self.file("invoice.pdf", b"%PDF-1.4 test")
        m = self.compose("--attach", doc, "--inline", logo, "--inline", qr,
                         html='<img src="cid:logo.png"><img src=\'cid:qr.png\'>')
        self.assertEqual(shape(m), (
            "multipart/mixed",
            [("multipart/alternative",
              ["text/plain", ("multipart/related", ["text/html", "image/png", "image/png"])]),
             "application/pdf"]))
        parts = list(m.walk())
        self.assertEqual([p["Content-ID"] for p in parts if p["Content-ID"]],
                         ["<logo.png>", "<qr.png>"])
        pdf = parts[-1]
        self.assertEqual(pdf.get_content_disposition(), "attachment")
        self.assertIsNone(pdf["Content-ID"])

    def test_unknown_cid_is_refused_before_connecting(self):
        srv = self.server()
        logo = self.file("logo.png", PNG)
        res = helpers.run_cli(self.send_args("--inline", logo, "--html",
                                             '<img src="cid:logo.png"><img src="cid:missing.png">'),
                              self.env_for(srv))
        self.assertFailed(res, 65, "cid:missing.png")
        self.assertEqual(srv.rec.connections, 0)

    def test_inline_without_html_is_refused(self):
        logo = self.file("logo.png", PNG)
        res = helpers.run_cli(self.send_args("--inline", logo, "--print"),
                              helpers.base_env(SMTP_FROM=SENDER))
        self.assertFailed(res, 65, "inline part needs an HTML body")

    def test_same_content_id_twice_is_refused(self):
        a = self.file("logo.png", PNG)
        os.mkdir(os.path.join(self.dir, "sub"))
        b = os.path.join(self.dir, "sub", "logo.png")
        with open(b, "wb") as f:
            f.write(PNG)
        res = helpers.run_cli(self.send_args("--inline", a, "--inline", b, "--html",
                                             '<img src="cid:logo.png">', "--print"),
                              helpers.base_env(SMTP_FROM=SENDER))
        self.assertFailed(res, 65, "used twice")


class CalendarTest(Files, CliTest):
    def test_calendar_is_the_last_alternative_with_its_method(self):
        ics = self.file("invite.ics", ICS)
        logo = self.file("logo.png", PNG)
        m = self.compose("--calendar", ics, "--inline", logo, html='<img src="cid:logo.png">')
        self.assertEqual(shape(m), ("multipart/alternative",
                                    ["text/plain",
                                     ("multipart/related", ["text/html", "image/png"]),
                                     "text/calendar"]))
        cal = list(m.walk())[-1]
        self.assertEqual(cal.get_param("method"), "REQUEST")
        self.assertEqual(cal.get_content_charset(), "utf-8")
        self.assertEqual(cal.get_content().replace("\r\n", "\n"), ICS.replace("\r\n", "\n"))

    def test_calendar_without_html(self):
        ics = self.file("cancel.ics", ICS.replace("METHOD:REQUEST", "METHOD:CANCEL"))
        m = self.compose("--calendar", ics)
        self.assertEqual(shape(m), ("multipart/alternative", ["text/plain", "text/calendar"]))
        self.assertEqual(list(m.walk())[-1].get_param("method"), "CANCEL")

    def test_calendar_without_method_is_refused(self):
        ics = self.file("bad.ics", ICS.replace("METHOD:REQUEST\r\n", ""))
        res = helpers.run_cli(self.send_args("--calendar", ics, "--print"),
                              helpers.base_env(SMTP_FROM=SENDER))
        self.assertFailed(res, 65, "no METHOD line")

    def test_missing_calendar_file(self):
        res = helpers.run_cli(self.send_args("--calendar", os.path.join(self.dir, "none.ics"),
                                             "--print"), helpers.base_env(SMTP_FROM=SENDER))
        self.assertEqual(res[0], 66, res[2])
