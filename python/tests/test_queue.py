"""scalr_email.enqueue(): rows in the durable queue (read back with sqlite3),
idempotency, refused input storing nothing, the transactional outbox with a
caller's sqlite3 connection (and psycopg on a private PostgreSQL when
available), and a worker delivering what was enqueued to an aiosmtpd sink."""
import datetime
import email
import email.policy
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import unittest

import scalr_email
from scalr_email import InvalidMessageError, NotConfiguredError, QueueError, enqueue

from base import FROM, EnvTestCase
from servers import SmtpServer

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
DAY_MS = 24 * 3600 * 1000


def scalr_email_bin():
    path = os.environ.get("SCALR_EMAIL_BIN") or os.path.join(ROOT, "build", "scalr-email")
    return path if os.access(path, os.X_OK) else None


class QueueCase(EnvTestCase):
    def setUp(self):
        super().setUp()
        saved = os.environ.pop("SCALR_EMAIL_QUEUE", None)
        self.addCleanup(lambda: os.environ.__setitem__("SCALR_EMAIL_QUEUE", saved)
                        if saved is not None else os.environ.pop("SCALR_EMAIL_QUEUE", None))
        self.dir = tempfile.mkdtemp(prefix="scalr-email-q.")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.path = os.path.join(self.dir, "q.db")
        self.url = "sqlite:" + self.path
        os.environ["SMTP_FROM"] = FROM

    def rows(self, where="1"):
        db = sqlite3.connect(self.path)
        db.row_factory = sqlite3.Row
        try:
            return [dict(r) for r in db.execute(
                f"SELECT * FROM scalr_email_queue WHERE {where} ORDER BY id")]
        finally:
            db.close()

    def count(self):
        if not os.path.exists(self.path):
            return 0
        db = sqlite3.connect(self.path)
        try:
            return db.execute("SELECT count(*) FROM scalr_email_queue").fetchone()[0]
        except sqlite3.OperationalError:  # no tables yet
            return 0
        finally:
            db.close()

    def assert_row_matches(self, row, to, subject):
        msg = email.message_from_bytes(row["body"], policy=email.policy.default)
        self.assertEqual(row["state"], "queued")
        self.assertEqual(row["message_id"], msg["Message-ID"])
        self.assertEqual(msg["Subject"], subject)
        self.assertEqual(row["size"], len(row["body"]))
        self.assertTrue(row["body"].endswith(b"\r\n"))
        self.assertNotIn(b"\n", row["body"].replace(b"\r\n", b""))  # CRLF only
        self.assertEqual(row["mail_from"], "hello@acme.test")
        self.assertEqual(row["rcpt_to"], "\n".join(to))
        self.assertEqual(row["attempts"], 0)
        self.assertIsNone(row["lease_owner"])


