"""Test SMTP servers on 127.0.0.1 for the scalr_email tests.

SmtpServer    aiosmtpd in a thread with scriptable replies (per-command reply,
              delayed DATA, AUTH, STARTTLS); records every message it accepts.
ScriptServer  a raw socket server that sends fixed lines (protocol errors).
SilentServer  listens but never answers (timeouts).
closed_port() a port nothing listens on.

Every server is a context manager and also has stop(); tests register
stop() with addCleanup so nothing outlives its test.
"""
import asyncio
import email
import email.policy
import logging
import os
import socket
import ssl
import subprocess
import threading
import time

from aiosmtpd.smtp import SMTP, AuthResult

logging.getLogger("mail.log").setLevel(logging.CRITICAL)

SMTP_VARS = ("SMTP_HOST", "SMTP_PORT", "SMTP_USERNAME", "SMTP_PASSWORD", "SMTP_FROM",
             "SMTP_USE_TLS", "SMTP_USE_SSL", "SMTP_TIMEOUT", "SMTP_HELO_NAME", "SSL_CERT_FILE",
             "SSL_CERT_DIR", "SMTP_SEND_TIMEOUT", "SMTP_AUTH", "SMTP_OAUTH_TOKEN",
             "SMTP_OAUTH_TOKEN_CMD", "SMTP_OAUTH_TOKEN_URL", "SMTP_OAUTH_CLIENT_ID",
             "SMTP_OAUTH_CLIENT_SECRET", "SMTP_OAUTH_REFRESH_TOKEN",
             "SMTP_OAUTH_REFRESH_TOKEN_FILE", "SMTP_OAUTH_SCOPE")


def listening_socket():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    s.listen(64)
    return s


def closed_port():
    """A loopback port with no listener (bound then closed at once)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Received:
    """One message the server accepted."""

    def __init__(self, envelope):
        self.mail_from = envelope.mail_from
        self.rcpt_tos = list(envelope.rcpt_tos)
        self.data = envelope.original_content or envelope.content
        self.message = email.message_from_bytes(self.data, policy=email.policy.default)


class _Handler:
    def __init__(self, server):
        self.server = server

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        reply = self.server.replies.get("MAIL")
        if reply:
            return reply
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        reply = self.server.replies.get("RCPT:" + address) or self.server.replies.get("RCPT")
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        srv = self.server
        if srv.data_delay:
            srv.data_started.set()
            await asyncio.sleep(srv.data_delay)
        reply = srv.replies.get("DATA")
        if reply:
            return reply
        with srv.lock:
            srv.messages.append(Received(envelope))
        return "250 2.0.0 queued"


class SmtpServer:
    """aiosmtpd on 127.0.0.1:<free port>, run by an event loop in a thread.

    replies: {"MAIL": "...", "RCPT": "...", "RCPT:<addr>": "...", "DATA": "..."}
    overrides the reply to that command.  data_delay: seconds to wait before
    answering the end of DATA.  auth: None, or a (user, password) pair that
    is accepted (anything else gets 535).  tls_context: offer STARTTLS;
    implicit_tls: an ssl context to speak TLS from the first byte (465).
    size_limit: the SIZE the server advertises and enforces.
    """

    def __init__(self, replies=None, data_delay=0.0, auth=None, tls_context=None,
                 require_starttls=False, smtputf8=True, implicit_tls=None, size_limit=None):
        self.replies = dict(replies or {})
        self.data_delay = data_delay
        self.data_started = threading.Event()
        self.auth = auth
        self.auth_seen = []
        self.messages = []
        self.connections = 0
        self.lock = threading.Lock()
        self._sock = listening_socket()
        self.port = self._sock.getsockname()[1]
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        kwargs = dict(hostname="test.local", enable_SMTPUTF8=smtputf8, decode_data=False,
                      auth_require_tls=False, tls_context=tls_context,
                      require_starttls=require_starttls)
        if auth is not None:
            kwargs["authenticator"] = self._authenticate
        if size_limit is not None:
            kwargs["data_size_limit"] = size_limit
        self._implicit_tls = implicit_tls
        handler = _Handler(self)
        outer = self

        class CountingSMTP(SMTP):
            def connection_made(self, transport):
                with outer.lock:
                    outer.connections += 1
                super().connection_made(transport)

        def factory():
            return CountingSMTP(handler, loop=self._loop, **kwargs)

        self._factory = factory
        self._thread = threading.Thread(target=self._run, name=f"smtpd-{self.port}", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("test SMTP server did not start")

    def _authenticate(self, server, session, envelope, mechanism, auth_data):
        user = auth_data.login.decode() if isinstance(auth_data.login, bytes) else auth_data.login
        pw = auth_data.password
        pw = pw.decode() if isinstance(pw, bytes) else pw
        self.auth_seen.append((mechanism, user, pw))
        return AuthResult(success=(user, pw) == tuple(self.auth), handled=False)

    def _run(self):
        asyncio.set_event_loop(self._loop)

        async def start():
            self._server = await self._loop.create_server(self._factory, sock=self._sock,
                                                          ssl=self._implicit_tls)
            self._ready.set()

        # Start inside run_forever, so that a stop() right after start-up
        # always finds the loop running (a stop landing in a separate
        # run_until_complete would be forgotten).
        self._loop.call_soon(lambda: self._loop.create_task(start()))
        self._loop.run_forever()
        self._server.close()
        self._loop.run_until_complete(self._server.wait_closed())
        # Let connection handlers see their transports close.
        pending = [t for t in asyncio.all_tasks(self._loop) if not t.done()]
        for t in pending:
            t.cancel()
        if pending:
            self._loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        self._loop.close()

    def stop(self):
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)

    def wait_messages(self, n, timeout=10.0):
        """The accepted messages, once there are at least n (or on timeout)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.messages) >= n:
                    return list(self.messages)
            time.sleep(0.01)
        with self.lock:
            return list(self.messages)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


