#!/usr/bin/python3
"""`scalr-email sendmail` against msmtp on the same input (issue 10 part 2).

    /usr/bin/python3 bench/sendmail_bench.py [--write]

prints the markdown table (--write also puts it in RESULTS.md).  From
bench/bench.py: sendmail_bench.write_results(sendmail_bench.section(sendmail_bench.run())).

Both read the same file on standard input (`-t -i`, as PHP calls them) and
send to the same Postfix smtp-sink on 127.0.0.1, in the same run, turn
about: a 20 MB message (best of SENDMAIL_BENCH_BIG_RUNS, default 3) and
SENDMAIL_BENCH_SMALL (default 200) small messages one process each, as PHP
and cron start one per message.  Peak RSS is /usr/bin/time's %M (exact for
that process).

Target: under 16 MB for the 20 MB message, and no slower than msmtp."""
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BIN = Path(os.environ.get("SCALR_EMAIL_BIN", ROOT / "build/scalr-email"))
MSMTP = Path("/usr/bin/msmtp")
BIG_RUNS = int(os.environ.get("SENDMAIL_BENCH_BIG_RUNS", "3"))
SMALL = int(os.environ.get("SENDMAIL_BENCH_SMALL", "200"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sink_path():
    for p in (HERE / "work/postfix/root/usr/sbin/smtp-sink", Path("/usr/sbin/smtp-sink")):
        if p.exists():
            return p
    return None


def one(argv, env, path, rss=False):
    """Run argv with path on stdin: (seconds, peak RSS KiB or 0, exit status).
    With rss, through /usr/bin/time -f %M: the exact peak of that process
    (a child of this script would inherit this script's high-water mark)."""
    if rss:
        argv = ["/usr/bin/time", "-f", "maxrss=%M"] + argv
    with open(path, "rb") as inp:
        t0 = time.perf_counter()
        p = subprocess.run(argv, env=env, stdin=inp, stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE)
        secs = time.perf_counter() - t0
    err = p.stderr.decode(errors="replace")
    kb = 0
    if rss and "maxrss=" in err:
        kb = int(err.rsplit("maxrss=", 1)[1].split()[0])
    if p.returncode:
        sys.stderr.write("sendmail_bench: %s exited %d: %s\n" % (argv[0], p.returncode, err))
    return secs, kb, p.returncode


def make_inputs(work):
    big = Path(work) / "big.eml"
    line = b"The quick brown fox jumps over the lazy dog; 0123456789 abcdefghijklmnopq\n"
    with open(big, "wb") as f:
        f.write(b"From: Bench <bench@scalr.local>\nTo: sink@example.com\nSubject: big\n\n")
        f.write(line * (20 * 1024 * 1024 // len(line)))
    small = Path(work) / "small.eml"
    small.write_bytes(b"From: Bench <bench@scalr.local>\nTo: sink@example.com\n"
                      b"Bcc: hidden@example.com\nSubject: small\n\n" + line * 20)
    return big, small


def run():
    sink = sink_path()
    if not sink:
        return {"error": "Postfix's smtp-sink is not there (bench/run.sh unpacks it)"}
    if not MSMTP.exists():
        return {"error": "msmtp is not installed (apt-get install msmtp)"}
    if not BIN.exists():
        return {"error": "%s is missing (make)" % BIN}
    with tempfile.TemporaryDirectory(prefix="sendmail-bench-") as work:
        big, small = make_inputs(work)
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
            rc = Path(work) / "msmtprc"
            rc.write_text("defaults\naccount default\nhost 127.0.0.1\nport %d\n"
                          "from bench@scalr.local\ntls off\nauth off\n" % port)
            rc.chmod(0o600)
            cenv = {k: v for k, v in os.environ.items() if not k.startswith(("SMTP_", "SCALR_"))}
            cenv.update(SMTP_HOST="127.0.0.1", SMTP_PORT=str(port), SMTP_USE_TLS="false",
                        SMTP_FROM="bench@scalr.local", TMPDIR=work)
            tools = {
                "scalr-email sendmail": [str(BIN), "sendmail", "-t", "-i"],
                "msmtp %s" % version(): [str(MSMTP), "-C", str(rc), "-t", "-i"],
            }
            rows = {name: {"big_secs": [], "big_rss": [], "small_secs": 0.0, "small_rss": 0,
                           "fails": 0} for name in tools}
            for _ in range(BIG_RUNS):  # turn about, so neither gets a warmer machine
                for name, argv in tools.items():
                    s, kb, st = one(argv, cenv, big, rss=True)
                    rows[name]["big_secs"].append(s)
                    rows[name]["big_rss"].append(kb)
                    rows[name]["fails"] += st != 0
            for _ in range(SMALL):  # timed without the wrapper
                for name, argv in tools.items():
                    s, _, st = one(argv, cenv, small)
                    rows[name]["small_secs"] += s
                    rows[name]["fails"] += st != 0
            for _ in range(3):  # the peak, through /usr/bin/time
                for name, argv in tools.items():
                    _, kb, st = one(argv, cenv, small, rss=True)
                    rows[name]["small_rss"] = max(rows[name]["small_rss"], kb)
                    rows[name]["fails"] += st != 0
            return {"rows": rows, "big_mb": big.stat().st_size / 1e6, "small": SMALL,
                    "big_runs": BIG_RUNS}
        finally:
            sk.terminate()
            sk.wait()


def version():
    try:
        out = subprocess.run([str(MSMTP), "--version"], capture_output=True, text=True).stdout
        return out.split("\n", 1)[0].split()[-1]
    except Exception:
        return "?"


def section(res):
    out = ["## sendmail mode against msmtp (issue 10)", ""]
    if "error" in res:
        return "\n".join(out + ["Not measured: " + res["error"], ""])
    out += ["Same input on standard input (`-t -i`), same Postfix smtp-sink on 127.0.0.1, in the "
            "same run, turn about.  The %.0f MB message: best of %d runs; the small messages "
            "(1.6 KB, a Bcc line): %d processes each, one message per process, as PHP and cron "
            "run them.  Peak RSS: `/usr/bin/time`'s %%M." % (res["big_mb"], res["big_runs"],
                                                                 res["small"]), "",
            "| sender | 20 MB: seconds | 20 MB: MB/s | 20 MB: peak RSS MB | small: msgs/s | "
            "small: ms each | small: peak RSS MB | failures |",
            "|---|---|---|---|---|---|---|---|"]
    for name, r in res["rows"].items():
        best = min(r["big_secs"])
        out.append("| %s | %.2f | %.0f | %.1f | %.0f | %.1f | %.1f | %d |" % (
            name, best, res["big_mb"] / best, max(r["big_rss"]) / 1024,
            res["small"] / r["small_secs"], 1000 * r["small_secs"] / res["small"],
            r["small_rss"] / 1024, r["fails"]))
    ours = res["rows"]["scalr-email sendmail"]
    theirs = [r for n, r in res["rows"].items() if n.startswith("msmtp")][0]
    rss = max(ours["big_rss"]) / 1024
    big_x = min(theirs["big_secs"]) / min(ours["big_secs"])
    small_x = theirs["small_secs"] / ours["small_secs"]
    out += ["", "Targets: under 16 MB RSS for the 20 MB message (the body is spooled to an "
            "unlinked file past 256 KiB and read back 64 KiB at a time), and at least as fast as "
            "msmtp.", "",
            "- Memory: %s, %.1f MB. It is the process's base (OpenSSL, libpq, SQLite, "
            "libmicrohttpd and jansson are linked into the one binary), the same for the small "
            "message: it does not grow with the message." % ("met" if rss < 16 else "MISSED", rss),
            "- Speed: %s: %.1fx msmtp's on the 20 MB message, %.1fx on small ones (both start one "
            "process per message; why msmtp spends longer per small message was not looked into)."
            % ("met" if big_x >= 1 and small_x >= 1 else "MISSED", big_x, small_x)]
    return "\n".join(out) + "\n"


BEGIN, END = "<!-- sendmail: begin -->", "<!-- sendmail: end -->"


def write_results(md, path=HERE / "RESULTS.md"):
    import sections
    sections.write_section(md, BEGIN, END, path)


if __name__ == "__main__":
    md = section(run())
    if "--write" in sys.argv:
        write_results(md)
    print(md)
