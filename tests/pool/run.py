"""End-to-end tests of the connection pool, send-batch and streaming.

    /usr/bin/python3 tests/pool/run.py

Runs build/scalr-email (or $SCALR_EMAIL_BIN) and a small driver built
against build/libscalr-email.a against servers on 127.0.0.1 started and
stopped by each test.  Ends with "pool: N passed, N failed"."""
import json
import os
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
from smtpserver import Server  # noqa: E402

BIN = os.environ.get("SCALR_EMAIL_BIN", os.path.join(ROOT, "build", "scalr-email"))
LIB = os.path.join(os.path.dirname(BIN), "libscalr-email.a")
TMP = tempfile.mkdtemp(prefix="scalr-pool-")
DRIVER = os.path.join(TMP, "driver")


def build_driver():
    cc = os.environ.get("CC", "cc")
    # A sanitizer build's library needs the sanitizers in the driver too.
    san = ["-fsanitize=address,undefined"] if "san" in os.path.basename(os.path.dirname(LIB)) else []
    subprocess.run([cc] + san + ["-std=c11", "-D_DEFAULT_SOURCE", "-D_POSIX_C_SOURCE=200809L", "-O1",
                    "-I" + os.path.join(ROOT, "include"), os.path.join(HERE, "driver.c"),
                    LIB, "-lssl", "-lcrypto", "-lidn2", "-lcurl", "-ljansson", "-lpthread", "-lresolv", "-o", DRIVER], check=True)


