#!/usr/bin/python3
"""Sender profiles in the durable queue (issue 12: "in the queue, the tenant is
the profile"), on both stores (SQLite, and a private PostgreSQL from
pgserver.py).  Two tenants, each with its own aiosmtpd server and account
(AUTH, different credentials) and its own DKIM key; messages are verified by
Debian's dkimpy (python3-dkim).  Prints one line per case and ends with
    queue-profiles: N passed, N failed
$SCALR_EMAIL_BIN is the binary (default build/scalr-email)."""
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(ROOT / "tests" / "integration"))

try:
    import dkim
    import helpers as H
except ImportError:
    if sys.executable != "/usr/bin/python3" and os.path.exists("/usr/bin/python3"):
        os.execv("/usr/bin/python3", ["/usr/bin/python3", str(Path(__file__).resolve())]
                 + sys.argv[1:])
    sys.stderr.write("profiles.py: needs python3-aiosmtpd and python3-dkim (scripts/deps.sh)\n")
    print("queue-profiles: 0 passed, 1 failed")
    sys.exit(2)

from pgserver import PgServer  # noqa: E402

BIN = os.environ.get("SCALR_EMAIL_BIN", str(ROOT / "build/scalr-email"))
if not os.path.isabs(BIN):
    BIN = str(ROOT / BIN)

TENANTS = {"acme": "acme.example", "globex": "globex.example"}
WORK = ["work", "--drain", "--lease", "2s", "--backoff-base", "100ms"]


