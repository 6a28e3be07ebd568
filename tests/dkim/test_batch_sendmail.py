"""Per-line sender profiles in send-batch, DKIM in the sendmail mode (sent,
spooled, queued, through PHP's mail()), and `send --print` as sent.

Two tenants, each with its own aiosmtpd server (AUTH with its own
credentials) and Ed25519 key; the platform has a third server and an RSA
key.  Every delivered message is checked with dkimpy and `opendkim -t`."""

import json
import os
import re
import shutil
import subprocess
import tempfile
import unittest

import helpers as H
from test_dkim import DOMAIN, Keys, keygen

TENANTS = {"acme": "acme.example", "globex": "globex.example"}
PHP = shutil.which("php")


def d_tags(msg):
    """The d= of each DKIM-Signature, in order."""
    head = msg.split(b"\r\n\r\n", 1)[0]
    sigs = re.findall(rb"(?ims)^DKIM-Signature:(.*?)\r\n(?=\S)", head + b"\r\nX:")
    return [re.search(rb"(?:^|;)d=([^;]+)", re.sub(rb"\s+", b"", s)).group(1).decode()
            for s in sigs]


class Tenants(H.CliTest):
    """acme and globex profiles over a platform configuration (RSA, example.org)."""

    def setUp(self):
        self.keys = Keys()                   # the platform's keys and both verifiers
        self.addCleanup(self.keys.cleanup)
        self.dir = self.keys.dir
        os.mkdir(os.path.join(self.dir, "profiles"))
        self.servers = {}
        for name, domain in TENANTS.items():
            srv = self.server("starttls", auth=("user-" + name, "pw-" + name),
                              extra_caps=["PIPELINING"])
            self.servers[name] = srv
            key, rname, value = keygen(self.dir, name, "ed25519", domain=domain)
            self.keys.records[rname] = value
            with open(os.path.join(self.dir, "profiles", name + ".env"), "w") as f:
                f.write("SMTP_PORT=%d\nSMTP_USERNAME=user-%s\nSMTP_PASSWORD=pw-%s\n"
                        "SMTP_USE_TLS=true\nSMTP_FROM=noreply@%s\n"
                        "SMTP_ALLOWED_FROM_DOMAINS=%s\nSMTP_DKIM_DOMAIN=%s\n"
                        "SMTP_DKIM_SELECTOR=%s\nSMTP_DKIM_KEY_FILE=%s\n"
                        % (srv.port, name, name, domain, domain, domain, name, key))
        with open(self.keys.opendkim_keys, "w") as f:     # the tenants' records too
            for n, v in self.keys.records.items():
                f.write("%s %s\n" % (n, v))
        self.platform = self.server("plain", extra_caps=["PIPELINING"])
        self.servers["platform"] = self.platform
        self.env = self.env_for(self.platform, SCALR_EMAIL_PROFILES=os.path.join(self.dir,
                                                                                "profiles"),
                                **self.keys.env("rsa"))

    def assertVerifies(self, data, n=1):
        self.assertEqual(self.keys.dkimpy(data), [True] * n)
        self.assertEqual(self.keys.opendkim(data), [True] * n)

    def batch(self, lines, *args):
        text = "".join(json.dumps(x) + "\n" for x in lines)
        rc, out, err = H.run_cli(["send-batch"] + list(args) + ["-"], self.env, input=text)
        results = [json.loads(x) for x in out.splitlines()]
        by_line = {r["line"]: r for r in results}
        self.assertEqual(len(by_line), len(results), "a line answered twice: %s" % out)
        return rc, by_line, err


