#!/usr/bin/python3
"""Peak memory of `scalr-email send-batch` by batch length (issue 14 item 1).

    /usr/bin/python3 bench/batch_memory.py [N ...]     prints the markdown table

or from bench/bench.py: batch_memory.section(batch_memory.run(smtp_sink_path)).
Two-kilobyte messages, 2 connections, to Postfix's smtp-sink on 127.0.0.1; the
peak RSS is the child's ru_maxrss (wait4).  Target: under 16 MB for any length."""
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BIN = Path(os.environ.get("SCALR_EMAIL_BIN", ROOT / "build/scalr-email"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sink_path():
    for p in (HERE / "work/postfix/root/usr/sbin/smtp-sink", Path("/usr/sbin/smtp-sink")):
        if p.exists():
            return p
    return None


def make_input(path, n):
    body = ("x" * 76 + "\n") * 24  # about 2 KB with the headers
    with open(path, "w") as f:
        for i in range(n):
            f.write(json.dumps({"to": "u%d@example.com" % i, "subject": "batch %d" % i,
                                "body": body}) + "\n")


def measure(n, sink, work):
    inp = Path(work) / ("batch-%d.jsonl" % n)
    if not inp.exists():
        make_input(inp, n)
    port = free_port()
    env = dict(os.environ, LD_LIBRARY_PATH=str(sink.parent.parent / "lib/postfix"))
    sk = subprocess.Popen([str(sink), "-c", "-u", "nobody", "127.0.0.1:%d" % port, "256"],
                          env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        cenv = {k: v for k, v in os.environ.items() if not k.startswith("SMTP_")}
        cenv.update(SMTP_HOST="127.0.0.1", SMTP_PORT=str(port), SMTP_USE_TLS="false",
                    SMTP_FROM="bench@scalr.local")
        t0 = time.time()
        p = subprocess.Popen([str(BIN), "send-batch", "--connections", "2", str(inp)], env=cenv,
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        ok = lines = 0
        for line in p.stdout:
            lines += 1
            ok += b'"ok":true' in line
        _, status, ru = os.wait4(p.pid, 0)
        secs = time.time() - t0
        return {"n": n, "ok": ok, "lines": lines, "secs": secs, "rss_mb": ru.ru_maxrss / 1024,
                "rate": ok / secs if secs else 0, "exit": os.waitstatus_to_exitcode(status)}
    finally:
        sk.terminate()
        sk.wait()


def run(counts=(2000, 100000, 1000000)):
    sink = sink_path()
    if not sink:
        return {"error": "Postfix's smtp-sink is not there (bench/run.sh unpacks it)"}
    with tempfile.TemporaryDirectory(prefix="batch-mem-") as work:
        return {"rows": [measure(n, sink, work) for n in counts]}


def section(res):
    out = ["## send-batch memory by batch length (issue 14)", ""]
    if "error" in res:
        return "\n".join(out + ["Not measured: " + res["error"], ""])
    out += ["Two-kilobyte messages, `send-batch --connections 2`, to smtp-sink; peak RSS of the "
            "process (target: under 16 MB for any length; before streaming, 100,000 lines took "
            "265 MB).", "",
            "| lines | accepted | seconds | msgs/s | peak RSS MB | under 16 MB |",
            "|---|---|---|---|---|---|"]
    for r in res["rows"]:
        out.append("| %d | %d | %.1f | %.0f | %.1f | %s |" % (
            r["n"], r["ok"], r["secs"], r["rate"], r["rss_mb"], "yes" if r["rss_mb"] < 16 else "NO"))
    return "\n".join(out) + "\n"


BEGIN, END = "<!-- batch-memory: begin -->", "<!-- batch-memory: end -->"


def write_results(md, path=HERE / "RESULTS.md"):
    """Put the section between its markers in RESULTS.md (appended the first time)."""
    import sections
    sections.write_section(md, BEGIN, END, path)


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--write"]
    counts = tuple(int(a) for a in args) or (2000, 100000, 1000000)
    md = section(run(counts))
    if "--write" in sys.argv:
        write_results(md)
    print(md)
