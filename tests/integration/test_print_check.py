"""`send --print` (compose only) and `check` (connect, TLS, AUTH, QUIT)."""

import email
import email.policy
import os
import re
import shutil
import tempfile

import helpers as H

USER, PASSWORD = "mailer@example.org", "p4ss-for-check"


class Print(H.CliTest):
    def test_print_parses(self):
        d = tempfile.mkdtemp(prefix="scalr-integ-")
        self.addCleanup(shutil.rmtree, d, True)
        att = os.path.join(d, "rapport é.pdf")
        data = os.urandom(500)
        with open(att, "wb") as f:
            f.write(data)
        env = H.base_env(SMTP_FROM="Zoë <zoe@example.org>")       # no SMTP_HOST
        args = ["send", "--print", "--to", "Ana <ana@example.net>", "--cc", "cc@example.net",
                "--bcc", "hidden@example.net", "--subject", "Grüße 🎉", "--body", "Hallo\n",
                "--html", "<p>Hallo</p>", "--attach", att]
        rc, out, err = H.run_cli(args, env, raw=True)
        self.assertEqual(rc, 0, err)
        self.assertEqual(err, b"")
        msg = email.message_from_bytes(out, policy=email.policy.default)
        self.assertEqual(msg["Subject"], "Grüße 🎉")
        self.assertEqual([(a.display_name, a.addr_spec) for a in msg["From"].addresses],
                         [("Zoë", "zoe@example.org")])
        self.assertEqual([(a.display_name, a.addr_spec) for a in msg["To"].addresses],
                         [("Ana", "ana@example.net")])
        self.assertEqual(msg["Cc"].addresses[0].addr_spec, "cc@example.net")
        self.assertIsNone(msg["Bcc"])
        self.assertNotIn(b"hidden@example.net", out)
        self.assertRegex(str(msg["Message-ID"]).strip(), r"^<[^<>@\s]+@example\.org>$")
        self.assertIsNotNone(msg["Date"])
        self.assertEqual(msg.get_body(("plain",)).get_content().replace("\r\n", "\n"),
                         "Hallo\n")
        self.assertEqual(msg.get_body(("html",)).get_content().replace("\r\n", "\n")
                         .rstrip("\n"), "<p>Hallo</p>")
        atts = list(msg.iter_attachments())
        self.assertEqual([a.get_filename() for a in atts], ["rapport é.pdf"])
        self.assertEqual(atts[0].get_payload(decode=True), data)
        self.assertTrue(all(b < 0x80 for b in out), "7-bit output")

    def test_print_with_from_option_and_no_configuration(self):
        env = H.base_env()
        rc, out, err = H.run_cli(["send", "--print", "--from", "a@example.org", "--to",
                                  "b@example.net", "--subject", "s", "--body", "b"], env)
        self.assertEqual(rc, 0, err)
        msg = email.message_from_string(out, policy=email.policy.default)
        self.assertEqual(msg["From"].addresses[0].addr_spec, "a@example.org")

    def test_print_needs_a_sender(self):
        self.assertFailed(H.run_cli(["send", "--print", "--to", "b@example.net", "--subject",
                                     "s", "--body", "b"], H.base_env()), 78)

    def test_print_still_validates(self):
        env = H.base_env(SMTP_FROM="a@example.org")
        self.assertFailed(H.run_cli(["send", "--print", "--to", "b@example.net", "--subject",
                                     "s\r\nBcc: x@example.net", "--body", "b"], env), 65)

    def test_print_sends_nothing(self):
        srv = self.server("plain")
        rc, out, err = H.run_cli(self.send_args("--print"), self.env_for(srv))
        self.assertEqual(rc, 0, err)
        self.assertFalse(out.startswith("sent "))
        self.assertNoConnection(srv)