class BatchProfiles(Tenants):
    def test_interleaved_lines_reach_their_own_tenant_once(self):
        lines, want = [], {"acme": [], "globex": [], "platform": []}
        for i in range(18):
            who = ("acme", "globex", "platform")[i % 3]
            line = {"to": ["r%d@example.net" % i], "subject": "%s-%d" % (who, i),
                    "body": "line %d\n.dot\n" % i}
            if who != "platform":
                line["profile"] = who
            lines.append(line)
            want[who].append(i + 1)
        # a tenant line whose From is the other tenant's, and an unknown profile
        lines.append({"to": ["x@example.net"], "subject": "spoof", "body": "x",
                      "profile": "acme", "sender": "ceo@globex.example"})
        lines.append({"to": ["y@example.net"], "subject": "nobody", "body": "x",
                      "profile": "nobody"})
        lines.append({"to": ["z@example.net"], "subject": "platform-last", "body": "z"})
        want["platform"].append(21)
        rc, res, err = self.batch(lines, "--connections", "3")
        self.assertEqual(sorted(res), list(range(1, 22)), res)
        self.assertEqual(rc, 78, err)                  # the unknown profile is a config error
        self.assertEqual(sorted(n for n, r in res.items() if r["ok"]),
                         sorted(want["acme"] + want["globex"] + want["platform"]))
        self.assertEqual(res[19]["code"], "EINVAL")
        self.assertIn("outside the allowed domains", res[19]["error"])
        self.assertEqual(res[20]["code"], "ECONFIG")
        self.assertIn("no sender profile 'nobody'", res[20]["error"])
        for who, domain in (("acme", "acme.example"), ("globex", "globex.example"),
                            ("platform", DOMAIN)):
            srv = self.servers[who]
            self.assertTrue(srv.rec.wait_messages(len(want[who])))
            srv.rec.wait_idle()
            subjects = sorted(re.search(rb"(?m)^Subject: (\S+)", m.data).group(1).decode()
                              for m in srv.messages)
            self.assertEqual(len(subjects), len(want[who]), (who, subjects))
            self.assertEqual(len(set(subjects)), len(subjects), "sent twice: %s" % subjects)
            for s in subjects:
                self.assertTrue(s.startswith(who + "-"), (who, s))
            for m in srv.messages:
                self.assertEqual(d_tags(m.data), [domain])
                self.assertVerifies(m.data)
                if who == "platform":
                    self.assertEqual(m.mail_from, H.SENDER)
                    self.assertIsNone(m.login)
                else:
                    self.assertEqual(m.mail_from, "noreply@" + domain)
                    self.assertEqual(m.login, ("user-" + who).encode())
            if who != "platform":            # every sign-in was the tenant's own
                self.assertEqual({(a[1], a[2]) for a in srv.rec.auth}, {("user-" + who, True)})
        self.assertNotIn(b"spoof", self.servers["acme"].rec.client_bytes())
        self.assertNotIn(b"Subject: nobody", self.platform.rec.client_bytes())

    def test_lines_without_profile_follow_the_batch_profile(self):
        lines = [{"to": ["a@example.net"], "subject": "globex-default", "body": "a"},
                 {"to": ["b@example.net"], "subject": "acme-line", "body": "b", "profile": "acme"},
                 {"to": ["c@example.net"], "subject": "globex-spoof", "body": "c",
                  "sender": "x@acme.example"},
                 {"to": ["d@example.net"], "subject": "globex-named", "body": "d",
                  "profile": "globex"}]
        rc, res, err = self.batch(lines, "--profile", "globex")
        self.assertEqual(rc, 65, err)
        self.assertEqual([res[n]["ok"] for n in (1, 2, 3, 4)], [True, True, False, True])
        self.assertTrue(self.servers["globex"].rec.wait_messages(2))
        self.assertTrue(self.servers["acme"].rec.wait_messages(1))
        for who, n in (("globex", 2), ("acme", 1)):
            self.servers[who].rec.wait_idle()
            self.assertEqual(len(self.servers[who].messages), n)
            for m in self.servers[who].messages:
                self.assertEqual(d_tags(m.data), [TENANTS[who]])
                self.assertVerifies(m.data)
        self.assertEqual(self.platform.messages, [])

    def test_platform_without_smtp_sends_the_profiles_lines(self):
        """No SMTP_HOST on the platform: lines naming a profile (whose file has
        its host) still go, each to its tenant; a line naming none fails
        alone as not configured."""
        for name in TENANTS:
            with open(os.path.join(self.dir, "profiles", name + ".env"), "a") as f:
                f.write("SMTP_HOST=127.0.0.1\n")
        self.env = {k: v for k, v in self.env.items() if k != "SMTP_HOST"}
        rc, res, err = self.batch([
            {"profile": "acme", "to": ["a@example.net"], "subject": "s", "body": "a"},
            {"to": ["p@example.net"], "subject": "s", "body": "p"},
            {"profile": "globex", "to": ["g@example.net"], "subject": "s", "body": "g"}])
        self.assertEqual(rc, 78, err)
        self.assertEqual([res[i]["ok"] for i in (1, 2, 3)], [True, False, True], res)
        self.assertEqual(res[2]["code"], "ENOTCONFIGURED")
        self.assertIn("names no sender profile", res[2]["error"])
        for who, domain in TENANTS.items():
            self.assertTrue(self.servers[who].rec.wait_messages(1))
            self.assertEqual(d_tags(self.servers[who].messages[0].data), [domain])
        self.assertEqual(self.platform.messages, [])

    def test_profile_field_must_be_a_string_and_goes_with_queue_lines(self):
        rc, res, err = self.batch([{"to": ["a@example.net"], "subject": "s", "body": "b",
                                    "profile": 7}])
        self.assertEqual(rc, 65)
        self.assertIn("'profile' must be a string", res[1]["error"])
        # the same line in the queue: kept with its profile, sent by the tenant's server
        url = "sqlite:" + os.path.join(self.dir, "q.db")
        line = json.dumps({"to": ["a@example.net"], "subject": "s", "body": "b",
                           "profile": "acme"}) + "\n"
        rc, out, err = H.run_cli(["queue", "add", "--queue", url, "--jsonl", "-"], self.env,
                                 input=line)
        self.assertEqual(rc, 0, (out, err))
        rc, out, err = H.run_cli(["queue", "work", "--drain", "--lease", "1s", "--queue", url],
                                 self.env)
        self.assertEqual(rc, 0, err)
        self.assertTrue(self.servers["acme"].rec.wait_messages(1))
        m = self.servers["acme"].messages[0]
        self.assertEqual(d_tags(m.data), ["acme.example"])
        self.assertVerifies(m.data)
        self.assertEqual(self.platform.messages, [])


