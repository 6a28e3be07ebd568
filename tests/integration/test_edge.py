"""Edge cases real servers produce, and encodings that are easy to get subtly wrong."""

import email
import email.header
import email.policy
import os
import re
import shutil
import tempfile
import time

import faults as F
import helpers as H

USER, PASSWORD = "mailer@example.org", "pässwörd ✓ with spaces"


def parse(m):
    return email.message_from_bytes(m.data, policy=email.policy.default)


def phrase_of(data, header):
    """(display name, address) of a one-address header, decoded per RFC 2047 6.2.

    Python 3.11's policy.default keeps the whitespace between adjacent
    encoded-words inside a display name ("=?..?= =?..?=" -> "A B"), which
    RFC 2047 6.2 says to ignore; email.header.decode_header drops it."""
    msg = email.message_from_bytes(data, policy=email.policy.compat32)
    raw = re.sub(r"\r?\n[ \t]", " ", msg[header])
    m = re.fullmatch(r"\s*(.*?)\s*<([^<>]+)>\s*", raw, re.S)
    if not m:
        return None, raw
    name = str(email.header.make_header(email.header.decode_header(m.group(1))))
    if name.startswith('"') and name.endswith('"'):
        name = re.sub(r"\\(.)", r"\1", name[1:-1])
    return name, m.group(2)


class ServerQuirks(H.CliTest):
    def deliver_ok(self, srv, args=None, env=None):
        self.assertSent(H.run_cli(args or self.send_args(), env or self.env_for(srv)))
        self.assertTrue(srv.rec.wait_messages(1))
        self.assertIdle(srv)
        self.assertEqual(len(srv.messages), 1)
        return srv.messages[0]

    def test_slow_server_within_timeout(self):
        # SMTP_TIMEOUT bounds each wait, not the whole session (RFC 5321 4.5.3.2)
        srv = self.server("plain", smtp_class=F.SlowReplies)
        t0 = time.monotonic()
        self.deliver_ok(srv, env=self.env_for(srv, SMTP_TIMEOUT="1"))
        self.assertGreater(time.monotonic() - t0, 1.1, "the fixture was not slow")

    def test_bare_lf_replies(self):
        srv = self.server("plain", smtp_class=F.BareLFReplies)
        self.deliver_ok(srv)

    def test_multi_line_greeting(self):
        srv = self.server("plain", smtp_class=F.MultiLineGreeting)
        self.deliver_ok(srv)
        rc, out, err = H.run_cli(["check"], self.env_for(srv))
        self.assertEqual(rc, 0, err)
        greeting = [ln for ln in out.splitlines() if ln.startswith("greeting: ")]
        self.assertEqual(len(greeting), 1, out)
        self.assertIn("first line", greeting[0])

    def test_server_hangs_up_after_accepting(self):
        # the message was accepted (250 after DATA): that is success even if
        # QUIT then fails -- and writing to the closed socket must not kill
        # the process with SIGPIPE
        for mode in ("plain", "starttls"):
            with self.subTest(mode=mode):
                srv = self.server(mode, smtp_class=F.CloseAfterData)
                self.deliver_ok(srv)

    def test_disconnect_in_data_large_message(self):
        # the client is still writing when the server hangs up: EPIPE/ECONNRESET,
        # never death by SIGPIPE, never a delivered message
        d = tempfile.mkdtemp(prefix="scalr-integ-")
        self.addCleanup(shutil.rmtree, d, True)
        p = os.path.join(d, "big.bin")
        with open(p, "wb") as f:
            f.write(os.urandom(4 * 1024 * 1024))
        for mode in ("plain", "starttls", "implicit"):
            with self.subTest(mode=mode):
                srv = self.server(mode, smtp_class=F.HangUpInData)
                res = H.run_cli(self.send_args("--attach", p), self.env_for(srv))
                self.assertFailed(res, 74)
                self.assertNothingDelivered(srv)

    def test_many_recipients_pipelined(self):
        # RFC 5321 4.5.3.1.8: at least 100 recipients; with PIPELINING all
        # RCPTs may be in flight at once
        srv = self.server("plain", extra_caps=["PIPELINING"])
        rcpts = ["user%03d@example.net" % i for i in range(300)]
        args = ["send", "--subject", "many", "--body", "hi"]
        for r in rcpts[:100]:
            args += ["--to", r]
        for r in rcpts[100:200]:
            args += ["--cc", r]
        for r in rcpts[200:]:
            args += ["--bcc", r]
        m = self.deliver_ok(srv, args)
        self.assertEqual(m.rcpt_tos, rcpts)
        msg = parse(m)
        self.assertEqual([a.addr_spec for a in msg["To"].addresses], rcpts[:100])
        self.assertEqual([a.addr_spec for a in msg["Cc"].addresses], rcpts[100:200])
        for i, line in enumerate(m.data.split(b"\r\n")):
            self.assertLessEqual(len(line), 998, "line %d" % i)

    def test_size_parameter(self):
        # RFC 1870: SIZE= on MAIL FROM, when declared, is at least the message size
        srv = self.server("plain")
        m = self.deliver_ok(srv, self.send_args(body="x" * 5000))
        sizes = [o for o in m.mail_options if o.startswith("SIZE=")]
        self.assertLessEqual(len(sizes), 1)
        if sizes:
            self.assertGreaterEqual(int(sizes[0][5:]), len(m.data))

    def test_multi_line_error_reply(self):
        srv = self.server("plain", mail_reply="550-5.7.1 first line of the refusal\r\n"
                                              "550-5.7.1 second line\r\n"
                                              "550 5.7.1 see https://example.invalid/why")
        line = self.assertFailed(H.run_cli(self.send_args(), self.env_for(srv)), 69, "550",
                                 "first line of the refusal", "second line")
        self.assertNotIn("\r", line)

    def test_very_long_error_reply(self):
        text = "5.7.1 " + "blocked " * 60 + "END"
        srv = self.server("plain", mail_reply="550 " + text)
        self.assertFailed(H.run_cli(self.send_args(), self.env_for(srv)), 69, "550")
        self.assertNothingDelivered(srv)

    def test_421_at_mail(self):
        srv = self.server("plain", mail_reply="421 4.3.2 Service shutting down")
        self.assertFailed(H.run_cli(self.send_args(), self.env_for(srv)), 75, "421")
        self.assertNothingDelivered(srv)

    def test_huge_reply_line_is_a_protocol_error(self):
        srv = self.script_server(F.huge_ehlo_line)
        self.assertFailed(H.run_cli(self.send_args(), self.env_for(srv, tls="plain")), 76)
        self.assertNeverSent(srv, "MAIL")

    def test_nul_in_greeting_is_a_protocol_error(self):
        srv = self.script_server(F.nul_in_reply)
        self.assertFailed(H.run_cli(self.send_args(), self.env_for(srv, tls="plain")), 76)
        self.assertNeverSent(srv, "MAIL")


