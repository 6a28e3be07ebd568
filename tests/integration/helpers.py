"""Shared fixtures for the scalr-email end-to-end suite.

Everything here runs with Debian's /usr/bin/python3 (python3-aiosmtpd 1.4.3)
and the standard library:

  * a throw-away CA made with the `openssl` command (CA, a server certificate
    for localhost/127.0.0.1, one for the wrong name, one self-signed),
  * SMTP servers on 127.0.0.1 and a free port: aiosmtpd (plain, STARTTLS,
    implicit TLS, AUTH, custom replies) and, for faults aiosmtpd cannot
    produce, subclasses of its SMTP class or a tiny scripted socket server,
  * run_cli(args, env, input) -> (rc, stdout, stderr).

Every server records what the client sent (the raw bytes of each
connection, after TLS decryption) so that a test can prove that nothing was
delivered, or that no AUTH/MAIL ever left the client.

Notes on aiosmtpd 1.4.3, as found by reading its source:
  * EHLO advertises SIZE, 8BITMIME, SMTPUTF8 (the Controller enables it),
    STARTTLS (with tls_context, before TLS) and AUTH (after TLS, or always
    with auth_require_tls=False).  It does NOT advertise PIPELINING,
    ENHANCEDSTATUSCODES or CHUNKING; it has no BDAT.  It reads commands line
    by line, so pipelined commands work anyway: RecordingSMTP can add
    PIPELINING to the EHLO reply (extra_caps) to drive a client's RFC 2920
    path.
  * With implicit TLS (Controller ssl_context=...) the SMTP object does not
    know the channel is encrypted, so AUTH needs auth_require_tls=False.
  * An authenticator must return AuthResult(success=False, handled=False) for
    the server to send "535 5.7.8"; handled=True sends nothing.
  * A handle_EHLO hook must set session.host_name itself.
  * Controller._trigger_server opens one connection (no commands) at start;
    Server.start() waits for it to close and then clears the records.
"""

import base64
import logging
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import unittest
import warnings
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult

REPO = Path(__file__).resolve().parents[2]
CLI_TIMEOUT = 30.0          # seconds, for every scalr-email process
IDLE_TIMEOUT = 10.0         # seconds to wait for the server to see the hang-up

logging.getLogger("mail.log").setLevel(logging.CRITICAL)
logging.getLogger("asyncio").setLevel(logging.CRITICAL)
warnings.simplefilter("ignore")


def cli_path():
    p = Path(os.environ.get("SCALR_EMAIL_BIN", "build/scalr-email"))
    if not p.is_absolute():
        p = REPO / p
    return p


# --------------------------------------------------------------------------
# The throw-away CA
# --------------------------------------------------------------------------

_REQ_CNF = """\
[req]
distinguished_name = dn
prompt = no
[dn]
CN = {cn}
[v3_ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[leaf]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = {san}
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[selfsigned]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = {san}
"""


def _openssl(*args, cwd):
    r = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError("openssl %s failed: %s" % (" ".join(args), r.stderr))


