"""Faults: each one exits with its sysexits code, says one line, delivers nothing."""

import time

import faults as F
import helpers as H

USER, PASSWORD = "mailer@example.org", "Zq9!vX7#hunter2-pw"
SECRETS = (PASSWORD, H.b64(PASSWORD), H.b64("\0%s\0%s" % (USER, PASSWORD)),
           H.b64("%s\0%s\0%s" % (USER, USER, PASSWORD)))


class Rejections(H.CliTest):
    def test_mail_rejected_550(self):
        srv = self.server("plain", mail_reply="550 5.7.1 Sender address rejected by policy")
        res = H.run_cli(self.send_args(), self.env_for(srv))
        self.assertFailed(res, 69, "550", "Sender address rejected by policy")
        self.assertNothingDelivered(srv)
        self.assertNeverSent(srv, "RCPT", "DATA")

    def rcpt_one_of_two(self, extra_caps):
        bad = "nobody@example.net"
        srv = self.server("plain", extra_caps=extra_caps,
                          rcpt_replies={bad: "550 5.1.1 <%s>: Recipient address rejected: "
                                             "User unknown" % bad})
        res = H.run_cli(self.send_args("--to", bad), self.env_for(srv))
        self.assertFailed(res, 69, "550", bad)
        self.assertNothingDelivered(srv)
        return srv

    def test_rcpt_rejected_one_of_two(self):
        srv = self.rcpt_one_of_two(())
        self.assertNeverSent(srv, "DATA")

    def test_rcpt_rejected_one_of_two_pipelining(self):
        # RFC 2920: MAIL, RCPT, RCPT, DATA may go in one flight; the 354 must
        # not lead to a committed message for the recipient that was accepted
        self.rcpt_one_of_two(["PIPELINING"])

    def test_rcpt_rejected_first_of_two_pipelining(self):
        bad = "nobody@example.net"
        srv = self.server("plain", extra_caps=["PIPELINING"],
                          rcpt_replies={bad: "550 5.1.1 User unknown"})
        args = self.send_args(to=bad) + ["--to", "ok@example.net"]
        self.assertFailed(H.run_cli(args, self.env_for(srv)), 69, "550", bad)
        self.assertNothingDelivered(srv)

    def test_data_rejected_554(self):
        srv = self.server("plain", data_reply="554 5.6.0 Message content rejected")
        res = H.run_cli(self.send_args(), self.env_for(srv))
        self.assertFailed(res, 69, "554", "Message content rejected")
        self.assertNothingDelivered(srv)
        self.assertEqual(len(srv.rec.rejected_data), 1, "one attempt, no retry")

    def test_rcpt_451_is_transient(self):
        srv = self.server("plain", rcpt_replies={H.RCPT: "451 4.3.0 Try again later"})
        res = H.run_cli(self.send_args(), self.env_for(srv))
        self.assertFailed(res, 75, "451", "Try again later")
        self.assertNothingDelivered(srv)

    def test_mail_452_is_transient(self):
        srv = self.server("plain", mail_reply="452 4.3.1 Insufficient system storage")
        self.assertFailed(H.run_cli(self.send_args(), self.env_for(srv)), 75, "452")
        self.assertNothingDelivered(srv)

    def test_data_451_is_transient(self):
        srv = self.server("plain", data_reply="451 4.3.0 Queue write error")
        self.assertFailed(H.run_cli(self.send_args(), self.env_for(srv)), 75, "451")
        self.assertNothingDelivered(srv)

    def test_message_too_big(self):
        srv = self.server("plain", data_size_limit=2000)
        res = H.run_cli(self.send_args(body=("x" * 60 + "\n") * 100), self.env_for(srv))
        self.assertFailed(res, 69)
        self.assertNothingDelivered(srv)

    def test_smtputf8_needed_but_not_offered(self):
        srv = self.server("plain", enable_SMTPUTF8=False)
        res = H.run_cli(self.send_args(to="用户@example.net"), self.env_for(srv))
        self.assertFailed(res, 69, "SMTPUTF8")
        self.assertNothingDelivered(srv)
        self.assertNeverSent(srv, "MAIL")


