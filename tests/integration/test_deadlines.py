"""Deadlines per wait: a server that trickles its bytes cannot hold a send.

SMTP_TIMEOUT bounds each wait from its start (connect, TLS handshake, each
whole reply), however slowly the bytes come; SMTP_SEND_TIMEOUT bounds a
whole send.  The bounds below are generous deadlines (timeout + 5 s), far
below what a per-read timeout allowed (40 s and more)."""

import time

import helpers as H

GREETING = b"220 mx.test.invalid ESMTP a greeting that takes its time to arrive, byte by byte\r\n"
EHLO_LINES = [b"250-mx.test.invalid"] + [b"250-X-FILLER-%02d" % i for i in range(38)] + \
    [b"250 8BITMIME"]


def drip(conn, data, pause):
    """Send data one byte at a time, pause seconds apart (until the client leaves)."""
    for i in range(len(data)):
        conn.send(data[i:i + 1])
        time.sleep(pause)


def drip_greeting(conn):
    drip(conn, GREETING, 0.4)
    conn.drain()


def drip_ehlo(conn):
    conn.send(b"220 mx.test.invalid ESMTP\r\n")
    if conn.recv_line() is None:
        return
    for line in EHLO_LINES:            # one line a second, each on time
        conn.send(line + b"\r\n")
        time.sleep(1.0)
    conn.drain()


def drip_tls_handshake(conn):
    """Looks like the start of a TLS handshake record, then trickles."""
    conn.sock.recv(65536)                       # the ClientHello
    drip(conn, b"\x16\x03\x03\x40\x00" + b"\x02" * 200, 0.3)
    conn.drain()


def session(conn, final):
    """A plain SMTP server without PIPELINING; final(conn) answers the end of data."""
    conn.send(b"220 mx.test.invalid ESMTP\r\n")
    while True:
        line = conn.recv_line()
        if line is None:
            return
        cmd = line.strip().upper()
        if cmd.startswith(b"EHLO"):
            conn.send(b"250-mx.test.invalid\r\n250 8BITMIME\r\n")
        elif cmd.startswith((b"MAIL", b"RCPT")):
            conn.send(b"250 2.1.0 Ok\r\n")
        elif cmd == b"DATA":
            conn.send(b"354 go ahead\r\n")
            while True:
                data = conn.recv_line()
                if data is None:
                    return
                if data == b".\r\n":
                    break
            final(conn)
        elif cmd == b"QUIT":
            conn.send(b"221 bye\r\n")
            return
        else:
            conn.send(b"502 5.5.2 no\r\n")


def drip_final_reply(conn):
    session(conn, lambda c: drip(c, b"250 2.0.0 Ok: queued as 4XyZ, thank you for waiting\r\n",
                                 0.4))


def slow_replies(conn):
    """Every reply on time for SMTP_TIMEOUT (0.7 s late), but they add up."""
    def late(data):
        time.sleep(0.7)
        conn.send(data)
    conn.send(b"220 mx.test.invalid ESMTP\r\n")
    while True:
        line = conn.recv_line()
        if line is None:
            return
        cmd = line.strip().upper()
        if cmd.startswith(b"EHLO"):
            late(b"250-mx.test.invalid\r\n250 8BITMIME\r\n")
        elif cmd.startswith((b"MAIL", b"RCPT")):
            late(b"250 2.1.0 Ok\r\n")
        elif cmd == b"DATA":
            late(b"354 go ahead\r\n")
        elif cmd == b".":
            late(b"250 2.0.0 Ok\r\n")
        elif cmd == b"QUIT":
            conn.send(b"221 bye\r\n")
            return


class Deadlines(H.CliTest):
    TIMEOUT = 2

    def timed(self, srv, tls="plain", **env):
        env.setdefault("SMTP_TIMEOUT", str(self.TIMEOUT))
        t0 = time.monotonic()
        res = H.run_cli(self.send_args(), self.env_for(srv, tls=tls, **env))
        return res, time.monotonic() - t0

    def test_dripped_greeting_times_out(self):
        srv = self.script_server(drip_greeting)
        res, took = self.timed(srv)
        line = self.assertFailed(res, 75, "part of a greeting", "\"220 m")
        # the server stopped mid-line: not the implicit-TLS hint
        self.assertNotIn("SMTP_USE_SSL", line)
        self.assertLess(took, self.TIMEOUT + 5, "the greeting's wait must end within SMTP_TIMEOUT")
        self.assertNeverSent(srv, "MAIL")

    def test_dripped_multiline_ehlo_times_out(self):
        srv = self.script_server(drip_ehlo)
        res, took = self.timed(srv)
        self.assertFailed(res, 75, "EHLO")
        self.assertLess(took, self.TIMEOUT + 5, "a multi-line reply is one wait")
        self.assertNeverSent(srv, "MAIL")

    def test_dripped_tls_handshake_times_out(self):
        srv = self.script_server(drip_tls_handshake)
        res, took = self.timed(srv, tls="implicit")
        self.assertFailed(res, 75, "TLS")
        self.assertLess(took, self.TIMEOUT + 5, "the handshake is one wait")

    def test_dripped_final_reply_is_unknown_not_success(self):
        srv = self.script_server(drip_final_reply)
        res, took = self.timed(srv)
        self.assertFailed(res, 75, "outcome is unknown", "DATA")
        self.assertLess(took, self.TIMEOUT + 5, "the reply to the end of data is one wait")

    def test_send_timeout_bounds_the_whole_send(self):
        # each reply 0.7 s late: fine for SMTP_TIMEOUT=2, six of them are not
        # fine for SMTP_SEND_TIMEOUT=2
        srv = self.script_server(slow_replies)
        res, took = self.timed(srv, SMTP_SEND_TIMEOUT="2")
        self.assertFailed(res, 75, "time limit of 2 s")
        self.assertLess(took, 2 + 5)

    def test_slow_but_timely_replies_without_send_timeout_succeed(self):
        srv = self.script_server(slow_replies)
        res, took = self.timed(srv)
        self.assertSent(res)

    def test_send_timeout_must_be_a_number(self):
        srv = self.script_server(slow_replies)
        res, _ = self.timed(srv, SMTP_SEND_TIMEOUT="soon")
        self.assertFailed(res, 78, "SMTP_SEND_TIMEOUT")
