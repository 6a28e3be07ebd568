"""A scripted SMTP server for the pool tests: PIPELINING and CHUNKING on
demand, faults at every step of a transaction, and a log of what arrived
(connections, commands, payloads, committed messages, client flights).

A "flight" is what the client sends before it waits for a reply: the
server flushes its replies only once no more input arrives within a short
grace period, so one client write counts once however TCP splits it."""
import select
import socket
import threading
import time


class Server:
    def __init__(self, pipelining=True, chunking=False, grace=0.01, tls=None):
        self.pipelining = pipelining
        self.chunking = chunking
        self.tls = tls              # an ssl.SSLContext: offer STARTTLS and AUTH
        self.session_flights = []   # client flights per connection, at its first commit
        self.grace = grace
        self.lock = threading.Lock()
        self.connections = 0
        self.commands = []          # (conn_no, line)
        self.payloads = []          # every complete payload received
        self.messages = []          # committed: (conn_no, mail_from, rcpts, payload)
        self.tx_flights = []        # flights per committed transaction
        self.mail_count = 0         # MAIL commands seen, all connections
        self.faults = {}            # mail_no (1-based) -> fault name
        self.rcpt_replies = {}      # address -> reply line
        self.mail_replies = {}      # mail_no -> reply line (e.g. 421)
        self.final_delay = {}       # mail_no -> seconds before the final reply
        self.quits = 0
        self.greeting_after = {}    # conn_no -> messages committed before its greeting
        self.idle_fault = None      # "silent" or "reset": what an idle connection gets
        self.idle_after = 1.0       # seconds without a command that make it idle
        self.idle_faults = 0        # connections that got it
        self.active = 0             # connections open now
        self.max_active = 0
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.stopping = False
        self.threads = []
        self.conns = []
        self.acceptor = threading.Thread(target=self._accept, daemon=True)
        self.acceptor.start()

    def stop(self):
        self.stopping = True
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
        except OSError:
            pass
        self.acceptor.join(2)
        self.sock.close()
        for c in list(self.conns):
            try:
                c.close()
            except OSError:
                pass
        for t in self.threads:
            t.join(2)

    def _accept(self):
        while not self.stopping:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            if self.stopping:
                c.close()
                return
            with self.lock:
                self.connections += 1
                n = self.connections
            self.conns.append(c)
            t = threading.Thread(target=self._session, args=(c, n), daemon=True)
            self.threads.append(t)
            t.start()

    def _session(self, c, n):
        with self.lock:
            self.active += 1
            self.max_active = max(self.max_active, self.active)
        try:
            Session(self, c, n).run()
        except (OSError, ConnectionError, ValueError):
            pass  # stopped under our feet
        finally:
            with self.lock:
                self.active -= 1
            try:
                c.close()
            except OSError:
                pass


class Drop(Exception):
    pass


