#!/usr/bin/python3
"""The benchmark proper, run by bench/run.sh after it has installed what is needed.

Starts local sinks on 127.0.0.1 (Postfix's smtp-sink, a discard-only Postfix for
CHUNKING, `scalr-email inbox` when built, maildev), runs every contender against
them, and writes bench/RESULTS.md.  Every load is bounded in count and time,
targets only 127.0.0.1, and every server started here is stopped on exit.

Environment: SCALR_EMAIL_BIN (default build/scalr-email), BENCH_SCALE (multiplies
message counts, default 1), BENCH_DELAY_MS (proxy delay each way, default 25),
BENCH_WORK (default bench/work).
"""
import atexit
import datetime
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import postfix

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
WORK = Path(os.environ.get("BENCH_WORK", BENCH / "work")).resolve()
LOGS = WORK / "logs"
PF_ROOT = WORK / "postfix" / "root"
PF_LIB = PF_ROOT / "usr/lib/postfix"
SMTP_SINK = PF_ROOT / "usr/sbin/smtp-sink"
SMTP_SOURCE = PF_ROOT / "usr/sbin/smtp-source"
BIN = Path(os.environ.get("SCALR_EMAIL_BIN", ROOT / "build/scalr-email")).resolve()
# The shared library whose scalr_email_send() is called in a loop (clients/libsend.py).
LIB = Path(os.environ.get("SCALR_EMAIL_LIB", BIN.parent / "libscalr-email.so")).resolve()
# The inbox may come from another build (e.g. `make INBOX=1` into another directory).
INBOX_BIN = Path(os.environ.get("INBOX_BIN", BIN)).resolve()
PY = "/usr/bin/python3"
NODE = shutil.which("node") or "/usr/bin/node"
NODE_DIR = BENCH / "node"
SCALE = float(os.environ.get("BENCH_SCALE", "1"))
DELAY_MS = float(os.environ.get("BENCH_DELAY_MS", "25"))
KS = [4, 8]
REPEAT = max(1, int(os.environ.get("BENCH_REPEAT", "2")))  # throughput: best of this many runs
RUN_TIMEOUT = 120          # seconds: no single load runs longer than this
CLK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
RCPT = "rcpt@example.com"
FROM = "bench@scalr.local"
WARM_N = 6                 # messages over one connection for the warm round-trip measure


def n(count):
    return max(1, int(count * SCALE))


def log(*a):
    print("[bench %s]" % time.strftime("%H:%M:%S"), *a, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------
# processes

SERVERS = []


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=20.0, proc=None):
    end = time.time() + timeout
    while time.time() < end:
        if proc is not None and proc.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def proc_table():
    """{pid: (ppid, cpu_ticks_incl_reaped_children, rss_pages)} for every process."""
    table = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                st = f.read()
        except OSError:
            continue
        rest = st[st.rindex(")") + 2:].split()
        ppid = int(rest[1])
        ticks = sum(int(x) for x in rest[11:15])      # utime stime cutime cstime
        table[int(d)] = (ppid, ticks, int(rest[21]))
    return table


def tree(root):
    table = proc_table()
    pids, todo = [], [root]
    while todo:
        p = todo.pop()
        if p in table:
            pids.append(p)
            todo.extend(c for c, v in table.items() if v[0] == p)
    return pids, table


def tree_cpu(root):
    """CPU seconds of a process and all its descendants, living or reaped."""
    pids, table = tree(root)
    return sum(table[p][1] for p in pids) / CLK


def tree_rss_mb(root):
    pids, table = tree(root)
    return sum(table[p][2] for p in pids) * PAGE / 2**20


