#!/usr/bin/python3
"""The queue's end-to-end suite: `scalr-email queue` against a real SMTP sink
(Debian's aiosmtpd), on both stores (SQLite, and a private PostgreSQL from
pgserver.py).  Prints one line per case and ends with
    queue: N passed, N failed
$SCALR_EMAIL_BIN is the binary (default build/scalr-email).
QUEUE_SOAK_N sets the soak's message count (default 10000)."""
import email
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.request
from pathlib import Path

from aiosmtpd.controller import Controller

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
BIN = os.environ.get("SCALR_EMAIL_BIN", str(ROOT / "build/scalr-email"))
if not os.path.isabs(BIN):
    BIN = str(ROOT / BIN)
sys.path.insert(0, str(HERE))
from pgserver import PgServer  # noqa: E402


class Sink:
    """Records every Message-ID; replies as a recipient's local part says:
    r550@ refuses at RCPT, d451@ at DATA; a sender m421@ is refused at MAIL.
    delay (seconds) slows each DATA reply."""

    def __init__(self):
        self.ids = []
        self.lock = threading.Lock()
        self.delay = 0.0
        import socket
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        self.port = s.getsockname()[1]
        s.close()
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self):
        self.controller.stop()

    async def handle_MAIL(self, server, session, envelope, address, options):
        code = address.split("@")[0]
        if code.startswith("m") and code[1:].isdigit():
            return "%s 4.7.0 scripted" % code[1:] if code[1] == "4" else "%s 5.7.1 scripted" % code[1:]
        envelope.mail_from = address
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        code = address.split("@")[0]
        if code.startswith("r") and code[1:].isdigit():
            return "%s %s.1.1 scripted" % (code[1:], code[1])
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        for r in envelope.rcpt_tos:
            code = r.split("@")[0]
            if code.startswith("d") and code[1:].isdigit():
                return "%s %s.3.0 scripted" % (code[1:], code[1])
        if self.delay:
            import asyncio
            await asyncio.sleep(self.delay)
        msg = email.message_from_bytes(envelope.content)
        with self.lock:
            self.ids.append(msg["Message-ID"])
        return "250 OK queued"


def env(sink, url, **extra):
    e = dict(os.environ)
    for k in list(e):
        if k.startswith("SMTP_") or k.startswith("SCALR_EMAIL_"):
            del e[k]
    e.update(SMTP_HOST="127.0.0.1", SMTP_PORT=str(sink.port), SMTP_USE_TLS="false",
             SMTP_FROM="app@example.test", SMTP_TIMEOUT="5", SCALR_EMAIL_QUEUE=url)
    e.update(extra)
    return e


