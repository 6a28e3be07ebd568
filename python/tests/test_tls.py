"""TLS: STARTTLS and implicit TLS against aiosmtpd with a self-signed
certificate made by the openssl command (trusted through SSL_CERT_FILE)."""
import os
import shutil
import tempfile
import threading
import unittest

from scalr_email import TLSError, send

from base import EnvTestCase
from servers import SmtpServer, self_signed_cert, server_tls_context


class Tls(EnvTestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp()
        cls.pair = self_signed_cert(cls.dir)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir, ignore_errors=True)

    def tls_server(self, implicit=False):
        if self.pair is None:
            self.skipTest("openssl command not available")
        ctx = server_tls_context(*self.pair)
        if implicit:
            srv = self.start(SmtpServer(implicit_tls=ctx))
            self.configure(srv.port, SMTP_USE_TLS=None, SMTP_USE_SSL="true")
        else:
            srv = self.start(SmtpServer(tls_context=ctx, require_starttls=True))
            self.configure(srv.port, SMTP_USE_TLS="true")
        return srv

    def test_starttls_required_but_not_offered(self):
        srv = self.smtp_server()
        os.environ["SMTP_USE_TLS"] = "true"
        with self.assertRaises(TLSError) as cm:
            send("user@example.com", "s", "b")
        self.assertEqual((cm.exception.code, cm.exception.stage), ("ETLS", "TLS"))
        self.assertEqual(srv.messages, [])

    def test_untrusted_certificate_is_refused(self):
        srv = self.tls_server()
        with self.assertRaises(TLSError) as cm:
            send("user@example.com", "s", "b")
        self.assertEqual(cm.exception.code, "ETLS")
        self.assertEqual(srv.messages, [])

    def test_starttls_with_trusted_certificate(self):
        srv = self.tls_server()
        os.environ["SSL_CERT_FILE"] = self.pair[0]
        send("user@example.com", "over STARTTLS", "b")
        [got] = srv.wait_messages(1)
        self.assertEqual(got.message["Subject"], "over STARTTLS")

    def test_implicit_tls_with_trusted_certificate(self):
        srv = self.tls_server(implicit=True)
        os.environ["SSL_CERT_FILE"] = self.pair[0]
        send("user@example.com", "over implicit TLS", "b")
        [got] = srv.wait_messages(1)
        self.assertEqual(got.message["Subject"], "over implicit TLS")

    def test_implicit_tls_against_a_starttls_port_says_so(self):
        srv = self.tls_server()
        os.environ.update(SSL_CERT_FILE=self.pair[0], SMTP_USE_SSL="true")
        del os.environ["SMTP_USE_TLS"]
        with self.assertRaises(TLSError) as cm:
            send("user@example.com", "s", "b")
        self.assertIn("STARTTLS", str(cm.exception))
        self.assertEqual(srv.messages, [])

    def test_certificate_for_another_name_is_refused(self):
        other = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, other, True)
        pair = self_signed_cert(other, name="other.example")
        if pair is None:
            self.skipTest("openssl command not available")
        srv = self.start(SmtpServer(tls_context=server_tls_context(*pair)))
        self.configure(srv.port, SMTP_USE_TLS="true", SSL_CERT_FILE=pair[0])
        with self.assertRaises(TLSError) as cm:
            send("user@example.com", "s", "b")
        self.assertIn("mismatch", str(cm.exception))
        self.assertEqual(srv.messages, [])

    def test_eight_threads_over_starttls(self):
        srv = self.tls_server()
        os.environ["SSL_CERT_FILE"] = self.pair[0]
        errors = []

        def worker(i):
            try:
                send(f"user{i}@example.com", f"tls {i}", "b")
            except Exception as e:  # reported below
                errors.append(e)

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        self.assertEqual(errors, [])
        self.assertEqual(len(srv.wait_messages(8)), 8)


if __name__ == "__main__":
    unittest.main()