class PipeliningReplies(H.CliTest):
    """RFC 2920 3.1: each reply belongs to its command, also when pipelined."""

    def test_mail_refused_pipelined(self):
        # the RCPTs and DATA then get 503s: the error to report is the 550
        srv = self.server("plain", extra_caps=["PIPELINING"],
                          mail_reply="550 5.7.1 Sender blocked here")
        line = self.assertFailed(H.run_cli(self.send_args(), self.env_for(srv)), 69, "550",
                                 "Sender blocked here")
        self.assertNotIn("503", line)
        self.assertNothingDelivered(srv)

    def test_only_recipient_refused_pipelined(self):
        srv = self.server("plain", extra_caps=["PIPELINING"],
                          rcpt_replies={H.RCPT: "550 5.1.1 No such user"})
        line = self.assertFailed(H.run_cli(self.send_args(), self.env_for(srv)), 69, "550",
                                 H.RCPT, "No such user")
        self.assertNotIn("503", line)
        self.assertNothingDelivered(srv)

    def test_enhanced_code_disagrees_with_basic_code(self):
        # RFC 3463 / field notes: trust the basic code's class
        for reply, code in (("550 4.7.1 Looks temporary, is not", 69),
                            ("450 5.7.1 Looks permanent, is not", 75)):
            with self.subTest(reply=reply):
                srv = self.server("plain", mail_reply=reply)
                self.assertFailed(H.run_cli(self.send_args(), self.env_for(srv)), code,
                                  reply[:3])

    def test_size_zero_means_no_limit(self):
        # RFC 1870: "SIZE 0" declares no fixed maximum
        srv = self.server("plain", data_size_limit=0, extra_caps=["SIZE 0"])
        self.assertSent(H.run_cli(self.send_args(body="y" * 3000), self.env_for(srv)))
        self.assertTrue(srv.rec.wait_messages(1))