class SendmailSigning(Tenants):
    MESSAGE = (b"From: App <app@example.org>\nTo: Ann <ann@example.net>\n"
               b"Bcc: hidden@example.net\nSubject: Gr\xc3\xbc\xc3\x9fe\n\n"
               b"Hello.\n.\n..two dots\ntrailing   \n\n\n")

    def sendmail(self, args, data, env=None):
        return H.run_cli(["sendmail"] + args, env or self.env, input=data, raw=True)

    def test_stdin_message_is_signed_and_verifies(self):
        for which, n in (("rsa", 1), ("ed25519", 1), ("dual", 2)):
            with self.subTest(key=which):
                self.platform.rec.reset()
                env = dict(self.env, **self.keys.env(which))
                rc, out, err = self.sendmail(["-t", "-i"], self.MESSAGE, env)
                self.assertEqual(rc, 0, err)
                self.assertTrue(self.platform.rec.wait_messages(1))
                m = self.platform.messages[0]
                self.assertNotIn(b"hidden@example.net", m.data)
                self.assertIn(b"\r\n.\r\n..two dots\r\n", m.data)
                self.assertEqual(d_tags(m.data), [DOMAIN] * n)
                self.assertVerifies(m.data, n)
                rc, ours = self.keys.ours(m.data)
                self.assertEqual((rc, ours), (0, [True] * n))
                bad = m.data.replace(b"..two dots", b"..two dogs")
                self.assertEqual(self.keys.dkimpy(bad), [False] * n)

    def test_spooled_message_over_256_kib_verifies(self):
        body = b"".join(b"line %06d of a long report, with a tab\tand spaces  \n" % i
                        for i in range(7000))
        self.assertGreater(len(body), 300 * 1024)
        data = b"From: app@example.org\nTo: ann@example.net\nSubject: big\n\n" + body
        rc, out, err = self.sendmail(["-t", "-i"], data)
        self.assertEqual(rc, 0, err)
        self.assertTrue(self.platform.rec.wait_messages(1))
        m = self.platform.messages[0]
        self.assertGreater(len(m.data), 300 * 1024)
        self.assertVerifies(m.data)

    def test_queued_message_is_signed_once_at_enqueue(self):
        url = "sqlite:" + os.path.join(self.dir, "sm-queue.db")
        rc, out, err = self.sendmail(["-t", "-i", "--queue", url], self.MESSAGE)
        self.assertEqual(rc, 0, err)
        self.assertEqual(self.platform.messages, [])
        bad = dict(self.env, SMTP_DKIM_KEY_FILE=os.path.join(self.dir, "missing.pem"))
        rc, out, err = self.sendmail(["-t", "-i", "--queue", url], self.MESSAGE, bad)
        self.assertEqual(rc, 78, err)
        rc, out, err = H.run_cli(["queue", "work", "--drain", "--lease", "1s", "--queue", url],
                                 self.env)
        self.assertEqual(rc, 0, err)
        self.assertTrue(self.platform.rec.wait_messages(1))
        self.platform.rec.wait_idle()
        self.assertEqual(len(self.platform.messages), 1)
        m = self.platform.messages[0]
        self.assertEqual(d_tags(m.data), [DOMAIN])
        self.assertIn(b"=?utf-8?", m.data.lower())      # RFC 2047 at enqueue, then signed
        self.assertVerifies(m.data)

    def test_domain_mismatch_is_78_before_connecting(self):
        data = b"From: app@elsewhere.example\nTo: ann@example.net\nSubject: s\n\nx\n"
        rc, out, err = self.sendmail(["-t", "-i"], data)
        self.assertEqual(rc, 78, err)
        self.assertIn(b"does not match the From domain", err)
        self.assertEqual(self.platform.rec.connections, 0)

    def test_profile_signs_with_the_tenant_key_on_its_server(self):
        data = b"To: ann@example.net\nSubject: from acme\n\nhi\n"
        rc, out, err = self.sendmail(["-t", "-i", "--profile", "acme"], data)
        self.assertEqual(rc, 0, err)
        env = dict(self.env, SCALR_EMAIL_PROFILE="globex")
        rc, out, err = self.sendmail(["-t", "-i"], data.replace(b"acme", b"globex"), env)
        self.assertEqual(rc, 0, err)
        for who, domain in TENANTS.items():
            srv = self.servers[who]
            self.assertTrue(srv.rec.wait_messages(1))
            m = srv.messages[0]
            self.assertEqual(m.mail_from, "noreply@" + domain)    # the profile's SMTP_FROM
            self.assertIn(b"From: noreply@" + domain.encode(), m.data)
            self.assertEqual(m.login, ("user-" + who).encode())
            self.assertEqual(d_tags(m.data), [domain])
            self.assertVerifies(m.data)
        # a From outside the profile's domains: 65, nothing sent
        spoof = b"From: ceo@globex.example\nTo: ann@example.net\nSubject: s\n\nx\n"
        rc, out, err = self.sendmail(["-t", "-i", "--profile", "acme"], spoof)
        self.assertEqual(rc, 65, err)
        self.assertIn(b"outside the allowed domains", err)
        rc, out, err = self.sendmail(["-t", "-i", "--profile", "nobody"], spoof)
        self.assertEqual(rc, 78, err)
        self.servers["acme"].rec.wait_idle()
        self.assertEqual(len(self.servers["acme"].messages), 1)
        self.assertEqual(len(self.servers["globex"].messages), 1)
        # queued with a profile: signed at enqueue with the tenant's key, its From
        # and domains checked then, and sent by the worker on the tenant's server
        url = "sqlite:" + os.path.join(self.dir, "q2.db")
        rc, out, err = self.sendmail(["-t", "-i", "--profile", "acme", "--queue", url], spoof)
        self.assertEqual(rc, 65, err)
        rc, out, err = self.sendmail(["-t", "-i", "--profile", "acme", "--queue", url], data)
        self.assertEqual(rc, 0, err)
        rc, out, err = H.run_cli(["queue", "list", "--json", "--queue", url], self.env)
        self.assertEqual(rc, 0, err)
        self.assertEqual([(r["profile"], r["tenant"]) for r in map(json.loads, out.splitlines())],
                         [("acme", "acme")])
        rc, out, err = H.run_cli(["queue", "work", "--drain", "--lease", "1s", "--queue", url],
                                 self.env)
        self.assertEqual(rc, 0, err)
        self.assertTrue(self.servers["acme"].rec.wait_messages(2))
        m = self.servers["acme"].messages[1]
        self.assertEqual(m.login, b"user-acme")
        self.assertEqual(m.mail_from, "noreply@acme.example")
        self.assertEqual(d_tags(m.data), ["acme.example"])
        self.assertVerifies(m.data)
        self.assertEqual(len(self.servers["globex"].messages), 1)

    @unittest.skipUnless(PHP, "needs php-cli")
    def test_php_mail_is_signed(self):
        script = os.path.join(self.dir, "m.php")
        with open(script, "w") as f:
            f.write('<?php\n$ok = mail("ann@example.net", "Grüße aus PHP",\n'
                    '  "Hello from PHP.\\n.\\nA dot above.\\n",\n'
                    '  ["From" => "App <app@example.org>", "Bcc" => "hidden@example.net"],\n'
                    '  "-fbounce@example.org");\nexit($ok ? 0 : 3);\n')
        r = subprocess.run([PHP, "-n", "-d", "sendmail_path=%s sendmail -t -i" % H.cli_path(),
                            script], env=self.env, capture_output=True, timeout=60)
        self.assertEqual(r.returncode, 0, (r.stdout, r.stderr))
        self.assertTrue(self.platform.rec.wait_messages(1))
        m = self.platform.messages[0]
        self.assertEqual(m.mail_from, "bounce@example.org")
        self.assertNotIn(b"hidden@example.net", m.data)
        self.assertVerifies(m.data)


