#!/usr/bin/python3
"""Cold-send round trips against a real Postfix smtpd, through bench/delayproxy.py.

"Cold" is the seed's pattern: one scalr_email_send() call per message with
SMTP_POOL_SIZE=0, so every call connects, (STARTTLS,) EHLO, sends and QUITs;
compared with Python's smtplib doing the same (connect, starttls, send_message,
quit).  Both run in this process (ctypes for the library), so the time of each
message is measured around the call alone, without process start-up.

    /usr/bin/python3 bench/cold_rtt.py [COUNT]

prints a table; bench.py may call measure(pf_root, work, lib, delay_ms, count)
and get the rows.  Round trips = median time per message / (2 x delay).
Postfix comes from BENCH_WORK/postfix/root (bench/run.sh unpacks it there) or
from the system's /usr/lib/postfix; it listens on one 127.0.0.1 port only and
discards everything.  AUTH is not measured: Postfix needs a SASL server for it.
"""
import ctypes
import json
import os
import signal
import smtplib
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from email.message import EmailMessage
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(BENCH / "clients"))
import postfix  # noqa: E402
from libsend import Message, c_char_pp  # noqa: E402

PY = "/usr/bin/python3"
FROM = "bench@scalr.local"
RCPT = "rcpt@example.com"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, timeout=20.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError("server exited with %s" % proc.returncode)
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("port %d never opened" % port)


def make_cert(work):
    cert, key = work / "cold-cert.pem", work / "cold-key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out",
                    str(cert)], check=True, capture_output=True)
    os.chmod(key, 0o644)  # Postfix's smtpd reads it after dropping privileges
    return str(cert), str(key)


class Procs:
    """Servers started here; every one is stopped by stop()."""

    def __init__(self):
        self.procs = []

    def start(self, argv, env=None, port=None):
        p = subprocess.Popen([str(a) for a in argv], env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, start_new_session=True)
        self.procs.append(p)
        if port:
            wait_port(port, p)
        return p

    def stop(self):
        for p in self.procs:
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        for p in self.procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()


def lib_sender(lib_path):
    lib = ctypes.CDLL(str(lib_path))
    lib.scalr_email_send.argtypes = [ctypes.POINTER(Message), ctypes.c_void_p]
    lib.scalr_email_send.restype = ctypes.c_int
    rcpt = (ctypes.c_char_p * 2)(RCPT.encode(), None)
    err = ctypes.create_string_buffer(16384)
    body = b"Hello from the cold round-trip benchmark.\n" * 10

    def send(i):
        msg = Message(to=ctypes.cast(rcpt, c_char_pp), subject=b"Cold %d" % i, body=body)
        rc = lib.scalr_email_send(ctypes.byref(msg), err)
        if rc != 0:
            off = 4 + 4 + 16 + 16 + 320 + 512
            raise RuntimeError("scalr_email_send: %d: %s" % (
                rc, err.raw[off:off + 768].split(b"\0", 1)[0].decode(errors="replace")))
    return send


def smtplib_sender(port, tls, cafile, auth=False):
    body = "Hello from the cold round-trip benchmark.\n" * 10

    def send(i):
        m = EmailMessage()
        m["From"], m["To"], m["Subject"] = FROM, RCPT, "Cold %d" % i
        m.set_content(body)
        s = smtplib.SMTP("127.0.0.1", port, local_hostname="bench.localdomain", timeout=30)
        if tls:
            s.starttls(context=ssl.create_default_context(cafile=cafile))
        if auth:
            s.login("bench", "bench-pw")
        s.send_message(m)
        s.quit()
    return send


def timed(send, count):
    times = []
    send(-1)  # warm up: libraries loaded, certificates parsed once
    for i in range(count):
        t0 = time.perf_counter()
        send(i)
        times.append(time.perf_counter() - t0)
    return times


def proxy_records(logfile, after):
    if not logfile.exists():
        return []
    recs = [json.loads(x) for x in logfile.read_text().splitlines() if x.strip()]
    return recs[after:]


