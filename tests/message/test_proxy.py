"""Proxies: Debian's microsocks (SOCKS5, with and without a password) and
tinyproxy (HTTP CONNECT), started on free loopback ports; STARTTLS through
them to a server whose certificate comes from the throw-away CA."""

import helpers
import helpers_msg
from helpers import CliTest

SECRET = "s3cr3t-Pa55"


class ProxyTest(CliTest):
    def send_via(self, srv, proxy, host="localhost", *extra):
        env = self.env_for(srv, host=host, SMTP_PROXY=proxy)
        return helpers.run_cli(self.send_args("-v", *extra), env)

    def assertThroughTls(self, srv, res):
        rc, out, err = res
        self.assertEqual(rc, 0, err)
        self.assertEqual(len(srv.messages), 1)
        self.assertIsNotNone(srv.messages[0].tls)
        self.assertIn("through proxy", err)
        self.assertIn("certificate verified", err)

    def test_socks5_without_password(self):
        srv = self.server("starttls")
        px = helpers_msg.microsocks(self)
        self.assertThroughTls(srv, self.send_via(srv, "socks5://127.0.0.1:%d" % px.port))

    def test_socks5h_with_password_never_shown(self):
        srv = self.server("starttls")
        px = helpers_msg.microsocks(self, "proxyuser", SECRET)
        res = self.send_via(srv, "socks5h://proxyuser:%s@127.0.0.1:%d" % (SECRET, px.port))
        self.assertThroughTls(srv, res)
        self.assertNotIn(SECRET, res[1] + res[2])
        self.assertIn("proxyuser:***@", res[2])

    def test_socks5_wrong_password_is_econnect(self):
        srv = self.server("starttls")
        px = helpers_msg.microsocks(self, "proxyuser", SECRET)
        res = self.send_via(srv, "socks5://proxyuser:wrong-%s@127.0.0.1:%d" % (SECRET, px.port))
        self.assertEqual(res[0], 75, res[2])
        self.assertIn("refused the user name and password", res[2])
        self.assertNotIn(SECRET, res[1] + res[2])
        self.assertEqual(srv.rec.connections, 0)

    def test_socks5_without_credentials_to_a_password_proxy(self):
        srv = self.server("starttls")
        px = helpers_msg.microsocks(self, "proxyuser", SECRET)
        res = self.send_via(srv, "socks5://127.0.0.1:%d" % px.port)
        self.assertEqual(res[0], 75, res[2])
        self.assertIn("authentication methods", res[2])

    def test_http_connect(self):
        srv = self.server("starttls")
        px = helpers_msg.tinyproxy(self, [srv.port])
        self.assertThroughTls(srv, self.send_via(srv, "http://127.0.0.1:%d" % px.port))

    def test_http_connect_with_password(self):
        srv = self.server("starttls")
        px = helpers_msg.tinyproxy(self, [srv.port], auth=("proxyuser", SECRET))
        res = self.send_via(srv, "http://proxyuser:%s@127.0.0.1:%d" % (SECRET, px.port))
        self.assertThroughTls(srv, res)
        self.assertNotIn(SECRET, res[1] + res[2])

    def test_http_refusal_carries_the_proxy_answer(self):
        srv = self.server("starttls")
        other = helpers_msg.free_port()
        px = helpers_msg.tinyproxy(self, [other])  # the SMTP port is not allowed
        res = self.send_via(srv, "http://127.0.0.1:%d" % px.port)
        self.assertEqual(res[0], 75, res[2])
        self.assertIn("CONNECT refused: HTTP/1", res[2])
        self.assertIn("403", res[2])
        self.assertEqual(srv.rec.connections, 0)

    def test_certificate_checked_against_the_smtp_host(self):
        srv = self.server("starttls", cert="wrong")
        px = helpers_msg.microsocks(self)
        res = self.send_via(srv, "socks5h://127.0.0.1:%d" % px.port)
        self.assertEqual(res[0], 74, res[2])
        self.assertIn("localhost", res[2])
        self.assertEqual(len(srv.messages), 0)

    def test_implicit_tls_through_socks(self):
        srv = self.server("implicit")
        px = helpers_msg.microsocks(self)
        self.assertThroughTls(srv, self.send_via(srv, "socks5://127.0.0.1:%d" % px.port))

    def test_bad_proxy_url_is_a_config_error_without_the_password(self):
        for url in ("ftp://h:1", "socks5://u:%s@h:99999" % SECRET, "http://u:%s@" % SECRET):
            with self.subTest(url=url.replace(SECRET, "***")):
                res = helpers.run_cli(self.send_args(), helpers.base_env(
                    SMTP_HOST="127.0.0.1", SMTP_FROM="a@example.org", SMTP_PROXY=url))
                self.assertFailed(res, 78, "proxy")
                self.assertNotIn(SECRET, res[2])

    def test_proxy_not_listening(self):
        sock, port = helpers.closed_port()
        self.addCleanup(sock.close)
        res = helpers.run_cli(self.send_args(), helpers.base_env(
            SMTP_HOST="localhost", SMTP_FROM="a@example.org",
            SMTP_PROXY="socks5://127.0.0.1:%d" % port))
        self.assertEqual(res[0], 75, res[2])
        self.assertIn("proxy", res[2])