def q(e, *args, inp=None, check=True, timeout=120):
    p = subprocess.run([BIN, "queue"] + list(args), env=e, input=inp, capture_output=True,
                       timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError("queue %s: exit %d: %s %s" % (" ".join(args), p.returncode,
                                                           p.stdout.decode(), p.stderr.decode()))
    return p


def add_many(e, n, **kw):
    lines = []
    for i in range(n):
        m = {"to": kw.get("to", "user%d@example.test" % i), "subject": "msg %d" % i,
             "body": "hello %d" % i}
        lines.append(json.dumps(m))
    p = q(e, "add", "--jsonl", "-", *kw.get("args", []), inp=("\n".join(lines) + "\n").encode())
    ids = [json.loads(l)["id"] for l in p.stdout.decode().splitlines()]
    assert len(ids) == n, p.stdout
    return ids


def status(e):
    return json.loads(q(e, "status", "--json").stdout)["counts"]


def show(e, i):
    return json.loads(q(e, "show", str(i), "--json").stdout)


WORK = ["work", "--drain", "--lease", "1s", "--backoff-base", "100ms"]


def mids(e):
    """Message-IDs of every message in the queue, by id."""
    out = {}
    for line in q(e, "list", "--json").stdout.decode().splitlines():
        it = json.loads(line)
        out[it["id"]] = it["message_id"]
    return out


# ---- cases; each gets (sink, url) with an empty queue ---------------------------------


def case_enqueue_and_drain(sink, url):
    e = env(sink, url)
    ids = add_many(e, 30)
    p = q(e, "add", "--to", "bob@example.test", "--subject", "one", "--body", "x")
    ids.append(int(p.stdout))
    q(e, *WORK, "--connections", "3")
    assert sorted(sink.ids) == sorted(mids(e).values()), "each message exactly once"
    assert len(sink.ids) == 31
    c = status(e)
    assert c["sent"] == 31 and c["queued"] == 0 and c["leased"] == 0, c
    s = show(e, ids[0])
    assert s["state"] == "sent" and s["tries"][0]["smtp_code"] == 250, s


def case_invalid_input_refused_nothing_stored(sink, url):
    e = env(sink, url)
    p = q(e, "add", "--to", "bob@example.test", "--subject", "x\rBcc: evil@example.test",
          "--body", "x", check=False)
    assert p.returncode == 65, p  # EX_DATAERR, as for send
    assert len(p.stderr.decode().strip().splitlines()) == 1
    p = q(e, "add", "--to", "bob@example.test", "--subject", "x", "--attach", "/nonexistent",
          check=False)
    assert p.returncode == 66, p
    e2 = dict(e)
    del e2["SMTP_FROM"]
    p = q(e2, "add", "--to", "bob@example.test", "--subject", "x", "--body", "y", check=False)
    assert p.returncode == 78, p  # not configured
    assert sum(status(e).values()) == 0


def case_idempotency_key(sink, url):
    e = env(sink, url)
    a = json.loads(q(e, "add", "--to", "b@example.test", "--subject", "s", "--body", "b",
                     "--key", "order-1", "--json").stdout)
    b = json.loads(q(e, "add", "--to", "b@example.test", "--subject", "s2", "--body", "b",
                     "--key", "order-1", "--json").stdout)
    assert a["id"] == b["id"] and b["existed"] is True and a["message_id"] == b["message_id"]
    q(e, *WORK)
    assert len(sink.ids) == 1


def case_transactional_before_bulk(sink, url):
    e = env(sink, url)
    add_many(e, 5, args=["--priority", "bulk"])
    p = q(e, "add", "--to", "reset@example.test", "--subject", "reset", "--body", "x")
    reset_mid = show(e, int(p.stdout))["message_id"]
    q(e, *WORK)
    assert sink.ids[0] == reset_mid, "the password reset goes first"


def case_replies_by_class_and_stage(sink, url):
    e = env(sink, url)
    cases = {
        "r550": ("failed", 1), "r552": ("failed", 1), "r554": ("failed", 1),
        "d554": ("failed", 1), "r450": ("expired", 2), "r451": ("expired", 2),
        "r452": ("expired", 2), "d451": ("expired", 2),
    }
    ids = {}
    for local in cases:
        p = q(e, "add", "--to", "%s@example.test" % local, "--subject", local, "--body", "x",
              "--max-attempts", "2")
        ids[local] = int(p.stdout)
    q(e, *WORK)
    for local, (state, tries) in cases.items():
        s = show(e, ids[local])
        assert s["state"] == state, (local, s)
        assert len(s["tries"]) == tries, (local, s)
        code = int(local[1:])
        assert s["tries"][-1]["smtp_code"] == code, (local, s)
        assert s["tries"][0]["stage"] == ("RCPT" if local[0] == "r" else "DATA"), (local, s)
        if tries == 2:
            assert s["tries"][0]["outcome"] == "retry"
            # the retry waited at least the backoff's lower half
            assert s["tries"][1]["at"] - s["tries"][0]["at"] >= 50, s
    assert sink.ids == []


def case_throttling_pauses_then_sends(sink, url):
    e = env(sink, url, SMTP_FROM="m421@example.test")
    p = q(e, "add", "--to", "bob@example.test", "--subject", "t", "--body", "x")
    i = int(p.stdout)
    # One try: a worker that is stopped once the first outcome is recorded.
    w = subprocess.Popen([BIN, "queue", "work", "--lease", "1s", "--backoff-base", "10s",
                          "--json"], env=e, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    line = w.stdout.readline()
    w.send_signal(signal.SIGTERM)
    w.wait(30)
    ev = json.loads(line)
    assert ev["outcome"] == "retry" and ev["smtp_code"] == 421, ev
    st = json.loads(q(e, "status", "--json").stdout)
    assert any(p["provider"] == "" and not p["held"] for p in st["providers"]), st
    s = show(e, i)
    assert s["state"] == "queued" and s["run_at"] - s["tries"][0]["at"] >= 15000, s


def case_auth_failure_holds_provider_without_burning_attempts(sink, url):
    # Credentials over plaintext to loopback are allowed; aiosmtpd offers no AUTH: EAUTH.
    e = env(sink, url, SMTP_USERNAME="u", SMTP_PASSWORD="secret-pw")
    ids = add_many(e, 3)
    w = subprocess.Popen([BIN, "queue", "work", "--lease", "1s", "--json"], env=e,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    line = w.stdout.readline()
    time.sleep(0.3)
    w.send_signal(signal.SIGTERM)
    out, err = w.communicate(timeout=30)
    assert w.returncode == 0, (w.returncode, err)
    ev = json.loads(line)
    assert ev["outcome"] == "released", ev
    st = json.loads(q(e, "status", "--json").stdout)
    assert st["counts"]["queued"] == 3 and st["counts"]["leased"] == 0, st
    assert st["providers"] and st["providers"][0]["held"], st
    text = q(e, "status").stdout.decode()
    assert "HELD" in text and "secret-pw" not in text, text
    for i in ids:
        s = show(e, i)
        assert s["attempts"] == 0, s
    # Fixed and released: everything goes.
    e2 = env(sink, url)
    q(e2, "release", "--all")
    q(e2, *WORK)
    assert len(sink.ids) == 3


CRASH_POINTS = ["claim", "connect", "before_eod", "after_eod", "after_250", "after_mark"]
IN_WINDOW = {"after_eod", "after_250"}


def crash_case(sink, url, point, hold):
    e = env(sink, url)
    add_many(e, 4)
    ce = dict(e, SCALR_EMAIL_TEST_CRASH_AT=point)
    p = subprocess.run([BIN, "queue", "work", "--lease", "1s", "--drain"], env=ce,
                       capture_output=True, timeout=60)
    assert p.returncode == -signal.SIGKILL, (point, p.returncode, p.stderr)
    args = list(WORK) + (["--on-ambiguous", "hold"] if hold else [])
    q(e, *args, timeout=60)
    all_mids = mids(e)
    got = sink.ids
    dups = len(got) - len(set(got))
    c = status(e)
    if point in IN_WINDOW:
        assert dups <= 1, (point, got)
        if hold:
            assert dups == 0 and c["unknown"] == 1 and c["sent"] == 3, (point, c)
            assert len(set(got)) == 4, (point, "the unknown one did reach the server")
        else:
            assert c["sent"] == 4, (point, c)
    else:
        assert dups == 0, (point, got)
        assert c["sent"] == 4, (point, c)
    assert set(all_mids.values()) <= set(got) | set(
        m for i, m in all_mids.items() if show(e, i)["state"] == "unknown"), point
    assert set(got) == set(all_mids.values()), "nothing lost"
    assert c["leased"] == 0


def case_crash_points_resend(sink, url):
    for point in CRASH_POINTS:
        sink.ids.clear()
        crash_case(sink, url, point, hold=False)
        wipe(url)


def case_crash_points_hold(sink, url):
    for point in sorted(IN_WINDOW) + ["before_eod"]:
        sink.ids.clear()
        crash_case(sink, url, point, hold=True)
        wipe(url)


def case_term_under_load_leaves_no_lease(sink, url):
    e = env(sink, url)
    add_many(e, 120)
    sink.delay = 0.01
    w = subprocess.Popen([BIN, "queue", "work", "--connections", "2", "--lease", "5s"], env=e,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(0.6)
    w.send_signal(signal.SIGTERM)
    out, err = w.communicate(timeout=30)
    assert w.returncode == 0, (w.returncode, err)
    c = status(e)
    assert c["leased"] == 0, c
    assert c["sent"] + c["queued"] == 120, c
    assert c["sent"] == len(sink.ids) and len(set(sink.ids)) == len(sink.ids)
    sink.delay = 0
    q(e, *WORK)
    assert len(sink.ids) == 120 and len(set(sink.ids)) == 120


def case_second_signal_exits_75(sink, url):
    e = env(sink, url)
    add_many(e, 60)
    sink.delay = 0.3
    w = subprocess.Popen([BIN, "queue", "work", "--lease", "5s", "--backoff-base", "100ms"],
                         env=e, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(0.5)
    w.send_signal(signal.SIGTERM)
    time.sleep(0.05)
    w.send_signal(signal.SIGTERM)
    out, err = w.communicate(timeout=30)
    sink.delay = 0
    assert w.returncode == 75, (w.returncode, err)
    time.sleep(0.4)  # the interrupted DATA reply reaches the sink's log either way
    q(e, *WORK)
    c = status(e)
    assert c["leased"] == 0 and c["queued"] == 0, c
    assert len(set(sink.ids)) == 60, "nothing lost"
    assert len(sink.ids) - len(set(sink.ids)) <= 1, "at most the one in the window"


def case_soak_random_kills(sink, url):
    """Workers SIGKILLed every 50-500 ms while they send N messages (a third
    each with 1, 2 and 4 workers): 0 lost, duplicates no more than the kills,
    never two live leases on one row."""
    n = int(os.environ.get("QUEUE_SOAK_N", "10000"))
    e = env(sink, url)
    add_many(e, n)
    rnd = random.Random(7)
    kills = 0

    def spawn():
        return subprocess.Popen([BIN, "queue", "work", "--lease", "1s", "--backoff-base", "50ms"],
                                env=e, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for step, workers in enumerate((1, 2, 4)):
        goal = n * (step + 1) // 3
        procs = [spawn() for _ in range(workers)]
        t_end = time.time() + 60
        while len(set(sink.ids)) < goal and time.time() < t_end:
            time.sleep(rnd.uniform(0.05, 0.5))
            victim = rnd.randrange(workers)
            procs[victim].kill()
            procs[victim].wait()
            kills += 1
            procs[victim] = spawn()
        for p in procs:
            p.kill()
            p.wait()
        kills += workers
    q(e, *WORK, "--connections", "2", timeout=300)
    c = status(e)
    assert c["sent"] + c["unknown"] == n and c["leased"] == 0 and c["queued"] == 0, c
    got = sink.ids
    assert set(got) == set(mids(e).values()), "0 lost"
    dups = len(got) - len(set(got))
    assert dups <= kills, (dups, kills)


def case_bad_queue_files(sink, url):
    d = tempfile.mkdtemp()
    path = os.path.join(d, "q.db")
    with open(path, "w") as f:
        f.write("not a database\n" * 400)
    e = env(sink, "sqlite:" + path)
    p = q(e, "status", check=False)
    assert p.returncode == 73, p
    lines = p.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and path in lines[0], lines
    p = q(dict(e, SCALR_EMAIL_QUEUE="sqlite:/nonexistent/dir/q.db"), "add", "--to",
          "a@example.test", "--subject", "s", "--body", "b", check=False)
    assert p.returncode == 73 and "/nonexistent/dir/q.db" in p.stderr.decode(), p
    p = q(dict(e, SCALR_EMAIL_QUEUE="mysql://x"), "status", check=False)
    assert p.returncode == 78, p


def case_metrics_and_help(sink, url):
    e = env(sink, url)
    for sub in ["add", "work", "status", "list", "show", "retry", "cancel", "hold", "release",
                "purge"]:
        p = q(e, sub, "--help")
        assert p.stdout.startswith(b"usage: scalr-email queue"), sub
    add_many(e, 3, args=["--tenant", "acme"])
    import socket as so
    s = so.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    w = subprocess.Popen([BIN, "queue", "work", "--metrics", "127.0.0.1:%d" % port], env=e,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        text = ""
        for _ in range(100):
            try:
                text = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port,
                                              timeout=5).read().decode()
                # The counter moves when a try ends; the row's state a moment
                # later, when the outcome is committed: wait for both.
                if 'outcome="sent"} 3' in text and \
                        'state="sent",lane="transactional",tenant="acme"} 3' in text:
                    break
            except OSError:
                pass
            time.sleep(0.1)
        assert 'scalr_email_queue_messages{state="sent",lane="transactional",tenant="acme"} 3' \
            in text, text
        assert 'scalr_email_worker_outcomes_total{outcome="sent"} 3' in text, text
        assert "scalr_email_enqueue_to_sent_seconds_count 3" in text, text
    finally:
        w.send_signal(signal.SIGTERM)
        w.wait(30)
    assert w.returncode == 0


def case_operator_actions(sink, url):
    e = env(sink, url)
    ids = add_many(e, 3)
    q(e, "hold", str(ids[0]))
    q(e, "cancel", str(ids[1]))
    p = q(e, "cancel", str(ids[1]), check=False)
    assert p.returncode == 65 and "cancelled" in p.stderr.decode(), p
    p = q(e, "show", "999999", check=False)
    assert p.returncode == 66, p
    q(e, *WORK)
    c = status(e)
    assert c["held"] == 1 and c["cancelled"] == 1 and c["sent"] == 1, c
    q(e, "release", str(ids[0]))
    q(e, *WORK)
    assert status(e)["sent"] == 2
    p = q(e, "purge", "--state", "sent", "--older-than", "0s")
    assert b"2 messages" in p.stdout, p.stdout


def wipe(url):
    if url.startswith("sqlite:"):
        for suffix in ("", "-wal", "-shm"):
            try:
                os.unlink(url[7:] + suffix)
            except FileNotFoundError:
                pass
    else:
        subprocess.run([BIN, "queue", "purge", "--state", "sent", "--older-than", "0s"],
                       env=dict(os.environ, SCALR_EMAIL_QUEUE=url), capture_output=True)
        psql = sorted(Path("/usr/lib/postgresql").glob("*/bin/psql"))[-1]
        subprocess.run([str(psql), url, "-q", "-c",
                        "TRUNCATE scalr_email_queue, scalr_email_attempts, scalr_email_workers, "
                        "scalr_email_inflight, scalr_email_providers"],
                       capture_output=True, check=False)


case_bad_queue_files.sqlite_only = True  # a file that is not a database
CASES = [v for k, v in sorted(globals().items()) if k.startswith("case_")]


def main():
    only = sys.argv[1:]
    passed = failed = skipped = 0
    sink = Sink()
    tmp = tempfile.mkdtemp(prefix="se-queue-")
    pg = None
    stores = [("sqlite", "sqlite:" + os.path.join(tmp, "q.db"))]
    try:
        try:
            pg = PgServer()
            pg.start()
            stores.append(("pg", pg.url))
        except Exception as ex:  # counted as a failure below, never skipped silently
            print("FAIL pg: PostgreSQL did not start: %s" % ex)
            failed += 1
        for store, url in stores:
            for case in CASES:
                name = "%s[%s]" % (case.__name__[5:], store)
                if only and not any(o in name for o in only):
                    continue
                if store != "sqlite" and getattr(case, "sqlite_only", False):
                    continue
                sink.ids.clear()
                sink.delay = 0
                t0 = time.time()
                try:
                    wipe(url)
                    r = case(sink, url)
                    if r:
                        skipped += 1
                        print("skip %s (%s)" % (name, r))
                    else:
                        passed += 1
                        print("ok   %s (%.1f s)" % (name, time.time() - t0))
                except Exception:
                    failed += 1
                    print("FAIL %s" % name)
                    traceback.print_exc()
                sys.stdout.flush()
    finally:
        sink.stop()
        if pg:
            pg.stop()
    tail = ", %d skipped" % skipped if skipped else ""
    print("queue: %d passed, %d failed%s" % (passed, failed, tail))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