def measure(*args, **kw):
    """_measure, with this process's environment as it was before (the library
    reads SMTP_* from it, so the rows set them)."""
    saved = dict(os.environ)
    try:
        return _measure(*args, **kw)
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _measure(pf_root=None, work=None, lib=None, delay_ms=5.0, count=20, inbox_bin=None):
    """Rows: {name, mode, path, rt (round trips per message), flights, labels, ms}.
    With inbox_bin (a scalr-email with `inbox`; default build/scalr-email when it
    has one), STARTTLS+AUTH rows too, against `scalr-email inbox --auth any`."""
    work = Path(work or tempfile.mkdtemp(prefix="cold-rtt-"))
    work.mkdir(parents=True, exist_ok=True)
    os.chmod(work, 0o755)  # Postfix's daemons run as nobody
    lib = Path(lib or ROOT / "build" / "libscalr-email.so")
    if pf_root is None:
        bundled = Path(os.environ.get("BENCH_WORK", BENCH / "work")) / "postfix" / "root"
        pf_root = bundled if (bundled / "usr/lib/postfix/sbin/master").exists() else Path("/")
    procs = Procs()
    rows = []
    try:
        cert, key = make_cert(work)
        pf_port = free_port()
        conf = postfix.write_config(pf_root, work / "postfix-cold", pf_port, (cert, key))
        env, argv = postfix.command(pf_root, conf)
        procs.start(argv, env=env, port=pf_port)
        rtt = 2 * delay_ms / 1000.0
        modes = (("plain", False, False), ("STARTTLS", True, False))
        for path, extra in (("proxy", []), ("proxy --quickack", ["--quickack"])):
            rows += run_path(procs, work, path, extra, pf_port, modes, cert, lib, delay_ms, rtt,
                             count)
        inbox_bin = Path(inbox_bin or ROOT / "build" / "scalr-email")
        if inbox_bin.exists() and subprocess.run([str(inbox_bin), "inbox", "--help"],
                                                 capture_output=True).returncode == 0:
            ib_port = free_port()
            procs.start([inbox_bin, "inbox", "--smtp", "127.0.0.1:%d" % ib_port, "--http",
                         "127.0.0.1:0", "--tls-cert", cert, "--tls-key", key, "--auth", "any"],
                        port=ib_port)
            for path, extra in (("proxy, inbox", []), ("proxy --quickack, inbox", ["--quickack"])):
                rows += run_path(procs, work, path, extra, ib_port,
                                 (("STARTTLS+AUTH", True, True),), cert, lib, delay_ms, rtt, count)
    finally:
        procs.stop()
    return rows


def run_path(procs, work, path, extra, pf_port, modes, cert, lib, delay_ms, rtt, count):
    rows = []
    if True:
        px_port, log = free_port(), work / ("cold-proxy-%d.jsonl" % len(procs.procs))
        if log.exists():
            log.unlink()
        procs.start([PY, BENCH / "delayproxy.py", px_port, pf_port, delay_ms, log] + extra,
                    port=px_port)
        time.sleep(0.2)
        base = len(proxy_records(log, 0))  # the port probes above
        for mode, tls, auth in modes:
            os.environ.update(SMTP_HOST="127.0.0.1", SMTP_PORT=str(px_port), SMTP_FROM=FROM,
                              SMTP_USE_TLS="true" if tls else "false", SMTP_POOL_SIZE="0",
                              SMTP_HELO_NAME="bench.localdomain", SMTP_TIMEOUT="30",
                              SSL_CERT_FILE=cert)
            for k in ("SMTP_USERNAME", "SMTP_PASSWORD"):
                os.environ.pop(k, None)
            if auth:
                os.environ.update(SMTP_USERNAME="bench", SMTP_PASSWORD="bench-pw")
            for name, send in (("scalr_email_send(), SMTP_POOL_SIZE=0", lib_sender(lib)),
                               ("smtplib, 1 connection per message",
                                smtplib_sender(px_port, tls, cert, auth))):
                times = timed(send, count)
                time.sleep(3 * delay_ms / 1000 + 0.2)  # the last connection's log line
                recs = proxy_records(log, base)
                base += len(recs)
                recs = recs[1:]  # the warm-up
                med = statistics.median(times)
                rows.append({"name": name, "mode": mode, "path": path, "ms": med * 1000,
                             "rt": med / rtt,
                             "flights": statistics.median(r["flights"] for r in recs)
                             if recs else None,
                             "labels": recs[0]["labels"] if recs else []})
    return rows


def table(rows, delay_ms):
    out = ["Cold sends, one connection per message, Postfix smtpd (STARTTLS+AUTH: `scalr-email "
           "inbox --auth any`, as Postfix needs a SASL server for AUTH) through a proxy adding "
           "%g ms each way (round trip %g ms); median of each message's time." % (delay_ms,
                                                                                   2 * delay_ms),
           "",
           "`--quickack`: the proxy ACKs the server's bytes at once, as scalr-email does "
           "(TCP_QUICKACK); without it the proxy's own delayed ACK holds Postfix's EHLO reply "
           "after TLS behind its session ticket (Nagle) for up to 40 ms, whatever the client does.",
           "",
           "| client | mode | path | ms per message | round trips | client flights | flights |",
           "|---|---|---|---|---|---|---|"]
    for r in rows:
        out.append("| %s | %s | %s | %.1f | %.1f | %s | %s |" % (
            r["name"], r["mode"], r["path"], r["ms"], r["rt"], r["flights"],
            " ".join(r["labels"])))
    return "\n".join(out)


if __name__ == "__main__":
    # SIGTERM too runs measure()'s finally, which stops Postfix and the proxy.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    delay = float(os.environ.get("BENCH_DELAY_MS", "5"))
    print(table(measure(delay_ms=delay, count=n), delay))