class TestCA:
    """ca.pem, and cert/key pairs: good (DNS:localhost, IP:127.0.0.1),
    wrong (DNS:mail.wrong.test only), selfsigned (good names, not from the CA),
    expired (good names, from the CA, expired in 2020)."""

    def __init__(self):
        self.dir = Path(tempfile.mkdtemp(prefix="scalr-integ-ca-"))
        d = str(self.dir)
        ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]

        def cnf(name, cn, san):
            p = self.dir / (name + ".cnf")
            p.write_text(_REQ_CNF.format(cn=cn, san=san))
            return str(p)

        good_san = "DNS:localhost, IP:127.0.0.1"
        _openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "3",
                 "-config", cnf("ca", "scalr-email integration test CA", good_san),
                 "-extensions", "v3_ca", cwd=d)
        for name, cn, san, serial in (("good", "localhost", good_san, "1001"),
                                      ("wrong", "mail.wrong.test", "DNS:mail.wrong.test",
                                       "1002")):
            c = cnf(name, cn, san)
            _openssl("req", "-new", *ec, "-keyout", name + ".key", "-out", name + ".csr",
                     "-config", c, cwd=d)
            _openssl("x509", "-req", "-in", name + ".csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                     "-set_serial", serial, "-days", "2", "-out", name + ".pem",
                     "-extfile", c, "-extensions", "leaf", cwd=d)
        # expired: the good names, from the CA, valid only in January 2020
        (self.dir / "index.txt").write_text("")
        (self.dir / "serial").write_text("2001\n")
        (self.dir / "sign.cnf").write_text(
            "[ca]\ndefault_ca = d\n[d]\ndatabase = index.txt\nnew_certs_dir = .\n"
            "serial = serial\ndefault_md = sha256\npolicy = p\nunique_subject = no\n"
            "[p]\ncommonName = supplied\n")
        c = cnf("expired", "localhost", good_san)
        _openssl("req", "-new", *ec, "-keyout", "expired.key", "-out", "expired.csr",
                 "-config", c, cwd=d)
        _openssl("ca", "-config", "sign.cnf", "-batch", "-notext", "-cert", "ca.pem",
                 "-keyfile", "ca.key", "-in", "expired.csr", "-out", "expired.pem",
                 "-startdate", "20200101000000Z", "-enddate", "20200201000000Z",
                 "-extfile", c, "-extensions", "leaf", cwd=d)
        _openssl("req", "-x509", *ec, "-keyout", "selfsigned.key", "-out", "selfsigned.pem",
                 "-days", "2", "-config", cnf("selfsigned", "localhost", good_san),
                 "-extensions", "selfsigned", cwd=d)
        self.ca_pem = str(self.dir / "ca.pem")

    def server_context(self, which="good"):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(self.dir / (which + ".pem")), str(self.dir / (which + ".key")))
        return ctx

    def client_context(self):
        """For smtplib self-checks: verifies against this CA only."""
        return ssl.create_default_context(cafile=self.ca_pem)

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)


_ca = None
_ca_lock = threading.Lock()


def ca():
    """The suite's CA, made on first use and removed at interpreter exit."""
    global _ca
    with _ca_lock:
        if _ca is None:
            import atexit
            _ca = TestCA()
            atexit.register(_ca.cleanup)
        return _ca


# --------------------------------------------------------------------------
# Recording: what a server saw
# --------------------------------------------------------------------------

class Received:
    """One accepted message."""

    def __init__(self, session, envelope, tls):
        self.mail_from = envelope.mail_from
        self.mail_options = list(envelope.mail_options)
        self.rcpt_tos = list(envelope.rcpt_tos)
        self.data = bytes(envelope.original_content)   # de-stuffed, CRLF as sent
        self.helo = session.host_name
        self.tls = tls                                   # "TLSv1.3" or None
        self.login = session.login_data                  # bytes or None

    def __repr__(self):
        return "<Received from=%r rcpt=%r %d bytes>" % (self.mail_from, self.rcpt_tos,
                                                         len(self.data))