class World:
    """The two tenants' servers, keys and profile files, shared by the cases."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="se-qprof-")
        self.pdir = os.path.join(self.dir, "profiles")
        os.mkdir(self.pdir)
        self.records = {}
        self.keys = {}
        self.servers = {}
        for name, domain in TENANTS.items():
            self.servers[name] = H.Server("plain", auth=("user-" + name, "pw-" + name)).start()
            path = os.path.join(self.dir, name + ".key")
            p = subprocess.run([BIN, "dkim", "keygen", "--domain", domain, "--selector", name,
                                "--type", "ed25519", "--out", path], capture_output=True,
                               text=True, env=H.base_env())
            assert p.returncode == 0, p.stderr
            rname, _, rest = p.stdout.strip().partition(" TXT ")
            self.records[rname.rstrip(".")] = "".join(re.findall(r'"([^"]*)"', rest))
            self.keys[name] = path
        self.closed_sock, self.closed_port = H.closed_port()

    def write_profile(self, name, **over):
        srv = self.servers[name]
        domain = TENANTS[name]
        v = {"SMTP_PORT": srv.port, "SMTP_USERNAME": "user-" + name,
             "SMTP_PASSWORD": "pw-" + name, "SMTP_FROM": "noreply@" + domain,
             "SMTP_ALLOWED_FROM_DOMAINS": domain, "SMTP_DKIM_DOMAIN": domain,
             "SMTP_DKIM_SELECTOR": name, "SMTP_DKIM_KEY_FILE": self.keys[name]}
        v.update(over)
        with open(os.path.join(self.pdir, name + ".env"), "w") as f:
            for k, val in v.items():
                if val is not None:
                    f.write("%s=%s\n" % (k, val))

    def reset(self):
        for name in TENANTS:
            self.write_profile(name)
            self.servers[name].rec.reset()

    def env(self, url, **extra):
        # The platform: host and plaintext (loopback); its own port refuses,
        # so a message sent without its profile would fail visibly.
        e = H.base_env(SMTP_HOST="127.0.0.1", SMTP_USE_TLS="false", SMTP_PORT=self.closed_port,
                       SMTP_FROM="platform@example.org", SCALR_EMAIL_PROFILES=self.pdir,
                       SCALR_EMAIL_QUEUE=url)
        for k in [k for k in e if k.startswith("SCALR_EMAIL_QUEUE_RATE")]:
            del e[k]
        e.update({k: str(v) for k, v in extra.items()})
        return e

    def dkimpy(self, msg):
        def dns(name, timeout=5):
            v = self.records.get(name.decode().rstrip("."))
            return v.encode() if v else None
        try:
            return bool(dkim.verify(msg, dnsfunc=dns))
        except dkim.DKIMException:
            return False

    def stop(self):
        for srv in self.servers.values():
            srv.stop()
        self.closed_sock.close()
        shutil.rmtree(self.dir, True)


def q(e, *args, inp=None, check=True, timeout=120):
    p = subprocess.run([BIN, "queue"] + list(args), env=e, input=inp, capture_output=True,
                       timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError("queue %s: exit %d: %s %s" % (" ".join(args), p.returncode,
                                                           p.stdout.decode(), p.stderr.decode()))
    return p


def add(e, *args, **kw):
    p = q(e, "add", "--to", kw.get("to", "rcpt@example.net"), "--subject",
          kw.get("subject", "s"), "--body", "b", *args)
    return int(p.stdout)


def jsonl(e, lines, *args, check=True):
    text = "".join(json.dumps(x) + "\n" for x in lines)
    p = q(e, "add", "--jsonl", "-", *args, inp=text.encode(), check=check)
    return p, [json.loads(x) for x in p.stdout.decode().splitlines()]


def items(e):
    return [json.loads(x) for x in q(e, "list", "--json").stdout.decode().splitlines()]


def status(e):
    return json.loads(q(e, "status", "--json").stdout)


def subject(m):
    return re.search(rb"(?m)^Subject: (.*?)\r$", m.data).group(1).decode()


# ---- cases; each gets (world, url) with an empty queue ------------------------------


def case_two_tenants_interleaved_each_to_its_own_server(w, url):
    e = w.env(url)
    errors = []

    def adder(i):
        name = ("acme", "globex")[i % 2]
        for k in range(4):
            p = q(e, "add", "--profile", name, "--to", "r%d-%d@example.net" % (i, k),
                  "--subject", "%s-%d-%d" % (name, i, k), "--body", "hello", check=False)
            if p.returncode != 0:
                errors.append(p.stderr.decode())
    threads = [threading.Thread(target=adder, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    # meanwhile a file of lines, each naming its profile
    lines = [{"to": ["l%d@example.net" % i], "subject": "%s-line-%d" % (n, i), "body": "x",
              "profile": n} for i, n in enumerate(["acme", "globex"] * 4)]
    _, res = jsonl(e, lines)
    for t in threads:
        t.join(120)
    assert not errors, errors
    assert all("id" in r for r in res), res
    rows = items(e)
    assert len(rows) == 32, len(rows)
    for it in rows:
        assert it["profile"] in TENANTS and it["tenant"] == it["profile"], it
    q(e, *WORK, "--connections", "4")
    c = status(e)["counts"]
    assert c["sent"] == 32 and c["queued"] == 0, c
    for name, domain in TENANTS.items():
        msgs = w.servers[name].messages
        assert len(msgs) == 16, (name, len(msgs))
        mids = [re.search(rb"(?mi)^Message-ID: (.*?)\r$", m.data).group(1) for m in msgs]
        assert len(set(mids)) == 16, "each exactly once"
        for m in msgs:
            assert subject(m).startswith(name + "-"), (name, subject(m))
            assert m.login == ("user-" + name).encode(), m.login
            assert m.mail_from == "noreply@" + domain, m.mail_from
            assert ("d=%s;" % domain).encode() in re.sub(rb"\s+", b"", m.data)
            assert w.dkimpy(m.data), "dkimpy verifies %s's signature" % name


def case_refused_at_enqueue_stores_nothing(w, url):
    e = w.env(url)
    # a From outside the profile's domains: 65
    p = q(e, "add", "--profile", "acme", "--from", "ceo@globex.example", "--to",
          "r@example.net", "--subject", "s", "--body", "b", check=False)
    assert p.returncode == 65 and b"outside the allowed domains" in p.stderr, p
    assert len(p.stderr.decode().strip().splitlines()) == 1
    # the profile's key is missing: 78
    w.write_profile("globex", SMTP_DKIM_KEY_FILE=os.path.join(w.dir, "missing.key"))
    p = q(e, "add", "--profile", "globex", "--to", "r@example.net", "--subject", "s", "--body",
          "b", check=False)
    assert p.returncode == 78 and b"missing.key" in p.stderr, p
    # no such profile, or a name that is a path: 78
    for name in ("nobody", "../etc/passwd"):
        p = q(e, "add", "--profile", name, "--to", "r@example.net", "--subject", "s", "--body",
              "b", check=False)
        assert p.returncode == 78, (name, p)
    # a tenant that is not the profile: 64
    p = q(e, "add", "--profile", "acme", "--tenant", "globex", "--to", "r@example.net",
          "--subject", "s", "--body", "b", check=False)
    assert p.returncode == 64 and b"tenant is the profile" in p.stderr, p
    # the same, per line: each line refused with its reason, nothing stored
    lines = [{"to": ["a@example.net"], "subject": "s", "body": "b", "profile": "acme",
              "sender": "x@evil.example"},
             {"to": ["a@example.net"], "subject": "s", "body": "b", "profile": "globex"},
             {"to": ["a@example.net"], "subject": "s", "body": "b", "profile": "nobody"}]
    p, res = jsonl(e, lines, check=False)
    assert p.returncode == 65, p
    assert [r.get("code") for r in res] == ["EINVAL", "ECONFIG", "ECONFIG"], res
    assert "outside the allowed domains" in res[0]["error"], res
    assert sum(status(e)["counts"].values()) == 0
    # send-batch takes the line with its profile too, and refuses it the same way
    # (never sent with the platform's account in its stead)
    rc, out, err = H.run_cli(["send-batch", "-"], e, input=json.dumps(lines[1]) + "\n")
    assert rc == 78 and "missing.key" in out, (rc, out, err)
    for srv in w.servers.values():
        assert srv.messages == []


def case_fairness_holds_with_profiles(w, url):
    e = w.env(url)
    lines = [{"to": ["a%d@example.net" % i], "subject": "acme-%d" % i, "body": "x"}
             for i in range(300)]
    jsonl(e, lines, "--profile", "acme")
    jsonl(e, [{"to": ["b%d@example.net" % i], "subject": "globex-%d" % i, "body": "x"}
              for i in range(10)], "--profile", "globex")
    p = q(e, *WORK, "--json", timeout=300)
    prof = {it["id"]: it["profile"] for it in items(e)}
    sent = [prof[ev["id"]] for ev in map(json.loads, p.stdout.decode().splitlines())
            if ev["outcome"] == "sent"]
    assert len(sent) == 310, len(sent)
    last_b = max(i for i, t in enumerate(sent) if t == "globex")
    a_before = sum(1 for t in sent[:last_b] if t == "acme")
    # round-robin per tenant: B's 10 go out among the first few dozen
    assert a_before <= 40, (a_before, sent[:60])
    assert len(w.servers["globex"].messages) == 10
    assert len(w.servers["acme"].messages) == 300


def case_per_profile_rate(w, url):
    """acme at 2 messages a second, globex unlimited: globex's messages are all
    sent while acme still has queued ones, which were never counted as tries."""
    w.write_profile("acme", SCALR_EMAIL_QUEUE_RATE="2")
    e = w.env(url)
    jsonl(e, [{"to": ["a%d@example.net" % i], "subject": "acme-%d" % i, "body": "x"}
              for i in range(60)], "--profile", "acme")
    jsonl(e, [{"to": ["b%d@example.net" % i], "subject": "globex-%d" % i, "body": "x"}
              for i in range(20)], "--profile", "globex")
    wk = subprocess.Popen([BIN, "queue", "work", "--connections", "2", "--lease", "5s",
                           "--json"], env=e, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert w.servers["globex"].rec.wait_messages(20, timeout=120), "globex all sent"
        rows = items(e)
    finally:
        wk.send_signal(signal.SIGTERM)
        out, err = wk.communicate(timeout=60)
    assert wk.returncode == 0, (wk.returncode, err)
    acme_waiting = [it for it in rows if it["profile"] == "acme" and it["state"] != "sent"]
    assert len(acme_waiting) >= 20, len(acme_waiting)
    # at most one claim per connection (2 x 4 rows) is leased: the slow
    # tenant's rows wait in the queue, not in a lane
    assert sum(1 for it in rows if it["state"] == "leased") <= 8, rows
    for it in items(e):
        if it["profile"] == "acme" and it["state"] == "queued":
            assert it["attempts"] == 0, it
    events = [json.loads(x) for x in out.decode().splitlines()]
    assert all(ev["outcome"] in ("sent", "released") for ev in events), events
    assert "deferred" not in out.decode()
    c = status(e)["counts"]
    assert c["leased"] == 0, c


def case_auth_refused_holds_only_that_tenant(w, url):
    w.write_profile("globex", SMTP_PASSWORD="wrong-secret")
    e = w.env(url)
    for i in range(5):
        add(e, "--profile", "acme", subject="acme-%d" % i)
        add(e, "--profile", "globex", subject="globex-%d" % i)
    # --drain ends: what is left belongs to a held profile
    q(e, *WORK, "--connections", "2", timeout=120)
    assert len(w.servers["acme"].messages) == 5
    assert w.servers["globex"].messages == []
    st = status(e)
    assert st["counts"]["sent"] == 5 and st["counts"]["queued"] == 5, st
    held = [p for p in st["profiles"] if p["held"]]
    assert [p["profile"] for p in held] == ["globex"], st
    assert not st["providers"], "the platform's provider is not held: %r" % st
    text = q(e, "status").stdout.decode()
    assert "HELD profile globex" in text and "wrong-secret" not in text, text
    for it in items(e):
        if it["profile"] == "globex":
            assert it["state"] == "queued" and it["attempts"] == 0, it
    # fixed and released: globex's messages go
    w.write_profile("globex")
    p = q(e, "release", "--profile", "globex")
    assert b"globex" in p.stdout
    p = q(e, "release", "--profile", "globex", check=False)
    assert p.returncode == 66, p  # neither held nor paused any more
    q(e, *WORK)
    assert len(w.servers["globex"].messages) == 5
    assert all(w.dkimpy(m.data) for m in w.servers["globex"].messages)
    assert status(e)["profiles"] == []


def wait_for(what, fn, tries=600):
    """Poll fn() until it returns something true (a state, not a time limit on
    the work: the cap only keeps a broken build from hanging the suite)."""
    for _ in range(tries):
        got = fn()
        if got:
            return got
        time.sleep(0.1)
    raise AssertionError("never happened: " + what)


def case_release_reaches_a_running_worker(w, url):
    """A running worker holds a tenant whose password is wrong; once its file is
    fixed and it is released, the same worker sends its mail with the new
    password (the held profile's client is made again)."""
    w.write_profile("globex", SMTP_PASSWORD="wrong-secret")
    e = w.env(url)
    for i in range(3):
        add(e, "--profile", "globex", subject="globex-%d" % i)
    wk = subprocess.Popen([BIN, "queue", "work", "--connections", "2", "--lease", "5s"], env=e,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_for("globex held", lambda: [p for p in status(e)["profiles"] if p["held"]])
        w.write_profile("globex")
        q(e, "release", "--profile", "globex")
        assert w.servers["globex"].rec.wait_messages(3, timeout=60), "sent after the release"
    finally:
        wk.send_signal(signal.SIGTERM)
        out, err = wk.communicate(timeout=60)
    assert wk.returncode == 0, err
    assert all(m.login == b"user-globex" for m in w.servers["globex"].messages)
    assert status(e)["counts"]["sent"] == 3


def case_throttling_pauses_only_that_tenant(w, url):
    w.servers["globex"].handler.mail_reply = "421 4.7.0 slow down"
    try:
        e = w.env(url)
        for i in range(3):
            add(e, "--profile", "globex", subject="globex-%d" % i)
            add(e, "--profile", "acme", subject="acme-%d" % i)
        wk = subprocess.Popen([BIN, "queue", "work", "--lease", "5s", "--backoff-base", "20s",
                               "--json"], env=e, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            assert w.servers["acme"].rec.wait_messages(3, timeout=60), "acme keeps sending"
            st = status(e)
        finally:
            wk.send_signal(signal.SIGTERM)
            wk.communicate(timeout=60)
        paused = [p for p in st["profiles"] if not p["held"]]
        assert [p["profile"] for p in paused] == ["globex"], st
        assert not st["providers"], st
        assert w.servers["globex"].messages == []
        q(e, "release", "--all")
        assert status(e)["profiles"] == []
    finally:
        w.servers["globex"].handler.mail_reply = None


def case_bulk_without_unsubscribe_warned_in_status(w, url):
    e = w.env(url)
    for i in range(3):
        add(e, "--profile", "acme", "--priority", "bulk", subject="news-%d" % i)
    for i in range(2):
        add(e, "--profile", "acme", "--priority", "bulk", "--unsubscribe",
            "https://acme.example/u/%d" % i)
    add(e, "--profile", "acme", subject="receipt")           # transactional: no warning
    add(e, "--profile", "globex", "--priority", "bulk", "--unsubscribe",
        "https://globex.example/u")
    jsonl(e, [{"to": ["x@example.net"], "subject": "n", "body": "b"}], "--tenant", "t1",
          "--priority", "bulk")
    st = status(e)
    got = {x["tenant"]: x["count"] for x in st["bulk_without_unsubscribe"]}
    assert got == {"acme": 3, "t1": 1}, st
    text = q(e, "status").stdout.decode()
    assert "warning: tenant acme: 3 bulk messages without List-Unsubscribe" in text, text
    assert "warning: tenant t1: 1 bulk message without" in text, text
    assert "globex" not in text, text


def case_show_and_list_show_the_profile(w, url):
    e = w.env(url)
    i = add(e, "--profile", "globex")
    it = json.loads(q(e, "show", str(i), "--json").stdout)
    assert it["profile"] == "globex" and it["tenant"] == "globex", it
    assert it["mail_from"] == "noreply@globex.example", it
    assert "profile:      globex" in q(e, "show", str(i)).stdout.decode()
    j = add(e)                                          # no profile: as before
    it = json.loads(q(e, "show", str(j), "--json").stdout)
    assert it["profile"] == "" and it["mail_from"] == "platform@example.org", it


def case_schema_1_upgraded_in_place(w, url):
    """A queue made by a version-1 scalr-email (one queued row) is upgraded by
    the next command: the row keeps its data, profiles work."""
    e = w.env(url)
    old = add(e, subject="from-v1")
    downgrade = ["ALTER TABLE scalr_email_queue DROP COLUMN profile",
                 "ALTER TABLE scalr_email_queue DROP COLUMN has_unsubscribe",
                 "DROP TABLE scalr_email_profiles",
                 "UPDATE scalr_email_meta SET value = '1' WHERE key = 'schema_version'"]
    sql(url, downgrade)
    assert sql(url, ["SELECT value FROM scalr_email_meta WHERE key = 'schema_version'"]) == "1"
    i = add(e, "--profile", "acme")
    assert sql(url, ["SELECT value FROM scalr_email_meta WHERE key = 'schema_version'"]) == "2"
    rows = {it["id"]: it for it in items(e)}
    assert rows[old]["profile"] == "" and rows[old]["state"] == "queued", rows
    assert rows[i]["profile"] == "acme", rows
    # an old row has no unsubscribe flag: never warned about
    assert status(e)["bulk_without_unsubscribe"] == []
    w.servers["acme"].rec.reset()
    p = q(e, *WORK, "--max-attempts", "1", check=False)
    assert len(w.servers["acme"].messages) == 1, p
    # the v1 row goes to the platform's (refusing) port: retried, not lost
    assert json.loads(q(e, "show", str(old), "--json").stdout)["state"] != "sent"


def sql(url, statements):
    """Run statements on the queue's database; the last one's first cell."""
    out = None
    if url.startswith("sqlite:"):
        db = sqlite3.connect(url[7:])
        try:
            for s in statements:
                r = db.execute(s).fetchone()
                out = r[0] if r else None
            db.commit()
        finally:
            db.close()
        return out
    psql = sorted(Path("/usr/lib/postgresql").glob("*/bin/psql"))[-1]
    for s in statements:
        p = subprocess.run([str(psql), url, "-qAt", "-v", "ON_ERROR_STOP=1", "-c", s],
                           capture_output=True, text=True, check=True)
        out = p.stdout.strip() or None
    return out


def wipe(url):
    if url.startswith("sqlite:"):
        for suffix in ("", "-wal", "-shm"):
            try:
                os.unlink(url[7:] + suffix)
            except FileNotFoundError:
                pass
    else:
        q(dict(os.environ, SCALR_EMAIL_QUEUE=url), "status")   # tables, version 2
        sql(url, ["TRUNCATE scalr_email_queue, scalr_email_attempts, scalr_email_workers, "
                  "scalr_email_inflight, scalr_email_providers, scalr_email_profiles"])


CASES = [v for k, v in sorted(globals().items()) if k.startswith("case_")]


def main():
    only = sys.argv[1:]
    passed = failed = skipped = 0
    tmp = tempfile.mkdtemp(prefix="se-qprof-q-")
    stores = [("sqlite", "sqlite:" + os.path.join(tmp, "q.db"))]
    pg = None
    world = None
    try:
        world = World()
        try:
            pg = PgServer()
            pg.start()
            stores.append(("pg", pg.url))
        except Exception as ex:  # counted as a failure, never skipped silently
            print("FAIL pg: PostgreSQL did not start: %s" % ex)
            failed += 1
        for store, url in stores:
            for case in CASES:
                name = "%s[%s]" % (case.__name__[5:], store)
                if only and not any(o in name for o in only):
                    continue
                t0 = time.time()
                try:
                    world.reset()
                    wipe(url)
                    case(world, url)
                    passed += 1
                    print("ok   %s (%.1f s)" % (name, time.time() - t0))
                except Exception:
                    failed += 1
                    print("FAIL %s" % name)
                    traceback.print_exc()
                sys.stdout.flush()
    except Exception:
        failed += 1
        print("FAIL setup")
        traceback.print_exc()
    finally:
        if world:
            world.stop()
        if pg:
            pg.stop()
        shutil.rmtree(tmp, True)
    tail = ", %d skipped" % skipped if skipped else ""
    print("queue-profiles: %d passed, %d failed%s" % (passed, failed, tail))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
