"""DKIM: what scalr-email signs verifies under dkimpy and OpenDKIM; tampering
fails both; bad keys and a foreign From domain stop the send (exit 78)."""

import json
import os
import re
import shutil
import stat
import subprocess
import tempfile
import time
import unittest

import dkim

import helpers as H

DOMAIN = "example.org"          # H.SENDER is sender@example.org
OPENDKIM = shutil.which("opendkim") or "/usr/sbin/opendkim"


def keygen(d, selector, typ, domain=DOMAIN):
    path = os.path.join(d, "%s.key" % selector)
    rc, out, err = H.run_cli(["dkim", "keygen", "--domain", domain, "--selector", selector,
                              "--type", typ, "--out", path], H.base_env())
    if rc != 0:
        raise AssertionError("keygen failed: %r" % err)
    name, _, rest = out.strip().partition(" TXT ")
    value = "".join(re.findall(r'"([^"]*)"', rest))
    return path, name.rstrip("."), value


class Keys:
    """Throw-away keys: RSA-2048 (s=rsa) and Ed25519 (s=ed), and their records."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="se-dkim-")
        self.rsa, n1, v1 = keygen(self.dir, "rsa", "rsa")
        self.ed, n2, v2 = keygen(self.dir, "ed", "ed25519")
        self.records = {n1: v1, n2: v2}
        self.record_file = os.path.join(self.dir, "records.txt")
        with open(self.record_file, "w") as f:
            for n, v in self.records.items():
                f.write('%s. TXT "%s"\n' % (n, v))
        # OpenDKIM's TestPublicKeys: "name value" lines
        self.opendkim_keys = os.path.join(self.dir, "opendkim-keys.txt")
        with open(self.opendkim_keys, "w") as f:
            for n, v in self.records.items():
                f.write("%s %s\n" % (n, v))
        self.opendkim_conf = os.path.join(self.dir, "opendkim.conf")
        with open(self.opendkim_conf, "w") as f:
            f.write("Mode v\nSyslog no\nTestPublicKeys %s\n" % self.opendkim_keys)

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def env(self, which):
        if which == "rsa":
            return dict(SMTP_DKIM_DOMAIN=DOMAIN, SMTP_DKIM_SELECTOR="rsa", SMTP_DKIM_KEY_FILE=self.rsa)
        if which == "ed25519":
            return dict(SMTP_DKIM_DOMAIN=DOMAIN, SMTP_DKIM_SELECTOR="ed", SMTP_DKIM_KEY_FILE=self.ed)
        return dict(SMTP_DKIM_DOMAIN=DOMAIN, SMTP_DKIM_SELECTOR="rsa", SMTP_DKIM_KEY_FILE=self.rsa,
                    SMTP_DKIM_SELECTOR2="ed", SMTP_DKIM_KEY_FILE2=self.ed)

    # verifiers -------------------------------------------------------------
    def dkimpy(self, msg):
        """[True/False per signature] by dkimpy, with our records as DNS."""
        def dns(name, timeout=5):
            v = self.records.get(name.decode().rstrip("."))
            return v.encode() if v else None
        n = len(re.findall(rb"(?im)^dkim-signature:", msg.split(b"\r\n\r\n", 1)[0]))
        d = dkim.DKIM(msg)
        out = []
        for i in range(n):
            try:                       # a body hash mismatch is raised, not returned
                out.append(bool(d.verify(idx=i, dnsfunc=dns)))
            except dkim.DKIMException:
                out.append(False)
        return out

    def opendkim(self, msg):
        """[True/False per signature] by `opendkim -t` (its Authentication-Results)."""
        path = os.path.join(self.dir, "msg.eml")
        with open(path, "wb") as f:
            f.write(msg)
        r = subprocess.run([OPENDKIM, "-x", self.opendkim_conf, "-vvv", "-t", path],
                           capture_output=True, timeout=30)
        out = (r.stdout + r.stderr).decode("utf-8", "replace")
        return [v == "pass" for v in re.findall(r"\bdkim=(\w+)", out)]

    def ours(self, msg):
        path = os.path.join(self.dir, "ours.eml")
        with open(path, "wb") as f:
            f.write(msg)
        rc, out, err = H.run_cli(["dkim", "verify", path, "--key-file", self.record_file],
                                 H.base_env())
        return rc, [line.startswith("pass ") for line in out.splitlines()]


def _free_udp_port():
    """A loopback port free for UDP and TCP both: dnsmasq listens on both."""
    import socket
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.bind(("127.0.0.1", 0))
            port = u.getsockname()[1]
            with socket.socket() as t:
                try:
                    t.bind(("127.0.0.1", port))
                    return port
                except OSError:
                    continue
    raise RuntimeError("no free port")


def big_file(d, n):
    path = os.path.join(d, "big.bin")
    with open(path, "wb") as f:
        f.write(bytes((i * 131 >> 3) & 0xFF for i in range(n)))
    return path


class DkimInterop(H.CliTest):
    @classmethod
    def setUpClass(cls):
        cls.keys = Keys()
        d = cls.keys.dir
        cls.small = os.path.join(d, "report.csv")
        with open(cls.small, "w") as f:
            f.write("a,b\n1,2\n")
        cls.big = big_file(d, 300 * 1024)          # streamed (over 64 KiB)

    @classmethod
    def tearDownClass(cls):
        cls.keys.cleanup()

    def fixtures(self):
        long_to = ["user%02d@example.net" % i for i in range(12)]
        return {
            "text": self.send_args(body="Hello, plain text.\n"),
            "alternative": self.send_args("--html", "<p>Hello <b>HTML</b></p>", body="Hello\n"),
            "attachments": self.send_args("--attach", self.small, "--attach", self.big,
                                          body="See the files.\n"),
            "utf8": self.send_args(subject="Grüße, 日本語 — ok", body="Grüße aus Köln ✓\n"),
            "long_to": ["send"] + sum((["--to", a] for a in long_to), []) +
                       ["--subject", "many", "--body", "hi\n"],
            "empty_body": self.send_args(body=""),
            "dot_lines": self.send_args(body=".\n..two\n.leading dot\nend\n.\n"),
            "trailing_ws": self.send_args(body="spaces   \ntabs\t\t\n  \n\n\n"),
            "long_lines": self.send_args(body=("x" * 2500) + "\n" + ("word " * 400) + "\n"),
        }

    def send_signed(self, args, which, **env):
        srv = self.server("plain")
        e = self.env_for(srv, **self.keys.env(which))
        e.update({k: str(v) for k, v in env.items()})
        res = H.run_cli(args, e)
        self.assertSent(res)
        self.assertTrue(srv.rec.wait_messages(1), "server received nothing")
        return srv.messages[0].data

    def test_fixtures_verify_under_dkimpy_opendkim_and_ours(self):
        for which, n in (("rsa", 1), ("ed25519", 1), ("dual", 2)):
            for name, args in self.fixtures().items():
                with self.subTest(key=which, fixture=name):
                    msg = self.send_signed(args, which)
                    head = msg.split(b"\r\n\r\n", 1)[0]
                    self.assertEqual(len(re.findall(rb"(?im)^DKIM-Signature:", head)), n)
                    self.assertEqual(self.keys.dkimpy(msg), [True] * n)
                    self.assertEqual(self.keys.opendkim(msg), [True] * n)
                    rc, ours = self.keys.ours(msg)
                    self.assertEqual((rc, ours), (0, [True] * n))

    def test_signed_utf8_body_is_7bit_on_the_wire(self):
        """A relay that downgrades 8BITMIME re-encodes 8-bit bodies and breaks
        their signatures: a signed UTF-8 body goes out 7-bit (quoted-printable)
        even to a server offering 8BITMIME."""
        srv = self.server("plain", extra_caps=["8BITMIME"])
        e = self.env_for(srv, **self.keys.env("rsa"))
        self.assertSent(H.run_cli(self.send_args(body="Grüße aus Köln ✓\n" * 3), e))
        self.assertTrue(srv.rec.wait_messages(1))
        msg = srv.messages[0].data
        body = msg.split(b"\r\n\r\n", 1)[1]
        self.assertTrue(all(b < 0x80 for b in body), body[:200])
        self.assertIn(b"Content-Transfer-Encoding: quoted-printable", msg)
        self.assertEqual(self.keys.dkimpy(msg), [True])

    def test_signature_form(self):
        msg = self.send_signed(self.send_args("--reply-to", "help@example.org",
                                              "--cc", "c@example.net"), "dual")
        head = msg.split(b"\r\n\r\n", 1)[0].decode()
        sigs = re.findall(r"(?ims)^DKIM-Signature:.*?(?=^\S)", head + "\r\nX:")
        self.assertEqual(len(sigs), 2)
        for sig in sigs:
            for line in sig.split("\r\n"):
                self.assertLessEqual(len(line), 78, line)
            tags = dict(t.split("=", 1) for t in
                        (re.sub(r"\s+", "", x) for x in sig.split(":", 1)[1].split(";")) if t)
            self.assertEqual(tags["c"], "relaxed/relaxed")
            self.assertNotIn("l", tags)
            self.assertRegex(tags["t"], r"^\d+$")
            h = [x.lower() for x in tags["h"].split(":")]
            for name in ("from", "to", "cc", "subject", "date", "message-id", "reply-to"):
                self.assertEqual(h.count(name), 2, "%s oversigned once: %s" % (name, h))
            for name in ("mime-version", "content-type"):
                self.assertEqual(h.count(name), 1, name)
            self.assertNotIn("in-reply-to", h)    # absent headers are not listed
        self.assertIn("a=rsa-sha256", re.sub(r"\s+", "", sigs[0]))
        self.assertIn("a=ed25519-sha256", re.sub(r"\s+", "", sigs[1]))

    def test_tampering_fails_both_verifiers(self):
        msg = self.send_signed(self.send_args(subject="Invoice 42", body="Pay 10 EUR.\n"), "dual")
        head, body = msg.split(b"\r\n\r\n", 1)
        cases = {
            "header": head.replace(b"Subject: Invoice 42", b"Subject: Invoice 43") +
                      b"\r\n\r\n" + body,
            "second_from": head.replace(b"\r\nFrom:", b"\r\nFrom: boss@example.org\r\nFrom:", 1) +
                           b"\r\n\r\n" + body,
            "body_byte": head + b"\r\n\r\n" + body.replace(b"10", b"90"),
        }
        for name, bad in cases.items():
            with self.subTest(tamper=name):
                self.assertNotEqual(bad, msg)
                self.assertEqual(self.keys.dkimpy(bad), [False, False])
                self.assertEqual(self.keys.opendkim(bad), [False, False])
                rc, ours = self.keys.ours(bad)
                self.assertEqual((rc, ours), (65, [False, False]))

    def test_batch_messages_are_signed(self):
        srv = self.server("plain")
        e = self.env_for(srv, **self.keys.env("ed25519"))
        lines = "".join(json.dumps({"to": [H.RCPT], "subject": "batch %d" % i,
                                    "body": "line %d\n" % i}) + "\n" for i in range(3))
        rc, out, err = H.run_cli(["send-batch", "-"], e, input=lines)
        self.assertEqual(rc, 0, err)
        self.assertTrue(srv.rec.wait_messages(3))
        for m in srv.messages:
            self.assertEqual(self.keys.dkimpy(m.data), [True])
            self.assertEqual(self.keys.opendkim(m.data), [True])

    def test_queue_signs_at_enqueue(self):
        srv = self.server("plain")
        e = self.env_for(srv, **self.keys.env("rsa"))
        url = "sqlite:" + os.path.join(self.keys.dir, "queue.db")
        add = ["queue", "add", "--queue", url] + self.send_args(subject="queued", body="later\n")[1:]
        rc, out, err = H.run_cli(add, e)
        self.assertEqual(rc, 0, err)
        bad = dict(e, SMTP_DKIM_KEY_FILE=os.path.join(self.keys.dir, "missing.pem"))
        self.assertFailed(H.run_cli(add, bad), 78, "No such file")
        rc, out, err = H.run_cli(["queue", "work", "--drain", "--lease", "1s", "--queue", url], e)
        self.assertEqual(rc, 0, err)
        self.assertTrue(srv.rec.wait_messages(1))
        self.assertEqual(len(srv.messages), 1)
        m = srv.messages[0].data
        head = m.split(b"\r\n\r\n", 1)[0]
        # signed once (at enqueue), not again by the worker
        self.assertEqual(len(re.findall(rb"(?im)^DKIM-Signature:", head)), 1)
        self.assertEqual(self.keys.dkimpy(m), [True])
        self.assertEqual(self.keys.opendkim(m), [True])

    def test_unsubscribe_fields_are_added_and_signed(self):
        url = "https://example.org/unsub/42?t=Zm9v"
        msg = self.send_signed(self.send_args("--unsubscribe", url, "--unsubscribe-mailto",
                                              "unsub@example.org"), "rsa")
        head = msg.split(b"\r\n\r\n", 1)[0]
        unfolded = re.sub(rb"\r\n[ \t]", b" ", head)
        self.assertIn(("\r\nList-Unsubscribe: <%s>, <mailto:unsub@example.org>\r\n" % url)
                      .encode(), unfolded)
        self.assertIn(b"\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n", head)
        sig = re.sub(rb"\s+", b"", re.search(rb"(?s)DKIM-Signature:(.*?)\r\n(?=\S)", head).group(1))
        h = re.search(rb"h=([^;]*)", sig).group(1).lower().split(b":")
        self.assertIn(b"list-unsubscribe", h)
        self.assertIn(b"list-unsubscribe-post", h)
        self.assertEqual(self.keys.dkimpy(msg), [True])
        self.assertEqual(self.keys.opendkim(msg), [True])
        # the unsubscribe fields are protected: changing the URL breaks the signature
        bad = msg.replace(url.encode(), b"https://evil.example/x")
        self.assertEqual(self.keys.dkimpy(bad), [False])

    def test_unsubscribe_refuses_bad_urls(self):
        srv = self.server("plain")
        e = self.env_for(srv)
        for bad in ("http://example.org/u", "https://example.org/a b", "https://x/<y>"):
            with self.subTest(url=bad):
                self.assertFailed(H.run_cli(self.send_args("--unsubscribe", bad), e), 65,
                                  "https://")
        self.assertEqual(H.run_cli(self.send_args("--unsubscribe-mailto", "a@example.org"),
                                   e)[0], 64)
        line = json.dumps({"to": [H.RCPT], "subject": "s", "body": "b",
                           "unsubscribe": "https://example.org/u/1"}) + "\n"
        line += json.dumps({"to": [H.RCPT], "subject": "s", "body": "b",
                            "unsubscribe": "ftp://example.org/u/1"}) + "\n"
        rc, out, err = H.run_cli(["send-batch", "-"], e, input=line)
        results = [json.loads(x) for x in out.splitlines()]
        self.assertEqual(len(results), 2, out)
        by_line = {r["line"]: r for r in results}
        self.assertTrue(by_line[1].get("ok", by_line[1].get("status") == "sent"), by_line[1])
        self.assertIn("https://", json.dumps(by_line[2]))
        self.assertTrue(srv.rec.wait_messages(1))
        self.assertIn(b"List-Unsubscribe-Post: List-Unsubscribe=One-Click",
                      srv.messages[0].data)
        self.assertEqual(len(srv.messages), 1)
        self.assertEqual(srv.rec.client_commands().count("DATA"), 1)

    def test_bulk_without_unsubscribe_is_warned_at_enqueue(self):
        e = H.base_env(SMTP_FROM=H.SENDER)
        url = "sqlite:" + os.path.join(self.keys.dir, "bulk.db")
        add = ["queue", "add", "--queue", url, "--priority", "bulk", "--to", H.RCPT,
               "--subject", "news", "--body", "b"]
        rc, out, err = H.run_cli(add, e)
        self.assertEqual(rc, 0, err)
        self.assertIn("warning: a bulk message without --unsubscribe", err)
        rc, out, err = H.run_cli(add + ["--unsubscribe", "https://example.org/u"], e)
        self.assertEqual((rc, err), (0, ""))
        rc, out, err = H.run_cli(add[:-6] + ["--priority", "transactional", "--to", H.RCPT,
                                             "--subject", "receipt", "--body", "b"], e)
        self.assertEqual((rc, err), (0, ""))

    @unittest.skipUnless(shutil.which("dnsmasq") or os.path.exists("/usr/sbin/dnsmasq"),
                         "needs dnsmasq (Debian dnsmasq-base)")
    def test_verify_dns_asks_a_real_dns_server(self):
        msg = self.send_signed(self.send_args(subject="dns"), "dual")
        path = os.path.join(self.keys.dir, "dns.eml")
        with open(path, "wb") as f:
            f.write(msg)
        dns = None

        def stop():
            if dns is None:
                return
            dns.terminate()
            try:
                dns.wait(10)
            except subprocess.TimeoutExpired:
                dns.kill()
                dns.wait()
        self.addCleanup(stop)
        rc = out = err = None
        why = ""
        for _attempt in range(5):      # a new port if dnsmasq cannot listen on this one
            port = _free_udp_port()
            argv = [shutil.which("dnsmasq") or "/usr/sbin/dnsmasq", "--keep-in-foreground",
                    "--conf-file=/dev/null", "--no-resolv", "--no-hosts", "--bind-interfaces",
                    "--listen-address=127.0.0.1", "--port=%d" % port, "--user=nobody",
                    "--pid-file=", "--log-facility=-"]
            for name, value in self.keys.records.items():
                chunks = [value[i:i + 250] for i in range(0, len(value), 250)]
                argv.append("--txt-record=%s,%s" % (name, ",".join(chunks)))
            log = open(os.path.join(self.keys.dir, "dnsmasq-%d.log" % port), "wb+")
            self.addCleanup(log.close)
            dns = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=log)
            env = H.base_env(SCALR_EMAIL_DNS="127.0.0.1:%d" % port)
            for _ in range(100):       # until dnsmasq answers (or has exited)
                rc, out, err = H.run_cli(["dkim", "verify", path, "--dns"], env)
                if "no key record" not in out or dns.poll() is not None:
                    break
                time.sleep(0.1)
            if dns.poll() is None:
                break
            dns.wait()
            log.seek(0)
            why = log.read().decode(errors="replace")
            dns = None
        self.assertIsNotNone(dns, "dnsmasq did not start: " + why)
        self.assertEqual(rc, 0, (out, err))
        self.assertEqual([line.split()[0] for line in out.splitlines()], ["pass", "pass"])
        bad = os.path.join(self.keys.dir, "dns-bad.eml")
        with open(bad, "wb") as f:
            f.write(msg.replace(b"Subject: dns", b"Subject: dnz"))
        rc, out, err = H.run_cli(["dkim", "verify", bad, "--dns"], env)
        self.assertEqual(rc, 65, out)
        self.assertIn("signature mismatch", out)

    def test_ours_agrees_with_dkimpy_on_dkimpy_signed(self):
        raw = (b"From: a@example.org\r\nTo: b@example.net\r\nSubject: hi\r\n"
               b"Date: Fri, 04 Dec 2026 05:00:00 +0000\r\n\r\nBody  text \r\n\r\n")
        rsa_pem = open(self.keys.rsa, "rb").read()
        for canon in ((b"relaxed", b"relaxed"), (b"relaxed", b"simple"), (b"simple", b"simple")):
            with self.subTest(canon=canon):
                sig = dkim.sign(raw, b"rsa", DOMAIN.encode(), rsa_pem, canonicalize=canon,
                                include_headers=[b"from", b"to", b"subject", b"date"])
                msg = sig + raw
                self.assertEqual(self.keys.dkimpy(msg), [True])
                rc, ours = self.keys.ours(msg)
                self.assertEqual((rc, ours), (0, [True]))
                bad = msg.replace(b"Subject: hi", b"Subject: ho")
                self.assertEqual(self.keys.dkimpy(bad), [False])
                rc, ours = self.keys.ours(bad)
                self.assertEqual((rc, ours), (65, [False]))

    def test_domain_mismatch_exits_78_and_sends_nothing(self):
        srv = self.server("plain")
        e = self.env_for(srv, **self.keys.env("rsa"))
        e["SMTP_DKIM_DOMAIN"] = "other.example"
        res = H.run_cli(self.send_args(), e)
        self.assertFailed(res, 78, "does not match the From domain")
        self.assertEqual(srv.messages, [])
        self.assertEqual(srv.rec.client_commands(), [])   # never connected
        e["SMTP_DKIM_ALLOW_DOMAIN_MISMATCH"] = "true"
        self.assertSent(H.run_cli(self.send_args(), e))

    def test_bad_key_exits_78_before_sending(self):
        srv = self.server("plain")
        junk = os.path.join(self.keys.dir, "junk.pem")
        with open(junk, "w") as f:
            f.write("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
        for path, needle in ((os.path.join(self.keys.dir, "missing.pem"), "No such file"),
                             (junk, "no readable private key")):
            with self.subTest(key=path):
                e = self.env_for(srv, **self.keys.env("rsa"))
                e["SMTP_DKIM_KEY_FILE"] = path
                self.assertFailed(H.run_cli(self.send_args(), e), 78, needle)
        e = self.env_for(srv, SMTP_DKIM_DOMAIN=DOMAIN)
        self.assertFailed(H.run_cli(self.send_args(), e), 78, "SMTP_DKIM_SELECTOR")
        self.assertEqual(srv.messages, [])

    def test_keygen_mode_and_no_overwrite(self):
        st = os.stat(self.keys.rsa)
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o600)
        rc, out, err = H.run_cli(["dkim", "keygen", "--domain", DOMAIN, "--selector", "rsa",
                                  "--out", self.keys.rsa], H.base_env())
        self.assertNotEqual(rc, 0)
        self.assertIn("File exists", err)
        rec = self.keys.records["ed._domainkey." + DOMAIN]
        self.assertRegex(rec, r"^v=DKIM1; k=ed25519; p=[A-Za-z0-9+/]{43}=$")
        for args in (["dkim", "--help"], ["dkim", "keygen", "--help"], ["dkim", "verify", "--help"]):
            rc, out, err = H.run_cli(args, H.base_env())
            self.assertEqual(rc, 0)
            self.assertIn("usage: scalr-email dkim", out)
        rc, out, err = H.run_cli(["dkim", "keygen", "--domain", DOMAIN], H.base_env())
        self.assertEqual(rc, 64)


if __name__ == "__main__":
    unittest.main()
