"""Messages sent through scalr_email.send() arrive at a real SMTP server
(aiosmtpd on 127.0.0.1) as the caller meant them."""
import os
import pathlib
import tempfile
import unittest

import scalr_email
from scalr_email import send

from base import FROM, EnvTestCase
from servers import SmtpServer


class SeedInterface(EnvTestCase):
    def test_seed_call_arrives_with_text_and_html(self):
        srv = self.smtp_server()
        mid = send(
            to="user@example.com",
            subject="Your invoice is ready",
            body="Plain-text body here.",
            body_html="<p>HTML body here.</p>",  # optional
        )
        [got] = srv.wait_messages(1)
        msg = got.message
        self.assertEqual(got.mail_from, "hello@acme.test")
        self.assertEqual(got.rcpt_tos, ["user@example.com"])
        self.assertEqual(msg["Subject"], "Your invoice is ready")
        self.assertEqual(msg["To"], "user@example.com")
        self.assertEqual(msg["From"], FROM)
        self.assertEqual(msg.get_content_type(), "multipart/alternative")
        parts = [p.get_content_type() for p in msg.iter_parts()]
        self.assertEqual(parts, ["text/plain", "text/html"])  # RFC 2046 5.1.4 order
        self.assertEqual(msg.get_body(("plain",)).get_content().rstrip("\r\n"),
                         "Plain-text body here.")
        self.assertEqual(msg.get_body(("html",)).get_content().rstrip("\r\n"),
                         "<p>HTML body here.</p>")
        self.assertIsInstance(mid, str)
        self.assertEqual(msg["Message-ID"], mid)
        self.assertRegex(mid, r"^<[^<>@\s]+@[^<>@\s]+>$")
        self.assertIsNotNone(msg["Date"])

    def test_positional_arguments_and_text_only(self):
        srv = self.smtp_server()
        send("user@example.com", "Hi", "Just text.")
        [got] = srv.wait_messages(1)
        self.assertEqual(got.message.get_content_type(), "text/plain")
        self.assertEqual(got.message.get_content().rstrip("\r\n"), "Just text.")

    def test_sender_keyword_overrides_smtp_from(self):
        srv = self.smtp_server()
        send("user@example.com", "Hi", "x", None, "Tenant <noreply@tenant.test>")
        [got] = srv.wait_messages(1)
        self.assertEqual(got.mail_from, "noreply@tenant.test")
        self.assertEqual(got.message["From"], "Tenant <noreply@tenant.test>")

    def test_list_of_recipients_cc_bcc(self):
        srv = self.smtp_server()
        send(["a@example.com", "Bob <b@example.com>"], "Team", "Hello all",
             cc=("c@example.com",), bcc=["d@example.com"], reply_to="support@acme.test")
        [got] = srv.wait_messages(1)
        self.assertEqual(got.rcpt_tos,
                         ["a@example.com", "b@example.com", "c@example.com", "d@example.com"])
        msg = got.message
        self.assertEqual([a.addr_spec for a in msg["To"].addresses],
                         ["a@example.com", "b@example.com"])
        self.assertEqual(msg["To"].addresses[1].display_name, "Bob")
        self.assertEqual(msg["Cc"], "c@example.com")
        self.assertIsNone(msg["Bcc"])  # RFC 5322 3.6.3: envelope only
        self.assertNotIn(b"d@example.com", got.data)
        self.assertEqual(msg["Reply-To"], "support@acme.test")

    def test_extra_headers_dict_and_pairs(self):
        srv = self.smtp_server()
        send("u@example.com", "h", "b", headers={"X-Tag": "invoice", "X-Tenant": "42"})
        send("u@example.com", "h", "b", headers=[("X-Tag", "pairs")])
        got = srv.wait_messages(2)
        self.assertEqual(got[0].message["X-Tag"], "invoice")
        self.assertEqual(got[0].message["X-Tenant"], "42")
        self.assertEqual(got[1].message["X-Tag"], "pairs")

    def test_configuration_is_read_at_each_call(self):
        one = self.start(SmtpServer())
        two = self.start(SmtpServer())
        self.configure(one.port)
        send("u@example.com", "first", "b")
        os.environ["SMTP_PORT"] = str(two.port)
        os.environ["SMTP_FROM"] = "other@acme.test"
        send("u@example.com", "second", "b")
        self.assertEqual([m.message["Subject"] for m in one.wait_messages(1)], ["first"])
        [got] = two.wait_messages(1)
        self.assertEqual(got.message["Subject"], "second")
        self.assertEqual(got.mail_from, "other@acme.test")

    def test_profile_picks_the_tenant_and_its_domains(self):
        import tempfile
        platform = self.start(SmtpServer())
        tenant = self.start(SmtpServer())
        self.configure(platform.port)
        d = tempfile.mkdtemp(prefix="py-profiles-")
        with open(os.path.join(d, "acme.env"), "w") as f:
            f.write("SMTP_PORT=%d\nSMTP_FROM=noreply@acme.example\n"
                    "SMTP_ALLOWED_FROM_DOMAINS=acme.example\n" % tenant.port)
        os.environ["SCALR_EMAIL_PROFILES"] = d
        try:
            send("u@example.com", "tenant", "b", profile="acme")
            [got] = tenant.wait_messages(1)
            self.assertEqual(got.mail_from, "noreply@acme.example")
            with self.assertRaises(scalr_email.InvalidMessageError):
                send("u@example.com", "spoof", "b", sender="ceo@globex.example", profile="acme")
            with self.assertRaises(scalr_email.ConfigurationError):
                send("u@example.com", "x", "b", profile="nobody")
            send("u@example.com", "platform", "b")
            self.assertEqual([m.message["Subject"] for m in platform.wait_messages(1)],
                             ["platform"])
            self.assertEqual(len(tenant.messages), 1)
        finally:
            del os.environ["SCALR_EMAIL_PROFILES"]
            import shutil
            shutil.rmtree(d, ignore_errors=True)

    def test_dot_lines_survive(self):
        srv = self.smtp_server()
        body = ".\n..leading dots\n.\nend"
        send("u@example.com", "dots", body)
        [got] = srv.wait_messages(1)
        self.assertEqual(got.message.get_content().replace("\r\n", "\n").rstrip("\n"), body)