def env_for(srv, **extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMTP_")}
    env.update(SMTP_HOST="127.0.0.1", SMTP_PORT=str(srv.port), SMTP_USE_TLS="false",
               SMTP_FROM="sender@example.com", SMTP_TIMEOUT="5")
    env.update({k: str(v) for k, v in extra.items()})
    return env


def peak_rss_kb(p, timeout=120):
    """The peak RSS (VmHWM) of a running child, sampled until it exits.  Not
    ru_maxrss: a child spawned from this process starts with this process's
    peak as its own (the kernel keeps the high-water mark across exec)."""
    peak, end = 0, time.monotonic() + timeout
    while p.poll() is None and time.monotonic() < end:
        try:
            with open("/proc/%d/status" % p.pid) as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        peak = max(peak, int(line.split()[1]))
        except (OSError, ValueError):
            pass
        time.sleep(0.01)
    p.wait(timeout=max(1, end - time.monotonic()))
    return peak


def wait_for(cond, secs):
    """Poll cond until it holds or secs pass (a deadline, not a threshold)."""
    end = time.monotonic() + secs
    while not cond() and time.monotonic() < end:
        time.sleep(0.02)
    return cond()


class Base(unittest.TestCase):
    server_args = {}

    def setUp(self):
        self.srv = Server(**self.server_args)

    def tearDown(self):
        self.srv.stop()

    def driver(self, *args, timeout=120, **env):
        p = subprocess.run([DRIVER] + [str(a) for a in args], env=env_for(self.srv, **env),
                           capture_output=True, text=True, timeout=timeout)
        rows = {}
        for line in p.stdout.splitlines():
            tag, code, smtp, msg = (line.split(" ", 3) + ["", "", ""])[:4]
            rows[tag] = (int(code), int(smtp), msg)
        return p.returncode, rows, p.stderr

    def batch(self, lines, *args, **env):
        path = os.path.join(TMP, "batch-%s.jsonl" % self.id().split(".")[-1])
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        p = subprocess.run([BIN, "send-batch"] + list(args) + [path], env=env_for(self.srv, **env),
                           capture_output=True, text=True, timeout=120)
        results = [json.loads(l) for l in p.stdout.splitlines()]
        return p.returncode, sorted(results, key=lambda r: r["line"]), p.stderr

    def count_tag(self, tag, where):
        needle = ("id=%s\r\n" % tag).encode()
        if where == "messages":
            return sum(1 for m in self.srv.messages if m[3].endswith(needle))
        return sum(1 for p in self.srv.payloads if p.endswith(needle))

    def conn_of(self, tag):
        return [m[0] for m in self.srv.messages if m[3].endswith(("id=%s\r\n" % tag).encode())]


class Pool(Base):
    def test_pool_warm_sends_share_one_connection(self):
        rc, rows, err = self.driver("seq", 5)
        self.assertEqual(rc, 0, err)
        self.assertEqual(len(self.srv.messages), 5)
        self.assertEqual(self.srv.connections, 1)
        self.assertEqual(self.srv.quits, 1)  # at exit

    def test_pool_size_zero_opens_and_quits_each_time(self):
        rc, rows, err = self.driver("seq", 3, SMTP_POOL_SIZE=0)
        self.assertEqual(rc, 0, err)
        self.assertEqual(self.srv.connections, 3)
        # QUIT is written but its reply not awaited: the last may still be
        # on its way when the driver exits
        wait_for(lambda: self.srv.quits == 3, 5)
        self.assertEqual(self.srv.quits, 3)
        self.assertEqual(len(self.srv.messages), 3)

    def test_pool_idle_expiry_reconnects(self):
        rc, rows, err = self.driver("seq", 2, 800, SMTP_POOL_IDLE="0.3")
        self.assertEqual(rc, 0, err)
        self.assertEqual(self.srv.connections, 2)
        self.assertEqual(self.srv.quits, 2)  # the expired one, then at exit

    def test_pool_bad_settings_are_config_errors(self):
        rc, rows, err = self.driver("seq", 1, SMTP_POOL_SIZE="two")
        self.assertEqual(rows["seq-0"][0], 2)  # ECONFIG
        self.assertIn("SMTP_POOL_SIZE", rows["seq-0"][2])
        rc, rows, err = self.driver("seq", 1, SMTP_POOL_IDLE="-1")
        self.assertEqual(rows["seq-0"][0], 2)
        self.assertEqual(self.srv.connections, 0)

    def test_pool_no_reuse_after_timeout(self):
        self.srv.final_delay[1] = 2.5
        rc, rows, err = self.driver("seq", 2, SMTP_TIMEOUT=1)
        self.assertEqual(rows["seq-0"][0], 13)  # ETIMEOUT, not retried: handed over
        self.assertEqual(rows["seq-1"][0], 0)
        self.assertEqual(self.srv.connections, 2)
        self.assertEqual(self.srv.mail_count, 2)
        self.assertEqual(self.conn_of("seq-1"), [2])
        # nothing more was sent on the timed-out connection
        self.assertFalse([l for n, l in self.srv.commands if n == 1 and l.startswith("MAIL")][1:])

    def test_pool_fork_child_uses_its_own_connection(self):
        rc, rows, err = self.driver("fork")
        self.assertEqual(rc, 0, err + repr(rows))
        self.assertEqual(self.srv.connections, 2)
        self.assertEqual(self.conn_of("parent-1"), [1])
        self.assertEqual(self.conn_of("parent-2"), [1])
        self.assertEqual(self.conn_of("child-1"), [2])
        conn1 = [l for n, l in self.srv.commands if n == 1]
        # the child neither QUIT nor wrote anything on the parent's session
        self.assertEqual([l.split(":")[0] for l in conn1 if not l.startswith("EHLO")],
                         ["MAIL FROM", "RCPT TO", "DATA", "MAIL FROM", "RCPT TO", "DATA", "QUIT"])


class RoundTrips(Base):
    def test_pool_rtt_pipelining_only_two_per_message(self):
        rc, rows, err = self.driver("seq", 3)
        self.assertEqual(rc, 0, err)
        self.assertEqual(self.srv.tx_flights, [2, 2, 2])


class RoundTripsChunking(Base):
    server_args = {"chunking": True}

    def test_pool_rtt_chunking_one_per_message(self):
        rc, rows, err = self.driver("seq", 3)
        self.assertEqual(rc, 0, err)
        self.assertEqual(self.srv.tx_flights, [1, 1, 1])
        self.assertEqual(self.srv.connections, 1)

    def test_pool_chunking_drop_after_mail_is_not_retried(self):
        # MAIL, RCPT, BDAT LAST and the payload went in one flight: handed over.
        self.srv.faults[2] = "after_mail"
        rc, rows, err = self.driver("seq", 2)
        self.assertEqual(rows["seq-1"][0], 15)  # EIO
        self.assertEqual(self.srv.mail_count, 2)
        self.assertEqual(self.srv.connections, 1)


class Faults(Base):
    """Message 2 goes over the reused connection; the server fails it."""

    def run_fault(self, fault):
        self.srv.faults[2] = fault
        return self.driver("seq", 2)

    def assert_retried(self, rows):
        self.assertEqual(rows["seq-0"][0], 0)
        self.assertEqual(rows["seq-1"][0], 0, rows)
        self.assertEqual(self.count_tag("seq-1", "messages"), 1)
        self.assertEqual(self.count_tag("seq-1", "payloads"), 1)
        self.assertEqual(self.srv.connections, 2)
        self.assertEqual(self.conn_of("seq-1"), [2])

    def assert_not_retried(self, rows, stored):
        self.assertEqual(rows["seq-1"][0], 15, rows)  # EIO: outcome unknown
        self.assertEqual(self.count_tag("seq-1", "payloads"), 1)
        self.assertEqual(self.count_tag("seq-1", "messages"), stored)
        self.assertEqual(self.srv.mail_count, 2)

    def test_pool_drop_after_mail_retried_once(self):
        self.assert_retried(self.run_fault("after_mail")[1])

    def test_pool_drop_after_rcpt_retried_once(self):
        self.assert_retried(self.run_fault("after_rcpt")[1])

    def test_pool_drop_after_data_retried_once(self):
        self.assert_retried(self.run_fault("after_data")[1])

    def test_pool_drop_after_payload_never_resent(self):
        self.assert_not_retried(self.run_fault("after_payload")[1], 0)

    def test_pool_drop_before_final_reply_never_resent(self):
        self.assert_not_retried(self.run_fault("before_final")[1], 1)

    def test_pool_421_on_reused_connection_retried(self):
        self.srv.mail_replies[2] = "421 4.3.2 closing"
        rc, rows, err = self.driver("seq", 2)
        self.assert_retried(rows)


class FaultsNoPipelining(Faults):
    server_args = {"pipelining": False}


class Threads(Base):
    def test_pool_many_threads_each_message_once(self):
        rc, rows, err = self.driver("threads", 16, 20)
        self.assertEqual(rc, 0, err)
        self.assertEqual(len(rows), 320)
        self.assertTrue(all(r[0] == 0 for r in rows.values()))
        self.assertEqual(len(self.srv.messages), 320)
        for t in range(16):
            for m in range(20):
                self.assertEqual(self.count_tag("t%d-m%d" % (t, m), "messages"), 1)
        # reuse happened: far fewer connections than messages
        self.assertLessEqual(self.srv.connections, 64)


def msg(to, tag, **kw):
    d = {"to": to, "subject": tag, "body": "id=%s\n" % tag}
    d.update(kw)
    return json.dumps(d)


class StaleConnections(Base):
    """A pooled connection idle past SMTP_POOL_PROBE is probed with NOOP
    before anything of the message is written."""

    def stale(self, fault):
        self.srv.idle_fault, self.srv.idle_after = fault, 0.6
        t0 = time.monotonic()
        rc, rows, err = self.driver("seq", 2, 900, SMTP_POOL_PROBE="0.5")
        took = time.monotonic() - t0
        self.assertEqual(rc, 0, err)
        self.assertEqual(self.srv.idle_faults, 1)
        self.assertEqual(self.srv.connections, 2)
        self.assertEqual(sorted(m[0] for m in self.srv.messages), [1, 2])
        # the first connection saw the probe and nothing of the second message
        first = [l for n, l in self.srv.commands if n == 1]
        self.assertEqual(first[-1], "NOOP", first)
        self.assertEqual(sum(1 for l in first if l.startswith("MAIL")), 1, first)
        return took

    def test_probe_times_out_on_a_silently_dropped_connection(self):
        took = self.stale("silent")
        # the probe waits a quarter of SMTP_TIMEOUT (5 s): well below it
        self.assertLess(took, 0.9 + 5, "the probe must give up before the send timeout")

    def test_probe_sees_a_reset_connection(self):
        self.stale("reset")

    def test_no_probe_after_a_short_idle(self):
        rc, rows, err = self.driver("seq", 3)
        self.assertEqual(rc, 0, err)
        self.assertEqual(self.srv.connections, 1)
        self.assertNotIn("NOOP", [l for _, l in self.srv.commands])

    def test_probe_on_a_live_connection_reuses_it(self):
        rc, rows, err = self.driver("seq", 2, 700, SMTP_POOL_PROBE="0.5")
        self.assertEqual(rc, 0, err)
        self.assertEqual(self.srv.connections, 1)
        cmds = [l for _, l in self.srv.commands]
        self.assertEqual(cmds.count("NOOP"), 1, cmds)
        self.assertTrue(cmds[cmds.index("NOOP") + 1].startswith("MAIL"), cmds)


class PoolMax(Base):
    def test_pool_max_caps_connections_per_destination(self):
        rc, rows, err = self.driver("threads", 6, 4, SMTP_POOL_MAX=2)
        self.assertEqual(rc, 0, err)
        self.assertEqual(len(self.srv.messages), 24)
        self.assertLessEqual(self.srv.max_active, 2)
        self.assertLessEqual(self.srv.connections, 2)

    def test_without_pool_max_threads_open_their_own(self):
        # the same load without the cap opens more: the cap is what held it
        self.srv.final_delay = {i: 0.3 for i in range(1, 7)}
        rc, rows, err = self.driver("threads", 6, 1)
        self.assertEqual(rc, 0, err)
        self.assertGreater(self.srv.max_active, 2)

    def test_pool_max_must_be_a_number(self):
        rc, rows, err = self.driver("seq", 1, SMTP_POOL_MAX="lots")
        self.assertNotEqual(rc, 0)
        self.assertIn("SMTP_POOL_MAX", "".join(r[2] for r in rows.values()) + err)


class Batch(Base):
    def test_batch_results_per_line_and_malformed_lines(self):
        lines = [msg("a@example.com", "b1"), "{not json", "",
                 msg("b@example.com", "b2", colour="red"),
                 json.dumps({"subject": "no rcpt"}), msg(["c@example.com", "d@example.com"], "b3",
                                                        headers={"X-Tag": "b3"})]
        rc, res, err = self.batch(lines)
        self.assertEqual(rc, 65, err)  # EX_DATAERR: some lines malformed
        self.assertEqual([r["line"] for r in res], [1, 2, 4, 5, 6])
        self.assertEqual([r["ok"] for r in res], [True, False, False, False, True])
        self.assertEqual(res[0]["smtp_code"], 250)
        self.assertEqual(res[0]["enhanced"], "2.0.0")
        self.assertTrue(res[0]["message_id"].startswith("<"))
        self.assertEqual(res[1]["code"], "EINVAL")
        self.assertIn("invalid JSON", res[1]["error"])
        self.assertIn("unknown field 'colour'", res[2]["error"])
        self.assertIn("no recipient", res[3]["error"])
        self.assertEqual(self.count_tag("b2", "payloads"), 0)
        self.assertEqual(len(self.srv.messages), 2)
        self.assertEqual(self.srv.messages[1][2], ["c@example.com", "d@example.com"])
        self.assertEqual(err, "")  # no progress bar when stderr is not a terminal

    def test_batch_550_does_not_stop_the_others(self):
        self.srv.rcpt_replies["bad@example.com"] = "550 5.1.1 no such user"
        rc, res, err = self.batch([msg("a@example.com", "x1"), msg("bad@example.com", "x2"),
                                   msg("c@example.com", "x3")])
        self.assertEqual(rc, 69, err)  # EX_UNAVAILABLE
        self.assertEqual([r["ok"] for r in res], [True, False, True])
        self.assertEqual(res[1]["smtp_code"], 550)
        self.assertEqual(res[1]["enhanced"], "5.1.1")
        self.assertEqual(res[1]["code"], "EREJECTED")
        self.assertEqual(len(self.srv.messages), 2)
        self.assertEqual(self.srv.connections, 1)

    def test_batch_421_mid_batch_retried_on_another_connection(self):
        self.srv.mail_replies[2] = "421 4.3.2 try later"
        rc, res, err = self.batch([msg("a@example.com", "y%d" % i) for i in range(4)])
        self.assertEqual(rc, 0, err + repr(res))
        self.assertTrue(all(r["ok"] for r in res))
        for i in range(4):
            self.assertEqual(self.count_tag("y%d" % i, "messages"), 1)
        self.assertEqual(self.srv.connections, 2)

    def test_batch_connection_lost_after_payload_not_retried(self):
        self.srv.faults[2] = "before_final"
        rc, res, err = self.batch([msg("a@example.com", "z%d" % i) for i in range(3)])
        self.assertEqual(rc, 74, err)  # EX_IOERR
        self.assertEqual([r["ok"] for r in res], [True, False, True])
        self.assertEqual(res[1]["code"], "EIO")
        self.assertEqual(self.count_tag("z1", "payloads"), 1)

    def test_batch_parallel_connections(self):
        rc, res, err = self.batch([msg("a@example.com", "p%d" % i) for i in range(40)],
                                  "--connections", "4")
        self.assertEqual(rc, 0, err)
        self.assertEqual(len(self.srv.messages), 40)
        self.assertEqual(self.srv.connections, 4)

    def test_batch_next_message_follows_end_of_data(self):
        # PIPELINING without CHUNKING: after the first, each message costs one
        # flight (its body, its end of data and the next MAIL/RCPT/DATA).
        rc, res, err = self.batch([msg("a@example.com", "q%d" % i) for i in range(10)])
        self.assertEqual(rc, 0, err)
        self.assertEqual(len(self.srv.messages), 10)
        self.assertEqual(self.srv.connections, 1)
        self.assertEqual(self.srv.session_flights[-1], 1 + 1 + 10)  # EHLO, MAIL, 10 bodies
        for i in range(10):
            self.assertEqual(self.count_tag("q%d" % i, "messages"), 1)

    def test_batch_queued_message_resent_only_when_not_handed_over(self):
        # Message 2 is stored but its final reply never comes; message 3 was
        # queued behind it (MAIL, RCPT, DATA only): 3 is sent again elsewhere,
        # 2 is not.
        self.srv.faults[2] = "before_final"
        rc, res, err = self.batch([msg("a@example.com", "w%d" % i) for i in range(4)])
        self.assertEqual(rc, 74, err)
        self.assertEqual([r["ok"] for r in res], [True, False, True, True])
        self.assertEqual(res[1]["code"], "EIO")
        for i in range(4):
            self.assertEqual(self.count_tag("w%d" % i, "messages"), 1)
            self.assertEqual(self.count_tag("w%d" % i, "payloads"), 1)
        self.assertEqual(self.srv.connections, 2)

    def test_batch_rate_limit(self):
        t0 = time.monotonic()
        rc, res, err = self.batch([msg("a@example.com", "r%d" % i) for i in range(6)],
                                  "--rate", "5", "--connections", "3")
        elapsed = time.monotonic() - t0
        self.assertEqual(rc, 0, err)
        self.assertEqual(len(self.srv.messages), 6)
        # 6 starts at 5 per second need at least 1 s (a lower bound: never flaky)
        self.assertGreaterEqual(elapsed, 0.95)

    def test_batch_stdin_and_usage(self):
        p = subprocess.run([BIN, "send-batch", "-"], input=msg("a@example.com", "s1") + "\n",
                           env=env_for(self.srv), capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(json.loads(p.stdout)["line"], 1)
        p = subprocess.run([BIN, "send-batch", "--rate", "0", "-"], env=env_for(self.srv),
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 64)


class BatchFast(Base):
    server_args = {"grace": 0}  # replies at once: thousands of messages a second

    def test_batch_line_numbers_survive_a_long_stall(self):
        # One connection's greeting waits until the other has sent 4,200
        # messages: the message it holds must still be answered with its own
        # line, however far the batch has moved on meanwhile.
        self.srv.greeting_after[1] = 4200
        n = 4300
        rc, res, err = self.batch([msg("a@example.com", "f%d" % i) for i in range(n)],
                                  "--connections", "2", SMTP_TIMEOUT=60)
        self.assertEqual(rc, 0, err)
        self.assertEqual([r["line"] for r in res], list(range(1, n + 1)))
        self.assertTrue(all(r["ok"] for r in res))
        self.assertEqual(len(self.srv.messages), n)
        # each result names its own message: the queue id the server gave it
        ids = {m[3].rsplit(b"id=", 1)[1].strip().decode(): i + 1
               for i, m in enumerate(self.srv.messages)}
        for r in res:
            self.assertEqual(r["text"].split()[-1], "M%d" % ids["f%d" % (r["line"] - 1)], r)

    @unittest.skipIf("san" in os.path.basename(os.path.dirname(BIN)),
                     "sanitizer builds keep freed memory in quarantine")
    def test_batch_memory_does_not_grow_with_its_length(self):
        # Streams: ten times the lines, about the same peak RSS (10 MB at
        # both here; before streaming, 16 MB at 2,000 lines and 72 MB at
        # 20,000).
        body = "x" * 2000
        def peak_kb(n):
            path = os.path.join(TMP, "rss-%d.jsonl" % n)
            with open(path, "w") as f:
                for i in range(n):
                    f.write(json.dumps({"to": "a@example.com", "subject": "m%d" % i,
                                        "body": body}) + "\n")
            with open(os.devnull, "w") as out:
                p = subprocess.Popen([BIN, "send-batch", "--connections", "2", path],
                                     env=env_for(self.srv), stdout=out,
                                     stderr=subprocess.DEVNULL)
                peak = peak_rss_kb(p)
            self.assertEqual(p.returncode, 0)
            return peak
        small, big = peak_kb(2000), peak_kb(20000)
        self.assertEqual(len(self.srv.messages), 22000)
        self.assertLess(big, small + 8 * 1024, (small, big))


def tls_context():
    """A throw-away self-signed certificate for 127.0.0.1; the client
    trusts it through SSL_CERT_FILE."""
    import ssl
    cert, key = os.path.join(TMP, "cert.pem"), os.path.join(TMP, "key.pem")
    if not os.path.exists(cert):
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                        "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                        "-keyout", key, "-out", cert], check=True, capture_output=True)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    return ctx, cert


class ColdTls(unittest.TestCase):
    """A cold send over STARTTLS with AUTH: at most 8 round trips."""

    def test_pool_rtt_cold_starttls_auth_at_most_8(self):
        ctx, cert = tls_context()
        srv = Server(chunking=True, tls=ctx)
        try:
            env = env_for(srv, SMTP_USE_TLS="true", SMTP_USERNAME="u", SMTP_PASSWORD="secret-pw",
                          SSL_CERT_FILE=cert)
            p = subprocess.run([BIN, "send", "-v", "--to", "r@example.com", "--subject", "cold",
                                "--body", "hi"], env=env, capture_output=True, text=True,
                               timeout=60)
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertNotIn("secret-pw", p.stderr)
            # Server side: EHLO, STARTTLS, EHLO, AUTH, then MAIL..BDAT LAST in one.
            self.assertEqual(srv.session_flights, [5])
            self.assertEqual(srv.tx_flights, [1])
            # Client side: its own count, TCP connect, greeting and handshake included.
            notes = [l for l in p.stderr.splitlines() if "round trip" in l]
            session = [l for l in notes if l.startswith("*: session ready")]
            msg = [l for l in notes if "for this message" in l]
            self.assertEqual(len(session), 1, p.stderr)
            n_session = int(session[0].split("after ")[1].split()[0])
            n_msg = int(msg[0].split()[1])
            total = n_session + n_msg
            self.assertEqual(n_msg, 1)
            self.assertLessEqual(total, 8, p.stderr)
            # 2 (TCP connect, greeting) + 5 flights + 1 TLS 1.3 handshake: exactly 8
            self.assertEqual(2 + srv.session_flights[0] + 1, total)
        finally:
            srv.stop()


BIG = 50 * 1024 * 1024
# AddressSanitizer's shadow memory makes RSS meaningless there.
SANITIZED = "san" in os.path.basename(os.path.dirname(BIN))


def big_file():
    path = os.path.join(TMP, "big.bin")
    if not os.path.exists(path):
        with open(path, "wb") as f:
            f.write(os.urandom(BIG))
    return path


def attachment_of(raw):
    import email
    m = email.message_from_bytes(raw)
    for part in m.walk():
        if part.get_filename():
            return part.get_payload(decode=True)
    return None


def send_big(test, env):
    path = big_file()
    p = subprocess.run(["/usr/bin/time", "-v", BIN, "send", "--to", "r@example.com",
                        "--subject", "big", "--body", "attached", "--attach", path],
                       env=env, capture_output=True, text=True, timeout=600)
    test.assertEqual(p.returncode, 0, p.stderr[-2000:])
    rss = [int(l.split()[-1]) for l in p.stderr.splitlines() if "Maximum resident" in l][0]
    with open(path, "rb") as f:
        want = f.read()
    return rss, want


class Streaming(Base):
    server_args = {"chunking": True}

    def test_stream_50mb_chunking_byte_exact_low_rss(self):
        rss, want = send_big(self, env_for(self.srv, SMTP_TIMEOUT=60))
        self.assertEqual(len(self.srv.messages), 1)
        self.assertTrue(attachment_of(self.srv.messages[0][3]) == want)
        if not SANITIZED:
            self.assertLess(rss, 16 * 1024, "peak RSS %d KiB" % rss)
        bdats = [l for n, l in self.srv.commands if l.startswith("BDAT")]
        self.assertGreater(len(bdats), 100)  # sent in pieces
        self.assertTrue(bdats[-1].endswith("LAST"))


class StreamingAiosmtpd(unittest.TestCase):
    """The DATA path against aiosmtpd (no CHUNKING)."""

    def setUp(self):
        from aiosmtpd.controller import Controller

        class Handler:
            def __init__(self):
                self.envelopes = []

            async def handle_DATA(self, server, session, envelope):
                self.envelopes.append(envelope)
                return "250 2.0.0 Ok"

        import socket
        with socket.socket() as probe:  # a free port (Controller needs a number)
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.handler = Handler()
        self.ctl = Controller(self.handler, hostname="127.0.0.1", port=self.port,
                              server_kwargs={"data_size_limit": 200 * 1024 * 1024})
        self.ctl.start()

    def tearDown(self):
        self.ctl.stop()

    def env(self, **extra):
        class P:
            port = self.port
        return env_for(P, **extra)

    def test_stream_50mb_data_byte_exact_low_rss(self):
        rss, want = send_big(self, self.env(SMTP_TIMEOUT=120))
        self.assertEqual(len(self.handler.envelopes), 1)
        self.assertTrue(attachment_of(self.handler.envelopes[0].original_content) == want)
        if not SANITIZED:
            self.assertLess(rss, 16 * 1024, "peak RSS %d KiB" % rss)

    def test_pool_aiosmtpd_warm_sends_and_threads(self):
        p = subprocess.run([DRIVER, "threads", "8", "5"], env=self.env(), capture_output=True,
                           text=True, timeout=120)
        self.assertEqual(p.returncode, 0, p.stderr)
        subjects = sorted(e.original_content.split(b"Subject: ")[1].split(b"\r\n")[0]
                          for e in self.handler.envelopes)
        self.assertEqual(subjects, sorted(("t%d-m%d" % (t, m)).encode()
                                          for t in range(8) for m in range(5)))


def main():
    build_driver()
    suite = unittest.defaultTestLoader.loadTestsFromModule(sys.modules[__name__])
    if len(sys.argv) > 1:
        suite = unittest.defaultTestLoader.loadTestsFromNames(sys.argv[1:], sys.modules[__name__])
    res = unittest.TextTestRunner(verbosity=2, stream=sys.stdout).run(suite)
    bad = len(res.failures) + len(res.errors)
    skipped = len(res.skipped)
    print("pool: %d passed, %d failed%s" % (res.testsRun - bad - skipped, bad,
                                            ", %d skipped" % skipped if skipped else ""))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
