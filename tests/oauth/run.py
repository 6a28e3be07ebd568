"""End-to-end tests of OAuth2 sign-in (XOAUTH2, OAUTHBEARER).

    /usr/bin/python3 tests/oauth/run.py

Real parts on 127.0.0.1, started and stopped by each test: an aiosmtpd
server (Debian's python3-aiosmtpd) whose own authenticator checks the exact
SASL strings and can answer "expired" (the 334 JSON error challenge, then
535), and an HTTPS token endpoint (http.server + ssl) with a throw-away CA
made by openssl, which issues short-lived tokens, rotates refresh tokens,
counts refreshes and can fail in each way.  Runs build/scalr-email (or
$SCALR_EMAIL_BIN) and the pool suite's C driver (8 threads, one client).
Ends with "oauth: N passed, N failed"."""
import base64
import json
import logging
import os
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.parse
import warnings
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
BIN = os.environ.get("SCALR_EMAIL_BIN", os.path.join(ROOT, "build", "scalr-email"))
LIB = os.path.join(os.path.dirname(BIN), "libscalr-email.a")
TMP = tempfile.mkdtemp(prefix="scalr-oauth-")
DRIVER = os.path.join(TMP, "driver")
ROTATE = os.path.join(TMP, "rotate")
TWOKEYS = os.path.join(TMP, "twokeys")
STRUCTCFG = os.path.join(TMP, "structcfg")
USER = "alice@example.com"
ECONFIG = 2  # SCALR_EMAIL_ECONFIG
CLIENT_ID = "client-id-123"
CLIENT_SECRET = "client-secret-XYZ"


def run_quiet(argv):
    subprocess.run(argv, check=True, capture_output=True)