class Connection(H.CliTest):
    def test_421_greeting(self):
        srv = self.script_server(F.greeting_then_close(b"421 4.3.2 Too busy, try later\r\n"))
        res = H.run_cli(self.send_args(), self.env_for(srv, tls="plain"))
        self.assertFailed(res, 75, "421", "Too busy")
        self.assertNeverSent(srv, "MAIL")

    def test_connection_refused(self):
        sock, port = H.closed_port()
        self.addCleanup(sock.close)
        env = H.base_env(SMTP_HOST="127.0.0.1", SMTP_PORT=port, SMTP_FROM=H.SENDER,
                         SMTP_USE_TLS="false")
        self.assertFailed(H.run_cli(self.send_args(), env), 75, str(port))

    def test_server_never_answers(self):
        srv = self.script_server(F.silent)
        env = self.env_for(srv, tls="plain", SMTP_TIMEOUT="1")
        t0 = time.monotonic()
        res = H.run_cli(self.send_args(), env)
        took = time.monotonic() - t0
        self.assertFailed(res, 75)
        self.assertLess(took, 5.0, "SMTP_TIMEOUT=1 must bound the wait")
        self.assertGreater(took, 0.9, "gave up before the timeout")

    def test_fractional_timeout(self):
        srv = self.script_server(F.silent)
        env = self.env_for(srv, tls="starttls", SMTP_TIMEOUT="0.3")
        t0 = time.monotonic()
        res = H.run_cli(self.send_args(), env)
        took = time.monotonic() - t0
        self.assertFailed(res, 75)
        self.assertLess(took, 3.0)

    def test_disconnect_in_data(self):
        srv = self.server("plain", smtp_class=F.HangUpInData)
        res = H.run_cli(self.send_args(body="line\n" * 2000), self.env_for(srv))
        self.assertFailed(res, 74)
        self.assertNothingDelivered(srv)

    def test_garbage_greeting(self):
        srv = self.script_server(F.garbage_greeting)
        res = H.run_cli(self.send_args(), self.env_for(srv, tls="plain"))
        self.assertFailed(res, 76)
        self.assertNeverSent(srv, "MAIL")

    def test_ehlo_reply_with_mixed_codes(self):
        srv = self.script_server(F.ehlo_mixed_codes)
        res = H.run_cli(self.send_args(), self.env_for(srv, tls="plain"))
        self.assertFailed(res, 76)
        self.assertNeverSent(srv, "MAIL")


class Tls(H.CliTest):
    def creds(self, srv, **kw):
        return self.env_for(srv, SMTP_USERNAME=USER, SMTP_PASSWORD=PASSWORD, **kw)

    def assertNoSecretsSent(self, srv):
        self.assertNeverSent(srv, "AUTH", "MAIL")
        self.assertNothingDelivered(srv)

    def test_starttls_not_offered(self):
        srv = self.server("plain", auth=(USER, PASSWORD))   # offers AUTH in plaintext
        env = self.creds(srv, SMTP_USE_TLS="true")
        self.assertFailed(H.run_cli(self.send_args(), env), 74, "STARTTLS")
        self.assertNoSecretsSent(srv)

    def test_starttls_not_offered_without_credentials(self):
        srv = self.server("plain")
        env = self.env_for(srv, SMTP_USE_TLS="true")
        self.assertFailed(H.run_cli(self.send_args(), env), 74)
        self.assertNoSecretsSent(srv)

    def test_starttls_refused_454(self):
        srv = self.server("starttls", smtp_class=F.StartTLSRefused)
        self.assertFailed(H.run_cli(self.send_args(), self.creds(srv)), 74, "454")
        self.assertNoSecretsSent(srv)

    def test_untrusted_certificate_starttls(self):
        srv = self.server("starttls", cert="selfsigned", auth=(USER, PASSWORD))
        self.assertFailed(H.run_cli(self.send_args(), self.creds(srv, host="localhost")), 74)
        self.assertNoSecretsSent(srv)

    def test_untrusted_certificate_implicit(self):
        srv = self.server("implicit", cert="selfsigned", auth=(USER, PASSWORD))
        self.assertFailed(H.run_cli(self.send_args(), self.creds(srv)), 74)
        self.assertNoSecretsSent(srv)

    def test_ca_not_trusted_without_ssl_cert_file(self):
        srv = self.server("starttls", auth=(USER, PASSWORD))
        env = self.creds(srv, host="localhost")
        del env["SSL_CERT_FILE"]
        self.assertFailed(H.run_cli(self.send_args(), env), 74)
        self.assertNoSecretsSent(srv)

    def test_wrong_host_name(self):
        for host in ("localhost", "127.0.0.1"):
            with self.subTest(host=host):
                srv = self.server("starttls", cert="wrong", auth=(USER, PASSWORD))
                self.assertFailed(H.run_cli(self.send_args(), self.creds(srv, host=host)), 74)
                self.assertNoSecretsSent(srv)

    def test_wrong_host_name_implicit(self):
        srv = self.server("implicit", cert="wrong", auth=(USER, PASSWORD))
        self.assertFailed(H.run_cli(self.send_args(), self.creds(srv, host="localhost")), 74)
        self.assertNoSecretsSent(srv)

    def test_starttls_response_injection(self):
        srv = self.server("starttls", smtp_class=F.StartTLSInjection, auth=(USER, PASSWORD))
        self.assertFailed(H.run_cli(self.send_args(), self.creds(srv)), 74)
        self.assertNoSecretsSent(srv)

    def test_implicit_tls_against_plaintext_server(self):
        srv = self.server("plain")
        env = self.env_for(srv, tls="implicit")
        self.assertFailed(H.run_cli(self.send_args(), env), 74)
        self.assertNothingDelivered(srv)