class Smuggling(H.CliTest):
    def test_bare_cr_and_lf_dots(self):
        # SMTP smuggling (CVE-2023-51764): bare CR/LF around a dot must never
        # reach the wire; refusing the body (65) or normalising it are both fine
        body = "start\r.\r\nMAIL FROM:<evil@example.com>\n.\rRCPT TO:<x@example.com>\r\nend"
        srv = self.server("plain")
        rc, out, err = H.run_cli(self.send_args(body=body), self.env_for(srv))
        if rc == 65:
            self.assertFailed((rc, out, err), 65)
            self.assertNoConnection(srv)
            return
        self.assertSent((rc, out, err))
        self.assertTrue(srv.rec.wait_messages(1))
        self.assertIdle(srv)
        self.assertEqual(len(srv.messages), 1, "exactly one message, no smuggled one")
        data = srv.messages[0].data
        for line in data.split(b"\r\n")[:-1]:
            self.assertNotIn(b"\r", line)
            self.assertNotIn(b"\n", line)
        text = parse(srv.messages[0]).get_content()
        self.assertIn("end", text)
        self.assertIn("evil@example.com", text)
        cmds = srv.rec.client_commands()
        self.assertEqual(cmds.count("MAIL"), 1)


class TlsDetails(H.CliTest):
    def test_sni(self):
        # RFC 6066 3: SNI carries a host name, never an IP literal
        for mode in ("starttls", "implicit"):
            for host, want in (("localhost", "localhost"), ("127.0.0.1", None)):
                with self.subTest(mode=mode, host=host):
                    srv = self.server(mode)
                    self.assertSent(H.run_cli(self.send_args(), self.env_for(srv, host=host)))
                    self.assertIdle(srv)
                    self.assertEqual(srv.rec.sni, [want])

    def test_tls12_only_server(self):
        srv = self.server("starttls", tls_max="TLSv1_2")
        self.assertSent(H.run_cli(self.send_args(), self.env_for(srv)))
        self.assertTrue(srv.rec.wait_messages(1))
        self.assertEqual(srv.messages[0].tls, "TLSv1.2")

    def test_check_needs_no_sender(self):
        srv = self.server("starttls")
        env = self.env_for(srv)
        del env["SMTP_FROM"]
        rc, out, err = H.run_cli(["check"], env)
        self.assertEqual(rc, 0, err)
        self.assertIn("tls: TLSv1.3", out)


class TlsHandshake(H.CliTest):
    def test_handshake_timeout_implicit(self):
        srv = self.script_server(F.silent)                # TCP accept, no TLS bytes
        env = self.env_for(srv, tls="implicit", SMTP_TIMEOUT="1")
        t0 = time.monotonic()
        res = H.run_cli(self.send_args(), env)
        self.assertLess(time.monotonic() - t0, 5.0, "the TLS handshake must time out")
        self.assertFailed(res, 75)

    def test_handshake_timeout_starttls(self):
        srv = self.script_server(F.starttls_then_silent)
        env = self.env_for(srv, tls="starttls", SMTP_TIMEOUT="1")
        t0 = time.monotonic()
        res = H.run_cli(self.send_args(), env)
        self.assertLess(time.monotonic() - t0, 5.0, "the TLS handshake must time out")
        self.assertFailed(res, 75)
        self.assertNeverSent(srv, "MAIL", "AUTH")

    def test_plaintext_instead_of_handshake(self):
        srv = self.script_server(F.starttls_then_plaintext)
        env = self.env_for(srv, tls="starttls", SMTP_USERNAME="u", SMTP_PASSWORD="p")
        self.assertFailed(H.run_cli(self.send_args(), env), 74)
        self.assertNeverSent(srv, "MAIL", "AUTH")


class Idn(H.CliTest):
    def test_idn_domain_as_a_label_without_smtputf8(self):
        # field-notes (RFC 6531/6532 section): "Keep headers 7-bit via RFC 2047
        # and IDN domains via A-labels, so SMTPUTF8 is needed only for
        # non-ASCII local parts".  A server without SMTPUTF8 must get the mail.
        srv = self.server("plain", enable_SMTPUTF8=False)
        res = H.run_cli(self.send_args(to="user@bücher.example"), self.env_for(srv))
        self.assertSent(res)
        self.assertTrue(srv.rec.wait_messages(1))
        m = srv.messages[0]
        self.assertEqual(m.rcpt_tos, ["user@xn--bcher-kva.example"])
        self.assertNotIn("SMTPUTF8", m.mail_options)
        self.assertTrue(all(b < 0x80 for b in m.data), "headers must stay 7-bit")
        self.assertEqual(parse(m)["To"].addresses[0].domain, "xn--bcher-kva.example")