def make_pki():
    """A throw-away CA and a certificate for 127.0.0.1 it signed; and a
    second, self-signed certificate nobody trusts (the wrong one)."""
    p = lambda n: os.path.join(TMP, n)  # noqa: E731
    run_quiet(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
               "-subj", "/CN=scalr test CA", "-keyout", p("ca.key"), "-out", p("ca.pem")])
    run_quiet(["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
               "-keyout", p("srv.key"), "-out", p("srv.csr")])
    with open(p("ext.cnf"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1\n")
    run_quiet(["openssl", "x509", "-req", "-in", p("srv.csr"), "-CA", p("ca.pem"), "-CAkey",
               p("ca.key"), "-CAcreateserial", "-days", "1", "-extfile", p("ext.cnf"),
               "-out", p("srv.pem")])
    run_quiet(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
               "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
               "-keyout", p("wrong.key"), "-out", p("wrong.pem")])


class TokenEndpoint:
    """An RFC 6749 token endpoint.  mode: ok, invalid_grant, 500, slow,
    badjson.  Refresh tokens rotate (rt-1, rt-2...) when rotate is set: the
    old one then dies, as at Microsoft."""

    def __init__(self, mode="ok", cert="srv", expires_in=3600, rotate=False):
        self.mode, self.expires_in, self.rotate = mode, expires_in, rotate
        self.refreshes = 0
        self.issued = []
        self.refresh_token = "rt-0"
        self.forms = []
        self.lock = threading.Lock()
        ep = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                form = urllib.parse.parse_qs(self.rfile.read(n).decode(), strict_parsing=True)
                form = {k: v[0] for k, v in form.items()}
                status, body = ep.answer(form)
                if ep.mode == "slow":
                    time.sleep(3)
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.httpd.daemon_threads = True
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(os.path.join(TMP, cert + ".pem"), os.path.join(TMP, cert + ".key"))
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.url = "https://127.0.0.1:%d/oauth2/v2.0/token" % self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def answer(self, form):
        with self.lock:
            self.forms.append(form)
            if self.mode == "500":
                return 500, {"error": "server_error"}
            if self.mode == "badjson":
                return 200, b"{\"access_token\": \"at-x\", "
            if self.mode == "invalid_grant" or form.get("grant_type") != "refresh_token" or \
                    form.get("client_id") != CLIENT_ID or \
                    form.get("refresh_token") != self.refresh_token:
                return 400, {"error": "invalid_grant",
                             "error_description": "AADSTS70000: The refresh token has expired."}
            self.refreshes += 1
            tok = "at-%d" % self.refreshes
            self.issued.append(tok)
            body = {"access_token": tok, "token_type": "Bearer", "expires_in": self.expires_in}
            if self.rotate:
                self.refresh_token = "rt-%d" % self.refreshes
                body["refresh_token"] = self.refresh_token
            return 200, body

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class OAuthHandler:
    """aiosmtpd handler with its own XOAUTH2 and OAUTHBEARER: the exact SASL
    strings are checked; a token in `expired` gets the error challenge."""

    def __init__(self, valid=None, expired=()):
        self.valid = valid  # a callable(token) -> bool, or None: any token
        self.expired = set(expired)
        self.envelopes = []
        self.sasl = []          # decoded initial responses, in order
        self.expired_answers = 0
        self.lock = threading.Lock()

    async def _check(self, server, args, mech):
        if len(args) != 2:  # the initial response must come with AUTH
            return AuthResult(success=False, handled=False, message="501 5.5.2 need initial response")
        raw = base64.b64decode(args[1])
        with self.lock:
            self.sasl.append((mech, raw))
        if mech == "XOAUTH2":
            prefix = ("user=%s\x01auth=Bearer " % USER).encode()
        else:
            prefix = ("n,a=%s,\x01auth=Bearer " % USER).encode()
        if not raw.startswith(prefix) or not raw.endswith(b"\x01\x01"):
            return AuthResult(success=False, handled=False, message="501 5.5.2 bad SASL string")
        token = raw[len(prefix):-2].decode()
        ok = token not in self.expired and (self.valid is None or self.valid(token))
        if ok:
            return AuthResult(success=True, auth_data=token)
        with self.lock:
            self.expired_answers += 1
        status = {"status": "401", "schemes": "bearer", "scope": "https://mail.google.com/"}
        if mech == "OAUTHBEARER":
            status = {"status": "invalid_token", "scope": "https://mail.google.com/"}
        reply = await server.challenge_auth(json.dumps(status))
        want = b"\x01" if mech == "OAUTHBEARER" else b""
        if reply != want:
            return AuthResult(success=False, handled=False, message="501 5.5.2 bad dummy response")
        return AuthResult(success=False, handled=False,
                          message="535 5.7.8 Username and Password not accepted (token expired)")

    async def auth_XOAUTH2(self, server, args):
        return await self._check(server, args, "XOAUTH2")

    async def auth_OAUTHBEARER(self, server, args):
        return await self._check(server, args, "OAUTHBEARER")

    async def handle_DATA(self, server, session, envelope):
        tok = getattr(session, "auth_data", None)
        envelope.session_token = tok.encode() if isinstance(tok, str) else tok
        with self.lock:
            self.envelopes.append(envelope)
        return "250 2.0.0 Ok"


class Smtp:
    def __init__(self, handler, exclude=()):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.handler = handler
        # Loopback: the client allows AUTH without TLS only here.
        self.ctl = Controller(handler, hostname="127.0.0.1", port=self.port,
                              auth_require_tls=False, auth_required=True,
                              auth_exclude_mechanism=["PLAIN", "LOGIN"] + list(exclude))
        self.ctl.start()

    def stop(self):
        self.ctl.stop()


def env_for(smtp, **extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMTP_")}
    env.update(SMTP_HOST="127.0.0.1", SMTP_PORT=str(smtp.port), SMTP_USE_TLS="false",
               SMTP_FROM="sender@example.com", SMTP_TIMEOUT="5", SMTP_USERNAME=USER,
               SSL_CERT_FILE=os.path.join(TMP, "ca.pem"))
    env.update({k: str(v) for k, v in extra.items()})
    return env


def grant_env(ep, smtp, **extra):
    return env_for(smtp, SMTP_OAUTH_TOKEN_URL=ep.url, SMTP_OAUTH_CLIENT_ID=CLIENT_ID,
                   SMTP_OAUTH_CLIENT_SECRET=CLIENT_SECRET, SMTP_OAUTH_REFRESH_TOKEN="rt-0",
                   **extra)


def send(env, *extra):
    return subprocess.run([BIN, "send", "-v", "--to", "r@example.com", "--subject", "oauth",
                           "--body", "hi"] + list(extra), env=env, capture_output=True,
                          text=True, timeout=60)


SECRETS = ("at-", "rt-", CLIENT_SECRET, "ya29", "fixed-token-", "cmd-token-")


class Base(unittest.TestCase):
    def setUp(self):
        self.cleanup = []

    def tearDown(self):
        for c in reversed(self.cleanup):
            c.stop()

    def smtp(self, **kw):
        exclude = kw.pop("exclude", ())
        s = Smtp(OAuthHandler(**kw), exclude)
        self.cleanup.append(s)
        return s

    def endpoint(self, **kw):
        e = TokenEndpoint(**kw)
        self.cleanup.append(e)
        return e

    def assertNoSecret(self, text):
        for s in SECRETS:
            self.assertNotIn(s, text)
        self.assertNotIn(base64.b64encode(("user=%s\x01" % USER).encode()).decode()[:16], text)


class Mechanisms(Base):
    def test_xoauth2_fixed_token_exact_sasl(self):
        s = self.smtp(exclude=["OAUTHBEARER"])
        p = send(env_for(s, SMTP_OAUTH_TOKEN="fixed-token-1"))
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(s.handler.sasl,
                         [("XOAUTH2", ("user=%s\x01auth=Bearer fixed-token-1\x01\x01" % USER).encode())])
        self.assertEqual(len(s.handler.envelopes), 1)
        self.assertIn("AUTH XOAUTH2 <redacted>", p.stderr)
        self.assertNoSecret(p.stderr + p.stdout)

    def test_oauthbearer_auto_exact_sasl(self):
        s = self.smtp()
        p = send(env_for(s, SMTP_OAUTH_TOKEN="fixed-token-2"))
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(s.handler.sasl,
                         [("OAUTHBEARER",
                           ("n,a=%s,\x01auth=Bearer fixed-token-2\x01\x01" % USER).encode())])
        self.assertNoSecret(p.stderr + p.stdout)

    def test_smtp_auth_xoauth2_forced(self):
        s = self.smtp()
        p = send(env_for(s, SMTP_OAUTH_TOKEN="fixed-token-3", SMTP_AUTH="xoauth2"))
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(s.handler.sasl[0][0], "XOAUTH2")

    def test_forced_mechanism_not_offered_exit_77(self):
        s = self.smtp(exclude=["OAUTHBEARER"])
        p = send(env_for(s, SMTP_OAUTH_TOKEN="fixed-token-4", SMTP_AUTH="oauthbearer"))
        self.assertEqual(p.returncode, 77, p.stderr)
        self.assertIn("OAUTHBEARER", p.stderr)
        self.assertEqual(s.handler.sasl, [])
        self.assertEqual(s.handler.envelopes, [])

    def test_fixed_token_expired_exit_77_nothing_sent(self):
        s = self.smtp(expired={"fixed-token-5"})
        p = send(env_for(s, SMTP_OAUTH_TOKEN="fixed-token-5"))
        self.assertEqual(p.returncode, 77, p.stderr)
        err = p.stderr.strip().splitlines()[-1]
        self.assertIn("cannot be refreshed", err)
        self.assertEqual(s.handler.envelopes, [])
        self.assertEqual(s.handler.expired_answers, 1)
        self.assertNoSecret(p.stderr + p.stdout)

    def test_config_errors(self):
        s = self.smtp()
        p = send(env_for(s, SMTP_AUTH="xoauth2"))
        self.assertEqual(p.returncode, 78, p.stderr)
        self.assertIn("SMTP_AUTH=xoauth2 needs an access token", p.stderr)
        p = send(env_for(s, SMTP_AUTH="cram-md5", SMTP_PASSWORD="pw"))
        self.assertEqual(p.returncode, 78, p.stderr)
        p = send(env_for(s, SMTP_OAUTH_TOKEN_URL="http://127.0.0.1:1/token",
                         SMTP_OAUTH_CLIENT_ID="x", SMTP_OAUTH_REFRESH_TOKEN="rt-0"))
        self.assertEqual(p.returncode, 78, p.stderr)
        self.assertIn("https://", p.stderr)
        self.assertNoSecret(p.stderr)
        self.assertEqual(s.handler.sasl, [])


class RoundTrips(Base):
    def test_cold_starttls_xoauth2_costs_what_plain_costs(self):
        """Over STARTTLS against aiosmtpd: the client's own count of round
        trips to a ready session is the same for XOAUTH2 as for PLAIN (the
        token is the AUTH command's initial response)."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(os.path.join(TMP, "srv.pem"), os.path.join(TMP, "srv.key"))
        handler = OAuthHandler()
        with socket.socket() as so:
            so.bind(("127.0.0.1", 0))
            port = so.getsockname()[1]
        ctl = Controller(handler, hostname="127.0.0.1", port=port, tls_context=ctx,
                         require_starttls=True, auth_require_tls=True,
                         auth_exclude_mechanism=["LOGIN", "OAUTHBEARER"],
                         authenticator=lambda *a: AuthResult(success=True))
        ctl.start()
        self.cleanup.append(type("C", (), {"stop": lambda _self: ctl.stop()})())

        class P:
            pass
        P.port = port
        ready = {}
        for name, extra in (("plain", {"SMTP_PASSWORD": "pw-secret"}),
                            ("xoauth2", {"SMTP_OAUTH_TOKEN": "fixed-token-rtt"})):
            p = send(env_for(P, SMTP_USE_TLS="true", **extra))
            self.assertEqual(p.returncode, 0, p.stderr)
            notes = [l for l in p.stderr.splitlines() if "session ready after" in l]
            self.assertEqual(len(notes), 1, p.stderr)
            ready[name] = int(notes[0].split("after ")[1].split()[0])
            self.assertIn("AUTH %s <redacted>" % name.upper(), p.stderr)
            self.assertNoSecret(p.stderr)
        self.assertEqual(ready["xoauth2"], ready["plain"])
        self.assertEqual(len(handler.envelopes), 2)


class TokenCommand(Base):
    def test_token_cmd_first_line(self):
        s = self.smtp()
        p = send(env_for(s, SMTP_OAUTH_TOKEN_CMD="printf 'cmd-token-1\\nsecond line\\n'"))
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertTrue(s.handler.sasl[0][1].endswith(b"Bearer cmd-token-1\x01\x01"))
        self.assertNoSecret(p.stderr)

    def test_token_cmd_failure_is_config_error(self):
        s = self.smtp()
        p = send(env_for(s, SMTP_OAUTH_TOKEN_CMD="sh -c 'echo vault is sealed >&2; exit 3'"))
        self.assertEqual(p.returncode, 78, p.stderr)
        line = p.stderr.strip().splitlines()[-1]
        self.assertIn("exit status 3", line)
        self.assertIn("vault is sealed", line)
        self.assertEqual(s.handler.sasl, [])

    def test_token_cmd_not_a_token(self):
        s = self.smtp()
        p = send(env_for(s, SMTP_OAUTH_TOKEN_CMD="echo cmd-token-1 with words"))
        self.assertEqual(p.returncode, 78, p.stderr)
        self.assertIn("not a token", p.stderr)
        self.assertNoSecret(p.stderr)
        p = send(env_for(s, SMTP_OAUTH_TOKEN_CMD="/nonexistent/token-helper"))
        self.assertEqual(p.returncode, 78, p.stderr)
        self.assertIn("cannot run /nonexistent/token-helper", p.stderr)
        p = send(env_for(s, SMTP_OAUTH_TOKEN_CMD="sleep 30", SMTP_TIMEOUT="1"))
        self.assertEqual(p.returncode, 78, p.stderr)
        self.assertIn("gave no token within 1000 ms", p.stderr)
        self.assertEqual(s.handler.sasl, [])

    def test_token_cmd_rerun_on_expiry(self):
        counter = os.path.join(TMP, "cmd-counter")
        with open(counter, "w") as f:
            f.write("0")
        script = ("n=$(($(cat %s)+1)); echo $n > %s; echo cmd-token-$n" % (counter, counter))
        s = self.smtp(expired={"cmd-token-1"})
        p = send(env_for(s, SMTP_OAUTH_TOKEN_CMD="sh -c '%s'" % script))
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual([raw.split(b"Bearer ")[1] for _, raw in s.handler.sasl],
                         [b"cmd-token-1\x01\x01", b"cmd-token-2\x01\x01"])
        self.assertEqual(len(s.handler.envelopes), 1)


class RefreshGrant(Base):
    def test_grant_form_and_check_fetched(self):
        ep = self.endpoint()
        s = self.smtp(valid=lambda t: t in ep.issued)
        p = subprocess.run([BIN, "check", "-v"], env=grant_env(ep, s, SMTP_OAUTH_SCOPE="https://outlook.office.com/SMTP.Send offline_access"),
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("auth: ok (OAUTHBEARER)", p.stdout)
        self.assertIn("oauth token: fetched", p.stdout)
        self.assertEqual(ep.refreshes, 1)
        self.assertEqual(ep.forms[0], {"grant_type": "refresh_token", "refresh_token": "rt-0",
                                       "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
                                       "scope": "https://outlook.office.com/SMTP.Send offline_access"})
        self.assertNoSecret(p.stdout + p.stderr)

    def test_expired_token_refreshed_once_and_used(self):
        ep = self.endpoint()
        s = self.smtp(valid=lambda t: t in ep.issued, expired={"at-1"})
        p = subprocess.run([BIN, "check", "-v"], env=grant_env(ep, s), capture_output=True,
                           text=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("oauth token: refreshed", p.stdout)
        self.assertEqual(ep.refreshes, 2)
        self.assertTrue(s.handler.sasl[-1][1].endswith(b"Bearer at-2\x01\x01"))
        self.assertNoSecret(p.stdout + p.stderr)
        p = send(grant_env(ep, s))  # a new process: a new fetch, then one message
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(len(s.handler.envelopes), 1)

    def test_refresh_token_file_rotated_atomically(self):
        ep = self.endpoint(rotate=True)
        s = self.smtp(valid=lambda t: t in ep.issued)
        path = os.path.join(TMP, "refresh-token")
        with open(path, "w") as f:
            f.write("rt-0\n")
        env = grant_env(ep, s, SMTP_OAUTH_REFRESH_TOKEN_FILE=path)
        del env["SMTP_OAUTH_REFRESH_TOKEN"]
        for i in (1, 2):
            p = send(env)
            self.assertEqual(p.returncode, 0, p.stderr)
            with open(path) as f:
                self.assertEqual(f.read(), "rt-%d\n" % i)
            self.assertEqual(oct(os.stat(path).st_mode & 0o777), "0o600")
        self.assertEqual([f["refresh_token"] for f in ep.forms], ["rt-0", "rt-1"])
        self.assertEqual(len(s.handler.envelopes), 2)
        self.assertEqual([n for n in os.listdir(TMP) if n.startswith("refresh-token.tmp")], [])
        self.assertNoSecret(p.stderr)

    def test_invalid_grant_exit_77_nothing_sent(self):
        ep = self.endpoint(mode="invalid_grant")
        s = self.smtp()
        p = send(grant_env(ep, s))
        self.assertEqual(p.returncode, 77, p.stderr)
        line = p.stderr.strip().splitlines()[-1]
        self.assertIn("invalid_grant", line)
        self.assertIn("AADSTS70000", line)
        self.assertEqual(len(p.stderr.strip().splitlines()[-1:]), 1)
        self.assertEqual(s.handler.sasl, [])
        self.assertEqual(s.handler.envelopes, [])
        self.assertNoSecret(p.stderr)

    def test_endpoint_failures_clear_errors(self):
        cases = [("500", {}, 75, "HTTP 500"), ("slow", {"SMTP_TIMEOUT": "1"}, 75, "timed out"),
                 ("badjson", {}, 76, "no JSON object"), ("ok-wrongcert", {}, 74, "TLS")]
        for mode, extra, code, words in cases:
            with self.subTest(mode=mode):
                ep = self.endpoint(mode=mode.split("-")[0],
                                   cert="wrong" if mode == "ok-wrongcert" else "srv")
                s = self.smtp()
                p = send(grant_env(ep, s, **extra))
                self.assertEqual(p.returncode, code, p.stderr)
                line = p.stderr.strip().splitlines()[-1]
                self.assertIn(words, line)
                self.assertIn("token endpoint", line)
                self.assertEqual(s.handler.sasl, [])
                self.assertEqual(s.handler.envelopes, [])
                self.assertNoSecret(p.stderr)
                # the slow endpoint did issue one, but too late: it is not used
                self.assertEqual(ep.refreshes, 1 if mode == "slow" else 0)


class DevInbox(Base):
    """`scalr-email inbox --auth token:T --auth-expired OLD`: apps can test
    their OAuth2 configuration locally."""

    def start(self):
        proc = subprocess.Popen([BIN, "inbox", "--smtp", "127.0.0.1:0", "--http", "127.0.0.1:0",
                                 "--auth", "token:fixed-token-good", "--auth-expired",
                                 "fixed-token-old"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)

        class Stop:
            def stop(self):
                proc.terminate()
                proc.communicate(timeout=30)
        self.cleanup.append(Stop())
        smtp_line, http_line = proc.stdout.readline().strip(), proc.stdout.readline().strip()
        self.assertTrue(smtp_line.startswith("smtp: "), smtp_line)

        class P:
            port = int(smtp_line.rsplit(":", 1)[1])
        return P, http_line[len("http: "):]

    def test_inbox_token_and_expired(self):
        srv, http = self.start()
        for mech in ("xoauth2", "oauthbearer"):
            p = subprocess.run([BIN, "check"], env=env_for(srv, SMTP_OAUTH_TOKEN="fixed-token-good",
                                                           SMTP_AUTH=mech),
                               capture_output=True, text=True, timeout=60)
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertIn("auth: ok (%s)" % mech.upper(), p.stdout)
            self.assertIn("oauth token: fixed", p.stdout)
        p = send(env_for(srv, SMTP_OAUTH_TOKEN="fixed-token-good"))
        self.assertEqual(p.returncode, 0, p.stderr)
        p = send(env_for(srv, SMTP_OAUTH_TOKEN="fixed-token-old"))
        self.assertEqual(p.returncode, 77, p.stderr)
        self.assertIn("expired", p.stderr.strip().splitlines()[-1])
        self.assertNoSecret(p.stderr)
        p = send(env_for(srv, SMTP_USERNAME="token", SMTP_PASSWORD="fixed-token-good"))
        self.assertEqual(p.returncode, 77, p.stderr)  # a token is not a password
        import urllib.request
        with urllib.request.urlopen(http + "/api/v2/messages", timeout=10) as r:
            self.assertEqual(json.load(r)["total"], 1)


def build_driver():
    san = ["-fsanitize=address,undefined"] if "san" in os.path.basename(os.path.dirname(LIB)) else []
    for src, out in ((os.path.join(ROOT, "tests", "pool", "driver.c"), DRIVER),
                     (os.path.join(HERE, "rotate.c"), ROTATE),
                     (os.path.join(HERE, "twokeys.c"), TWOKEYS),
                     (os.path.join(HERE, "structcfg.c"), STRUCTCFG)):
        subprocess.run([os.environ.get("CC", "cc")] + san +
                       ["-std=c11", "-D_DEFAULT_SOURCE", "-D_POSIX_C_SOURCE=200809L", "-O1",
                        "-I" + os.path.join(ROOT, "include"), src,
                        LIB, "-lssl", "-lcrypto", "-lidn2", "-lcurl", "-ljansson", "-lpthread",
                        "-o", out], check=True)


class RotationCallback(Base):
    def test_c_api_callback_gets_rotated_token(self):
        """scalr_email_client_on_refresh_token(): the new refresh token is
        handed over once per rotation, and the next refresh uses it."""
        ep = self.endpoint(rotate=True)
        s = self.smtp(valid=lambda t: t in ep.issued, expired={"at-1"})
        p = subprocess.run([ROTATE, "2"], env=grant_env(ep, s), capture_output=True, text=True,
                           timeout=60)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        lines = p.stdout.splitlines()
        self.assertEqual([l for l in lines if l.startswith("rotated")], ["rotated rt-1", "rotated rt-2"])
        self.assertIn("calls 2", lines)
        self.assertEqual([f["refresh_token"] for f in ep.forms], ["rt-0", "rt-1"])
        self.assertEqual(len(s.handler.envelopes), 2)


class PoolKey(Base):
    def test_other_token_source_other_connection(self):
        """Two clients of one process, same server and username, each with its
        own fixed token: pooled connections are never shared between them (a
        connection signed in with one token stands for that token's account),
        and each client reuses its own: two sign-ins for six messages."""
        s = self.smtp(valid=lambda t: t in ("tok-A", "tok-B"))
        files = []
        for who in "AB":
            path = os.path.join(TMP, "twokeys-%s.env" % who)
            with open(path, "w") as f:
                f.write("SMTP_OAUTH_TOKEN=tok-%s\n" % who)
            files.append(path)
        p = subprocess.run([TWOKEYS] + files + ["3"], env=env_for(s, SMTP_POOL_SIZE="2"),
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        tokens = [raw.split(b"Bearer ")[1][:-2] for _, raw in s.handler.sasl]
        self.assertEqual(sorted(tokens), [b"tok-A", b"tok-B"])
        self.assertEqual(len(s.handler.envelopes), 6)
        # every message went over a connection signed in with its own client's token
        for env in s.handler.envelopes:
            subject = env.original_content.split(b"Subject: ")[1][:1]
            self.assertEqual(env.session_token, b"tok-" + subject)


class StructConfig(Base):
    """OAuth2 through scalr_email_client_new's config struct, not the environment."""

    def run_cfg(self, port, *args):
        env = {k: v for k, v in os.environ.items() if not k.startswith("SMTP_")}
        return subprocess.run([STRUCTCFG, str(port), os.path.join(TMP, "ca.pem")] + list(args),
                              env=env, capture_output=True, text=True, timeout=60)

    def test_refresh_grant_from_struct(self):
        """The grant runs once (the token is cached by the client), the
        rotated refresh token is written to the file, both messages arrive."""
        ep = self.endpoint(rotate=True)
        s = self.smtp(valid=lambda t: t in ep.issued)
        rt = os.path.join(TMP, "struct-rt")
        with open(rt, "w") as f:
            f.write("rt-0\n")
        p = self.run_cfg(s.port, "grant", ep.url, rt)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertEqual(ep.refreshes, 1)
        self.assertEqual([f["refresh_token"] for f in ep.forms], ["rt-0"])
        with open(rt) as f:
            self.assertEqual(f.read().strip(), "rt-1")
        self.assertEqual(len(s.handler.envelopes), 2)
        self.assertEqual({e.session_token for e in s.handler.envelopes}, {b"at-1"})
        self.assertNoSecret(p.stdout + p.stderr)

    def test_fixed_token_forced_xoauth2(self):
        s = self.smtp(valid=lambda t: t == "struct-token")
        p = self.run_cfg(s.port, "token", "struct-token")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertEqual([m for m, _ in s.handler.sasl], ["XOAUTH2"])
        self.assertEqual(len(s.handler.envelopes), 2)

    def test_struct_config_errors(self):
        """Checked as the variables are, named by their struct fields; nothing
        is sent."""
        s = self.smtp()
        p = self.run_cfg(s.port, "plain-token")
        self.assertTrue(p.stdout.startswith("new %d " % ECONFIG), p.stdout)
        self.assertIn("auth=plain takes a password, but an OAuth2 token source (oauth_token) is set",
                      p.stdout)
        self.assertEqual(p.returncode, 1)
        p = self.run_cfg(s.port, "http-url")
        self.assertTrue(p.stdout.startswith("new %d " % ECONFIG), p.stdout)
        self.assertIn("oauth_token_url must be an https:// URL", p.stdout)
        self.assertEqual(p.returncode, 1)
        self.assertEqual(s.handler.envelopes, [])


class Threads(Base):
    def test_eight_threads_one_refresh_per_expiry(self):
        """8 threads x 3 messages through one client: the first token is
        refused as expired on every connection that tried it, yet the
        endpoint sees one refresh for that expiry, every connection then uses
        the refreshed token, and every message arrives exactly once."""
        ep = self.endpoint()
        s = self.smtp(valid=lambda t: t in ep.issued, expired={"at-1"})
        p = subprocess.run([DRIVER, "threads", "8", "3"], env=grant_env(ep, s, SMTP_POOL_SIZE="8"),
                           capture_output=True, text=True, timeout=120)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertEqual(ep.refreshes, 2)  # the first token, and one refresh
        self.assertGreaterEqual(s.handler.expired_answers, 1)
        tokens = [raw.split(b"Bearer ")[1][:-2] for _, raw in s.handler.sasl]
        self.assertEqual(len(tokens), s.handler.expired_answers + len(
            [t for t in tokens if t == b"at-2"]))
        self.assertEqual(set(tokens), {b"at-1", b"at-2"})
        subjects = sorted(e.original_content.split(b"Subject: ")[1].split(b"\r\n")[0]
                          for e in s.handler.envelopes)
        self.assertEqual(subjects, sorted(("t%d-m%d" % (t, m)).encode()
                                          for t in range(8) for m in range(3)))
        self.assertNoSecret(p.stdout + p.stderr)


def main():
    # aiosmtpd warns about AUTH without TLS (loopback here) and login_data.
    logging.getLogger("mail.log").setLevel(logging.ERROR)
    warnings.simplefilter("ignore")
    make_pki()
    build_driver()
    suite = unittest.defaultTestLoader.loadTestsFromModule(sys.modules[__name__])
    if len(sys.argv) > 1:
        suite = unittest.defaultTestLoader.loadTestsFromNames(sys.argv[1:], sys.modules[__name__])
    res = unittest.TextTestRunner(verbosity=2, stream=sys.stdout).run(suite)
    bad = len(res.failures) + len(res.errors)
    skipped = len(res.skipped)
    print("oauth: %d passed, %d failed%s" % (res.testsRun - bad - skipped, bad,
                                             ", %d skipped" % skipped if skipped else ""))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