class ScriptServer:
    """Accepts connections and sends `lines` (bytes, CRLF added) to each,
    reading whatever the client sends in between; then stays silent for
    `hold` seconds and closes."""

    def __init__(self, lines, read_between=True, hold=0.0):
        self.lines = lines
        self.read_between = read_between
        self.hold = hold
        self.received = []
        self._sock = listening_socket()
        self._sock.settimeout(0.2)
        self.port = self._sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(2)
                try:
                    for i, line in enumerate(self.lines):
                        conn.sendall(line + b"\r\n")
                        if self.read_between and i + 1 < len(self.lines):
                            self.received.append(conn.recv(4096))
                    # Stay silent for `hold` seconds, reading what comes.
                    end = time.monotonic() + self.hold
                    while time.monotonic() < end and not self._stop.is_set():
                        conn.settimeout(max(0.01, min(0.1, end - time.monotonic())))
                        try:
                            if not conn.recv(4096):
                                break
                        except socket.timeout:
                            pass
                except OSError:
                    pass

    def stop(self):
        self._stop.set()
        self._thread.join(5)
        self._sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


class SilentServer:
    """Listens (the kernel completes the handshake) but never speaks."""

    def __init__(self):
        self._sock = listening_socket()
        self.port = self._sock.getsockname()[1]

    def stop(self):
        self._sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def self_signed_cert(directory, name=None):
    """(cert, key) for 127.0.0.1 and localhost (or only DNS `name`), made
    with the openssl command; None when it is not installed."""
    cert, key = os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")
    try:
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
             "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out", cert, "-days",
             "2", "-subj", "/CN=" + (name or "127.0.0.1"), "-addext",
             "subjectAltName=" + (f"DNS:{name}" if name else "IP:127.0.0.1,DNS:localhost")],
            check=True, capture_output=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return cert, key


def server_tls_context(cert, key):
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    return ctx