class Server:
    def __init__(self, name, argv, env=None, port=None, cwd=None):
        self.name = name
        self.port = port
        self.logpath = LOGS / ("%s.log" % name)
        self.logf = open(self.logpath, "ab")
        self.p = subprocess.Popen([str(a) for a in argv], env=env, cwd=cwd, stdout=self.logf,
                                  stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                  start_new_session=True)
        SERVERS.append(self)
        if port and not wait_port(port, proc=self.p):
            self.stop()
            raise RuntimeError("%s did not start; see %s" % (name, self.logpath))

    def cpu(self):
        return tree_cpu(self.p.pid)

    def rss_mb(self):
        return tree_rss_mb(self.p.pid)

    def stop(self):
        if self.p.poll() is None:
            try:
                os.killpg(self.p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.p.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(self.p.pid, signal.SIGKILL)
                self.p.wait()
        try:  # leftovers of the session (postfix children) also go
            os.killpg(self.p.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if self in SERVERS:
            SERVERS.remove(self)
        self.logf.close()


CLIENTS = set()  # process groups of running client processes


def stop_all(*_):
    for pid in list(CLIENTS):
        _kill(pid)
    for s in list(SERVERS):
        s.stop()


atexit.register(stop_all)
def _on_signal(signum, frame):
    stop_all()
    sys.exit(128 + signum)


for _sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
    signal.signal(_sig, _on_signal)


def spawn_wait(argv, env, out, deadline):
    """Run one client process under /usr/bin/time; return (exit code, rusage, max RSS KB).

    Its CPU comes from wait4 on /usr/bin/time, which includes the child it waited
    for (and time's own fraction of a millisecond).  Its max RSS comes from time's
    %M: wait4's ru_maxrss would report this Python process's size, which a child
    spawned from it inherits as its high-water mark before exec.  Killed at the
    deadline."""
    rssfile = LOGS / ("rss-%d.txt" % threading.get_ident())
    argv = ["/usr/bin/time", "-f", "%M", "-o", str(rssfile)] + [str(a) for a in argv]
    fa = [(os.POSIX_SPAWN_OPEN, 0, "/dev/null", os.O_RDONLY, 0),
          (os.POSIX_SPAWN_OPEN, 1, str(out), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644),
          (os.POSIX_SPAWN_OPEN, 2, str(out.with_suffix(".err")),
           os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)]
    pid = os.posix_spawn(argv[0], argv, env, file_actions=fa, setpgroup=0)
    CLIENTS.add(pid)
    timer = threading.Timer(max(0.1, deadline - time.time()), lambda: _kill(pid))
    timer.start()
    try:
        _, status, ru = os.wait4(pid, 0)
    finally:
        timer.cancel()
        CLIENTS.discard(pid)
    rss = 0
    try:
        lines = rssfile.read_text().split()
        rss = int(lines[-1]) if lines and lines[-1].isdigit() else 0
        rssfile.unlink()
    except OSError:
        pass
    return os.waitstatus_to_exitcode(status), ru, rss


def _kill(pid):
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def run_load(name, workers, env, sink=None, messages=0):
    """Run lists of commands, one list per worker thread, each list in sequence.

    Returns a result dict: wall time, summed CPU and max RSS of the client
    processes (from wait4), the sink's CPU over the same period, failures."""
    out = LOGS / ("%s.out" % re.sub(r"[^A-Za-z0-9_.-]+", "_", name))
    for p in (out, out.with_suffix(".err")):
        if p.exists():
            p.unlink()
    res = {"cpu": 0.0, "rss_kb": 0, "fail": 0, "procs": 0}
    lock = threading.Lock()
    deadline = time.time() + RUN_TIMEOUT

    def work(cmds):
        for argv in cmds:
            if time.time() > deadline:
                with lock:
                    res["fail"] += 1
                continue
            code, ru, rss = spawn_wait(argv, env, out, deadline)
            with lock:
                res["procs"] += 1
                res["cpu"] += ru.ru_utime + ru.ru_stime
                res["rss_kb"] = max(res["rss_kb"], rss)
                if code != 0:
                    res["fail"] += 1

    sink_cpu0 = sink.cpu() if sink else 0.0
    t0 = time.perf_counter()
    threads = [threading.Thread(target=work, args=(w,), daemon=True) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    res["wall"] = time.perf_counter() - t0
    res["sink_cpu"] = (sink.cpu() - sink_cpu0) if sink else None
    res["messages"] = messages
    res["out"] = out
    res["timed_out"] = time.time() > deadline
    err = out.with_suffix(".err")
    res["err"] = ""
    if res["fail"] and err.exists():
        lines = [ln for ln in err.read_text(errors="replace").splitlines() if ln.strip()]
        res["err"] = lines[0][:160] if lines else ""
    log("%-44s %6d msgs %7.2fs %8.1f msg/s fail=%d %s" % (
        name, messages, res["wall"], messages / res["wall"] if res["wall"] else 0,
        res["fail"], res["err"]))
    return res


def split(count, k):
    return [count // k + (1 if i < count % k else 0) for i in range(k)]


# ---------------------------------------------------------------------------
# contenders: each returns (workers, messages) for run_load

def smtp_env(port, extra=None):
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/root"),
           "SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(port), "SMTP_USE_TLS": "false",
           "SMTP_FROM": FROM, "SMTP_TIMEOUT": "30", "SMTP_HELO_NAME": "bench.localdomain",
           "SMTP_POOL_SIZE": os.environ.get("SMTP_POOL_SIZE", "8"),
           "LD_LIBRARY_PATH": str(PF_LIB), "LANG": "C.UTF-8"}
    env.update(extra or {})
    return env


class Ctx:
    body = None          # path of the ~1 KB text body
    big = None           # path of the 50 MB attachment
    has_batch = False
    has_inbox = False
    has_lib = False
    versions = {}


def scalr_send(count, k, attach=None):
    workers = []
    for w, share in enumerate(split(count, k)):
        cmds = []
        for i in range(share):
            argv = [BIN, "send", "--to", RCPT, "--subject", "Benchmark message %d-%d" % (w, i),
                    "--body-file", Ctx.body]
            if attach:
                argv += ["--attach", attach]
            cmds.append(argv)
        workers.append(cmds)
    return workers, count


def batch_file(count, tag):
    path = WORK / ("batch-%s-%d.jsonl" % (tag, count))
    if not path.exists():
        body = Path(Ctx.body).read_text()
        with open(path, "w") as f:
            for i in range(count):
                f.write(json.dumps({"to": RCPT, "subject": "Benchmark message %d" % i,
                                    "body": body}) + "\n")
    return path


def scalr_batch(count, k):
    return [[[BIN, "send-batch", "--connections", k, batch_file(count, "b")]]], count


def libsend(count, k):
    return [[[PY, BENCH / "clients/libsend.py", LIB, count, k, Ctx.body]]], count


def smtplib_run(mode):
    def make(count, k, attach=None):
        extra = [attach] if attach else []
        return [[[PY, BENCH / "clients/smtplib_client.py", mode, share, Ctx.body] + extra]
                for share in split(count, k) if share], count
    return make


def nodemailer(count, k, attach=None):
    extra = [attach] if attach else []
    return [[[NODE, NODE_DIR / "nodemailer_client.js", count, k, Ctx.body] + extra]], count


def smtp_source(port_unused=None):
    def make(count, k):
        # The port is filled in from SMTP_PORT by the caller (see with_port).
        return [[[SMTP_SOURCE, "-s", k, "-m", count, "-l", 1024, "-d", "-f", FROM, "-t", RCPT,
                  "-M", "bench.localdomain", "-S", "Benchmark message", "@ADDR@"]]], count
    return make


def with_port(workers, port):
    return [[[("127.0.0.1:%d" % port) if a == "@ADDR@" else a for a in argv] for argv in w]
            for w in workers]


# ---------------------------------------------------------------------------
# sinks

def start_smtp_sink():
    port = free_port()
    s = Server("smtp-sink", [SMTP_SINK, "-u", "nobody", "-m", "512", "127.0.0.1:%d" % port,
                             "512"], env={"LD_LIBRARY_PATH": str(PF_LIB)}, port=port)
    return s


def start_postfix(certs):
    """A discard-only Postfix MTA under WORK/postfix-run, on 127.0.0.1:port only."""
    port = free_port()
    conf = postfix.write_config(PF_ROOT, WORK / "postfix-run", port, certs)
    env, argv = postfix.command(PF_ROOT, conf)
    return Server("postfix", argv, env=env, port=port)


def ehlo_caps(port):
    """The EHLO keywords a sink offers."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        f = s.makefile("rb")
        while True:
            line = f.readline()
            if line[3:4] != b"-":
                break
        s.sendall(b"EHLO bench.localdomain\r\n")
        caps = []
        while True:
            line = f.readline().decode("latin-1").rstrip()
            if not line:
                break
            if caps or not line.startswith("250"):
                pass
            caps.append(line[4:].split(" ")[0].upper())
            if line[3:4] != "-":
                break
        s.sendall(b"QUIT\r\n")
        return caps[1:]


def http_json(url, method="GET", timeout=30):
    req = urllib.request.Request(url, method=method)
    with urllib.request.urlopen(req, timeout=timeout) as r:
        data = r.read()
    return json.loads(data) if data else None


# ---------------------------------------------------------------------------
# measures

def fmt_rate(r):
    if r["fail"] or r.get("timed_out"):
        return "FAILED (%d)" % r["fail"]
    return "%.0f" % (r["messages"] / r["wall"])


def throughput(sink, results):
    """Messages per second over 1 and K connections, CPU and RSS per contender."""
    port = sink.port
    env = smtp_env(port)
    rows = []
    plan = [
        ("scalr-email send (1 process per message)", scalr_send, n(200), [1] + KS),
    ]
    if Ctx.has_batch:
        plan.append(("scalr-email send-batch", scalr_batch, n(20000), [1] + KS))
    if Ctx.has_lib:
        plan.append(("scalr_email_send() in a loop (library, K threads)", libsend, n(10000),
                     [1] + KS))
    plan += [
        ("smtplib, 1 connection per message (seed)", smtplib_run("per-message"), n(600), [1] + KS),
        ("smtplib, reused connection", smtplib_run("reused"), n(3000), [1] + KS),
        ("nodemailer pool", nodemailer, n(3000), [1] + KS),
        ("smtp-source (Postfix load generator)", smtp_source(), n(20000), [1] + KS),
    ]
    for name, make, count, ks in plan:
        for k in ks:
            workers, msgs = make(count, k)
            workers = with_port(workers, port)
            r = None
            for i in range(REPEAT):
                ri = run_load("%s k=%d -> %s (run %d)" % (name, k, sink.name, i + 1), workers,
                              env, sink, msgs)
                if make is scalr_batch:
                    check_batch(ri, msgs)
                if r is None or (not ri["fail"] and (r["fail"] or ri["wall"] < r["wall"])):
                    r = ri
            r.update(name=name, k=k, runs=REPEAT)
            rows.append(r)
    results["throughput"] = rows
    results["throughput_sink"] = sink.name
    results["repeat"] = REPEAT


def check_batch(r, msgs):
    """send-batch prints one JSON result per message: count the accepted ones."""
    accepted = 0
    if r["out"].exists():
        for line in r["out"].read_text(errors="replace").splitlines():
            try:
                accepted += bool(json.loads(line).get("ok"))
            except ValueError:
                pass
    if accepted < msgs:
        r["fail"] = max(r["fail"], msgs - accepted)
        r["err"] = r["err"] or "%d of %d accepted" % (accepted, msgs)


class Proxy:
    """bench/delayproxy.py in front of one sink."""

    def __init__(self, name, upstream):
        self.port = free_port()
        self.logfile = WORK / ("proxy-%s.jsonl" % name)
        if self.logfile.exists():
            self.logfile.unlink()
        self.server = Server("proxy-" + name, [PY, BENCH / "delayproxy.py", self.port, upstream,
                                                DELAY_MS, self.logfile], port=self.port)

    def records(self):
        if not self.logfile.exists():
            return []
        return [json.loads(x) for x in self.logfile.read_text().splitlines() if x.strip()]

    def run(self, name, workers, env, expect_conns):
        before = len(self.records())
        r = run_load(name, workers, env, None, 0)
        end = time.time() + 5
        while time.time() < end and len(self.records()) < before + expect_conns:
            time.sleep(0.05)
        recs = self.records()[before:]
        return r, recs

    def stop(self):
        self.server.stop()


def named_flights(rec):
    """Flight labels, with the size of each TLS flight (its content cannot be read)."""
    sizes = rec.get("sizes", [])
    return [("<tls %dB>" % sizes[i]) if lab == "<tls>" and i < len(sizes) else lab
            for i, lab in enumerate(rec["labels"])]


def flights_to_accept(rec):
    """Flights up to the one the message's 250 answers: trailing QUITs and, over TLS, the
    QUIT and close_notify records (28 and 24 bytes with TLS 1.3 AES-GCM) are not counted."""
    labels, sizes = list(rec["labels"]), list(rec.get("sizes", []))
    while labels and (labels[-1] == "QUIT" or (labels[-1] == "<tls>" and len(sizes) == len(labels)
                                               and sizes[-1] in (24, 28))):
        labels.pop()
        if sizes:
            sizes.pop()
    return len(labels)


def round_trips(proxies, results, tls_setups):
    """Flights per cold and per warm send through the delay proxy."""
    rows = []
    rtt = 2 * DELAY_MS / 1000.0
    contenders = [("scalr-email send", lambda c: scalr_send(c, 1), False)]
    if Ctx.has_batch:
        contenders.append(("scalr-email send-batch", lambda c: scalr_batch(c, 1), True))
    if Ctx.has_lib:
        contenders.append(("scalr_email_send() in a loop", lambda c: libsend(c, 1), True))
    contenders += [
        ("smtplib, 1 connection per message (seed)", lambda c: smtplib_run("per-message")(c, 1),
         False),
        ("smtplib, reused connection", lambda c: smtplib_run("reused")(c, 1), True),
        ("nodemailer pool (maxConnections 1)", lambda c: nodemailer(c, 1), True),
        ("smtp-source -d", lambda c: smtp_source()(c, 1), True),
    ]
    for sink_name, proxy in proxies:
        env = smtp_env(proxy.port)
        for name, make, warm_ok in contenders:
            w1, _ = make(1)
            r1, rec1 = proxy.run("rtt cold %s via %s" % (name, sink_name),
                                 with_port(w1, proxy.port), env, 1)
            row = {"name": name, "sink": sink_name, "fail": r1["fail"], "err": r1["err"]}
            if rec1 and not r1["fail"]:
                row["cold"] = rec1[0]["flights"]
                row["cold_labels"] = named_flights(rec1[0])
                row["cold_accept"] = flights_to_accept(rec1[0])
                row["cold_time"] = r1["wall"] / rtt
            if warm_ok and not r1["fail"]:
                wn, _ = make(WARM_N)
                rn, recn = proxy.run("rtt warm %s via %s" % (name, sink_name),
                                     with_port(wn, proxy.port), env, 1)
                if recn and not rn["fail"] and len(recn) == 1:
                    row["warm"] = (recn[0]["flights"] - rec1[0]["flights"]) / (WARM_N - 1)
                    labels1 = rec1[0]["labels"]
                    start = len(labels1) - (1 if labels1 and labels1[-1] == "QUIT" else 0)
                    per = max(1, round(row["warm"]))
                    row["warm_labels"] = recn[0]["labels"][start:start + per]
                    row["warm_time"] = (rn["wall"] - r1["wall"]) / (WARM_N - 1) / rtt
                elif recn and len(recn) > 1:
                    row["warm_note"] = "%d connections for %d messages" % (len(recn), WARM_N)
                else:
                    row["fail"] = rn["fail"]
                    row["err"] = rn["err"]
            rows.append(row)
    # Cold sends with STARTTLS (and AUTH where the sink offers it).
    for setup_name, proxy, extra in tls_setups:
        env = smtp_env(proxy.port, extra)
        for name, make, _ in contenders[:1] + [c for c in contenders if "smtplib, 1" in c[0]
                                                or "nodemailer" in c[0]]:
            w1, _ = make(1)
            r1, rec1 = proxy.run("rtt cold TLS %s via %s" % (name, setup_name),
                                 with_port(w1, proxy.port), env, 1)
            row = {"name": name, "sink": setup_name, "fail": r1["fail"], "err": r1["err"],
                   "tls": True}
            if rec1 and not r1["fail"]:
                row["cold"] = rec1[0]["flights"]
                row["cold_labels"] = named_flights(rec1[0])
                row["cold_accept"] = flights_to_accept(rec1[0])
                row["cold_time"] = r1["wall"] / rtt
            rows.append(row)
    results["rtt"] = rows


def latency_throughput(sink_name, proxy, results):
    """Messages per second over 1 and K connections through the delay proxy, where round
    trips, not CPU, set the rate (a provider tens of milliseconds away)."""
    env = smtp_env(proxy.port)
    count = max(16, n(48))
    plan = []
    if Ctx.has_batch:
        plan.append(("scalr-email send-batch", scalr_batch))
    if Ctx.has_lib:
        plan.append(("scalr_email_send() in a loop (library, K threads)", libsend))
    plan += [("smtplib, reused connection", smtplib_run("reused")),
             ("nodemailer pool", nodemailer),
             ("smtp-source (Postfix load generator)", smtp_source())]
    rows = []
    for name, make in plan:
        for k in [1] + KS:
            workers, msgs = make(count, k)
            before = len(proxy.records())
            r = run_load("latency %s k=%d via %s" % (name, k, sink_name),
                         with_port(workers, proxy.port), env, None, msgs)
            if make is scalr_batch:
                check_batch(r, msgs)
            time.sleep(0.3)
            recs = proxy.records()[before:]
            span = (max(x["close"] for x in recs) - min(x["open"] for x in recs)) if recs else 0
            r.update(name=name, k=k, conns=len(recs), span=span,
                     flights=sum(x["flights"] for x in recs))
            rows.append(r)
    results["latency"] = rows
    results["latency_sink"] = sink_name


def big_memory(sink, results):
    """Peak RSS sending one message with a 50 MB attachment, and a small one."""
    env = smtp_env(sink.port)
    rows = []
    for label, attach in (("small message (1 KB text)", None), ("50 MB attachment", Ctx.big)):
        for name, make in (("scalr-email send", scalr_send),
                           ("smtplib (seed)", smtplib_run("per-message")),
                           ("nodemailer", nodemailer)):
            workers, msgs = make(1, 1, attach) if attach else make(1, 1)
            r = run_load("memory %s, %s" % (name, label), workers, env, sink, msgs)
            r.update(name=name, what=label)
            rows.append(r)
    results["memory"] = rows


def inbox_count(http_port):
    try:
        d = http_json("http://127.0.0.1:%d/api/v2/messages?start=0&limit=1" % http_port)
        return d.get("total", d.get("count"))
    except Exception as e:  # noqa: BLE001 - reported, not fatal
        return "error: %s" % e


def maildev_count(web_port):
    try:
        d = http_json("http://127.0.0.1:%d/api/email/summary?limit=1" % web_port)
        return d.get("storeTotal", d.get("total"))
    except Exception as e:  # noqa: BLE001
        return "error: %s" % e


def start_inbox(tag, db=None, extra=()):
    """`scalr-email inbox` on free ports; it prints the addresses it got when ready."""
    argv = [INBOX_BIN, "inbox", "--smtp", "127.0.0.1:0", "--http", "127.0.0.1:0"]
    if db:
        argv += ["--db", db]
    argv += list(extra)
    s = Server("inbox-" + tag, argv)
    end = time.time() + 20
    while time.time() < end and s.p.poll() is None:
        text = s.logpath.read_text(errors="replace")
        sm = re.search(r"^smtp: .*:(\d+)\s*$", text, re.M)
        hm = re.search(r"^http: .*:(\d+)\s*$", text, re.M)
        if sm and hm:
            s.port, s.http_port = int(sm.group(1)), int(hm.group(1))
            if wait_port(s.port, 5, s.p):
                return s
        time.sleep(0.05)
    s.stop()
    raise RuntimeError("scalr-email inbox did not start; see %s" % s.logpath)


def start_maildev():
    sport, wport = free_port(), free_port()
    pkg = NODE_DIR / "node_modules/maildev"
    bin_ = json.loads((pkg / "package.json").read_text())["bin"]
    main_js = pkg / (bin_["maildev"] if isinstance(bin_, dict) else bin_)
    s = Server("maildev", [NODE, main_js, "--smtp", sport,
                           "--ip", "127.0.0.1", "--web", wport, "--web-ip", "127.0.0.1",
                           "--silent"], port=sport)
    s.http_port = wport
    wait_port(wport, proc=s.p)
    return s


def inbox_store(results):
    """Messages stored per second under smtp-source with parallel sessions (issue 4 item 7)."""
    rows, growth = [], []
    sessions = 8
    count = n(10000)
    setups = []
    if Ctx.has_inbox:
        setups += [("scalr-email inbox (in memory)", lambda: start_inbox("mem"), inbox_count),
                   ("scalr-email inbox --db", lambda: start_inbox(
                       "db", db=str(WORK / "inbox-bench.db")), inbox_count)]
    setups.append(("maildev %s (in memory)" % Ctx.versions.get("maildev", ""), start_maildev,
                   maildev_count))
    for name, start, counter in setups:
        for f in WORK.glob("inbox-bench.db*"):
            f.unlink()
        try:
            srv = start()
        except RuntimeError as e:
            rows.append({"name": name, "err": str(e), "fail": 1})
            continue
        try:
            caps = ehlo_caps(srv.port)
            rss0 = srv.rss_mb()
            workers, msgs = smtp_source()(count, sessions)
            r = run_load("store %s" % name, with_port(workers, srv.port), smtp_env(srv.port),
                         srv, msgs)
            time.sleep(0.5)
            r.update(name=name, sessions=sessions, caps=caps, stored=counter(srv.http_port),
                     rss0=rss0, rss=srv.rss_mb())
            rows.append(r)
            if "--db" in name and not r["fail"]:
                # RSS as the stored mail grows with --db.
                growth.append((count, srv.rss_mb(), r["stored"]))
                target = n(50000)
                w2, m2 = smtp_source()(target - count, sessions)
                r2 = run_load("grow %s to %d" % (name, target), with_port(w2, srv.port),
                              smtp_env(srv.port), srv, m2)
                if not r2["fail"]:
                    time.sleep(0.5)
                    growth.append((target, srv.rss_mb(), counter(srv.http_port)))
        finally:
            srv.stop()
    results["inbox"] = rows
    results["inbox_growth"] = growth


# ---------------------------------------------------------------------------
# setup

def cmd_out(argv, env=None):
    try:
        p = subprocess.run([str(a) for a in argv], env=env, capture_output=True, text=True,
                           timeout=20)
        return p.returncode, (p.stdout + p.stderr).strip()
    except (OSError, subprocess.TimeoutExpired) as e:
        return -1, str(e)


def make_inputs():
    body = WORK / "body.txt"
    line = "Your invoice 117 is ready. Thank you for your business; reply to this email with questions.\n"
    body.write_text((line * 12)[:1024])
    Ctx.body = str(body)
    big = WORK / "attachment-50MB.bin"
    if not big.exists() or big.stat().st_size != 50 * 2**20:
        with open(big, "wb") as f:
            for _ in range(50):
                f.write(os.urandom(2**20))
    Ctx.big = str(big)


def make_certs():
    cert, key = WORK / "tls-cert.pem", WORK / "tls-key.pem"
    if not cert.exists():
        code, out = cmd_out(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                             "ec_paramgen_curve:P-256", "-nodes", "-days", "30", "-subj",
                             "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                             "-keyout", key, "-out", cert])
        if code != 0:
            log("openssl failed:", out)
            return None
    os.chmod(key, 0o644)  # the servers drop privileges before some of them read it
    return str(cert), str(key)


def detect():
    code, out = cmd_out([BIN, "--version"])
    Ctx.versions["scalr-email"] = out.splitlines()[0] if code == 0 and out else "?"
    code, out = cmd_out([BIN, "send-batch", "--help"])
    code2, out2 = cmd_out([BIN, "--help"])
    Ctx.has_batch = ((code == 0 and "--connections" in out)
                     or (code2 == 0 and "send-batch" in out2 and "--connections" in out2))
    code, out = cmd_out([INBOX_BIN, "inbox", "--help"])
    Ctx.has_inbox = code == 0 and "--smtp" in out
    code, out = cmd_out([PY, "-c", "import ctypes, sys; ctypes.CDLL(sys.argv[1]).scalr_email_send",
                         LIB])
    Ctx.has_lib = code == 0
    Ctx.lib_note = "" if Ctx.has_lib else (
        "%s: %s" % (LIB, out.strip().splitlines()[-1] if out.strip() else "cannot be loaded"))
    Ctx.versions["Python (smtplib)"] = platform.python_version() + " (/usr/bin/python3)"
    Ctx.versions["Node.js"] = cmd_out([NODE, "--version"])[1]
    for pkg in ("nodemailer", "maildev"):
        try:
            Ctx.versions[pkg] = json.loads(
                (NODE_DIR / "node_modules" / pkg / "package.json").read_text())["version"]
        except OSError:
            Ctx.versions[pkg] = "missing"
    ver = WORK / "postfix" / "VERSION"
    Ctx.versions["Postfix (smtp-sink, smtp-source, MTA)"] = (
        ver.read_text().strip() if ver.exists() else "?")
    Ctx.versions["OpenSSL"] = cmd_out(["openssl", "version"])[1]


def machine():
    model = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem = "?"
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal"):
                mem = "%.1f GiB" % (int(line.split()[1]) / 2**20)
    osname = "?"
    if Path("/etc/os-release").exists():
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                osname = line.split("=", 1)[1].strip('"')
    return {"nproc": os.cpu_count(), "cpu": model, "mem": mem, "os": osname,
            "kernel": platform.release()}


def main():
    LOGS.mkdir(parents=True, exist_ok=True)
    for p in LOGS.iterdir():
        p.unlink()
    t_start = time.time()
    results = {"started": datetime.datetime.now(datetime.timezone.utc).strftime(
        "%Y-%m-%d %H:%M UTC"), "machine": machine(), "notes": [], "delay_ms": DELAY_MS,
        "load_before": Path("/proc/loadavg").read_text().split()[:3]}
    make_inputs()
    certs = make_certs()
    detect()
    results["versions"] = dict(Ctx.versions)
    results["has_batch"], results["has_inbox"] = Ctx.has_batch, Ctx.has_inbox
    results["bin"] = str(BIN)
    results["inbox_bin"] = str(INBOX_BIN)
    results["lib"], results["has_lib"] = str(LIB), Ctx.has_lib
    if not Ctx.has_lib:
        results["notes"].append(
            "`scalr_email_send()` in a loop (the pooled one-call send, through ctypes) not "
            "measured: %s. A shared library built with -fvisibility=hidden exports nothing "
            "unless the API is marked visible." % Ctx.lib_note)
    log("scalr-email:", BIN, "send-batch:", Ctx.has_batch, "inbox:", Ctx.has_inbox)
    results["sinks"] = {}

    sink = start_smtp_sink()
    results["sinks"]["smtp-sink"] = ehlo_caps(sink.port)
    throughput(sink, results)
    big_memory(sink, results)

    proxies, tls_setups, others = [("smtp-sink", Proxy("smtp-sink", sink.port))], [], []
    try:
        pf = start_postfix(certs)
        others.append(pf)
        results["sinks"]["Postfix MTA (discard)"] = ehlo_caps(pf.port)
        pp = Proxy("postfix", pf.port)
        proxies.append(("Postfix MTA (discard)", pp))
        if certs:
            tls_setups.append(("Postfix MTA, STARTTLS, no AUTH", pp,
                               {"SMTP_USE_TLS": "true", "SSL_CERT_FILE": certs[0]}))
    except RuntimeError as e:
        results["notes"].append("Postfix MTA could not be started: %s" % e)
    if Ctx.has_inbox:
        try:
            ib = start_inbox("rtt")
            others.append(ib)
            results["sinks"]["scalr-email inbox"] = ehlo_caps(ib.port)
            proxies.append(("scalr-email inbox", Proxy("inbox", ib.port)))
            if certs:
                ibt = start_inbox("rtt-tls", extra=["--tls-cert", certs[0], "--tls-key", certs[1],
                                                    "--auth", "any"])
                others.append(ibt)
                tls_setups.append(("scalr-email inbox, STARTTLS + AUTH", Proxy("inbox-tls", ibt.port),
                                   {"SMTP_USE_TLS": "true", "SSL_CERT_FILE": certs[0],
                                    "SMTP_USERNAME": "bench", "SMTP_PASSWORD": "bench-secret"}))
        except RuntimeError as e:
            results["notes"].append("scalr-email inbox could not be started: %s" % e)
    round_trips(proxies, results, tls_setups)
    lat = next(((nm, p) for nm, p in proxies if nm == "Postfix MTA (discard)"), proxies[0])
    latency_throughput(lat[0], lat[1], results)
    for _, p in proxies:
        p.stop()
    for _, p, _ in tls_setups:
        if p.server in SERVERS:
            p.stop()
    for s in others:
        s.stop()
    sink.stop()

    inbox_store(results)
    results["duration"] = time.time() - t_start
    results["load_after"] = Path("/proc/loadavg").read_text().split()[:3]
    (WORK / "results.json").write_text(json.dumps(results, indent=1, default=str))
    import report
    out = report.render(results, DELAY_MS)

    # Cold sends (issue 14): one library call per message, no pool, 5 ms each way.
    out += "\n## Cold sends: round trips of one `scalr_email_send()` per message (no pool)\n\n"
    try:
        import cold_rtt
        rows = cold_rtt.measure(pf_root=PF_ROOT if PF_ROOT.exists() else None,
                                work=WORK / "cold-rtt", lib=LIB if Ctx.has_lib else None,
                                delay_ms=5.0, count=20)
        out += cold_rtt.table(rows, 5.0) + "\n\nTargets: plain with PIPELINING <= 3.5 round trips; " \
            "STARTTLS (no AUTH) <= 6.5; STARTTLS + AUTH <= 7.5.\n"
    except Exception as e:  # said, never faked
        out += "Not measured: %s\n" % e
    (BENCH / "RESULTS.md").write_text(out)

    # The sections measured by their own modules, each written between its markers
    # in RESULTS.md (after the file itself); one that fails says so, never faked.
    import importlib
    for module, title in (
            ("batch_memory", "send-batch memory"),                          # issue 14
            ("inbox_memory", "The inbox's memory"),                         # issue 16
            ("inbox_paint", "The inbox page with 10,000 messages"),         # issue 13
            ("queue_bench", "Durable queue (issue 9)"),
            ("sendmail_bench", "sendmail mode against msmtp"),              # issue 10
            ("template_bench", "Templates (issue 11)"),
            ("dkim_bench", "DKIM signing cost (issue 12)")):
        try:
            m = importlib.import_module(module)
            m.write_results(m.section(m.run()))
        except Exception as e:
            with open(BENCH / "RESULTS.md", "a") as f:
                f.write("\n## %s\n\nNot measured: %s\n" % (title, e))
    results["duration"] = time.time() - t_start
    log("wrote", BENCH / "RESULTS.md", "in %.0f s" % results["duration"])


if __name__ == "__main__":
    main()