class Recorder:
    """Thread-safe log shared by every connection of one server."""

    def __init__(self):
        self.cond = threading.Condition()
        self.reset()

    def reset(self):
        with self.cond:
            self.messages = []        # Received
            self.rejected_data = []   # bytes of messages refused at end of DATA
            self.transcripts = []     # bytearray per connection: what the client sent
            self.auth = []            # (mechanism, login, ok)
            self.sni = []             # server name the client sent per TLS handshake
            self.connections = 0
            self.open = 0

    # called from the server threads
    def opened(self):
        with self.cond:
            self.connections += 1
            self.open += 1
            t = bytearray()
            self.transcripts.append(t)
            return t

    def closed(self):
        with self.cond:
            self.open -= 1
            self.cond.notify_all()

    def add(self, what, item):
        with self.cond:
            getattr(self, what).append(item)
            self.cond.notify_all()

    # called from tests
    def wait_idle(self, timeout=IDLE_TIMEOUT):
        """Wait until every connection has been closed; True if so."""
        with self.cond:
            return self.cond.wait_for(lambda: self.open == 0, timeout)

    def wait_messages(self, n, timeout=IDLE_TIMEOUT):
        with self.cond:
            return self.cond.wait_for(lambda: len(self.messages) >= n, timeout)

    def client_bytes(self):
        with self.cond:
            return b"".join(bytes(t) for t in self.transcripts)

    def client_commands(self):
        """Upper-cased command words of the lines the client sent, per
        connection, skipping message content between DATA's 354 and the
        final "." (approximation: content starts after a DATA command line)."""
        out = []
        with self.cond:
            transcripts = [bytes(t) for t in self.transcripts]
        for t in transcripts:
            in_data = False
            for line in t.split(b"\r\n"):
                if in_data:
                    in_data = line != b"."
                    continue
                word = line.split(b" ", 1)[0].strip().upper()
                if word:
                    out.append(word.decode("ascii", "replace"))
                in_data = word == b"DATA"
        return out


# --------------------------------------------------------------------------
# aiosmtpd servers
# --------------------------------------------------------------------------

class RecordingHandler:
    """aiosmtpd handler: records accepted messages, returns custom replies.

    mail_reply:     reply to every MAIL instead of 250
    rcpt_replies:   {address: reply} for RCPT
    data_reply:     reply at the end of DATA instead of 250 (message not kept)
    extra_caps:     EHLO keywords added (e.g. ["PIPELINING"])
    """

    def __init__(self, recorder, mail_reply=None, rcpt_replies=None, data_reply=None,
                 extra_caps=()):
        self.rec = recorder
        self.mail_reply = mail_reply
        self.rcpt_replies = dict(rcpt_replies or {})
        self.data_reply = data_reply
        self.extra_caps = list(extra_caps)

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        last = responses[-1][4:]
        return responses[:-1] + ["250-" + c for c in self.extra_caps] + ["250 " + last]

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        if self.mail_reply:
            return self.mail_reply
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        reply = self.rcpt_replies.get(address)
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.data_reply:
            self.rec.add("rejected_data", bytes(envelope.original_content))
            return self.data_reply
        ssl_obj = server.transport.get_extra_info("ssl_object") if server.transport else None
        tls = ssl_obj.version() if ssl_obj is not None else None
        self.rec.add("messages", Received(session, envelope, tls))
        return "250 2.0.0 OK: queued"


class RecordingSMTP(SMTP):
    """aiosmtpd's SMTP that logs every byte the client sends (after TLS)."""

    def __init__(self, handler, recorder, **kw):
        super().__init__(handler, **kw)
        self._rec = recorder
        self._transcript = None
        self._closed_once = False

    def connection_made(self, transport):
        first = self._original_transport is None and self._transcript is None
        if first:
            self._transcript = self._rec.opened()
        super().connection_made(transport)

    def data_received(self, data):
        if self._transcript is not None:
            self._transcript += data
        super().data_received(data)

    def connection_lost(self, error):
        try:
            super().connection_lost(error)
        finally:
            if self._transcript is not None and not self._closed_once:
                self._closed_once = True
                self._rec.closed()


class Authenticator:
    """Accepts exactly one user/password; records every attempt."""

    def __init__(self, recorder, user, password):
        self.rec, self.user, self.password = recorder, user, password

    def __call__(self, server, session, envelope, mechanism, auth_data):
        login = auth_data.login.decode("utf-8", "replace")
        ok = (auth_data.login == self.user.encode() and
              auth_data.password == self.password.encode())
        self.rec.add("auth", (mechanism, login, ok))
        if ok:
            return AuthResult(success=True, auth_data=auth_data)
        return AuthResult(success=False, handled=False)


class _Controller(Controller):
    """aiosmtpd Controller on 127.0.0.1 and a free port chosen by the kernel."""

    def __init__(self, handler, make_smtp, **kw):
        super().__init__(handler, hostname="127.0.0.1", port=0, **kw)
        self._make_smtp = make_smtp

    def factory(self):
        return self._make_smtp()

    def _trigger_server(self):
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


