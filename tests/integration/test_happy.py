"""Happy paths: the message reaches a real SMTP server, over every transport."""

import email
import email.policy
import os
import tempfile

import helpers as H

USER, PASSWORD = "mailer@example.org", "correct horse battery staple"


class HappyPaths(H.CliTest):
    def delivered(self, srv, res):
        """The one message srv received; checks the "sent" line names its Message-ID."""
        line = self.assertSent(res)
        self.assertTrue(srv.rec.wait_messages(1), "server received nothing")
        self.assertIdle(srv)
        self.assertEqual(len(srv.messages), 1, srv.messages)
        m = srv.messages[0]
        msg = email.message_from_bytes(m.data, policy=email.policy.default)
        mid = str(msg["Message-ID"]).strip()
        self.assertTrue(mid.startswith("<") and mid.endswith(">"), mid)
        self.assertIn(mid[1:-1], line, "the sent line must contain the Message-ID")
        return m, msg

    def test_plain_no_tls(self):
        srv = self.server("plain")
        res = H.run_cli(self.send_args(subject="Plain hello", body="Hi there\n"),
                        self.env_for(srv))
        m, msg = self.delivered(srv, res)
        self.assertIsNone(m.tls)
        self.assertEqual(m.mail_from, H.SENDER)
        self.assertEqual(m.rcpt_tos, [H.RCPT])
        self.assertEqual(msg["Subject"], "Plain hello")
        self.assertEqual(msg["To"].addresses[0].addr_spec, H.RCPT)
        self.assertEqual(msg["From"].addresses[0].addr_spec, H.SENDER)
        self.assertEqual(msg.get_content().replace("\r\n", "\n").rstrip("\n"), "Hi there")
        cmds = srv.rec.client_commands()
        self.assertEqual(cmds[0], "EHLO")
        self.assertEqual(cmds[-1], "QUIT", "the client should end with QUIT")
        self.assertNotIn("STARTTLS", cmds)
        self.assertNotIn("AUTH", cmds)

    def starttls_auth(self, mechanisms, host):
        srv = self.server("starttls", auth=(USER, PASSWORD), mechanisms=mechanisms)
        env = self.env_for(srv, host=host, SMTP_USERNAME=USER, SMTP_PASSWORD=PASSWORD)
        m, msg = self.delivered(srv, H.run_cli(self.send_args(), env))
        self.assertIn(m.tls, ("TLSv1.2", "TLSv1.3"))
        self.assertEqual(m.login, USER.encode())
        self.assertEqual(srv.rec.auth, [(mechanisms[0] if mechanisms else "PLAIN", USER, True)])
        cmds = srv.rec.client_commands()
        self.assertEqual(cmds[:3], ["EHLO", "STARTTLS", "EHLO"],
                         "EHLO, STARTTLS, EHLO again after TLS (RFC 3207 4.2)")
        self.assertLess(cmds.index("AUTH"), cmds.index("MAIL"))
        return srv, m

    def test_starttls_auth_plain_ip_literal(self):
        self.starttls_auth(None, "127.0.0.1")

    def test_starttls_auth_plain_dns_name(self):
        self.starttls_auth(None, "localhost")

    def test_starttls_auth_login_only(self):
        self.starttls_auth(["LOGIN"], "localhost")

    def test_starttls_auth_plain_only(self):
        self.starttls_auth(["PLAIN"], "127.0.0.1")

    def test_starttls_without_auth(self):
        srv = self.server("starttls")
        m, _ = self.delivered(srv, H.run_cli(self.send_args(), self.env_for(srv)))
        self.assertIn(m.tls, ("TLSv1.2", "TLSv1.3"))
        self.assertIsNone(m.login)

    def implicit(self, host):
        srv = self.server("implicit", auth=(USER, PASSWORD))
        env = self.env_for(srv, host=host, SMTP_USERNAME=USER, SMTP_PASSWORD=PASSWORD)
        self.assertNotIn("SMTP_USE_TLS", env)
        m, _ = self.delivered(srv, H.run_cli(self.send_args(), env))
        self.assertIn(m.tls, ("TLSv1.2", "TLSv1.3"))
        self.assertEqual(m.login, USER.encode())
        self.assertNotIn("STARTTLS", srv.rec.client_commands())

    def test_implicit_tls_ip_literal(self):
        self.implicit("127.0.0.1")

    def test_implicit_tls_dns_name(self):
        self.implicit("localhost")

    def test_implicit_tls_with_use_tls_false(self):
        srv = self.server("implicit")
        env = self.env_for(srv, SMTP_USE_TLS="false")
        m, _ = self.delivered(srv, H.run_cli(self.send_args(), env))
        self.assertIn(m.tls, ("TLSv1.2", "TLSv1.3"))

    def test_env_file(self):
        srv = self.server("starttls", auth=(USER, PASSWORD))
        d = tempfile.mkdtemp(prefix="scalr-integ-")
        self.addCleanup(lambda: __import__("shutil").rmtree(d, True))
        path = os.path.join(d, ".env")
        with open(path, "w") as f:
            f.write("# shared SMTP configuration\n"
                    "\n"
                    "export SMTP_HOST=localhost\n"
                    "SMTP_PORT=%d\n"
                    "SMTP_USERNAME='%s'\n"
                    "SMTP_PASSWORD=\"%s\"\n"
                    "SMTP_FROM=\"Env File <envfile@example.org>\"\n"
                    "SMTP_USE_TLS=true   # STARTTLS\n"
                    "SMTP_USE_SSL=false\n" % (srv.port, USER, PASSWORD))
        env = H.base_env()
        res = H.run_cli(self.send_args("--env-file", path), env)
        m, msg = self.delivered(srv, res)
        self.assertEqual(m.mail_from, "envfile@example.org")
        self.assertEqual(msg["From"].addresses[0].display_name, "Env File")
        self.assertEqual(m.login, USER.encode())
        self.assertIn(m.tls, ("TLSv1.2", "TLSv1.3"))

    def test_environment_wins_over_env_file(self):
        srv = self.server("plain")
        d = tempfile.mkdtemp(prefix="scalr-integ-")
        self.addCleanup(lambda: __import__("shutil").rmtree(d, True))
        path = os.path.join(d, "smtp.env")
        with open(path, "w") as f:
            f.write("SMTP_HOST=127.0.0.1\nSMTP_PORT=%d\nSMTP_USE_TLS=false\n"
                    "SMTP_FROM=file@example.org\n" % srv.port)
        env = H.base_env(SMTP_FROM="environment@example.org")
        m, _ = self.delivered(srv, H.run_cli(self.send_args("--env-file", path), env))
        self.assertEqual(m.mail_from, "environment@example.org")

    def test_from_option_overrides_smtp_from(self):
        srv = self.server("plain")
        res = H.run_cli(self.send_args("--from", "Billing <billing@example.com>"),
                        self.env_for(srv))
        m, msg = self.delivered(srv, res)
        self.assertEqual(m.mail_from, "billing@example.com")
        self.assertEqual(msg["From"].addresses[0].display_name, "Billing")
        self.assertTrue(str(msg["Message-ID"]).strip().endswith("@example.com>"))

    def test_helo_name(self):
        srv = self.server("plain")
        env = self.env_for(srv, SMTP_HELO_NAME="client.scalr.test")
        m, _ = self.delivered(srv, H.run_cli(self.send_args(), env))
        self.assertEqual(m.helo, "client.scalr.test")

    def test_body_from_stdin(self):
        srv = self.server("plain")
        body = "from standard input\nsecond line\n"
        res = H.run_cli(self.send_args(body=None), self.env_for(srv), input=body)
        _, msg = self.delivered(srv, res)
        self.assertEqual(msg.get_content().replace("\r\n", "\n").rstrip("\n"),
                         body.rstrip("\n"))

    def test_body_file(self):
        srv = self.server("plain")
        d = tempfile.mkdtemp(prefix="scalr-integ-")
        self.addCleanup(lambda: __import__("shutil").rmtree(d, True))
        path = os.path.join(d, "body.txt")
        with open(path, "w", encoding="utf-8") as f:
            f.write("Body from a file: Grüße\n")
        res = H.run_cli(self.send_args("--body-file", path, body=None), self.env_for(srv))
        _, msg = self.delivered(srv, res)
        self.assertEqual(msg.get_content().replace("\r\n", "\n").rstrip("\n"),
                         "Body from a file: Grüße")

    def test_verbose_trace(self):
        srv = self.server("starttls", auth=(USER, PASSWORD))
        env = self.env_for(srv, SMTP_USERNAME=USER, SMTP_PASSWORD=PASSWORD)
        rc, out, err = H.run_cli(self.send_args("-v"), env)
        self.assertSent((rc, out, ""))
        lines = err.splitlines()
        self.assertTrue(lines, "-v printed nothing")
        for ln in lines:
            # the conversation is C:/S:; "*: " marks the tool's own notes
            self.assertRegex(ln, r"^[CS*]: ", "every -v line is C:, S: or *:")
        self.assertTrue(any(ln.startswith("S: 220") for ln in lines), err)
        self.assertTrue(any(ln.startswith("C: EHLO ") for ln in lines), err)
        self.assertTrue(any(ln.startswith("C: STARTTLS") for ln in lines), err)
        self.assertTrue(any(ln.startswith("C: MAIL FROM:<%s>" % H.SENDER) for ln in lines), err)
        self.assertRedactedTrace(err, USER, PASSWORD)
        self.assertNotIn(PASSWORD, out)


