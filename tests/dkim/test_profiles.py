"""Sender profiles: two tenants, each with its own SMTP server, account and
DKIM domain; interleaved sends from 8 threads never cross; a From outside a
profile's domains exits 65 and sends nothing; a bad profile key exits 78."""

import os
import re
import shutil
import tempfile
import threading

import helpers as H
from test_dkim import Keys, keygen

TENANTS = {"acme": "acme.example", "globex": "globex.example"}


class Profiles(H.CliTest):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="se-profiles-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.keys = Keys()                      # only for its verifiers
        self.addCleanup(self.keys.cleanup)
        self.keys.records = {}
        os.mkdir(os.path.join(self.dir, "profiles"))
        self.servers = {}
        for name, domain in TENANTS.items():
            srv = self.server("starttls", auth=("user-" + name, "pw-" + name))
            self.servers[name] = srv
            key, rname, value = keygen(self.dir, name, "ed25519", domain=domain)
            self.keys.records[rname] = value
            with open(os.path.join(self.dir, "profiles", name + ".env"), "w") as f:
                f.write("SMTP_PORT=%d\nSMTP_USERNAME=user-%s\nSMTP_PASSWORD=pw-%s\n"
                        "SMTP_FROM=noreply@%s\nSMTP_ALLOWED_FROM_DOMAINS=%s\n"
                        "SMTP_DKIM_DOMAIN=%s\nSMTP_DKIM_SELECTOR=%s\nSMTP_DKIM_KEY_FILE=%s\n"
                        % (srv.port, name, name, domain, domain, domain, name, key))
        # the platform-wide configuration: host, TLS; the profiles add the rest
        self.env = H.base_env(SMTP_HOST="127.0.0.1", SMTP_USE_TLS="true", SMTP_PORT="1",
                              SMTP_FROM="platform@example.org",
                              SCALR_EMAIL_PROFILES=os.path.join(self.dir, "profiles"))

    def send(self, profile, *extra, subject="hi"):
        return H.run_cli(self.send_args("--profile", profile, *extra, subject=subject), self.env)

    def test_interleaved_threads_reach_their_own_tenant(self):
        results = []
        lock = threading.Lock()

        def worker(i):
            name = ("acme", "globex")[i % 2]
            for k in range(3):
                res = self.send(name, subject="%s-%d-%d" % (name, i, k))
                with lock:
                    results.append((name, res))
        threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        self.assertEqual(len(results), 24)
        for name, res in results:
            self.assertSent(res)
        for name, domain in TENANTS.items():
            srv = self.servers[name]
            self.assertTrue(srv.rec.wait_messages(12))
            self.assertEqual(len(srv.messages), 12)
            for m in srv.messages:
                self.assertEqual(m.mail_from, "noreply@" + domain)
                self.assertEqual(m.login, ("user-" + name).encode())
                subject = re.search(rb"(?m)^Subject: (\S+)", m.data).group(1).decode()
                self.assertTrue(subject.startswith(name + "-"), subject)
                self.assertIn(("d=%s;" % domain).encode(), re.sub(rb"\s+", b"", m.data))
                self.assertEqual(self.keys.dkimpy(m.data), [True])

    def test_send_batch_with_a_profile(self):
        import json
        lines = "".join(json.dumps({"to": ["r%d@example.net" % i], "subject": "b%d" % i,
                                    "body": "x"}) + "\n" for i in range(4))
        lines += json.dumps({"to": ["r@example.net"], "subject": "spoof", "body": "x",
                             "sender": "ceo@acme.example"}) + "\n"
        rc, out, err = H.run_cli(["send-batch", "--profile", "globex", "-"], self.env, input=lines)
        results = {r["line"]: r for r in (json.loads(x) for x in out.splitlines())}
        self.assertEqual(rc, 65, err)
        self.assertEqual(sorted(n for n, r in results.items() if r.get("ok")), [1, 2, 3, 4])
        self.assertIn("outside the allowed domains", json.dumps(results[5]))
        srv = self.servers["globex"]
        self.assertTrue(srv.rec.wait_messages(4))
        for m in srv.messages:
            self.assertEqual(self.keys.dkimpy(m.data), [True])
            self.assertIn(b"d=globex.example;", re.sub(rb"\s+", b"", m.data))
        self.assertEqual(self.servers["acme"].messages, [])

    def test_from_outside_the_profile_exits_65_and_sends_nothing(self):
        for extra in (["--from", "ceo@globex.example"], ["--from", "x@acme.example.evil.test"]):
            with self.subTest(extra=extra):
                self.assertFailed(self.send("acme", *extra), 65, "outside the allowed domains")
        self.assertSent(self.send("acme", "--from", "billing@mail.acme.example"))
        for srv in self.servers.values():
            srv.rec.wait_idle()
        self.assertEqual(len(self.servers["acme"].messages), 1)
        self.assertEqual(self.servers["globex"].messages, [])

    def test_bad_profiles_exit_78(self):
        with open(os.path.join(self.dir, "profiles", "broken.env"), "w") as f:
            f.write("SMTP_DKIM_DOMAIN=acme.example\nSMTP_DKIM_SELECTOR=x\n"
                    "SMTP_DKIM_KEY_FILE=%s\n" % os.path.join(self.dir, "missing.key"))
        self.assertFailed(self.send("broken"), 78, "missing.key")
        self.assertFailed(self.send("nobody"), 78, "no sender profile 'nobody'")
        self.assertFailed(self.send("../etc/passwd"), 78, "profile name")
        env = dict(self.env)
        del env["SCALR_EMAIL_PROFILES"]
        self.assertFailed(H.run_cli(self.send_args("--profile", "acme"), env), 78,
                          "SCALR_EMAIL_PROFILES")
        for srv in self.servers.values():
            self.assertEqual(srv.messages, [])
