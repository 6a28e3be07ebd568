#!/usr/bin/python3
"""Peak memory of `scalr-email send-batch` by batch length (issue 14 item 1).

    /usr/bin/python3 bench/batch_memory.py [--write] [--before BIN] [N ...]

prints the markdown table (--write also puts it in RESULTS.md); --before BIN
adds rows for another build of scalr-email (e.g. one from before streaming:
git archive 7c8624d | tar -x -C /tmp/old && make -C /tmp/old).  From
bench/bench.py: batch_memory.write_results(batch_memory.section(batch_memory.run())).

Two-kilobyte messages, 2 connections, to Postfix's smtp-sink on 127.0.0.1.
The peak RSS is the process's VmHWM, sampled every 10 ms while it runs: not
its ru_maxrss, which for a child of this script starts at this script's own
peak (the kernel carries the high-water mark across exec).  Target: under
16 MB for any length."""
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
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


def sample_hwm(pid, out):
    """Keep the largest VmHWM of pid in out[0] until the process is gone."""
    while True:
        try:
            with open("/proc/%d/status" % pid) as f:
                hwm = [l for l in f if l.startswith("VmHWM:")]
        except OSError:
            return
        if not hwm:  # exited, not yet reaped: no memory left to read
            return
        out[0] = max(out[0], int(hwm[0].split()[1]))
        time.sleep(0.01)


def measure(n, sink, work, binary=BIN):
    inp = Path(work) / ("batch-%d.jsonl" % n)
    if not inp.exists():
        make_input(inp, n)
    port = free_port()
    env = dict(os.environ, LD_LIBRARY_PATH=str(sink.parent.parent / "lib/postfix"))
    sk = subprocess.Popen([str(sink), "-u", "nobody", "127.0.0.1:%d" % port, "256"],
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
        p = subprocess.Popen([str(binary), "send-batch", "--connections", "2", str(inp)],
                             env=cenv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        peak = [0]
        sampler = threading.Thread(target=sample_hwm, args=(p.pid, peak), daemon=True)
        sampler.start()
        ok = lines = 0
        for line in p.stdout:
            lines += 1
            ok += b'"ok":true' in line
        sampler.join()
        status = p.wait()
        secs = time.time() - t0
        return {"n": n, "ok": ok, "lines": lines, "secs": secs, "rss_mb": peak[0] / 1024,
                "rate": ok / secs if secs else 0, "exit": status}
    finally:
        sk.terminate()
        sk.wait()


def run(counts=(2000, 100000, 1000000), before=None, before_counts=(2000, 20000, 100000)):
    """Rows for this build (and, given before, that binary's: its lengths are
    shorter, since its memory grows with the batch).  before defaults to
    $BATCH_MEMORY_BEFORE, so bench.py's call picks it up too."""
    before = before or os.environ.get("BATCH_MEMORY_BEFORE")
    sink = sink_path()
    if not sink:
        return {"error": "Postfix's smtp-sink is not there (bench/run.sh unpacks it)"}
    with tempfile.TemporaryDirectory(prefix="batch-mem-") as work:
        rows = []
        if before:
            rows += [dict(measure(n, sink, work, before), build="before streaming")
                     for n in before_counts]
        rows += [dict(measure(n, sink, work), build="this build") for n in counts]
        return {"rows": rows}


def section(res):
    out = ["## send-batch memory by batch length (issue 14)", ""]
    if "error" in res:
        return "\n".join(out + ["Not measured: " + res["error"], ""])
    out += ["Two-kilobyte messages, `send-batch --connections 2`, to smtp-sink; peak RSS of the "
            "process (target: under 16 MB for any length; before streaming, 100,000 lines took "
            "265 MB).", "",
            "| build | lines | accepted | seconds | msgs/s | peak RSS MB | under 16 MB |",
            "|---|---|---|---|---|---|---|"]
    for r in res["rows"]:
        out.append("| %s | %d | %d | %.1f | %.0f | %.1f | %s |" % (
            r.get("build", "this build"), r["n"], r["ok"], r["secs"], r["rate"], r["rss_mb"],
            "yes" if r["rss_mb"] < 16 else "NO"))
    out += ["", "Peak RSS: the process's VmHWM sampled every 10 ms (ru_maxrss of a child starts "
            "at its parent's peak)."]
    return "\n".join(out) + "\n"


BEGIN, END = "<!-- batch-memory: begin -->", "<!-- batch-memory: end -->"


def write_results(md, path=HERE / "RESULTS.md"):
    """Put the section between its markers in RESULTS.md (appended the first time)."""
    import sections
    sections.write_section(md, BEGIN, END, path)


if __name__ == "__main__":
    args, before = sys.argv[1:], None
    if "--before" in args:
        i = args.index("--before")
        before = args[i + 1]
        del args[i:i + 2]
    counts = tuple(int(a) for a in args if a != "--write") or (2000, 100000, 1000000)
    md = section(run(counts, before))
    if "--write" in sys.argv:
        write_results(md)
    print(md)
