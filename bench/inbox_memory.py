#!/usr/bin/python3
"""The inbox's memory under big messages (issue 16 item 3).

    /usr/bin/python3 bench/inbox_memory.py [--write]   prints (and writes into
                                                     bench/RESULTS.md) its section
Targets: 20 concurrent 24 MiB messages with --db all kept with a peak under
200 MB; after deleting everything the process back under 64 MB in either mode;
400 MiB sent through the default in-memory store staying under 320 MB."""
import json
import os
import signal
import smtplib
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
BIN = os.environ.get("SCALR_EMAIL_BIN", str(HERE.parent / "build/scalr-email"))
BEGIN, END = "<!-- inbox-memory: begin -->", "<!-- inbox-memory: end -->"


def status(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    return 0


class Inbox:
    def __init__(self, *args):
        self.p = subprocess.Popen([BIN, "inbox", "--smtp", "127.0.0.1:0", "--http", "127.0.0.1:0"]
                                  + list(args), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        smtp = self.p.stdout.readline().decode().split()[1]
        self.port = int(smtp.rsplit(":", 1)[1])
        self.http = self.p.stdout.readline().decode().split()[1]

    def stop(self):
        self.p.send_signal(signal.SIGTERM)
        self.p.wait(60)

    def api(self, path, method="GET"):
        req = urllib.request.Request(self.http + path, method=method)
        return json.loads(urllib.request.urlopen(req, timeout=60).read() or b"null")


def disk(d):
    """Bytes of the SQLite files in d (the database and its write-ahead log)."""
    return sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d) if not f.endswith("-shm"))


def message(i, mib):
    line = b"y" * 98 + b"\r\n"
    return (b"From: a@x.test\r\nTo: b@y.test\r\nSubject: big %d\r\n\r\n" % i) + \
        line * ((mib << 20) // 100)


def send_all(port, msgs, parallel):
    errors = []

    def one(chunk):
        for m in chunk:
            try:
                with smtplib.SMTP("127.0.0.1", port, timeout=120) as s:
                    s.sendmail("a@x.test", ["b@y.test"], m)
            except Exception as e:
                errors.append(str(e))
    groups = [msgs[i::parallel] for i in range(parallel)]
    ts = [threading.Thread(target=one, args=(g,)) for g in groups]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return errors


def run():
    rows = []
    with tempfile.TemporaryDirectory(prefix="inbox-mem-") as d:
        ib = Inbox("--db", os.path.join(d, "in.db"))
        try:
            t0 = time.time()
            errs = send_all(ib.port, [message(i, 24) for i in range(20)], 20)
            kept = ib.api("/api/scalr/messages")["total"]
            peak = status(ib.p.pid, "VmHWM")
            rows.append(("20 concurrent 24 MiB messages, --db", "%d of 20 kept%s, %.0f s" % (
                kept, (", errors: %s" % errs[0]) if errs else "", time.time() - t0),
                peak, 200e6))
            size_before = disk(d)
            ib.api("/api/v1/messages", "DELETE")
            time.sleep(1)
            rss = status(ib.p.pid, "VmRSS")
            size_after = disk(d)
            rows.append(("after delete-all, --db", "file and WAL %.0f MB -> %.1f MB" % (
                size_before / 1e6, size_after / 1e6), rss, 64e6))
        finally:
            ib.stop()
    ib = Inbox()
    try:
        msgs = [message(i, 4) for i in range(100)]  # 400 MiB
        errs = send_all(ib.port, msgs, 4)
        listing = ib.api("/api/scalr/messages")
        peak = status(ib.p.pid, "VmHWM")
        rows.append(("400 MiB through the in-memory store (default --max-memory 256M)",
                     "%d kept, %d dropped%s" % (listing["total"], listing["store"]["dropped"],
                                                (", errors: %s" % errs[0]) if errs else ""),
                     peak, 320e6))
        ib.api("/api/v1/messages", "DELETE")
        time.sleep(1)
        rows.append(("after delete-all, in memory", "", status(ib.p.pid, "VmRSS"), 64e6))
    finally:
        ib.stop()
    return rows


def section(rows):
    out = ["## The inbox's memory (issue 16)", "",
           "`scalr-email inbox` fed big messages with Python's smtplib on 127.0.0.1; RSS from "
           "/proc (peak: VmHWM; after a delete: VmRSS), in MB of 10^6 bytes as the targets are.", "",
           "| case | what happened | RSS MB | target MB | met |", "|---|---|---|---|---|"]
    for name, what, rss, target in rows:
        out.append("| %s | %s | %.0f | < %d | %s |" % (name, what, rss / 1e6, target / 1e6,
                                                       "yes" if rss < target else "NO"))
    return "\n".join(out) + "\n"


def write_results(md, path=HERE / "RESULTS.md"):
    """Put the section between its markers in RESULTS.md (appended the first time)."""
    import sections
    sections.write_section(md, BEGIN, END, path)


if __name__ == "__main__":
    md = section(run())
    if "--write" in sys.argv:
        write_results(md)
    print(md)