class Enqueue(QueueCase):
    def test_returns_id_and_stores_the_composed_message(self):
        qid = enqueue("user@example.com", "Your invoice", "Plain text.",
                      body_html="<p>HTML</p>", cc="c@example.com", bcc=["d@example.com"],
                      headers={"X-Invoice": "42"}, attachments=[("a.txt", b"hello", None)],
                      queue=self.url)
        self.assertIsInstance(qid, int)
        [row] = self.rows()
        self.assertEqual(row["id"], qid)
        self.assert_row_matches(row, ["user@example.com", "c@example.com", "d@example.com"],
                                "Your invoice")
        self.assertEqual(row["lane"], "transactional")
        self.assertEqual(row["tenant"], "")
        self.assertIsNone(row["idempotency_key"])
        msg = email.message_from_bytes(row["body"], policy=email.policy.default)
        self.assertEqual(msg["X-Invoice"], "42")
        self.assertIsNone(msg["Bcc"])
        self.assertEqual([p.get_filename() for p in msg.iter_attachments()], ["a.txt"])
        # Times come from the database's clock; default expiry is 24 h.
        self.assertLessEqual(abs(row["created_at"] - time.time() * 1000), 60_000)
        self.assertEqual(row["run_at"], row["created_at"])
        self.assertEqual(row["expire_at"] - row["created_at"], DAY_MS)

    def test_options_land_in_their_columns(self):
        at = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(hours=2)
        qid = enqueue("user@example.com", "News", "x", sender="News <news@acme.test>",
                      send_at=at, priority="bulk", tenant="t1", idempotency_key="k-1",
                      expire_in=datetime.timedelta(hours=3), max_attempts=5, queue=self.url)
        [row] = self.rows()
        self.assertEqual(row["id"], qid)
        self.assertEqual(row["lane"], "bulk")
        self.assertEqual(row["tenant"], "t1")
        self.assertEqual(row["idempotency_key"], "k-1")
        self.assertEqual(row["mail_from"], "news@acme.test")
        self.assertEqual(row["run_at"], int(at.timestamp() * 1000))
        self.assertEqual(row["expire_at"] - row["created_at"], 3 * 3600 * 1000)
        self.assertEqual(row["max_attempts"], 5)
        # Epoch seconds work as send_at too.
        enqueue("user@example.com", "Later", "x", send_at=2_000_000_000, queue=self.url)
        self.assertEqual(self.rows("id > %d" % qid)[0]
                         ["run_at"], 2_000_000_000_000)

    def test_default_queue_url_from_the_environment(self):
        os.environ["SCALR_EMAIL_QUEUE"] = self.url
        qid = enqueue("user@example.com", "Hi", "x")
        self.assertEqual([r["id"] for r in self.rows()], [qid])

    def test_idempotency_key_returns_the_existing_id(self):
        a = enqueue("user@example.com", "Reset", "x", idempotency_key="reset-7", queue=self.url)
        b = enqueue("other@example.com", "Reset again", "y", idempotency_key="reset-7",
                    queue=self.url)
        c = enqueue("user@example.com", "Reset", "x", idempotency_key="reset-8", queue=self.url)
        self.assertEqual(a, b)
        self.assertNotEqual(a, c)
        rows = self.rows()
        self.assertEqual(len(rows), 2)
        self.assertEqual(rows[0]["rcpt_to"], "user@example.com")

    def test_invalid_input_raises_like_send_and_stores_nothing(self):
        enqueue("first@example.com", "ok", "x", queue=self.url)  # the tables exist
        cases = [
            dict(to="bad address", subject="s", body="b"),
            dict(to="u@example.com", subject="a\r\nBcc: evil@example.com", body="b"),
            dict(to="u@example.com", subject="s", body="b",
                 headers={"X-A": "v\nInjected: 1"}),
            dict(to="u@example.com", subject="s", body="b",
                 attachments=[os.path.join(self.dir, "missing.pdf")]),
        ]
        for kw in cases:
            with self.subTest(kw=kw), self.assertRaises(InvalidMessageError) as cm:
                enqueue(queue=self.url, **kw)
            self.assertIn(cm.exception.code, ("EINVAL", "EFILE"))
        self.assertEqual(self.count(), 1)

    def test_no_sender_is_not_configured(self):
        os.environ.pop("SMTP_FROM", None)
        with self.assertRaises(NotConfiguredError):
            enqueue("u@example.com", "s", "b", queue=self.url)
        self.assertEqual(self.count(), 0)

    def test_bad_options(self):
        with self.assertRaises(ValueError):
            enqueue("u@example.com", "s", "b", priority="urgent", queue=self.url)
        with self.assertRaises(ValueError):
            enqueue("u@example.com", "s", "b", expire_in=0, queue=self.url)
        with self.assertRaises(TypeError):
            enqueue("u@example.com", "s", "b", send_at="tomorrow", queue=self.url)
        with self.assertRaises(TypeError):
            enqueue("u@example.com", "s", "b", conn=object())
        self.assertEqual(self.count(), 0)

    def test_threads_enqueue_at_once(self):
        import threading
        enqueue("first@example.com", "tables", "x", queue=self.url)
        ids, errors = [], []

        def worker(t):
            try:
                for i in range(10):
                    ids.append(enqueue("u%d@example.com" % t, "n %d" % i, "x", queue=self.url,
                                       idempotency_key="t%d-%d" % (t, i % 5)))
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(e)

        threads = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        self.assertEqual(errors, [])
        self.assertEqual(len(ids), 80)
        self.assertEqual(len(set(ids)), 40)  # 5 keys per thread, each stored once
        self.assertEqual(self.count(), 41)

    def test_status_and_show(self):
        a = enqueue(["a@example.com", "b@example.com"], "s", "b", tenant="t", queue=self.url)
        enqueue("c@example.com", "s", "b", priority="bulk", queue=self.url)
        st = scalr_email.queue_status(self.url)
        self.assertEqual(st["counts"]["queued"], 2)
        self.assertEqual(sum(st["counts"].values()), 2)
        self.assertLessEqual(abs(st["now"] - time.time() * 1000), 60_000)
        it = scalr_email.queue_show(a, queue=self.url)
        [row] = self.rows("id = %d" % a)
        self.assertEqual(it["id"], a)
        self.assertEqual(it["state"], "queued")
        self.assertEqual(it["rcpt_to"], ["a@example.com", "b@example.com"])
        self.assertEqual(it["message_id"], row["message_id"])
        self.assertEqual((it["tenant"], it["lane"], it["size"]), ("t", "transactional",
                                                                  row["size"]))
        self.assertEqual(it["attempts"], [])
        with self.assertRaises(QueueError) as cm:
            scalr_email.queue_show(a + 100, queue=self.url)
        self.assertEqual(cm.exception.code, "ENOTFOUND")

    def test_unusable_queue_is_a_queue_error(self):
        with self.assertRaises(QueueError) as cm:
            enqueue("u@example.com", "s", "b",
                    queue="sqlite:" + os.path.join(self.dir, "no", "such", "dir", "q.db"))
        self.assertEqual(cm.exception.code, "ESTORE")
        with self.assertRaises(scalr_email.ConfigurationError):
            enqueue("u@example.com", "s", "b", queue="ftp://example.com/q")