class MultipleRecipients(H.CliTest):
    def test_to_cc_bcc_envelope(self):
        srv = self.server("plain")
        args = self.send_args("--to", "second@example.net", "--cc", "cc@example.net",
                              "--bcc", "bcc@example.net")
        self.assertSent(H.run_cli(args, self.env_for(srv)))
        self.assertTrue(srv.rec.wait_messages(1))
        self.assertIdle(srv)
        self.assertEqual(len(srv.messages), 1)
        m = srv.messages[0]
        self.assertEqual(sorted(m.rcpt_tos), sorted([H.RCPT, "second@example.net",
                                                     "cc@example.net", "bcc@example.net"]))
        self.assertNotIn(b"bcc@example.net", m.data)
        self.assertNotIn(b"\r\nBcc:", m.data)

    def test_bcc_only(self):
        srv = self.server("plain")
        args = ["send", "--bcc", "only@example.net", "--subject", "s", "--body", "b"]
        self.assertSent(H.run_cli(args, self.env_for(srv)))
        self.assertTrue(srv.rec.wait_messages(1))
        self.assertEqual(srv.messages[0].rcpt_tos, ["only@example.net"])
        self.assertNotIn(b"only@example.net", srv.messages[0].data)


class Misc(H.CliTest):
    def listed_commands(self):
        """The commands `scalr-email --help` lists: one indented line each."""
        rc, out, err = H.run_cli(["--help"], H.base_env())
        self.assertEqual(rc, 0, err)
        self.assertEqual(err, "")
        section = out.split("commands:\n", 1)[1].split("\n\n", 1)[0]
        rows = [l.split(None, 1) for l in section.splitlines()]
        for row in rows:
            self.assertEqual(len(row), 2, row)  # a name and its one-line description
        return [r[0] for r in rows]

    def test_top_level_help_lists_every_subcommand(self):
        names = self.listed_commands()
        self.assertEqual(names, ["send", "send-batch", "check", "sendmail", "template", "doctor",
                                 "dkim", "queue", "inbox"])

    def test_every_subcommand_answers_help(self):
        # whatever the top-level help lists, so a command added later is covered
        queue_verbs = ("add", "work", "status", "list", "show", "retry", "cancel", "hold",
                       "release", "purge")
        cases = [[c] for c in self.listed_commands()] + [["queue", v] for v in queue_verbs] + \
            [["template", v] for v in ("check", "render")]
        for cmd in cases:
            for flag in ("--help", "-h"):
                rc, out, err = H.run_cli(cmd + [flag], H.base_env())
                self.assertEqual(rc, 0, (cmd, flag, err))
                self.assertEqual(err, "", cmd)
                self.assertTrue(out.startswith("usage: scalr-email " + cmd[0]), (cmd, out[:80]))
                self.assertIn("scalr-email " + " ".join(cmd), out)
        # --help wins wherever it stands among a command's options
        for cmd in (["send", "--to", "a@example.com", "--help"],
                    ["send-batch", "--connections", "2", "--help", "x.jsonl"],
                    ["check", "-v", "--help"]):
            rc, out, err = H.run_cli(cmd, H.base_env())
            self.assertEqual(rc, 0, err)
            self.assertTrue(out.startswith("usage: scalr-email " + cmd[0]), out[:80])
        # an unknown option is still a usage error, on stderr
        rc, out, err = H.run_cli(["send", "--no-such-option"], H.base_env())
        self.assertEqual((rc, out), (64, ""))
        self.assertIn("unknown option", err)

    def assertSaidOnce(self, args, env, status, words):
        rc, out, err = H.run_cli(args, env)
        self.assertEqual(rc, status, err)
        self.assertEqual(len(err.strip().splitlines()), 1, err)
        self.assertEqual(err.lower().count(words.lower()), 1, err)
        return err

    def test_an_error_says_its_kind_once(self):
        env = H.base_env(SMTP_HOST=None)
        send = ["send", "--to", "a@example.com", "--subject", "s", "--body", "b"]
        self.assertSaidOnce(send, env, 78, "not configured")
        sock, port = H.closed_port()
        try:
            env = H.base_env(SMTP_HOST="127.0.0.1", SMTP_PORT=port, SMTP_FROM=H.SENDER)
            err = self.assertSaidOnce(send, env, 75, "cannot connect")
            self.assertNotIn("connection failed", err)
        finally:
            sock.close()
        with tempfile.TemporaryDirectory() as d:
            err = self.assertSaidOnce(["queue", "show", "999", "--queue", "sqlite:%s/q.db" % d],
                                      H.base_env(), 66, "queued message")
            self.assertIn("999", err)
        # where the message does not say it, the kind is still added
        err = self.assertSaidOnce(send, H.base_env(SMTP_HOST="127.0.0.1", SMTP_PORT="99999"), 78,
                                  "SMTP_PORT")
        self.assertIn("(invalid configuration)", err)

    def test_help_and_version(self):
        rc, out, err = H.run_cli(["--version"], H.base_env())
        self.assertEqual(rc, 0, err)
        self.assertIn("0.1.0", out)
        rc, out, err = H.run_cli(["--help"], H.base_env())
        self.assertEqual(rc, 0, err)
        self.assertIn("send", out)
        self.assertIn("check", out)