class PrintSigned(Tenants):
    def test_print_is_the_signed_message(self):
        env = dict(self.env, **self.keys.env("dual"))
        del env["SMTP_HOST"]                   # a preview needs no server
        rc, out, err = H.run_cli(self.send_args("--print", "--html", "<p>Hi</p>"), env, raw=True)
        self.assertEqual(rc, 0, err)
        self.assertEqual(d_tags(out), [DOMAIN, DOMAIN])
        self.assertVerifies(out, 2)
        rc, out, err = H.run_cli(self.send_args("--print", "--profile", "acme"), self.env,
                                 raw=True)
        self.assertEqual(rc, 0, err)
        self.assertEqual(d_tags(out), ["acme.example"])
        self.assertIn(b"From: noreply@acme.example", out)
        self.assertVerifies(out)
        self.assertEqual(self.platform.rec.connections, 0)
        self.assertEqual(self.servers["acme"].rec.connections, 0)
        # refused as a send would be
        self.assertFailed(H.run_cli(self.send_args("--print", "--profile", "acme", "--from",
                                                   "x@globex.example"), self.env),
                          65, "outside the allowed domains")
        self.assertFailed(H.run_cli(self.send_args("--print", "--from", "x@other.example"),
                                    self.env), 78, "does not match the From domain")
        plain = {k: v for k, v in self.env.items() if not k.startswith("SMTP_DKIM_")}
        rc, out, err = H.run_cli(self.send_args("--print"), plain, raw=True)
        self.assertEqual(rc, 0, err)
        self.assertEqual(d_tags(out), [])
