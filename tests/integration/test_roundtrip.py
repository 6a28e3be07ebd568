"""Round trip: what scalr-email composes, parsed back by Python's email package."""

import datetime
import email
import email.policy
import os
import re
import shutil
import tempfile

import helpers as H

SUBJECT = ("Facture n° 42 – Zoë's café ☕ — 請求書の準備ができました 🎉📧 "
           "with a tail long enough to need folding: ünïcödé ünïcödé ünïcödé")
FROM = ("Zoë Ångström", "zoe@example.org")
TO = [("山田 太郎", "taro@example.net"), ("", "emile@example.net")]
CC = [("Ĉarlo Ŝuŝo 🚀", "carlo@example.com")]
BCC = [("", "hidden@example.com"), ("Secret Person", "secret@example.com")]
REPLY_TO = ("Ответ Отдел", "reply@example.org")
BODY = ("Bonjour Zoë,\n"
        "\n"
        "Votre facture est prête : 42,00 €.\n"
        "日本語のテキスト。中文。한국어.\n"
        "Emoji: 🎉📧👍🏽 and a flag 🇫🇷\n"
        + "Long line with accents é à ü ß œ " * 8 + "end\n"
        "Merci,\n"
        "-- \n"
        "Zoë\n")
HTML = ("<html><body><p>Grüße, 世界 🌍</p>"
        "<p>" + "Ünïcødé &amp; more " * 12 + "</p></body></html>\n")
BIN_NAME = "données_報告_📎.bin"
TXT_NAME = "notes.txt"
TXT_DATA = "line one\nlïne twö ✓\nthird line\n".encode("utf-8")


def addr(pair):
    name, a = pair
    return "%s <%s>" % (name, a) if name else a


def text_of(part):
    """A text part's content with CRLF normalised to LF."""
    return part.get_content().replace("\r\n", "\n")