class Server:
    """An aiosmtpd server.  mode: "plain", "starttls" (required) or "implicit".

    auth=(user, password) enables AUTH (and requires it for MAIL);
    mechanisms=["LOGIN"] restricts the AUTH mechanisms offered;
    cert: "good", "wrong", "selfsigned" or "expired"; tls_max: e.g. "TLSv1_2";
    smtp_class: a RecordingSMTP subclass for faults;
    handler options: see RecordingHandler (handler_class: a subclass of it);
    other keywords go to aiosmtpd's SMTP.
    """

    def __init__(self, mode="plain", cert="good", auth=None, mechanisms=None,
                 smtp_class=RecordingSMTP, mail_reply=None, rcpt_replies=None,
                 data_reply=None, extra_caps=(), smtp_kwargs=None,
                 handler_class=RecordingHandler, tls_max=None, **kw):
        self.mode = mode
        self.rec = Recorder()
        self.handler = handler_class(self.rec, mail_reply, rcpt_replies, data_reply,
                                     extra_caps)
        smtp_kw = dict(hostname="mx.test.invalid", enable_SMTPUTF8=True, timeout=30)
        smtp_kw.update(smtp_kwargs or {})
        smtp_kw.update(kw)
        ctl_kw = {}
        if mode in ("starttls", "implicit"):
            ctx = ca().server_context(cert)
            if tls_max:
                ctx.maximum_version = getattr(ssl.TLSVersion, tls_max)

            def sni(sslobj, name, _ctx):
                self.rec.add("sni", name)
            ctx.sni_callback = sni
        if mode == "starttls":
            smtp_kw.update(tls_context=ctx, require_starttls=True)
        elif mode == "implicit":
            ctl_kw["ssl_context"] = ctx
            smtp_kw["auth_require_tls"] = False
        elif mode == "plain":
            if auth:                      # AUTH offered in plaintext (loopback only)
                smtp_kw.setdefault("auth_require_tls", False)
        else:
            raise ValueError(mode)
        if auth:
            smtp_kw["authenticator"] = Authenticator(self.rec, *auth)
            smtp_kw["auth_required"] = True
            if mechanisms:
                all_mechs = {"PLAIN", "LOGIN"}
                smtp_kw["auth_exclude_mechanism"] = sorted(all_mechs - set(mechanisms))
        self.smtp_kw = smtp_kw

        def make_smtp():
            with warnings.catch_warnings():     # "AUTH without TLS" is intended
                warnings.simplefilter("ignore")
                return smtp_class(self.handler, self.rec, **self.smtp_kw)

        self.controller = _Controller(self.handler, make_smtp, **ctl_kw)
        self.port = None

    def start(self):
        self.controller.start()
        self.port = self.controller.port
        if not self.rec.wait_idle():
            self.stop()
            raise RuntimeError("aiosmtpd start-up connection did not close")
        self.rec.reset()
        return self

    def stop(self):
        if self.controller._thread is not None:
            self.controller.stop()

    # shortcuts
    @property
    def messages(self):
        return self.rec.messages


class ScriptServer:
    """A tiny TCP server on 127.0.0.1 for faults aiosmtpd cannot produce.

    script(conn, transcript) runs in a thread per connection; conn is a
    ScriptConn.  Everything the client sends is appended to the transcript
    by ScriptConn.recv()/drain().
    """

    def __init__(self, script):
        self.script = script
        self.rec = Recorder()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.conns = []
        self.threads = []
        self.stopping = False
        self.errors = []

    def start(self):
        self.sock.listen(16)
        t = threading.Thread(target=self._accept, daemon=True)
        t.start()
        self.threads.append(t)
        return self

    def _accept(self):
        while True:
            try:
                s, _ = self.sock.accept()
            except OSError:
                return
            if self.stopping:
                s.close()
                return
            transcript = self.rec.opened()
            conn = ScriptConn(s, transcript)
            self.conns.append(conn)
            t = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            t.start()
            self.threads.append(t)

    def _serve(self, conn):
        try:
            self.script(conn)
        except OSError:
            pass
        except Exception as e:            # a bug in the script: make it visible
            self.errors.append(e)
        finally:
            conn.close()
            self.rec.closed()

    def stop(self):
        self.stopping = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        for c in list(self.conns):
            c.abort()
        for t in self.threads:
            t.join(5)


