"""Shared pieces of the message suite: a recording server that sees the
exact MAIL/RCPT lines (and allows DSN parameters and the null sender), and
the Debian proxies (microsocks, tinyproxy) on free loopback ports."""

import re
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import helpers

START_WAIT = 10  # seconds a proxy gets to start listening


class ExactSMTP(helpers.RecordingSMTP):
    """Records MAIL and RCPT argument lines as sent, and accepts any
    parameters (aiosmtpd itself refuses DSN parameters and MAIL FROM:<>)."""

    async def smtp_MAIL(self, arg):
        if await self.check_helo_needed() or await self.check_auth_needed("MAIL"):
            return
        self._rec.add("mail_lines", arg)
        m = re.match(r"FROM:<([^>]*)>(.*)$", arg or "", re.I)
        if not m:
            return await self.push("501 5.5.4 Syntax: MAIL FROM:<address>")
        self.envelope.mail_from = m.group(1) or "<>"
        self.envelope.mail_options.extend(m.group(2).split())
        await self.push("250 2.1.0 OK")

    async def smtp_RCPT(self, arg):
        if await self.check_helo_needed() or await self.check_auth_needed("RCPT"):
            return
        if not self.envelope.mail_from:
            return await self.push("503 5.5.1 need MAIL")
        self._rec.add("rcpt_lines", arg)
        m = re.match(r"TO:<([^>]*)>(.*)$", arg or "", re.I)
        if not m:
            return await self.push("501 5.5.4 Syntax: RCPT TO:<address>")
        self.envelope.rcpt_tos.append(m.group(1))
        await self.push("250 2.1.5 OK")


def exact_server(test, mode="plain", dsn=True, **kw):
    caps = ["DSN"] if dsn else []
    s = helpers.Server(mode, smtp_class=ExactSMTP, extra_caps=caps, **kw)
    s.start()
    s.rec.mail_lines = []
    s.rec.rcpt_lines = []
    test.addCleanup(s.stop)
    return s


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_listening(port, proc):
    deadline = time.monotonic() + START_WAIT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("proxy exited with %s" % proc.returncode)
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("proxy did not listen on %d" % port)


class Proxy:
    """A proxy process on 127.0.0.1; stop() ends it and removes its files."""

    def __init__(self, argv, port, tmp=None):
        self.port = port
        self.tmp = tmp
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        try:
            wait_listening(port, self.proc)
        except Exception:
            self.stop()
            raise

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.tmp:
            shutil.rmtree(self.tmp, ignore_errors=True)


def microsocks(test, user=None, password=None):
    exe = shutil.which("microsocks")
    if not exe:
        test.skipTest("microsocks is not installed (bash scripts/deps.sh microsocks)")
    port = free_port()
    argv = [exe, "-i", "127.0.0.1", "-p", str(port)]
    if user:
        argv += ["-u", user, "-P", password]
    p = Proxy(argv, port)
    test.addCleanup(p.stop)
    return p


def tinyproxy(test, connect_ports, auth=None):
    exe = shutil.which("tinyproxy")
    if not exe:
        test.skipTest("tinyproxy is not installed (bash scripts/deps.sh tinyproxy)")
    port = free_port()
    tmp = Path(tempfile.mkdtemp(prefix="scalr-msg-tinyproxy-"))
    conf = ["Port %d" % port, "Listen 127.0.0.1", "Timeout 30", "Allow 127.0.0.1",
            "LogLevel Warning", "LogFile \"%s\"" % (tmp / "log"), "MaxClients 10",
            "PidFile \"%s\"" % (tmp / "pid")]
    conf += ["ConnectPort %d" % p for p in connect_ports]
    if auth:
        conf.append("BasicAuth %s %s" % auth)
    (tmp / "tinyproxy.conf").write_text("\n".join(conf) + "\n")
    p = Proxy([exe, "-d", "-c", str(tmp / "tinyproxy.conf")], port, tmp)
    test.addCleanup(p.stop)
    return p