class RoundTrip(H.CliTest):
    def assertTransportClean(self, data):
        """RFC 5322 2.1.1 / RFC 5321 2.3.8: only CRLF, lines <= 998, 7-bit."""
        self.assertTrue(data.endswith(b"\r\n"), "message must end with CRLF")
        for i, line in enumerate(data.split(b"\r\n")[:-1], 1):
            self.assertNotIn(b"\r", line, "bare CR in line %d: %r" % (i, line[:80]))
            self.assertNotIn(b"\n", line, "bare LF in line %d: %r" % (i, line[:80]))
            self.assertLessEqual(len(line), 998, "line %d is %d octets" % (i, len(line)))
            bad = [b for b in line if b >= 0x80 or (b < 0x20 and b != 0x09)]
            self.assertEqual(bad, [], "line %d is not 7-bit clean: %r" % (i, line[:120]))

    def assertBodyEqual(self, got, want):
        if got.endswith("\n") and not want.endswith("\n"):
            got = got[:-1]
        self.assertEqual(got, want)

    def assertAddresses(self, header, want):
        self.assertIsNotNone(header, "header missing")
        got = [(a.display_name, a.addr_spec) for a in header.addresses]
        self.assertEqual(got, list(want))

    def deliver(self, args, input=None, srv=None):
        srv = srv or self.server("plain")
        self.assertSent(H.run_cli(args, self.env_for(srv), input=input))
        self.assertTrue(srv.rec.wait_messages(1), "server received nothing")
        self.assertIdle(srv)
        self.assertEqual(len(srv.messages), 1, srv.messages)
        m = srv.messages[0]
        return m, email.message_from_bytes(m.data, policy=email.policy.default)

    def test_full_message_utf8(self):
        d = tempfile.mkdtemp(prefix="scalr-integ-")
        self.addCleanup(shutil.rmtree, d, True)
        bin_data = os.urandom(3000) + b"\x00\r\n.\r\n\n.\n" + os.urandom(100)
        bin_path = os.path.join(d, BIN_NAME)
        txt_path = os.path.join(d, TXT_NAME)
        with open(bin_path, "wb") as f:
            f.write(bin_data)
        with open(txt_path, "wb") as f:
            f.write(TXT_DATA)

        args = ["send", "--subject", SUBJECT, "--body", BODY, "--html", HTML,
                "--from", addr(FROM), "--reply-to", addr(REPLY_TO),
                "--attach", bin_path, "--attach", txt_path]
        for flag, lst in (("--to", TO), ("--cc", CC), ("--bcc", BCC)):
            for a in lst:
                args += [flag, addr(a)]
        t0 = datetime.datetime.now(datetime.timezone.utc)
        m, msg = self.deliver(args)

        self.assertTransportClean(m.data)
        # envelope
        self.assertEqual(m.mail_from, FROM[1])
        want_rcpt = [a for _, a in TO + CC + BCC]
        self.assertEqual(sorted(m.rcpt_tos), sorted(want_rcpt), "each recipient exactly once")
        # headers
        self.assertEqual(msg["Subject"], SUBJECT)
        self.assertAddresses(msg["From"], [FROM])
        self.assertAddresses(msg["To"], TO)
        self.assertAddresses(msg["Cc"], CC)
        self.assertAddresses(msg["Reply-To"], [REPLY_TO])
        self.assertIsNone(msg["Bcc"], "Bcc must not be a header (RFC 5322 3.6.3)")
        for _, a in BCC:
            self.assertNotIn(a.encode(), m.data, "Bcc address leaked into the message")
        self.assertNotIn(b"Secret", m.data)
        self.assertEqual(str(msg["MIME-Version"]).strip(), "1.0")
        self.assertRegex(str(msg["Message-ID"]).strip(), r"^<[^<>@\s]+@example\.org>$")
        self.assertEqual(len(msg.get_all("Message-ID")), 1)
        self.assertIsNotNone(msg["Date"], "Date is required (RFC 5322 3.6)")
        date = msg["Date"].datetime
        self.assertIsNotNone(date.tzinfo, "Date needs a zone")
        self.assertLess(abs((date - t0).total_seconds()), 300, "Date is not now: %s" % date)
        for h in ("Subject", "From", "To", "Date", "Message-ID"):
            self.assertEqual(len(msg.get_all(h)), 1, "exactly one %s" % h)
        # structure: mixed( alternative(plain, html), attachments... )
        self.assertEqual(msg.get_content_type(), "multipart/mixed")
        parts = list(msg.iter_parts())
        self.assertEqual(len(parts), 3, [p.get_content_type() for p in parts])
        alt = parts[0]
        self.assertEqual(alt.get_content_type(), "multipart/alternative")
        alts = list(alt.iter_parts())
        self.assertEqual([p.get_content_type() for p in alts], ["text/plain", "text/html"],
                         "RFC 2046 5.1.4: text first, HTML last")
        for p in alts:
            self.assertEqual(p.get_content_charset(), "utf-8")
        self.assertBodyEqual(text_of(alts[0]), BODY)
        self.assertBodyEqual(text_of(alts[1]), HTML)
        # attachments
        atts = parts[1:]
        self.assertEqual([p.get_filename() for p in atts], [BIN_NAME, TXT_NAME])
        for p in atts:
            self.assertEqual(p.get_content_disposition(), "attachment")
        self.assertEqual(atts[0].get_payload(decode=True), bin_data)
        self.assertTrue(atts[1].get_content_type().startswith("text/"),
                        atts[1].get_content_type())
        got_txt = atts[1].get_payload(decode=True)
        # text/* has canonical CRLF line ends (RFC 2046 4.1.1): allow that, nothing else
        self.assertIn(got_txt, (TXT_DATA, TXT_DATA.replace(b"\n", b"\r\n")))

    def test_text_only_message(self):
        m, msg = self.deliver(self.send_args(subject="Just text", body="Only text, ça va?\n"))
        self.assertTransportClean(m.data)
        self.assertEqual(msg.get_content_type(), "text/plain")
        self.assertEqual(msg.get_content_charset(), "utf-8")
        self.assertBodyEqual(text_of(msg), "Only text, ça va?\n")

    def test_html_alternative_without_attachments(self):
        m, msg = self.deliver(self.send_args("--html", "<p>Hi <b>there</b></p>", body="Hi there"))
        self.assertTransportClean(m.data)
        self.assertEqual(msg.get_content_type(), "multipart/alternative")
        parts = list(msg.iter_parts())
        self.assertEqual([p.get_content_type() for p in parts], ["text/plain", "text/html"])
        self.assertBodyEqual(text_of(parts[0]), "Hi there")
        self.assertBodyEqual(text_of(parts[1]), "<p>Hi <b>there</b></p>")

    def test_dot_stuffing(self):
        body = (".leading dot\n"
                ".\n"
                "..two dots\n"
                "middle\n"
                ". dot space\n"
                ".\n"
                "last line\n"
                ".")
        m, msg = self.deliver(self.send_args(body=body))
        self.assertTransportClean(m.data)
        self.assertBodyEqual(text_of(msg), body)
        # the message ended where the client meant it to: nothing was cut short
        self.assertTrue(m.data.endswith(b"\r\n"))

    def test_dot_stuffing_from_stdin_with_crlf(self):
        body = "line1\r\n.\r\nline3\n.\nQUIT\r\n..\r\nend\r\n"
        m, msg = self.deliver(self.send_args(body=None), input=body.encode())
        self.assertTransportClean(m.data)
        self.assertBodyEqual(text_of(msg), body.replace("\r\n", "\n"))

    def test_long_lines_are_encoded(self):
        body = "A" * 5000 + "\n" + "é" * 3000 + "\nshort\n"
        subject = "S" * 300
        m, msg = self.deliver(self.send_args(subject=subject, body=body))
        self.assertTransportClean(m.data)
        self.assertEqual(msg["Subject"], subject)
        self.assertBodyEqual(text_of(msg), body)

    def test_long_subject_folding(self):
        subject = " ".join(["word%02d" % i for i in range(60)])
        m, msg = self.deliver(self.send_args(subject=subject))
        self.assertTransportClean(m.data)
        self.assertEqual(msg["Subject"], subject)

    def test_display_names_with_specials(self):
        # RFC 5322 3.2.4: specials in a display name need a quoted-string on input
        names = ["Doe, John", "Smith; Jane Q.", "Ünïcødé 🎉, Esq.", "Support @ ACME",
                 'José "Pepe" Núñez', "back\\slash"]
        args = self.send_args(to=None)
        for i, n in enumerate(names):
            quoted = n.replace("\\", "\\\\").replace('"', '\\"')
            args += ["--to", '"%s" <p%d@example.net>' % (quoted, i)]
        m, msg = self.deliver(args)
        self.assertTransportClean(m.data)
        self.assertEqual(m.rcpt_tos, ["p%d@example.net" % i for i in range(len(names))])
        self.assertAddresses(msg["To"], [(n, "p%d@example.net" % i)
                                         for i, n in enumerate(names)])

    def test_custom_headers(self):
        args = self.send_args("--header", "X-Campaign: spring-2026",
                              "--header", "X-Note: Grüße aus Köln")
        m, msg = self.deliver(args)
        self.assertTransportClean(m.data)
        self.assertEqual(msg["X-Campaign"], "spring-2026")
        self.assertEqual(msg["X-Note"], "Grüße aus Köln")

    def test_empty_file_attachment(self):
        d = tempfile.mkdtemp(prefix="scalr-integ-")
        self.addCleanup(shutil.rmtree, d, True)
        p = os.path.join(d, "empty.dat")
        open(p, "wb").close()
        m, msg = self.deliver(self.send_args("--attach", p))
        self.assertTransportClean(m.data)
        atts = list(msg.iter_attachments())
        self.assertEqual([a.get_filename() for a in atts], ["empty.dat"])
        self.assertEqual(atts[0].get_payload(decode=True), b"")

    def test_large_attachment(self):
        d = tempfile.mkdtemp(prefix="scalr-integ-")
        self.addCleanup(shutil.rmtree, d, True)
        data = os.urandom(2 * 1024 * 1024 + 17)
        p = os.path.join(d, "big.bin")
        with open(p, "wb") as f:
            f.write(data)
        m, msg = self.deliver(self.send_args("--attach", p))
        self.assertTransportClean(m.data)
        atts = list(msg.iter_attachments())
        self.assertEqual(len(atts), 1)
        self.assertEqual(atts[0].get_payload(decode=True), data)

    def test_sent_line_and_message_id_unique(self):
        srv = self.server("plain")
        lines = [self.assertSent(H.run_cli(self.send_args(), self.env_for(srv)))
                 for _ in range(2)]
        self.assertTrue(srv.rec.wait_messages(2))
        ids = [re.search(rb"^Message-ID:\s*(<[^>]+>)", m.data, re.M | re.I).group(1)
               for m in srv.messages]
        self.assertNotEqual(ids[0], ids[1], "Message-IDs must be unique")
        for line, mid in zip(lines, ids):
            self.assertIn(mid.decode()[1:-1], line)


class SmtpUtf8(H.CliTest):
    def test_utf8_local_part_uses_smtputf8(self):
        srv = self.server("plain")            # aiosmtpd's Controller offers SMTPUTF8
        self.assertSent(H.run_cli(self.send_args(to="用户@example.net"), self.env_for(srv)))
        self.assertTrue(srv.rec.wait_messages(1))
        m = srv.messages[0]
        self.assertEqual(m.rcpt_tos, ["用户@example.net"])
        self.assertIn("SMTPUTF8", m.mail_options)

    def test_ascii_message_does_not_ask_for_smtputf8(self):
        srv = self.server("plain")
        self.assertSent(H.run_cli(self.send_args(subject="Grüße 🎉", body="ünï"),
                                  self.env_for(srv)))
        self.assertTrue(srv.rec.wait_messages(1))
        self.assertNotIn("SMTPUTF8", srv.messages[0].mail_options,
                         "SMTPUTF8 only when the envelope needs it (RFC 6531)")
