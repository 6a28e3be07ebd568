"""DSN parameters (RFC 3461) and the bounce address, checked on the exact
MAIL FROM / RCPT TO lines a recording server receives."""

import json
import os
import tempfile

import helpers
import helpers_msg
from helpers import CliTest, SENDER, RCPT

CC = "cc@example.net"


class DsnTest(CliTest):
    def test_parameters_when_the_server_offers_dsn(self):
        srv = helpers_msg.exact_server(self)
        self.assertSent(helpers.run_cli(self.send_args(
            "--cc", CC, "--dsn-notify", "failure,delay", "--dsn-ret", "hdrs",
            "--envid", "order-17+a=b"), self.env_for(srv)))
        mail = srv.rec.mail_lines[0]
        self.assertTrue(mail.startswith("FROM:<%s>" % SENDER), mail)
        self.assertTrue(mail.endswith(" RET=HDRS ENVID=order-17+2Ba+3Db"), mail)
        self.assertEqual(srv.rec.rcpt_lines, [
            "TO:<%s> NOTIFY=FAILURE,DELAY ORCPT=rfc822;%s" % (RCPT, RCPT),
            "TO:<%s> NOTIFY=FAILURE,DELAY ORCPT=rfc822;%s" % (CC, CC)])

    def test_never_alone_and_orcpt_only(self):
        srv = helpers_msg.exact_server(self)
        self.assertSent(helpers.run_cli(self.send_args("--dsn-notify", "never"),
                                        self.env_for(srv)))
        self.assertNotIn("RET=", srv.rec.mail_lines[0])
        self.assertNotIn("ENVID=", srv.rec.mail_lines[0])
        self.assertEqual(srv.rec.rcpt_lines, ["TO:<%s> NOTIFY=NEVER ORCPT=rfc822;%s" % (RCPT, RCPT)])

    def test_without_dsn_the_send_goes_ahead_and_v_says_so(self):
        srv = helpers_msg.exact_server(self, dsn=False)
        rc, out, err = helpers.run_cli(self.send_args("-v", "--dsn-notify", "success",
                                                      "--envid", "x1"), self.env_for(srv))
        self.assertEqual(rc, 0, err)
        self.assertIn("does not advertise DSN", err)
        self.assertEqual(srv.rec.rcpt_lines, ["TO:<%s>" % RCPT])
        self.assertNotIn("ENVID", srv.rec.mail_lines[0])
        self.assertNotIn("NOTIFY", srv.rec.mail_lines[0])

    def test_no_dsn_options_no_parameters(self):
        srv = helpers_msg.exact_server(self)
        self.assertSent(helpers.run_cli(self.send_args(), self.env_for(srv)))
        self.assertEqual(srv.rec.rcpt_lines, ["TO:<%s>" % RCPT])
        self.assertEqual(srv.rec.mail_lines[0].split()[0], "FROM:<%s>" % SENDER)

    def test_bad_values_are_refused_before_connecting(self):
        srv = helpers_msg.exact_server(self)
        for args, needle in ((["--dsn-notify", "never,success"], "never"),
                             (["--dsn-notify", "sometimes"], "notify"),
                             (["--dsn-ret", "body"], "full or hdrs"),
                             (["--envid", "caf\u00e9"], "printable ASCII"),
                             (["--envelope-from", "not an address"], "envelope sender")):
            with self.subTest(args=args):
                self.assertFailed(helpers.run_cli(self.send_args(*args), self.env_for(srv)),
                                  65, needle)
        self.assertEqual(srv.rec.connections, 0)

    def test_utf8_recipient_gets_utf8_orcpt(self):
        srv = helpers_msg.exact_server(self)  # aiosmtpd offers SMTPUTF8
        to = "j\u00f6rg@example.net"
        self.assertSent(helpers.run_cli(self.send_args("--dsn-notify", "failure", to=to),
                                        self.env_for(srv)))
        self.assertEqual(srv.rec.rcpt_lines,
                         ["TO:<%s> NOTIFY=FAILURE ORCPT=utf-8;%s" % (to, to)])