class Auth(H.CliTest):
    def test_auth_refused_535(self):
        srv = self.server("starttls", auth=(USER, "the-real-password"))
        env = self.env_for(srv, SMTP_USERNAME=USER, SMTP_PASSWORD=PASSWORD)
        rc, out, err = H.run_cli(self.send_args(), env)
        self.assertFailed((rc, out, err), 77, "535")
        for s in SECRETS:
            self.assertNotIn(s, out + err)
        self.assertNothingDelivered(srv)
        self.assertNeverSent(srv, "MAIL")
        self.assertEqual([a[2] for a in srv.rec.auth], [False])

    def test_auth_refused_535_login(self):
        srv = self.server("starttls", auth=(USER, "the-real-password"), mechanisms=["LOGIN"])
        env = self.env_for(srv, SMTP_USERNAME=USER, SMTP_PASSWORD=PASSWORD)
        self.assertFailed(H.run_cli(self.send_args(), env), 77, "535")
        self.assertNothingDelivered(srv)


class PasswordNeverPrinted(H.CliTest):
    """The password (and its base64 forms) never appears in any output."""

    def assertNoSecret(self, out, err):
        for s in SECRETS:
            self.assertNotIn(s, out, "secret on stdout")
            self.assertNotIn(s, err, "secret on stderr")

    def run_both(self, srv, args, **env_kw):
        env = self.env_for(srv, SMTP_USERNAME=USER, SMTP_PASSWORD=PASSWORD, **env_kw)
        results = []
        for extra in ([], ["-v"]):
            rc, out, err = H.run_cli(args + extra, env)
            self.assertNoSecret(out, err)
            results.append((rc, out, err))
        return results

    def test_success_plain_and_login(self):
        for mechs in (["PLAIN"], ["LOGIN"]):
            with self.subTest(mechs=mechs):
                srv = self.server("starttls", auth=(USER, PASSWORD), mechanisms=mechs)
                quiet, verbose = self.run_both(srv, self.send_args())
                self.assertSent(quiet)
                self.assertEqual(verbose[0], 0, verbose[2])
                self.assertRedactedTrace(verbose[2], USER, PASSWORD)

    def test_auth_failure(self):
        for mechs in (["PLAIN"], ["LOGIN"]):
            with self.subTest(mechs=mechs):
                srv = self.server("starttls", auth=(USER, "other"), mechanisms=mechs)
                quiet, verbose = self.run_both(srv, self.send_args())
                self.assertFailed(quiet, 77, "535")
                self.assertEqual(verbose[0], 77)
                self.assertTrue(verbose[2].splitlines()[-1].startswith("scalr-email: "))

    def test_check_command(self):
        srv = self.server("starttls", auth=(USER, "other"))
        quiet, verbose = self.run_both(srv, ["check"])
        self.assertEqual(quiet[0], 77)
        self.assertEqual(verbose[0], 77)

    def test_tls_failure_and_print(self):
        srv = self.server("starttls", cert="selfsigned", auth=(USER, PASSWORD))
        quiet, verbose = self.run_both(srv, self.send_args())
        self.assertEqual(quiet[0], 74)
        rc, out, err = H.run_cli(self.send_args("--print"),
                                 H.base_env(SMTP_FROM=H.SENDER, SMTP_USERNAME=USER,
                                            SMTP_PASSWORD=PASSWORD))
        self.assertEqual(rc, 0, err)
        self.assertNoSecret(out, err)