class Session:
    def __init__(self, srv, c, n):
        self.srv, self.c, self.n = srv, c, n
        self.buf = b""
        self.out = []
        self.flights = 0
        self.tls_on = False
        self.reset()

    def reset(self):
        self.mail_from = None
        self.rcpts = []
        self.chunks = []
        self.mail_no = 0
        self.tx_start = 0
        self.bad = False

    def reply(self, line):
        self.out.append(line.encode() + b"\r\n")

    def flush(self):
        if self.out:
            self.c.sendall(b"".join(self.out))
            self.out = []

    def run(self):
        hold = self.srv.greeting_after.get(self.n)
        end = time.monotonic() + 60  # a deadline, so a broken client cannot hang us
        while hold and len(self.srv.messages) < hold and not self.srv.stopping and \
                time.monotonic() < end:
            time.sleep(0.01)
        self.reply("220 pooltest ESMTP")
        self.flush()
        self.replied = True
        last = time.monotonic()
        while True:
            line = self.readline()
            if line is None:
                return
            with self.srv.lock:
                self.srv.commands.append((self.n, line))
            now = time.monotonic()
            if self.srv.idle_fault and now - last > self.srv.idle_after:
                self.idle_fault()
                return
            last = now
            if not self.handle(line):
                return

    def recv_more(self):
        if self.out:
            pending = getattr(self.c, "pending", lambda: 0)()
            r = pending or select.select([self.c], [], [], self.srv.grace)[0]
            if not r:
                self.flush()
                self.replied = True
        data = self.c.recv(1 << 20)
        if not data:
            raise Drop()
        if self.replied:
            self.flights += 1
            self.replied = False
        self.buf += data

    def idle_fault(self):
        """What a NAT or a provider does to an idle connection: forget it
        silently (no FIN: read and never answer), or reset it."""
        with self.srv.lock:
            self.srv.idle_faults += 1
        if self.srv.idle_fault == "reset":
            self.c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")
            self.c.close()
            return
        while not self.srv.stopping:
            r = select.select([self.c], [], [], 0.2)[0]
            if r and not self.c.recv(65536):
                return

    def readline(self):
        while b"\r\n" not in self.buf:
            try:
                self.recv_more()
            except Drop:
                return None
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line.decode("utf-8", "replace")

    def readn(self, n):
        while len(self.buf) < n:
            self.recv_more()
        d, self.buf = self.buf[:n], self.buf[n:]
        return d

    def fault(self, name):
        return self.mail_no and self.srv.faults.get(self.mail_no) == name

    def commit(self, payload):
        with self.srv.lock:
            self.srv.payloads.append(payload)
        if self.fault("after_payload"):
            return False
        if self.fault("before_final"):
            with self.srv.lock:
                self.srv.messages.append((self.n, self.mail_from, list(self.rcpts), payload))
            return False
        delay = self.srv.final_delay.get(self.mail_no)
        if delay:
            self.flush()
            time.sleep(delay)
        with self.srv.lock:
            self.srv.messages.append((self.n, self.mail_from, list(self.rcpts), payload))
            self.srv.tx_flights.append(self.flights - self.tx_start + 1)
            self.srv.session_flights.append(self.flights)
        self.reply("250 2.0.0 Ok: queued as M%d" % len(self.srv.messages))
        return True

    def handle(self, line):
        u = line.upper()
        if u.startswith("EHLO"):
            caps = ["250-pooltest", "250-SIZE 100000000", "250-8BITMIME", "250-ENHANCEDSTATUSCODES"]
            if self.srv.pipelining:
                caps.append("250-PIPELINING")
            if self.srv.chunking:
                caps.append("250-CHUNKING")
            if self.srv.tls and not self.tls_on:
                caps.append("250-STARTTLS")
            if self.srv.tls and self.tls_on:
                caps.append("250-AUTH PLAIN LOGIN")
            caps.append("250 SMTPUTF8")
            for c in caps:
                self.reply(c)
        elif u.startswith("MAIL FROM:"):
            with self.srv.lock:
                self.srv.mail_count += 1
                self.mail_no = self.srv.mail_count
            self.tx_start = self.flights
            if self.fault("after_mail"):
                return False
            r = self.srv.mail_replies.get(self.mail_no)
            if r:
                self.reply(r)
                if r.startswith("421"):
                    self.flush()
                    return False
                self.bad = True
                return True
            self.mail_from = line[10:].split(">")[0].lstrip("<")
            self.reply("250 2.1.0 Ok")
        elif u.startswith("RCPT TO:"):
            if self.fault("after_rcpt"):
                return False
            addr = line[8:].split(">")[0].lstrip("<")
            r = self.srv.rcpt_replies.get(addr)
            if r:
                self.reply(r)
            elif self.mail_from is None:
                self.reply("503 5.5.1 need MAIL")
            else:
                self.rcpts.append(addr)
                self.reply("250 2.1.5 Ok")
        elif u == "DATA":
            if self.fault("after_data"):
                return False
            if not self.rcpts:
                self.reply("554 5.5.1 no valid recipients")
                return True
            self.reply("354 go ahead")
            self.flush()
            self.replied = True
            whole = bytearray(b"\r\n" + self.buf)
            start = 0
            while True:
                idx = whole.find(b"\r\n.\r\n", start)
                if idx >= 0:
                    break
                start = max(0, len(whole) - 4)
                self.buf = b""
                self.recv_more()
                whole += self.buf
            whole = bytes(whole)
            body, self.buf = whole[2:idx + 2], whole[idx + 5:]
            lines = body.split(b"\r\n")[:-1]
            payload = b"".join((l[1:] if l.startswith(b".") else l) + b"\r\n" for l in lines)
            ok = self.commit(payload)
            self.reset()
            return ok
        elif u.startswith("BDAT "):
            parts = line.split()
            n = int(parts[1])
            last = len(parts) > 2 and parts[2].upper() == "LAST"
            self.chunks.append(self.readn(n))
            if not self.rcpts or self.bad:
                self.reply("554 5.5.1 no valid recipients")
                if last:
                    self.chunks = []
                return True
            if not last:
                self.reply("250 2.0.0 %d octets received" % n)
                return True
            ok = self.commit(b"".join(self.chunks))
            self.reset()
            return ok
        elif u == "STARTTLS" and self.srv.tls and not self.tls_on:
            self.reply("220 2.0.0 go ahead")
            self.flush()
            self.c = self.srv.tls.wrap_socket(self.c, server_side=True)
            self.tls_on = True
            self.buf = b""
            self.replied = True
        elif u.startswith("AUTH PLAIN ") and self.tls_on:
            self.reply("235 2.7.0 Authentication successful")
        elif u == "RSET":
            self.reset()
            self.reply("250 2.0.0 Ok")
        elif u == "NOOP":
            self.reply("250 2.0.0 Ok")
        elif u == "QUIT":
            with self.srv.lock:
                self.srv.quits += 1
            self.reply("221 2.0.0 Bye")
            self.flush()
            return False
        else:
            self.reply("502 5.5.2 unknown command")
        return True