class ScriptConn:
    def __init__(self, sock, transcript):
        self.sock = sock
        self.transcript = transcript
        self.buf = b""

    def send(self, data):
        self.sock.sendall(data)

    def recv_line(self):
        """One line from the client, or None at EOF."""
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                return None
            self.transcript += chunk
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line + b"\n"

    def drain(self):
        """Read (and record) until the client closes."""
        while True:
            chunk = self.sock.recv(65536)
            if not chunk:
                return
            self.transcript += chunk

    def abort(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def closed_port():
    """A socket bound to 127.0.0.1 but not listening: connecting is refused.
    The caller closes it (keeps the port from being reused meanwhile)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    return s, s.getsockname()[1]


# --------------------------------------------------------------------------
# Running the command-line tool
# --------------------------------------------------------------------------

_DROP = ("SMTP_", "SSL_CERT_")


def base_env(**overrides):
    """The caller's environment without any SMTP_* / SSL_CERT_* variable, the
    test CA as the only extra trust anchor, short timeouts; then overrides
    (a value of None removes the variable)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_DROP)}
    env["SSL_CERT_FILE"] = ca().ca_pem
    env["SMTP_TIMEOUT"] = "5"
    # `check` also asks DNS about the From domain: a closed loopback port
    # answers at once (only 127.0.0.1 is reachable here).
    env["SCALR_EMAIL_DNS"] = "127.0.0.1:1"
    env.setdefault("LC_ALL", "C.UTF-8")
    for k, v in overrides.items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = str(v)
    return env


def run_cli(args, env, input=None, timeout=CLI_TIMEOUT, raw=False):
    """Run scalr-email; returns (rc, stdout, stderr), str unless raw=True.
    input may be str or bytes; without it stdin is /dev/null."""
    if isinstance(input, str):
        input = input.encode("utf-8")
    argv = [str(cli_path())] + [a if isinstance(a, (bytes, str)) else str(a) for a in args]
    r = subprocess.run(argv, env=env, input=input,
                       stdin=None if input is not None else subprocess.DEVNULL,
                       capture_output=True, timeout=timeout)
    if raw:
        return r.returncode, r.stdout, r.stderr
    return (r.returncode, r.stdout.decode("utf-8", "replace"),
            r.stderr.decode("utf-8", "replace"))