class TlsDefaults(H.CliTest):
    def test_starttls_required_by_default(self):
        srv = self.server("plain")
        for value in (None, ""):
            with self.subTest(SMTP_USE_TLS=value):
                env = self.env_for(srv)
                del env["SMTP_USE_TLS"]
                if value is not None:
                    env["SMTP_USE_TLS"] = value      # empty counts as unset
                self.assertFailed(H.run_cli(self.send_args(), env), 74)
                self.assertNothingDelivered(srv)
                self.assertNeverSent(srv, "MAIL")

    def test_expired_certificate(self):
        for mode in ("starttls", "implicit"):
            with self.subTest(mode=mode):
                srv = self.server(mode, cert="expired", auth=(USER, PASSWORD))
                env = self.env_for(srv, host="localhost", SMTP_USERNAME=USER,
                                   SMTP_PASSWORD=PASSWORD)
                self.assertFailed(H.run_cli(self.send_args(), env), 74)
                self.assertNeverSent(srv, "AUTH", "MAIL")


class AuthEdges(H.CliTest):
    def test_utf8_password(self):
        for mechs in (["PLAIN"], ["LOGIN"]):
            with self.subTest(mechs=mechs):
                srv = self.server("starttls", auth=(USER, PASSWORD), mechanisms=mechs)
                env = self.env_for(srv, SMTP_USERNAME=USER, SMTP_PASSWORD=PASSWORD)
                self.assertSent(H.run_cli(self.send_args(), env))
                self.assertTrue(srv.rec.wait_messages(1))
                self.assertEqual(srv.rec.auth, [(mechs[0], USER, True)])

    def test_no_common_mechanism(self):
        srv = self.server("starttls", auth=(USER, PASSWORD), mechanisms=["CRAM-MD5"],
                          handler_class=F.CramMD5Handler)
        env = self.env_for(srv, SMTP_USERNAME=USER, SMTP_PASSWORD=PASSWORD)
        self.assertFailed(H.run_cli(self.send_args(), env), 77)
        self.assertNeverSent(srv, "MAIL")
        self.assertNothingDelivered(srv)

    def test_credentials_but_server_offers_no_auth(self):
        # "authentication failed or impossible": never send unauthenticated
        # when the user configured credentials
        srv = self.server("starttls")
        env = self.env_for(srv, SMTP_USERNAME=USER, SMTP_PASSWORD=PASSWORD)
        self.assertFailed(H.run_cli(self.send_args(), env), 77)
        self.assertNeverSent(srv, "MAIL")


class Encodings(H.CliTest):
    def deliver(self, args):
        srv = self.server("plain")
        self.assertSent(H.run_cli(args, self.env_for(srv)))
        self.assertTrue(srv.rec.wait_messages(1))
        m = srv.messages[0]
        for i, line in enumerate(m.data.split(b"\r\n")):
            self.assertLessEqual(len(line), 998)
            self.assertTrue(all(b < 0x80 for b in line), "8-bit in line %d: %r" % (i, line))
        return m, parse(m)

    def test_long_cjk_and_emoji_subject_and_names(self):
        # RFC 2047 5: encoded-words hold whole characters and are <= 75 chars
        subject = ("請求書の準備ができました" * 8 + " 🎉📧👍🏽🇫🇷" * 10 + " ünïcødé" * 10)
        name = "山田太郎👨‍👩‍👧‍👦" * 6
        args = self.send_args("--from", '"%s" <zoe@example.org>' % name, subject=subject,
                              to='"%s" <taro@example.net>' % name)
        m, msg = self.deliver(args)
        self.assertEqual(msg["Subject"], subject)
        self.assertEqual(phrase_of(m.data, "From"), (name, "zoe@example.org"))
        self.assertEqual(phrase_of(m.data, "To"), (name, "taro@example.net"))
        for word in re.findall(rb"=\?[^?]+\?[BbQq]\?[^?]*\?=", m.data):
            self.assertLessEqual(len(word), 75, word)

    def test_subject_that_looks_like_an_encoded_word(self):
        subject = "=?utf-8?B?SGFjaw==?= is literal text"
        m, msg = self.deliver(self.send_args(subject=subject))
        self.assertEqual(msg["Subject"], subject)

    def test_whitespace_preserved(self):
        body = "trailing spaces   \ntrailing tab\t\n\n  leading spaces\n\tleading tab\nend"
        _, msg = self.deliver(self.send_args(body=body))
        got = msg.get_content().replace("\r\n", "\n")
        self.assertEqual(got.rstrip("\n"), body)

    def test_empty_body(self):
        _, msg = self.deliver(self.send_args(body=""))
        self.assertEqual(msg.get_content().strip(), "")

    def test_long_utf8_attachment_name(self):
        d = tempfile.mkdtemp(prefix="scalr-integ-")
        self.addCleanup(shutil.rmtree, d, True)
        name = "très_long_nom_de_fichier_" * 5 + "報告書.pdf"      # RFC 2231 continuations
        p = os.path.join(d, name)
        with open(p, "wb") as f:
            f.write(b"%PDF-1.4\n")
        _, msg = self.deliver(self.send_args("--attach", p))
        atts = list(msg.iter_attachments())
        self.assertEqual([a.get_filename() for a in atts], [name])
        self.assertEqual(atts[0].get_payload(decode=True), b"%PDF-1.4\n")

    def test_attachment_name_with_quotes_and_backslash(self):
        d = tempfile.mkdtemp(prefix="scalr-integ-")
        self.addCleanup(shutil.rmtree, d, True)
        name = 'say "hi" \\ now.txt'
        p = os.path.join(d, name)
        with open(p, "wb") as f:
            f.write(b"x\n")
        _, msg = self.deliver(self.send_args("--attach", p))
        self.assertEqual([a.get_filename() for a in msg.iter_attachments()], [name])

    def test_content_types_guessed(self):
        d = tempfile.mkdtemp(prefix="scalr-integ-")
        self.addCleanup(shutil.rmtree, d, True)
        want = {"a.pdf": "application/pdf", "b.png": "image/png", "c.txt": "text/plain",
                "d.unknownext": "application/octet-stream"}
        args = self.send_args()
        for n in want:
            p = os.path.join(d, n)
            with open(p, "wb") as f:
                f.write(b"data")
            args += ["--attach", p]
        _, msg = self.deliver(args)
        got = {a.get_filename(): a.get_content_type() for a in msg.iter_attachments()}
        self.assertEqual(got, want)