class SqliteOutbox(QueueCase):
    def setUp(self):
        super().setUp()
        scalr_email.init_queue(self.url)
        self.db = sqlite3.connect(self.path)
        self.addCleanup(self.db.close)
        self.db.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, what TEXT)")
        self.db.commit()

    def test_rolled_back_transaction_stores_nothing(self):
        self.db.execute("INSERT INTO orders (what) VALUES ('book')")
        qid = enqueue("user@example.com", "Order confirmed", "x", conn=self.db)
        self.assertIsInstance(qid, int)
        self.db.rollback()
        self.assertEqual(self.count(), 0)
        self.assertEqual(self.db.execute("SELECT count(*) FROM orders").fetchone()[0], 0)

    def test_committed_transaction_stores_the_row(self):
        self.db.execute("INSERT INTO orders (what) VALUES ('book')")
        qid = enqueue("user@example.com", "Order confirmed", "x", cc="c@example.com",
                      priority="bulk", tenant="shop", conn=self.db)
        self.assertEqual(self.count(), 0)  # not visible before the commit
        self.db.commit()
        [row] = self.rows()
        self.assertEqual(row["id"], qid)
        self.assert_row_matches(row, ["user@example.com", "c@example.com"], "Order confirmed")
        self.assertEqual((row["lane"], row["tenant"]), ("bulk", "shop"))
        self.assertEqual(row["expire_at"] - row["created_at"], DAY_MS)
        self.assertEqual(row["run_at"], row["created_at"])

    def test_idempotency_inside_and_across_transactions(self):
        a = enqueue("user@example.com", "A", "x", idempotency_key="order-1", conn=self.db)
        b = enqueue("user@example.com", "A", "x", idempotency_key="order-1", conn=self.db)
        self.db.commit()
        c = enqueue("user@example.com", "A", "x", idempotency_key="order-1", conn=self.db)
        self.db.commit()
        self.assertEqual(a, b)
        self.assertEqual(a, c)
        self.assertEqual(self.count(), 1)
        # The C path sees the same key.
        self.assertEqual(enqueue("user@example.com", "A", "x", idempotency_key="order-1",
                                 queue=self.url), a)

    def test_invalid_input_raises_and_inserts_nothing(self):
        with self.assertRaises(InvalidMessageError):
            enqueue("not an address", "s", "b", conn=self.db)
        self.assertFalse(self.db.in_transaction)
        self.db.commit()
        self.assertEqual(self.count(), 0)

    def test_missing_tables_is_a_queue_error(self):
        other = sqlite3.connect(os.path.join(self.dir, "app.db"))
        self.addCleanup(other.close)
        with self.assertRaises(QueueError) as cm:
            enqueue("user@example.com", "s", "b", conn=other)
        self.assertIn("init_queue", str(cm.exception))

    def test_version_1_queue_asks_for_the_upgrade(self):
        scalr_email.init_queue(self.url)
        db = sqlite3.connect(self.path)
        self.addCleanup(db.close)
        for stmt in ("ALTER TABLE scalr_email_queue DROP COLUMN profile",
                     "ALTER TABLE scalr_email_queue DROP COLUMN has_unsubscribe",
                     "DROP TABLE scalr_email_profiles",
                     "UPDATE scalr_email_meta SET value = '1' WHERE key = 'schema_version'"):
            db.execute(stmt)
        db.commit()
        with self.assertRaises(QueueError) as cm:
            enqueue("user@example.com", "s", "b", conn=db)
        self.assertIn("init_queue", str(cm.exception))
        db.rollback()
        scalr_email.init_queue(self.url)      # upgraded in place
        enqueue("user@example.com", "s", "b", priority="bulk", conn=db)
        db.commit()
        [row] = self.rows()
        self.assertEqual((row["profile"], row["has_unsubscribe"]), ("", 0))

    def test_c_and_outbox_rows_have_the_same_shape(self):
        a = enqueue("user@example.com", "Same", "x", queue=self.url)
        b = enqueue("user@example.com", "Same", "x", conn=self.db)
        self.db.commit()
        ra, rb = self.rows()
        self.assertEqual((ra["id"], rb["id"]), (a, b))
        skip = {"id", "message_id", "body", "size", "created_at", "run_at", "expire_at",
                "updated_at"}
        self.assertEqual({k: v for k, v in ra.items() if k not in skip},
                         {k: v for k, v in rb.items() if k not in skip})
        strip = lambda r: b"".join(l for l in r["body"].split(b"\r\n")  # noqa: E731
                                   if not l.startswith((b"Message-ID:", b"Date:",
                                                        b"--", b"Content-Type: multipart")))
        self.assertEqual(strip(ra), strip(rb))