class Check(H.CliTest):
    def lines(self, out):
        d = {}
        for ln in out.splitlines():
            k, sep, v = ln.partition(": ")
            self.assertTrue(sep, "check output line %r is not 'key: value'" % ln)
            d[k] = v
        return d

    def test_check_starttls_auth(self):
        for host in ("localhost", "127.0.0.1"):
            with self.subTest(host=host):
                srv = self.server("starttls", auth=(USER, PASSWORD))
                env = self.env_for(srv, host=host, SMTP_USERNAME=USER, SMTP_PASSWORD=PASSWORD)
                rc, out, err = H.run_cli(["check"], env)
                self.assertEqual(rc, 0, err)
                info = self.lines(out)
                self.assertIn("mx.test.invalid", info.get("greeting", ""))
                self.assertRegex(info.get("tls", ""), r"^TLSv1\.3 TLS_\w+$")
                self.assertRegex(info.get("certificate", ""), r"^verified\b.*CN ?= ?localhost")
                exts = info.get("extensions", "").split()
                self.assertIn("SIZE", exts)
                self.assertIn("AUTH", exts)
                self.assertNotIn("STARTTLS", exts, "extensions are the ones after TLS")
                self.assertEqual(info.get("auth"), "ok (PLAIN)")
                self.assertNotIn(PASSWORD, out + err)
                self.assertNeverSent(srv, "MAIL", "RCPT", "DATA")
                self.assertEqual(srv.rec.client_commands()[-1], "QUIT")

    def test_check_login_only(self):
        srv = self.server("starttls", auth=(USER, PASSWORD), mechanisms=["LOGIN"])
        env = self.env_for(srv, SMTP_USERNAME=USER, SMTP_PASSWORD=PASSWORD)
        rc, out, err = H.run_cli(["check"], env)
        self.assertEqual(rc, 0, err)
        self.assertEqual(self.lines(out).get("auth"), "ok (LOGIN)")

    def test_check_implicit_no_auth(self):
        srv = self.server("implicit")
        rc, out, err = H.run_cli(["check"], self.env_for(srv))
        self.assertEqual(rc, 0, err)
        info = self.lines(out)
        self.assertTrue(info.get("tls", "").startswith("TLSv1."))
        self.assertTrue(info.get("certificate", "").startswith("verified"))
        self.assertEqual(info.get("auth"), "not configured")
        self.assertEqual(srv.rec.auth, [])

    def test_check_plain(self):
        srv = self.server("plain")
        rc, out, err = H.run_cli(["check"], self.env_for(srv))
        self.assertEqual(rc, 0, err)
        info = self.lines(out)
        self.assertIn("greeting", info)
        self.assertIn("8BITMIME", info.get("extensions", "").split())
        self.assertEqual(info.get("auth"), "not configured")
        self.assertFalse(info.get("tls", "").startswith("TLSv1"))

    def test_check_untrusted(self):
        srv = self.server("starttls", cert="selfsigned")
        res = H.run_cli(["check"], self.env_for(srv, host="localhost"))
        self.assertEqual(res[0], 74, res)
        self.assertNeverSent(srv, "AUTH")

    def test_check_auth_refused(self):
        srv = self.server("starttls", auth=(USER, "different"))
        env = self.env_for(srv, SMTP_USERNAME=USER, SMTP_PASSWORD=PASSWORD)
        rc, out, err = H.run_cli(["check"], env)
        self.assertEqual(rc, 77, (out, err))
        self.assertIn("535", err)

    def test_check_not_configured(self):
        self.assertFailed(H.run_cli(["check"], H.base_env()), 78)


class Concurrency(H.CliTest):
    def test_eight_parallel_sends(self):
        srv = self.server("starttls", auth=(USER, PASSWORD))
        env = self.env_for(srv, host="localhost", SMTP_USERNAME=USER, SMTP_PASSWORD=PASSWORD)
        handles = [H.spawn_cli(self.send_args(subject="parallel #%d" % i,
                                              body="message %d\n" % i), env)
                   for i in range(8)]
        results = [H.finish_cli(h) for h in handles]
        for i, res in enumerate(results):
            with self.subTest(i=i):
                self.assertSent(res)
        self.assertTrue(srv.rec.wait_messages(8))
        self.assertIdle(srv)
        subjects = sorted(email.message_from_bytes(m.data, policy=email.policy.default)
                          ["Subject"] for m in srv.messages)
        self.assertEqual(subjects, sorted("parallel #%d" % i for i in range(8)),
                         "each of the 8 messages exactly once")
        ids = {re.search(rb"^Message-ID:\s*(\S+)", m.data, re.M | re.I).group(1)
               for m in srv.messages}
        self.assertEqual(len(ids), 8, "Message-IDs must be unique")