def spawn_cli(args, env, input=None):
    """Start scalr-email without waiting; use finish_cli() to collect it."""
    argv = [str(cli_path())] + [str(a) for a in args]
    p = subprocess.Popen(argv, env=env, stdin=subprocess.PIPE if input is not None
                         else subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    return p, input


def finish_cli(handle, timeout=CLI_TIMEOUT):
    p, input = handle
    if isinstance(input, str):
        input = input.encode("utf-8")
    try:
        out, err = p.communicate(input, timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        raise
    return p.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")


def b64(s):
    if isinstance(s, str):
        s = s.encode("utf-8")
    return base64.b64encode(s).decode("ascii")


# --------------------------------------------------------------------------
# Base class for the tests
# --------------------------------------------------------------------------

SENDER = "sender@example.org"
RCPT = "rcpt@example.net"


class CliTest(unittest.TestCase):
    maxDiff = None

    def server(self, mode="plain", **kw):
        s = Server(mode, **kw)
        s.start()
        self.addCleanup(s.stop)
        return s

    def script_server(self, script):
        s = ScriptServer(script).start()
        self.addCleanup(s.stop)
        self.addCleanup(self._check_script_errors, s)
        return s

    def _check_script_errors(self, s):
        if s.errors:
            raise s.errors[0]

    def env_for(self, srv, host="127.0.0.1", tls=None, **overrides):
        """Environment for sending to srv: plain servers get SMTP_USE_TLS=false,
        STARTTLS ones true, implicit ones SMTP_USE_SSL=true (SMTP_USE_TLS unset)."""
        env = dict(SMTP_HOST=host, SMTP_PORT=srv.port, SMTP_FROM=SENDER)
        mode = getattr(srv, "mode", "plain") if tls is None else tls
        if mode == "plain":
            env["SMTP_USE_TLS"] = "false"
        elif mode == "starttls":
            env["SMTP_USE_TLS"] = "true"
        elif mode == "implicit":
            env["SMTP_USE_SSL"] = "true"
        env.update(overrides)
        return base_env(**env)

    @staticmethod
    def send_args(*extra, to=RCPT, subject="Hello", body="Hello body"):
        args = ["send"]
        if to is not None:
            args += ["--to", to]
        if subject is not None:
            args += ["--subject", subject]
        if body is not None:
            args += ["--body", body]
        return args + list(extra)

    # assertions ----------------------------------------------------------
    def assertSent(self, res):
        rc, out, err = res
        self.assertEqual(rc, 0, "exit code; stderr: %r" % err)
        lines = out.splitlines()
        self.assertEqual(len(lines), 1, "stdout must be one line: %r" % out)
        self.assertTrue(lines[0].startswith("sent "), "stdout: %r" % out)
        return lines[0]

    def assertFailed(self, res, code, *needles):
        """Exit code, nothing on stdout, exactly one stderr line starting with
        "scalr-email: " that contains every needle (case-insensitive)."""
        rc, out, err = res
        self.assertEqual(rc, code, "exit code; stdout %r stderr %r" % (out, err))
        self.assertEqual(out, "", "stdout must be empty on failure")
        lines = err.splitlines()
        self.assertEqual(len(lines), 1, "exactly one stderr line expected: %r" % err)
        self.assertTrue(err.endswith("\n"), "stderr line must end with a newline: %r" % err)
        line = lines[0]
        self.assertTrue(line.startswith("scalr-email: "), "stderr: %r" % line)
        for n in needles:
            self.assertIn(n.lower(), line.lower(), "stderr line lacks %r: %r" % (n, line))
        return line

    def assertRedactedTrace(self, trace, user, password):
        """-v output: every AUTH line with an argument and every client line
        answering a 334 challenge shows "<redacted>" and no credential."""
        lines = trace.splitlines()
        secret_lines = []
        for i, ln in enumerate(lines):
            if ln.startswith("C: AUTH") and len(ln.split()) > 3:
                secret_lines.append(ln)
            elif ln.startswith("C: ") and i > 0 and lines[i - 1].startswith("S: 334"):
                secret_lines.append(ln)
        self.assertTrue(any(ln.startswith("C: AUTH") for ln in lines), "no AUTH traced")
        self.assertTrue(secret_lines, "no credential line traced")
        for ln in secret_lines:
            self.assertIn("<redacted>", ln)
        for s in (password, b64(password), b64("\0%s\0%s" % (user, password)),
                  b64(user)):
            self.assertNotIn(s, trace)

    def assertIdle(self, srv):
        self.assertTrue(srv.rec.wait_idle(), "the client left a connection open")

    def assertNothingDelivered(self, srv):
        self.assertIdle(srv)
        self.assertEqual(srv.rec.messages, [], "a message was delivered")

    def assertNoConnection(self, srv):
        self.assertIdle(srv)
        self.assertEqual(srv.rec.connections, 0,
                         "the client connected although it should have stopped before: %r"
                         % srv.rec.client_bytes())

    def assertNeverSent(self, srv, *commands):
        self.assertIdle(srv)
        sent = srv.rec.client_commands()
        for c in commands:
            self.assertNotIn(c, sent, "client sent %s; it sent: %r" % (c, sent))