class Delivery(QueueCase):
    """What enqueue() stored, a worker sends byte for byte."""

    def test_worker_drain_delivers_to_the_sink(self):
        binary = scalr_email_bin()
        if not binary:
            self.skipTest("build/scalr-email not built (set SCALR_EMAIL_BIN)")
        srv = self.smtp_server()
        os.environ["SMTP_FROM"] = FROM
        ids = [enqueue("a@example.com", "one", "1", queue=self.url),
               enqueue(["b@example.com", "c@example.com"], "two", "2", priority="bulk",
                       queue=self.url)]
        scalr_email.init_queue(self.url)
        db = sqlite3.connect(self.path)
        self.addCleanup(db.close)
        ids.append(enqueue("d@example.com", "three", "3", conn=db))
        db.commit()
        stored = {r["message_id"]: r for r in self.rows()}
        env = dict(os.environ, SCALR_EMAIL_QUEUE=self.url)
        proc = subprocess.run([binary, "queue", "work", "--drain"], env=env,
                              capture_output=True, timeout=60)
        self.assertEqual(proc.returncode, 0, proc.stderr.decode(errors="replace"))
        got = srv.wait_messages(3)
        self.assertEqual(len(got), 3)
        for m in got:
            row = stored[m.message["Message-ID"]]
            self.assertEqual(m.rcpt_tos, row["rcpt_to"].split("\n"))
            self.assertEqual(m.data.replace(b"\r\n", b"\n"),
                             row["body"].replace(b"\r\n", b"\n"))
        states = {r["id"]: r["state"] for r in self.rows()}
        self.assertEqual(states, {i: "sent" for i in ids})
        shown = scalr_email.queue_show(ids[1], queue=self.url)
        self.assertEqual(shown["state"], "sent")
        self.assertEqual([a["outcome"] for a in shown["attempts"]], ["sent"])
        self.assertEqual(scalr_email.queue_status(self.url)["counts"]["sent"], 3)
        self.assertTrue(all(r["body"] is None for r in self.rows()))

    def test_enqueue_with_a_profile(self):
        """profile=: composed with the tenant's From, checked against its
        domains and signed with its key at enqueue; the worker sends it with
        the tenant's account, not the platform's."""
        platform = self.smtp_server()
        tenant = self.start(SmtpServer())
        d = tempfile.mkdtemp(prefix="py-qprofiles-")
        self.addCleanup(shutil.rmtree, d, True)
        lines = ["SMTP_PORT=%d" % tenant.port, "SMTP_FROM=noreply@acme.example",
                 "SMTP_ALLOWED_FROM_DOMAINS=acme.example"]
        binary = scalr_email_bin()
        if binary:  # a DKIM key of the tenant's own
            key = os.path.join(d, "acme.key")
            subprocess.run([binary, "dkim", "keygen", "--domain", "acme.example", "--selector",
                            "s1", "--type", "ed25519", "--out", key], check=True,
                           capture_output=True)
            lines += ["SMTP_DKIM_DOMAIN=acme.example", "SMTP_DKIM_SELECTOR=s1",
                      "SMTP_DKIM_KEY_FILE=" + key]
        with open(os.path.join(d, "acme.env"), "w") as f:
            f.write("\n".join(lines) + "\n")
        os.environ["SCALR_EMAIL_PROFILES"] = d
        self.addCleanup(os.environ.pop, "SCALR_EMAIL_PROFILES", None)
        qid = enqueue("u@example.com", "tenant", "b", profile="acme", priority="bulk",
                      queue=self.url)
        [row] = self.rows()
        self.assertEqual((row["id"], row["profile"], row["tenant"], row["mail_from"]),
                         (qid, "acme", "acme", "noreply@acme.example"))
        self.assertEqual(row["has_unsubscribe"], 0)
        if binary:
            self.assertIn(b"d=acme.example;", row["body"].replace(b"\r\n\t", b"")
                          .replace(b" ", b""))
        with self.assertRaises(InvalidMessageError):
            enqueue("u@example.com", "spoof", "b", sender="ceo@globex.example",
                    profile="acme", queue=self.url)
        with self.assertRaises(scalr_email.ConfigurationError):
            enqueue("u@example.com", "x", "b", profile="nobody", queue=self.url)
        with self.assertRaises(ValueError):
            enqueue("u@example.com", "x", "b", profile="acme", tenant="globex", queue=self.url)
        db = sqlite3.connect(self.path)
        self.addCleanup(db.close)
        with self.assertRaises(TypeError):
            enqueue("u@example.com", "x", "b", profile="acme", conn=db)
        self.assertEqual(len(self.rows()), 1, "nothing else stored")
        if not binary:
            self.skipTest("build/scalr-email not built (set SCALR_EMAIL_BIN): not sent")
        env = dict(os.environ, SCALR_EMAIL_QUEUE=self.url)
        proc = subprocess.run([binary, "queue", "work", "--drain"], env=env,
                              capture_output=True, timeout=60)
        self.assertEqual(proc.returncode, 0, proc.stderr.decode(errors="replace"))
        [got] = tenant.wait_messages(1)
        self.assertEqual(got.mail_from, "noreply@acme.example")
        self.assertEqual(platform.messages, [])


