"""Misbehaving servers: aiosmtpd SMTP subclasses and ScriptServer scripts."""

import asyncio
import socket

from aiosmtpd.smtp import AuthResult

from helpers import RecordingHandler, RecordingSMTP

# What StartTLSInjection writes right after its "220" to STARTTLS, in the
# same write, before any TLS byte: a client that keeps it would read it as
# the reply to its next command (CVE-2021-22947, CVE-2021-38371).
INJECTED = b"250-mx.test.invalid\r\n250 AUTH PLAIN LOGIN\r\n"


class StartTLSInjection(RecordingSMTP):
    """Plaintext reply lines pipelined right after "220 Ready to start TLS"."""

    async def push(self, status):
        if isinstance(status, str) and status.startswith("220 Ready to start TLS"):
            self._writer.write(status.encode("ascii") + b"\r\n" + INJECTED)
            await self._writer.drain()
            return
        await super().push(status)


class StartTLSRefused(RecordingSMTP):
    """Advertises STARTTLS, then answers it with 454 (a classic stripping MITM)."""

    async def smtp_STARTTLS(self, arg):
        await self.push("454 4.7.0 TLS not available due to temporary reason")


class HangUpInData(RecordingSMTP):
    """Answers DATA with 354, reads one line of the message, hangs up."""

    async def smtp_DATA(self, arg):
        if not self.envelope.rcpt_tos:
            await self.push("503 Error: need RCPT command")
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        await self._reader.readuntil(b"\r\n")
        self.transport.close()


def greeting_then_close(greeting):
    """Send greeting, close our side, record whatever the client still sends."""

    def script(conn):
        conn.send(greeting)
        conn.sock.shutdown(socket.SHUT_WR)
        conn.drain()
    return script


def garbage_greeting(conn):
    """Something that is not an SMTP reply; then silence until the client leaves."""
    conn.send(b"HELLO this is not an SMTP server\r\n")
    conn.drain()


def silent(conn):
    """Accepts the connection and never says anything."""
    conn.drain()


def ehlo_mixed_codes(conn):
    """A valid greeting, then an EHLO reply whose lines carry different codes."""
    conn.send(b"220 mx.test.invalid ESMTP\r\n")
    line = conn.recv_line()
    if line is not None and line.upper().startswith((b"EHLO", b"HELO")):
        conn.send(b"250-mx.test.invalid\r\n354-SIZE 1000\r\n250 8BITMIME\r\n")
    conn.drain()


class SlowReplies(RecordingSMTP):
    """Every reply comes DELAY seconds late (each wait stays under SMTP_TIMEOUT)."""
    DELAY = 0.25

    async def push(self, status):
        if not (isinstance(status, str) and status[3:4] == "-"):   # once per reply
            await asyncio.sleep(self.DELAY)
        await super().push(status)


class BareLFReplies(RecordingSMTP):
    """Ends every reply line with a bare LF (tolerated by lenient clients)."""

    async def push(self, status):
        if isinstance(status, str):
            status = status.encode("utf-8")
        self._writer.write(status.replace(b"\r\n", b"\n") + b"\n")
        await self._writer.drain()


class MultiLineGreeting(RecordingSMTP):
    """A three-line 220 greeting (RFC 5321 4.2.1)."""

    async def push(self, status):
        if not getattr(self, "_greeted", False):
            self._greeted = True
            self._writer.write(b"220-mx.test.invalid ESMTP first line\r\n"
                               b"220-second line of the banner\r\n")
        await super().push(status)


class CloseAfterData(RecordingSMTP):
    """Accepts the message, then hangs up without waiting for QUIT."""

    async def smtp_DATA(self, arg):
        await super().smtp_DATA(arg)
        self.transport.close()


class CramMD5Handler(RecordingHandler):
    """Offers only AUTH CRAM-MD5 (with PLAIN and LOGIN excluded on the server)."""

    async def auth_CRAM__MD5(self, server, args):
        return AuthResult(success=False, handled=False)


def huge_ehlo_line(conn):
    """An EHLO reply line far over any sane limit (RFC 5321 4.5.3.1.5: 512)."""
    conn.send(b"220 mx.test.invalid ESMTP\r\n")
    if conn.recv_line() is not None:
        conn.send(b"250-" + b"X" * 100000 + b"\r\n250 OK\r\n")
    conn.drain()


def nul_in_reply(conn):
    conn.send(b"220 mx.test.invalid\x00 ESMTP\r\n")
    conn.drain()


def starttls_then_silent(conn):
    """Offers STARTTLS, says 220 to it, then never performs the handshake."""
    conn.send(b"220 mx.test.invalid ESMTP\r\n")
    while True:
        line = conn.recv_line()
        if line is None:
            return
        cmd = line.strip().upper()
        if cmd.startswith((b"EHLO", b"HELO")):
            conn.send(b"250-mx.test.invalid\r\n250 STARTTLS\r\n")
        elif cmd == b"STARTTLS":
            conn.send(b"220 2.0.0 Ready to start TLS\r\n")
            conn.drain()
            return
        else:
            conn.send(b"502 5.5.1 not here\r\n")


def starttls_then_plaintext(conn):
    """Says 220 to STARTTLS, then answers the ClientHello with plaintext."""
    conn.send(b"220 mx.test.invalid ESMTP\r\n")
    while True:
        line = conn.recv_line()
        if line is None:
            return
        cmd = line.strip().upper()
        if cmd.startswith((b"EHLO", b"HELO")):
            conn.send(b"250-mx.test.invalid\r\n250 STARTTLS\r\n")
        elif cmd == b"STARTTLS":
            conn.send(b"220 2.0.0 Ready to start TLS\r\n")
            conn.sock.recv(65536)                     # the ClientHello
            conn.send(b"500 5.5.1 what is this?\r\n")
            conn.drain()
            return
        else:
            conn.send(b"502 5.5.1 not here\r\n")