class Unicode(EnvTestCase):
    def test_unicode_and_emoji_round_trip(self):
        srv = self.smtp_server()
        subject = "Grüße aus Köln 🎉 — ваш счёт готов ✅ " + "ñ" * 60
        body = "Héllo wörld 👋\nZweite Zeile: 日本語のテキスト\n" + "é" * 200
        html = "<p>Ünïcödé 🚀 <b>gras</b></p>"
        send("Jörg Müller <jorg@example.com>", subject, body, html,
             sender="Zoë 🐱 <zoe@acme.test>")
        [got] = srv.wait_messages(1)
        msg = got.message
        # Headers stay 7-bit (RFC 2047) so no SMTPUTF8 is needed downstream.
        head = got.data.split(b"\r\n\r\n", 1)[0]
        self.assertTrue(all(b < 0x80 for b in head), head)
        self.assertEqual(str(msg["Subject"]), subject)
        self.assertEqual(msg["To"].addresses[0].display_name, "Jörg Müller")
        self.assertEqual(msg["From"].addresses[0].display_name, "Zoë 🐱")
        self.assertEqual(msg["From"].addresses[0].addr_spec, "zoe@acme.test")
        plain = msg.get_body(("plain",))
        self.assertEqual(plain.get_content_charset(), "utf-8")
        self.assertEqual(plain.get_content().replace("\r\n", "\n").rstrip("\n"), body)
        self.assertEqual(msg.get_body(("html",)).get_content().rstrip("\r\n"), html)
        for line in got.data.split(b"\r\n"):
            self.assertLessEqual(len(line), 998)  # RFC 5322 2.1.1


class Attachments(EnvTestCase):
    def test_path_and_tuple_attachments(self):
        srv = self.smtp_server()
        blob = bytes(range(256)) * 40
        with tempfile.TemporaryDirectory() as d:
            path = pathlib.Path(d) / "data.bin"
            path.write_bytes(blob)
            txt = os.path.join(d, "notes.txt")
            with open(txt, "w", encoding="utf-8") as f:
                f.write("notes ✓\n")
            send("u@example.com", "files", "see attached", "<p>see attached</p>",
                 attachments=[path, txt,
                              ("report.csv", b"a,b\r\n1,2\r\n", "text/csv"),
                              ("Résumé 2024.pdf", bytearray(b"%PDF-1.4 fake"), None),
                              ("empty.dat", b"", "application/octet-stream")])
        [got] = srv.wait_messages(1)
        msg = got.message
        self.assertEqual(msg.get_content_type(), "multipart/mixed")
        self.assertEqual(msg.get_body(("plain",)).get_content().rstrip("\r\n"), "see attached")
        atts = {a.get_filename(): a for a in msg.iter_attachments()}
        self.assertEqual(sorted(atts), sorted(["data.bin", "notes.txt", "report.csv",
                                               "Résumé 2024.pdf", "empty.dat"]))
        self.assertEqual(atts["data.bin"].get_payload(decode=True), blob)
        self.assertEqual(atts["notes.txt"].get_payload(decode=True), "notes ✓\n".encode())
        self.assertEqual(atts["report.csv"].get_content_type(), "text/csv")
        self.assertEqual(atts["report.csv"].get_payload(decode=True), b"a,b\r\n1,2\r\n")
        self.assertEqual(atts["Résumé 2024.pdf"].get_content_type(), "application/pdf")
        self.assertEqual(atts["Résumé 2024.pdf"].get_payload(decode=True), b"%PDF-1.4 fake")
        self.assertEqual(atts["empty.dat"].get_payload(decode=True), b"")