class BounceAddressTest(CliTest):
    def test_envelope_from_apart_from_the_header(self):
        srv = helpers_msg.exact_server(self)
        self.assertSent(helpers.run_cli(self.send_args("--envelope-from",
                                                       "bounces+17@example.org"),
                                        self.env_for(srv)))
        self.assertEqual(srv.rec.mail_lines[0].split()[0], "FROM:<bounces+17@example.org>")
        msg = srv.messages[0]
        self.assertEqual(msg.mail_from, "bounces+17@example.org")
        self.assertIn(b"From: " + SENDER.encode(), msg.data)

    def test_return_path_from_the_environment_and_null_sender(self):
        srv = helpers_msg.exact_server(self)
        self.assertSent(helpers.run_cli(self.send_args(),
                                        self.env_for(srv, SMTP_RETURN_PATH="<>")))
        self.assertEqual(srv.rec.mail_lines[0].split()[0], "FROM:<>")
        self.assertSent(helpers.run_cli(self.send_args(),
                                        self.env_for(srv, SMTP_RETURN_PATH="b@example.org")))
        self.assertEqual(srv.rec.mail_lines[1].split()[0], "FROM:<b@example.org>")
        # the message's own envelope sender wins
        self.assertSent(helpers.run_cli(self.send_args("--envelope-from", "<>"),
                                        self.env_for(srv, SMTP_RETURN_PATH="b@example.org")))
        self.assertEqual(srv.rec.mail_lines[2].split()[0], "FROM:<>")

    def test_bad_return_path_is_a_config_error(self):
        res = helpers.run_cli(self.send_args(), helpers.base_env(
            SMTP_HOST="127.0.0.1", SMTP_FROM=SENDER, SMTP_RETURN_PATH="a b c"))
        self.assertFailed(res, 78, "return path")

    def test_batch_lines(self):
        srv = helpers_msg.exact_server(self)
        fd, path = tempfile.mkstemp(suffix=".jsonl")
        self.addCleanup(os.remove, path)
        with os.fdopen(fd, "w") as f:
            f.write(json.dumps({"to": RCPT, "subject": "s", "body": "b",
                                "envelope_from": "vrp+1@example.org", "dsn_notify": "success",
                                "dsn_ret": "full", "envid": "e1"}) + "\n")
            f.write(json.dumps({"to": CC, "subject": "s", "body": "b"}) + "\n")
        rc, out, err = helpers.run_cli(["send-batch", path], self.env_for(srv))
        self.assertEqual(rc, 0, err)
        self.assertEqual(srv.rec.mail_lines[0].split()[0], "FROM:<vrp+1@example.org>")
        self.assertTrue(srv.rec.mail_lines[0].endswith(" RET=FULL ENVID=e1"))
        self.assertEqual(srv.rec.rcpt_lines[0],
                         "TO:<%s> NOTIFY=SUCCESS ORCPT=rfc822;%s" % (RCPT, RCPT))
        self.assertEqual(srv.rec.mail_lines[1].split(), ["FROM:<%s>" % SENDER] +
                         srv.rec.mail_lines[1].split()[1:])
        self.assertEqual(srv.rec.rcpt_lines[1], "TO:<%s>" % CC)


class QueueTest(CliTest):
    def test_queue_keeps_the_envelope_sender_and_refuses_dsn(self):
        d = tempfile.mkdtemp(prefix="scalr-msg-queue-")
        self.addCleanup(__import__("shutil").rmtree, d, True)
        env = helpers.base_env(SMTP_FROM=SENDER, SCALR_EMAIL_QUEUE="sqlite:%s/q.db" % d)
        res = helpers.run_cli(["queue", "add", "--to", RCPT, "--subject", "s", "--body", "b",
                               "--dsn-notify", "failure"], env)
        self.assertFailed(res, 65, "DSN")
        rc, out, err = helpers.run_cli(["queue", "add", "--to", RCPT, "--subject", "s", "--body",
                                        "b", "--envelope-from", "bounces@example.org"], env)
        self.assertEqual(rc, 0, err)
        rc, out, err = helpers.run_cli(["queue", "show", out.strip(), "--json"], env)
        self.assertEqual(rc, 0, err)
        self.assertEqual(json.loads(out)["mail_from"], "bounces@example.org")