if __name__ == "__main__":
    unittest.main()


try:
    import psycopg  # Debian's python3-psycopg, for /usr/bin/python3
except ImportError:
    psycopg = None

if psycopg is not None:
    sys.path.insert(0, os.path.join(ROOT, "tests", "queue"))
    from pgserver import PgServer

    class PgOutbox(QueueCase):
        """The outbox through a psycopg connection to a private PostgreSQL
        (Debian's server, tests/queue/pgserver.py).  Defined only where
        psycopg is installed (Debian's /usr/bin/python3)."""

        @classmethod
        def setUpClass(cls):
            cls.pg = PgServer()
            cls.pg.start()

        @classmethod
        def tearDownClass(cls):
            cls.pg.stop()

        def setUp(self):
            super().setUp()
            self.url = self.pg.url
            scalr_email.init_queue(self.url)
            self.db = psycopg.connect(self.url)
            self.addCleanup(self.db.close)
            with self.db.cursor() as cur:
                cur.execute("TRUNCATE scalr_email_queue, scalr_email_attempts")
                cur.execute("CREATE TABLE IF NOT EXISTS orders (id serial PRIMARY KEY, what text)")
                cur.execute("TRUNCATE orders")
            self.db.commit()

        def pg_rows(self):
            with psycopg.connect(self.url) as other, other.cursor() as cur:
                cur.execute("SELECT id, state, rcpt_to, message_id, body FROM scalr_email_queue "
                            "ORDER BY id")
                return cur.fetchall()

        def test_rolled_back_transaction_stores_nothing(self):
            with self.db.cursor() as cur:
                cur.execute("INSERT INTO orders (what) VALUES ('book')")
            qid = enqueue("user@example.com", "Order confirmed", "x", conn=self.db)
            self.assertIsInstance(qid, int)
            self.assertEqual(self.pg_rows(), [])  # not visible before the commit
            self.db.rollback()
            self.assertEqual(self.pg_rows(), [])

        def test_committed_transaction_is_sent_by_a_worker(self):
            qid = enqueue("user@example.com", "Order confirmed", "thanks",
                          idempotency_key="order-9", conn=self.db)
            again = enqueue("user@example.com", "Order confirmed", "thanks",
                            idempotency_key="order-9", conn=self.db)
            self.db.commit()
            self.assertEqual(qid, again)
            [(rid, state, rcpt, mid, body)] = self.pg_rows()
            self.assertEqual((rid, state, rcpt), (qid, "queued", "user@example.com"))
            msg = email.message_from_bytes(bytes(body), policy=email.policy.default)
            self.assertEqual(msg["Message-ID"], mid)
            binary = scalr_email_bin()
            self.assertIsNotNone(binary, "build/scalr-email is needed (set SCALR_EMAIL_BIN)")
            from aiosmtpd.controller import Controller
            import socket
            got = []

            class H:
                async def handle_DATA(self, server, session, envelope):
                    got.append(envelope.content)
                    return "250 OK"
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
            s.close()
            ctl = Controller(H(), hostname="127.0.0.1", port=port)
            ctl.start()
            try:
                env = dict(os.environ, SMTP_HOST="127.0.0.1", SMTP_PORT=str(port),
                           SMTP_USE_TLS="false", SCALR_EMAIL_QUEUE=self.url)
                p = subprocess.run([binary, "queue", "work", "--drain"], env=env,
                                   capture_output=True, timeout=60)
                self.assertEqual(p.returncode, 0, p.stderr)
            finally:
                ctl.stop()
            self.assertEqual(len(got), 1)
            self.assertEqual(email.message_from_bytes(got[0])["Message-ID"], mid)
            self.assertEqual(self.pg_rows()[0][1], "sent")