class Compose(EnvTestCase):
    def test_compose_returns_the_bytes_without_sending(self):
        os.environ["SMTP_FROM"] = FROM
        data = scalr_email.compose("u@example.com", "Preview", "body", "<p>body</p>",
                                   bcc="hidden@example.com")
        self.assertIsInstance(data, bytes)
        self.assertIn(b"\r\n", data)
        self.assertNotIn(b"hidden@example.com", data)
        import email
        import email.policy
        msg = email.message_from_bytes(data, policy=email.policy.default)
        self.assertEqual(msg["Subject"], "Preview")
        self.assertEqual(msg["From"], FROM)

    def test_unsubscribe_adds_the_one_click_fields(self):
        os.environ["SMTP_FROM"] = FROM
        data = scalr_email.compose("u@example.com", "News", "body",
                                   unsubscribe="https://example.com/u/42?t=abc",
                                   unsubscribe_mailto="unsub@example.com")
        import re
        unfolded = re.sub(rb",\r\n[ \t]+", b", ", data)
        self.assertIn(b"\r\nList-Unsubscribe: <https://example.com/u/42?t=abc>, "
                      b"<mailto:unsub@example.com>\r\n", unfolded)
        self.assertIn(b"\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n", data)
        for bad in ("http://example.com/u", "https://example.com/a b", "https://x/<y>", "https://"):
            with self.assertRaises(scalr_email.InvalidMessageError):
                scalr_email.compose("u@example.com", "News", "body", unsubscribe=bad)
        with self.assertRaises(TypeError):
            scalr_email.compose("u@example.com", "News", "body", unsubscribe_mailto="a@b.c")

    def test_compose_is_signed_like_send(self):
        """compose() with SMTP_DKIM_*, and compose(profile=) with the tenant's
        key: the bytes verify under `scalr-email dkim verify` (and dkimpy
        when this interpreter has it)."""
        import re
        import shutil
        import subprocess
        import tempfile
        bin_ = os.environ.get("SCALR_EMAIL_BIN")
        if not bin_ or not os.access(bin_, os.X_OK):
            self.skipTest("needs SCALR_EMAIL_BIN (the command makes and checks the keys)")
        d = tempfile.mkdtemp(prefix="py-compose-dkim-")
        self.addCleanup(shutil.rmtree, d, True)
        records = {}

        def keygen(domain, sel):
            key = os.path.join(d, sel + ".key")
            out = subprocess.run([bin_, "dkim", "keygen", "--domain", domain, "--selector", sel,
                                  "--type", "ed25519", "--out", key], check=True,
                                 capture_output=True, text=True).stdout
            name, _, rest = out.strip().partition(" TXT ")
            records[name.rstrip(".")] = "".join(re.findall(r'"([^"]*)"', rest))
            return key

        def verdicts(data):
            path = os.path.join(d, "m.eml")
            with open(path, "wb") as f:
                f.write(data)
            rec = os.path.join(d, "records.txt")
            with open(rec, "w") as f:
                f.writelines('%s. TXT "%s"\n' % kv for kv in records.items())
            r = subprocess.run([bin_, "dkim", "verify", path, "--key-file", rec],
                               capture_output=True, text=True)
            out = [line.split()[:2] for line in r.stdout.splitlines()]
            try:
                import dkim
            except ImportError:
                return out
            dns = lambda name, timeout=5: records.get(name.decode().rstrip(".")).encode()
            self.assertTrue(dkim.verify(data, dnsfunc=dns))
            return out

        plat_key = keygen("acme.test", "plat")
        os.environ.update(SMTP_FROM=FROM, SMTP_DKIM_DOMAIN="acme.test",
                          SMTP_DKIM_SELECTOR="plat", SMTP_DKIM_KEY_FILE=plat_key)
        for k in ("SMTP_DKIM_DOMAIN", "SMTP_DKIM_SELECTOR", "SMTP_DKIM_KEY_FILE",
                  "SCALR_EMAIL_PROFILES"):
            self.addCleanup(os.environ.pop, k, None)
        data = scalr_email.compose("u@example.com", "Signed", "body\n")
        self.assertEqual(verdicts(data), [["pass", "d=acme.test"]])
        os.mkdir(os.path.join(d, "profiles"))
        with open(os.path.join(d, "profiles", "globex.env"), "w") as f:
            f.write("SMTP_FROM=noreply@globex.example\nSMTP_ALLOWED_FROM_DOMAINS=globex.example\n"
                    "SMTP_DKIM_DOMAIN=globex.example\nSMTP_DKIM_SELECTOR=gx\n"
                    "SMTP_DKIM_KEY_FILE=%s\n" % keygen("globex.example", "gx"))
        os.environ["SCALR_EMAIL_PROFILES"] = os.path.join(d, "profiles")
        data = scalr_email.compose("u@example.com", "Tenant", "body\n", profile="globex")
        self.assertIn(b"From: noreply@globex.example\r\n", data)
        self.assertEqual(verdicts(data), [["pass", "d=globex.example"]])
        with self.assertRaises(scalr_email.InvalidMessageError):
            scalr_email.compose("u@example.com", "s", "b", sender="x@acme.test", profile="globex")
        with self.assertRaises(scalr_email.ConfigurationError):
            scalr_email.compose("u@example.com", "s", "b", profile="nobody")

    def test_compose_needs_a_sender(self):
        with self.assertRaises(scalr_email.NotConfiguredError):
            scalr_email.compose("u@example.com", "s", "b")


if __name__ == "__main__":
    unittest.main()
