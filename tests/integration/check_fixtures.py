"""Self-check of the suite's servers and CA with Python's smtplib (no scalr-email).

Run: /usr/bin/python3 tests/integration/check_fixtures.py
Proves that each fixture behaves the way test_*.py assumes, so that a failing
integration test points at the C code, not at the fixture.
"""

import smtplib
import socket
import ssl
import sys
import time
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import helpers as H  # noqa: E402
import faults as F   # noqa: E402

MSG = b"From: a@example.org\r\nTo: b@example.net\r\nSubject: x\r\n\r\nhello\r\n.dot\r\n"


class Fixtures(H.CliTest):
    def test_plain(self):
        s = self.server("plain")
        with smtplib.SMTP("127.0.0.1", s.port, timeout=5) as c:
            c.ehlo("client.test")
            self.assertNotIn("pipelining", c.esmtp_features)
            self.assertIn("size", c.esmtp_features)
            c.sendmail("a@example.org", ["b@example.net"], MSG)
        self.assertTrue(s.rec.wait_messages(1))
        m = s.messages[0]
        self.assertEqual(m.data, MSG)
        self.assertEqual(m.helo, "client.test")
        self.assertIsNone(m.tls)
        self.assertIdle(s)
        self.assertIn("MAIL", s.rec.client_commands())
        self.assertEqual(s.rec.connections, 1)

    def test_pipelining_advertised(self):
        s = self.server("plain", extra_caps=["PIPELINING"])
        with smtplib.SMTP("127.0.0.1", s.port, timeout=5) as c:
            c.ehlo("x")
            self.assertIn("pipelining", c.esmtp_features)

    def test_starttls_auth_plain_and_login(self):
        for mechs in (None, ["LOGIN"]):
            with self.subTest(mechs=mechs):
                s = self.server("starttls", auth=("user", "pw"), mechanisms=mechs)
                for host in ("127.0.0.1", "localhost"):
                    with smtplib.SMTP(host, s.port, timeout=5) as c:
                        c.ehlo()
                        self.assertNotIn("auth", c.esmtp_features)
                        code, _ = c.mail("a@example.org")
                        self.assertEqual(code, 530)
                        c.starttls(context=H.ca().client_context())
                        c.ehlo()
                        offered = c.esmtp_features["auth"].split()
                        self.assertEqual(offered, mechs or ["LOGIN", "PLAIN"])
                        with self.assertRaises(smtplib.SMTPAuthenticationError) as cm:
                            c.login("user", "bad")
                        self.assertEqual(cm.exception.smtp_code, 535)
                        c.login("user", "pw")
                        c.sendmail("a@example.org", ["b@example.net"], MSG)
                self.assertTrue(s.rec.wait_messages(2))
                self.assertEqual(s.messages[0].tls, "TLSv1.3")
                self.assertEqual(s.messages[0].login, b"user")
                # smtplib tries every offered mechanism before giving up
                oks = [a[2] for a in s.rec.auth]
                self.assertEqual(oks.count(True), 2)
                self.assertEqual({a[0] for a in s.rec.auth}, set(mechs or ["PLAIN", "LOGIN"]))

    def test_implicit_tls(self):
        s = self.server("implicit", auth=("user", "pw"))
        with smtplib.SMTP_SSL("127.0.0.1", s.port, timeout=5,
                              context=H.ca().client_context()) as c:
            c.login("user", "pw")
            c.sendmail("a@example.org", ["b@example.net"], MSG)
        self.assertTrue(s.rec.wait_messages(1))
        self.assertEqual(s.messages[0].tls, "TLSv1.3")

    def test_bad_certs_fail_verification(self):
        for cert, host in (("selfsigned", "localhost"), ("wrong", "localhost"),
                           ("wrong", "127.0.0.1")):
            with self.subTest(cert=cert, host=host):
                s = self.server("implicit", cert=cert)
                with self.assertRaises(ssl.SSLCertVerificationError):
                    smtplib.SMTP_SSL(host, s.port, timeout=5, context=H.ca().client_context())

    def test_custom_replies(self):
        s = self.server("plain", mail_reply="550 5.7.1 Sender blocked")
        with smtplib.SMTP("127.0.0.1", s.port, timeout=5) as c:
            with self.assertRaises(smtplib.SMTPSenderRefused) as cm:
                c.sendmail("a@example.org", ["b@example.net"], MSG)
            self.assertEqual(cm.exception.smtp_code, 550)
        s = self.server("plain", rcpt_replies={"bad@example.net": "550 5.1.1 No such user"},
                        data_reply="554 5.6.0 Content rejected")
        with smtplib.SMTP("127.0.0.1", s.port, timeout=5) as c:
            refused = None
            try:
                c.sendmail("a@example.org", ["b@example.net", "bad@example.net"], MSG)
            except smtplib.SMTPDataError as e:
                refused = e.smtp_code
            self.assertEqual(refused, 554)
        self.assertIdle(s)
        self.assertEqual(s.messages, [])
        self.assertEqual(len(s.rec.rejected_data), 1)

    def test_size_limit(self):
        s = self.server("plain", data_size_limit=2000)
        with smtplib.SMTP("127.0.0.1", s.port, timeout=5) as c:
            c.ehlo()
            self.assertEqual(c.esmtp_features["size"], "2000")

    def test_no_smtputf8(self):
        s = self.server("plain", enable_SMTPUTF8=False)
        with smtplib.SMTP("127.0.0.1", s.port, timeout=5) as c:
            c.ehlo()
            self.assertNotIn("smtputf8", c.esmtp_features)

    def test_closed_port(self):
        sock, port = H.closed_port()
        self.addCleanup(sock.close)
        with self.assertRaises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), 2)

    def test_script_421(self):
        s = self.script_server(F.greeting_then_close(b"421 4.3.2 Too busy\r\n"))
        with self.assertRaises(smtplib.SMTPConnectError) as cm:
            smtplib.SMTP("127.0.0.1", s.port, timeout=5)
        self.assertEqual(cm.exception.smtp_code, 421)

    def test_script_garbage(self):
        s = self.script_server(F.garbage_greeting)
        with self.assertRaises(smtplib.SMTPConnectError) as cm:
            smtplib.SMTP("127.0.0.1", s.port, timeout=2)
        self.assertEqual(cm.exception.smtp_code, -1)   # not a reply at all

    def test_script_silent(self):
        s = self.script_server(F.silent)
        t0 = time.monotonic()
        with self.assertRaises((socket.timeout, smtplib.SMTPServerDisconnected)):
            smtplib.SMTP("127.0.0.1", s.port, timeout=1)
        self.assertLess(time.monotonic() - t0, 3)

    def test_starttls_injection_arrives_in_one_segment(self):
        s = self.server("starttls", smtp_class=F.StartTLSInjection)
        with socket.create_connection(("127.0.0.1", s.port), 5) as c:
            f = c.makefile("rb")
            self.assertTrue(f.readline().startswith(b"220 "))
            c.sendall(b"EHLO x\r\n")
            while not f.readline().startswith(b"250 "):
                pass
            c.sendall(b"STARTTLS\r\n")
            self.assertTrue(f.readline().startswith(b"220 "))
            # the injected reply is already in the buffer, before any handshake
            self.assertEqual(f.peek(1)[:len(F.INJECTED)], F.INJECTED[:len(f.peek(1))])
            self.assertEqual(f.readline() + f.readline(), F.INJECTED)

    def test_starttls_454(self):
        s = self.server("starttls", smtp_class=F.StartTLSRefused)
        with smtplib.SMTP("127.0.0.1", s.port, timeout=5) as c:
            c.ehlo()
            code, _ = c.docmd("STARTTLS")
            self.assertEqual(code, 454)

    def test_disconnect_mid_data(self):
        s = self.server("plain", smtp_class=F.HangUpInData)
        with self.assertRaises(smtplib.SMTPServerDisconnected):
            with smtplib.SMTP("127.0.0.1", s.port, timeout=5) as c:
                c.sendmail("a@example.org", ["b@example.net"], MSG + b"x" * 200000 + b"\r\n")
        self.assertNothingDelivered(s)
        self.assertTrue(any(c == "DATA" for c in s.rec.client_commands()))

    def test_quirky_servers_still_speak_smtp(self):
        for cls in (F.SlowReplies, F.BareLFReplies, F.MultiLineGreeting):
            with self.subTest(cls=cls.__name__):
                s = self.server("plain", smtp_class=cls)
                with smtplib.SMTP("127.0.0.1", s.port, timeout=5) as c:
                    c.sendmail("a@example.org", ["b@example.net"], MSG)
                self.assertTrue(s.rec.wait_messages(1))

    def test_close_after_data(self):
        s = self.server("plain", smtp_class=F.CloseAfterData)
        c = smtplib.SMTP("127.0.0.1", s.port, timeout=5)
        c.sendmail("a@example.org", ["b@example.net"], MSG)
        with self.assertRaises(smtplib.SMTPServerDisconnected):
            c.noop()
        self.assertTrue(s.rec.wait_messages(1))

    def test_cram_md5_only(self):
        s = self.server("starttls", auth=("u", "p"), mechanisms=["CRAM-MD5"],
                        handler_class=F.CramMD5Handler)
        with smtplib.SMTP("127.0.0.1", s.port, timeout=5) as c:
            c.starttls(context=H.ca().client_context())
            c.ehlo()
            self.assertEqual(c.esmtp_features["auth"].split(), ["CRAM-MD5"])

    def test_expired_cert_and_sni(self):
        s = self.server("implicit", cert="expired")
        with self.assertRaises(ssl.SSLCertVerificationError) as cm:
            smtplib.SMTP_SSL("localhost", s.port, timeout=5, context=H.ca().client_context())
        self.assertIn("expired", str(cm.exception))
        self.assertIdle(s)
        self.assertEqual(s.rec.sni, ["localhost"])

    def test_tls12_only(self):
        s = self.server("implicit", tls_max="TLSv1_2")
        with smtplib.SMTP_SSL("127.0.0.1", s.port, timeout=5,
                              context=H.ca().client_context()) as c:
            self.assertEqual(c.sock.version(), "TLSv1.2")

    def test_handshake_scripts(self):
        for script in (F.starttls_then_silent, F.starttls_then_plaintext):
            with self.subTest(script=script.__name__):
                s = self.script_server(script)
                c = smtplib.SMTP("127.0.0.1", s.port, timeout=1)
                self.assertIn("starttls", c.ehlo() and c.esmtp_features)
                with self.assertRaises((ssl.SSLError, OSError)):
                    c.starttls(context=H.ca().client_context())
                c.close()

    def test_bad_reply_scripts(self):
        for script in (F.huge_ehlo_line, F.ehlo_mixed_codes):
            with self.subTest(script=script.__name__):
                s = self.script_server(script)
                with socket.create_connection(("127.0.0.1", s.port), 5) as c:
                    f = c.makefile("rb")
                    self.assertTrue(f.readline().startswith(b"220 "))
                    c.sendall(b"EHLO x\r\n")
                    first = f.readline()
                    second = f.readline()
                    self.assertTrue(len(first) > 50000 or second.startswith(b"354-"),
                                    (first[:40], second[:40]))

    def test_client_commands_skip_message_content(self):
        s = self.server("plain")
        with smtplib.SMTP("127.0.0.1", s.port, timeout=5) as c:
            c.sendmail("a@example.org", ["b@example.net"],
                       b"Subject: x\r\n\r\nMAIL FROM:<in-body@example.org>\r\n")
        self.assertIdle(s)
        self.assertEqual(s.rec.client_commands(),
                         ["EHLO", "MAIL", "RCPT", "DATA", "QUIT"])


if __name__ == "__main__":
    unittest.main(verbosity=2)