class EnvFileEdges(H.CliTest):
    def test_crlf_env_file_with_comments_and_quotes(self):
        srv = self.server("plain")
        d = tempfile.mkdtemp(prefix="scalr-integ-")
        self.addCleanup(shutil.rmtree, d, True)
        p = os.path.join(d, ".env")
        with open(p, "wb") as f:
            f.write(("# comment line\r\n"
                     "SMTP_HOST=127.0.0.1 # trailing comment\r\n"
                     "SMTP_PORT='%d'\r\n"
                     "SMTP_USE_TLS=False\r\n"
                     "SMTP_FROM=\"Quoted # not a comment <q@example.org>\"\r\n"
                     "\r\n" % srv.port).encode())
        rc, out, err = H.run_cli(self.send_args("--env-file", p), H.base_env())
        self.assertSent((rc, out, err))
        self.assertTrue(srv.rec.wait_messages(1))
        m = srv.messages[0]
        self.assertEqual(m.mail_from, "q@example.org")
        self.assertEqual(parse(m)["From"].addresses[0].display_name, "Quoted # not a comment")

    def test_password_with_hash_and_equals(self):
        srv = self.server("starttls", auth=(USER, "p#ss=w0rd"))
        d = tempfile.mkdtemp(prefix="scalr-integ-")
        self.addCleanup(shutil.rmtree, d, True)
        p = os.path.join(d, ".env")
        with open(p, "w") as f:
            f.write("SMTP_HOST=localhost\nSMTP_PORT=%d\nSMTP_FROM=a@example.org\n"
                    "SMTP_USERNAME=%s\nSMTP_PASSWORD=p#ss=w0rd\n" % (srv.port, USER))
        rc, out, err = H.run_cli(self.send_args("--env-file", p, "-v"), H.base_env())
        self.assertEqual(rc, 0, err)
        self.assertEqual(srv.rec.auth, [("PLAIN", USER, True)])
        self.assertNotIn("p#ss=w0rd", out + err)

    def test_empty_environment_values_do_not_hide_the_file(self):
        # compose files forward "${SMTP_HOST:-}": empty counts as unset
        srv = self.server("plain")
        d = tempfile.mkdtemp(prefix="scalr-integ-")
        self.addCleanup(shutil.rmtree, d, True)
        p = os.path.join(d, ".env")
        with open(p, "w") as f:
            f.write("SMTP_HOST=127.0.0.1\nSMTP_PORT=%d\nSMTP_FROM=file@example.org\n"
                    "SMTP_USE_TLS=false\n" % srv.port)
        env = H.base_env(SMTP_HOST="", SMTP_PORT="", SMTP_FROM="", SMTP_USE_TLS="",
                         SMTP_USERNAME="", SMTP_PASSWORD="")
        self.assertSent(H.run_cli(self.send_args("--env-file", p), env))
        self.assertTrue(srv.rec.wait_messages(1))
        self.assertEqual(srv.messages[0].mail_from, "file@example.org")
