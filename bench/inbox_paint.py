#!/usr/bin/python3
"""The inbox page with 10,000 messages stored (issue 13): first paint in
Chromium (performance timing: first-paint, first-contentful-paint) and the
ingest rate of the same run, for this build and, when SCALR_EMAIL_BASE_BIN
names an earlier build, for that one too (the target: ingest not lower).

    /usr/bin/python3 bench/inbox_paint.py [--write]   prints (and writes into
                                                    bench/RESULTS.md) its section
Ingest: 4 smtplib connections on 127.0.0.1, 2,500 messages each (1 KiB).
Target: first paint under 100 ms with 10,000 messages stored."""
import json
import os
import smtplib
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BIN = os.environ.get("SCALR_EMAIL_BIN", str(HERE.parent / "build/scalr-email"))
BASE = os.environ.get("SCALR_EMAIL_BASE_BIN")
BEGIN, END = "<!-- inbox-paint: begin -->", "<!-- inbox-paint: end -->"
N, CONNS, RUNS = 10000, 4, 5


def ingest(binary, empty_paint=None):
    p = subprocess.Popen([binary, "inbox", "--smtp", "127.0.0.1:0", "--http", "127.0.0.1:0"],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        port = int(p.stdout.readline().decode().split()[1].rsplit(":", 1)[1])
        http = p.stdout.readline().decode().split()[1]
        if empty_paint is not None:  # the same page with nothing stored, for comparison
            with smtplib.SMTP("127.0.0.1", port, timeout=30) as s:
                s.sendmail("app@example.test", ["dev@example.test"], "Subject: one\r\n\r\nx\r\n")
            empty_paint.extend(paint(http))
        body = ("x" * 76 + "\r\n") * 13

        def send(w):
            with smtplib.SMTP("127.0.0.1", port, timeout=30) as s:
                for i in range(N // CONNS):
                    msg = ("From: App <app@example.test>\r\nTo: dev%d@example.test\r\n"
                           "Subject: Message %d-%d\r\nX-Tags: bench\r\n\r\n%s" % (w, w, i, body))
                    s.sendmail("app@example.test", ["dev%d@example.test" % w], msg)
        t0 = time.time()
        ts = [threading.Thread(target=send, args=(w,)) for w in range(CONNS)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        secs = time.time() - t0
        return p, http, N / secs
    except Exception:
        p.kill()
        p.wait()
        raise


def paint(http):
    r = subprocess.run(["node", str(HERE / "inbox_paint.js"), http, str(RUNS)], capture_output=True,
                       text=True, timeout=300)
    if r.returncode != 0:
        raise RuntimeError("inbox_paint.js: " + r.stderr.strip()[-300:])
    return json.loads(r.stdout.strip().splitlines()[-1])


def run():
    rows = []
    for name, binary in (("this build", BIN), ("before (SCALR_EMAIL_BASE_BIN)", BASE)):
        if not binary:
            continue
        one = [] if binary == BIN else None
        p, http, rate = ingest(binary, one)
        try:
            runs = paint(http)
        finally:
            p.terminate()
            p.wait(timeout=30)
        rows.append({"name": name, "rate": rate, "runs": runs})
        if one:
            rows.append({"name": "this build, 1 message stored", "rate": None, "runs": one})
    return rows


def section(rows):
    md = ["## The inbox page with 10,000 messages (issue 13)", "",
          "`scalr-email inbox` (in memory) fed %d messages of 1 KiB over %d smtplib connections, then the "
          "page opened %d times in Debian's Chromium (playwright-core, headless, a new context each time); "
          "times in ms from navigation start, Chromium's performance timing. Median of the runs (min-max)."
          % (N, CONNS, RUNS), "",
          "| build | ingest msg/s | first paint ms | first contentful paint ms | DOMContentLoaded ms | rows shown |",
          "|---|---|---|---|---|---|"]

    def col(runs, k):
        v = [r[k] for r in runs if r.get(k) is not None]
        if not v:
            return "n/a"
        return "%.0f (%.0f-%.0f)" % (statistics.median(v), min(v), max(v))
    for r in rows:
        md.append("| %s | %s | %s | %s | %s | %d |" % (r["name"], "%.0f" % r["rate"] if r["rate"] else "",
                                                       col(r["runs"], "fp"),
                                                       col(r["runs"], "fcp"), col(r["runs"], "dcl"),
                                                       r["runs"][0]["rows"]))
    fp = [statistics.median([x["fp"] for x in r["runs"] if x.get("fp") is not None]) for r in rows[:1]]
    md += ["", "Target: first paint under 100 ms with 10,000 messages stored: %s." %
           ("met (%.0f ms)" % fp[0] if fp and fp[0] < 100 else "not met" if fp else "not measured")]
    before = [r for r in rows if r["name"].startswith("before")]
    if before:
        md.append("Ingest in the same run: %.0f msg/s now, %.0f before (%s)." % (
            rows[0]["rate"], before[0]["rate"],
            "not lower" if rows[0]["rate"] >= before[0]["rate"] * 0.95 else "lower"))
    return "\n".join(md) + "\n"


def write_results(md, path=HERE / "RESULTS.md"):
    import sections
    sections.write_section(md, BEGIN, END, path)


if __name__ == "__main__":
    md = section(run())
    if "--write" in sys.argv:
        write_results(md)
    print(md)
