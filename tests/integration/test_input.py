"""Input refusals: bad input or configuration stops the tool before it connects."""

import os
import shutil
import tempfile

import helpers as H


class Refusals(H.CliTest):
    def setUp(self):
        # A working server: a client that fails to validate first would reach it.
        self.srv = self.server("plain")
        self.env = self.env_for(self.srv)
        self.dir = tempfile.mkdtemp(prefix="scalr-integ-")
        self.addCleanup(shutil.rmtree, self.dir, True)

    def file(self, name, data):
        p = os.path.join(self.dir, name)
        with open(p, "wb") as f:
            f.write(data)
        return p

    def refused(self, args, code, *needles, env=None, input=None):
        res = H.run_cli(args, self.env if env is None else env, input=input)
        line = self.assertFailed(res, code, *needles)
        self.assertNoConnection(self.srv)
        return line

    # exit 65: bad message input -------------------------------------------
    def test_crlf_in_subject(self):
        for subj in ("Hello\r\nBcc: victim@example.com", "Hello\nBcc: victim@example.com",
                     "Hello\rX: y", "trailing\r\n"):
            with self.subTest(subject=subj):
                self.refused(self.send_args(subject=subj), 65)

    def test_crlf_in_header_value(self):
        for h in ("X-Campaign: a\r\nBcc: victim@example.com", "X-Campaign: a\nBcc: v@x.test",
                  "X-Campaign: a\rb"):
            with self.subTest(header=h):
                self.refused(self.send_args("--header", h), 65)

    def test_bad_header_name(self):
        for h in ("Bad Name: x", "X-Ü: non-ascii name", "X\x01: ctl"):
            with self.subTest(header=h):
                self.refused(self.send_args("--header", h), 65)
        for h in ("NoColonAtAll", ": empty name"):
            with self.subTest(header=h):
                rc, out, err = H.run_cli(self.send_args("--header", h), self.env)
                self.assertIn(rc, (64, 65), "a --header that is not 'Name: value' is refused")
                self.assertNoConnection(self.srv)

    def test_crlf_in_display_name(self):
        cases = [("--to", "Evil\r\nBcc: victim@example.com <a@example.net>"),
                 ("--to", "Evil\n <a@example.net>"),
                 ("--cc", "Evil\r\nX: y <c@example.net>"),
                 ("--from", "Evil\r\nBcc: victim@example.com <sender@example.org>"),
                 ("--reply-to", "Evil\r\nX: y <r@example.org>")]
        for flag, value in cases:
            with self.subTest(flag=flag, value=value):
                self.refused(self.send_args(flag, value), 65)

    def test_crlf_in_address(self):
        for a in ("a@example.net\r\nRCPT TO:<b@example.net>", "a@example.net>\r\nDATA",
                  "a@exam\nple.net"):
            with self.subTest(address=a):
                self.refused(self.send_args(to=a), 65)

    def test_invalid_addresses(self):
        for a in ("not-an-address", "a@", "@example.net", "a b@example.net",
                  "a@@example.net", "a@example.net>", "<a@example.net", "a@exa mple.net",
                  "Name <>", "a@example..net", "a@-example.net"):
            with self.subTest(address=a):
                self.refused(self.send_args(to=a), 65)

    def test_unquoted_specials_in_display_name(self):
        # ambiguous ("Doe, John <j@x>" could be two addresses): refuse, never guess
        for a in ("Doe, John <j@example.net>", "Support @ ACME <s@example.net>"):
            with self.subTest(address=a):
                self.refused(self.send_args(to=a), 65)

    def test_invalid_sender_address(self):
        self.refused(self.send_args("--from", "not an address"), 65)

    def test_invalid_smtp_from(self):
        env = dict(self.env, SMTP_FROM="not an address")
        code = H.run_cli(self.send_args(), env)[0]
        self.assertIn(code, (65, 78), "invalid SMTP_FROM: bad input or bad configuration")
        self.assertNoConnection(self.srv)

    def test_nul_in_body_file(self):
        p = self.file("nul.txt", b"before\x00after\n")
        self.refused(self.send_args("--body-file", p, body=None), 65)

    def test_nul_in_html_file(self):
        p = self.file("nul.html", b"<p>a\x00b</p>")
        self.refused(self.send_args("--html-file", p), 65)

    def test_nul_in_body_from_stdin(self):
        self.refused(self.send_args(body=None), 65, input=b"a\x00b\n")

    def test_invalid_utf8_in_body_file(self):
        for data in (b"caf\xe9\n", b"\xc3\x28", b"\xed\xa0\x80 surrogate", b"\xf8\x88\x80\x80\x80",
                     b"overlong \xc0\xaf"):
            with self.subTest(data=data):
                p = self.file("bad.txt", data)
                self.refused(self.send_args("--body-file", p, body=None), 65)

    def test_invalid_utf8_in_subject(self):
        self.refused(["send", "--to", H.RCPT, "--subject", b"caf\xe9", "--body", "b"], 65)

    # exit 64: usage -------------------------------------------------------
    def test_no_recipients(self):
        self.refused(self.send_args(to=None), 64)

    def test_missing_subject(self):
        self.refused(self.send_args(subject=None), 64)

    def test_unknown_option(self):
        self.refused(self.send_args("--frobnicate"), 64)

    def test_option_without_value(self):
        self.refused(["send", "--subject", "s", "--body", "b", "--to"], 64)

    def test_no_command(self):
        self.refused([], 64)

    def test_unknown_command(self):
        self.refused(["sned", "--to", H.RCPT], 64)

    def test_body_and_body_file_together(self):
        p = self.file("b.txt", b"x\n")
        self.refused(self.send_args("--body-file", p), 64)

    # exit 78: configuration -----------------------------------------------
    def test_smtp_host_empty(self):
        self.refused(self.send_args(), 78, env=dict(self.env, SMTP_HOST=""))

    def test_smtp_host_unset(self):
        env = dict(self.env)
        del env["SMTP_HOST"]
        self.refused(self.send_args(), 78, env=env)

    def test_no_sender(self):
        env = dict(self.env)
        del env["SMTP_FROM"]
        self.refused(self.send_args(), 78, env=env)

    def test_tls_and_ssl_both_true(self):
        self.refused(self.send_args(), 78,
                     env=dict(self.env, SMTP_USE_TLS="true", SMTP_USE_SSL="true"))

    def test_bad_boolean(self):
        self.refused(self.send_args(), 78, "SMTP_USE_TLS", env=dict(self.env, SMTP_USE_TLS="maybe"))
        self.refused(self.send_args(), 78, "SMTP_USE_SSL", env=dict(self.env, SMTP_USE_SSL="2"))

    def test_bad_port(self):
        for port in ("0", "65536", "25x", "-1", "http"):
            with self.subTest(port=port):
                self.refused(self.send_args(), 78, "SMTP_PORT",
                             env=dict(self.env, SMTP_PORT=port))

    def test_bad_timeout(self):
        for t in ("0", "-1", "abc", "1e999", "nan"):
            with self.subTest(timeout=t):
                self.refused(self.send_args(), 78, "SMTP_TIMEOUT",
                             env=dict(self.env, SMTP_TIMEOUT=t))

    def test_crlf_in_helo_name(self):
        code = H.run_cli(self.send_args(),
                         dict(self.env, SMTP_HELO_NAME="client\r\nMAIL FROM:<x@y.test>"))[0]
        self.assertIn(code, (65, 78))
        self.assertNoConnection(self.srv)

    def test_malformed_env_file_line(self):
        env = dict(self.env)
        for k in ("SMTP_HOST", "SMTP_PORT", "SMTP_FROM", "SMTP_USE_TLS"):
            del env[k]
        p = self.file("bad.env", ("SMTP_HOST=127.0.0.1\n"
                                  "SMTP_PORT=%d\n"
                                  "this line is not an assignment\n"
                                  "SMTP_FROM=a@example.org\n" % self.srv.port).encode())
        line = self.refused(self.send_args("--env-file", p), 78)
        self.assertRegex(line, r"(:3\b|line 3\b)", "the message must name line 3")

    def test_unterminated_quote_in_env_file(self):
        env = dict(self.env)
        del env["SMTP_HOST"]
        p = self.file("q.env", b"SMTP_HOST=127.0.0.1\nSMTP_FROM=\"a@example.org\n")
        line = self.refused(self.send_args("--env-file", p), 78, env=env)
        self.assertRegex(line, r"(:2\b|line 2\b)")

    def test_missing_env_file(self):
        p = os.path.join(self.dir, "does-not-exist.env")
        code = H.run_cli(self.send_args("--env-file", p), self.env)[0]
        self.assertIn(code, (66, 78), "an unreadable env file")
        self.assertNoConnection(self.srv)

    # exit 66: unreadable input file ---------------------------------------
    def test_attach_missing_file(self):
        p = os.path.join(self.dir, "missing.pdf")
        self.refused(self.send_args("--attach", p), 66, "missing.pdf")

    def test_attach_directory(self):
        self.refused(self.send_args("--attach", self.dir), 66)

    def test_body_file_missing(self):
        p = os.path.join(self.dir, "nobody.txt")
        self.refused(self.send_args("--body-file", p, body=None), 66, "nobody.txt")

    def test_html_file_missing(self):
        p = os.path.join(self.dir, "nohtml.html")
        self.refused(self.send_args("--html-file", p), 66, "nohtml.html")

    def test_attach_unreadable(self):
        if os.geteuid() == 0:
            # root reads any file; an unreadable one is made by a FIFO-free trick:
            # a path through a regular file is ENOTDIR for everyone
            p = self.file("plain", b"x") + "/child"
        else:
            p = self.file("secret.bin", b"x")
            os.chmod(p, 0)
        self.refused(self.send_args("--attach", p), 66)
