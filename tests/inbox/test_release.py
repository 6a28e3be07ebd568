"""Release of caught messages to a real mailbox through a relay
(`scalr-email inbox --release-env FILE --release-allow PATTERN`), against a
recording aiosmtpd relay (STARTTLS + AUTH, throw-away CA) from the
integration suite's helpers.  Run:
  SCALR_EMAIL_BIN=build/scalr-email /usr/bin/python3 tests/inbox/test_release.py
Ends with "inbox-release: N passed, N failed".  Every server started is stopped."""

import json
import os
import signal
import smtplib
import socket
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
from helpers import Server, base_env  # noqa: E402

BIN = os.environ.get("SCALR_EMAIL_BIN", "build/scalr-email")
TMP = tempfile.mkdtemp(prefix="inbox-release-")
RUNNING = []
SERVERS = []
PASSWORD = "s3cret-relay-pw"

MESSAGE = (b"From: App <app@example.test>\r\n"
           b"To: Customer <customer@example.test>\r\n"
           b"Subject: Your invoice\r\n"
           b"Message-ID: <inv-1@example.test>\r\n"
           b"\r\n"
           b"Hello,\r\n"
           b".leading dot stays\r\n"
           b"your invoice is ready.\r\n")


class Inbox:
    """One `scalr-email inbox` process on free ports."""

    def __init__(self, *args, env=None):
        cmd = [BIN, "inbox", "--smtp", "127.0.0.1:0", "--http", "127.0.0.1:0"] + list(args)
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     env=env or base_env())
        RUNNING.append(self)
        lines = []
        deadline = time.time() + 20
        while len(lines) < 2 and time.time() < deadline:
            line = self.proc.stdout.readline().decode()
            if not line:
                break
            lines.append(line.strip())
        if len(lines) < 2:
            err = self.stop(expect_ok=False)
            raise AssertionError("inbox did not start: %r %r" % (lines, err))
        self.port = int(lines[0].rsplit(":", 1)[1])
        self.http = lines[1][len("http: "):]

    def stop(self, expect_ok=True):
        if self in RUNNING:
            RUNNING.remove(self)
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        _, err = self.proc.communicate(timeout=30)
        err = err.decode(errors="replace")
        if expect_ok and self.proc.returncode != 0:
            raise AssertionError("inbox exited %d: %s" % (self.proc.returncode, err))
        return err

    def deliver(self, data=MESSAGE):
        with smtplib.SMTP("127.0.0.1", self.port, timeout=10) as s:
            s.sendmail("app@example.test", ["customer@example.test"], data)
        msgs = self.api("GET", "/api/scalr/messages")[1]["items"]
        return msgs[0]["id"]

    def api(self, method, path, body=None, headers=None, raw=False):
        h = {"Content-Type": "application/json"} if body is not None else {}
        h.update(headers or {})
        data = json.dumps(body).encode() if body is not None and not isinstance(body, bytes) \
            else body
        req = urllib.request.Request(self.http + path, data=data, method=method, headers=h)
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                out = r.read()
                return r.status, (out if raw else json.loads(out or b"null"))
        except urllib.error.HTTPError as e:
            out = e.read()
            return e.code, (out if raw else json.loads(out or b"null"))

    def release(self, mid, to, **kw):
        return self.api("POST", "/api/scalr/messages/%d/release" % mid, {"to": to}, **kw)


def relay(**kw):
    s = Server(mode="starttls", auth=("relay-user", PASSWORD), **kw).start()
    SERVERS.append(s)
    return s


def env_file(server, **extra):
    p = Path(TMP) / ("relay-%d.env" % len(list(Path(TMP).iterdir())))
    v = {"SMTP_HOST": "localhost", "SMTP_PORT": server.port, "SMTP_USERNAME": "relay-user",
         "SMTP_PASSWORD": PASSWORD, "SMTP_FROM": "Releaser <releaser@mycompany.test>"}
    v.update(extra)
    p.write_text("".join("%s=%s\n" % (k, val) for k, val in v.items() if val is not None))
    return str(p)


def released_inbox(server, *allow, **extra):
    args = ["--release-env", env_file(server, **extra)]
    for a in allow or ("*@mycompany.test",):
        args += ["--release-allow", a]
    return Inbox(*args)


# ---- tests -------------------------------------------------------------------------


def test_release_goes_through_the_relay_as_caught_with_a_received_line():
    srv = relay()
    ib = released_inbox(srv)
    mid = ib.deliver()
    st, info = ib.api("GET", "/api/scalr/release")
    assert st == 200 and info == {"enabled": True, "allow": ["*@mycompany.test"]}, info
    st, r = ib.release(mid, ["Dev <dev@MyCompany.test>"])
    assert st == 200, r
    assert r["released"] is True and r["to"] == ["dev@MyCompany.test"], r
    assert r["relay"]["code"] == 250 and "queued" in r["relay"]["text"], r
    assert srv.rec.wait_messages(1)
    m = srv.messages[0]
    assert m.rcpt_tos == ["dev@MyCompany.test"], m.rcpt_tos
    assert m.mail_from == "releaser@mycompany.test", m.mail_from  # SMTP_FROM
    assert m.tls and m.tls.startswith("TLSv1"), m.tls
    assert srv.rec.auth and srv.rec.auth[-1][1:] == ("relay-user", True), srv.rec.auth
    caught = ib.api("GET", "/api/scalr/messages/%d/raw" % mid, raw=True)[1]
    first, rest = m.data.split(b"\r\n\t", 1)
    assert first.startswith(b"Received: by inbox.localhost (scalr-email inbox, released "
                            b"message %d);" % mid), m.data[:200]
    assert rest.split(b"\r\n", 1)[1] == caught, (rest, caught)
    assert b".leading dot stays" in m.data
    # the message stays in the inbox; the password is in no answer or log
    assert ib.api("GET", "/api/scalr/messages/%d" % mid)[0] == 200
    err = ib.stop()
    assert PASSWORD not in err and PASSWORD not in json.dumps(r), err


def test_envelope_sender_is_kept_without_smtp_from():
    srv = relay()
    ib = released_inbox(srv, "dev@mycompany.test", SMTP_FROM=None)
    mid = ib.deliver()
    st, r = ib.release(mid, "dev@mycompany.test")
    assert st == 200, r
    assert srv.rec.wait_messages(1)
    assert srv.messages[0].mail_from == "app@example.test", srv.messages[0].mail_from
    ib.stop()


def test_a_refused_recipient_sends_nothing():
    srv = relay()
    ib = released_inbox(srv, "*@mycompany.test", "boss@partner.test")
    mid = ib.deliver()
    for to in (["dev@mycompany.test", "attacker@evil.test"], ["dev@mycompany.test.evil.test"],
               ["boss2@partner.test"], ["dev@sub.mycompany.test"]):
        st, r = ib.release(mid, to)
        assert st == 403, (to, st, r)
        assert "allow list" in r["error"] and r["refused"] == [to[-1]], r
    st, r = ib.release(mid, "BOSS@partner.TEST")  # case-insensitive, exact address
    assert st == 200, r
    assert srv.rec.wait_messages(1)
    assert len(srv.messages) == 1 and srv.messages[0].rcpt_tos == ["BOSS@partner.TEST"]
    assert srv.rec.connections == 1, srv.rec.connections  # the refusals never connected
    ib.stop()


def test_bad_requests_are_refused_before_anything_is_sent():
    srv = relay()
    ib = released_inbox(srv)
    mid = ib.deliver()
    cases = [
        (dict(body={"to": ["dev@mycompany.test\r\nRCPT TO:<x@evil.test>"]}), 400),
        (dict(body={"to": []}), 400),
        (dict(body={"to": ["a@mycompany.test"] * 51}), 400),
        (dict(body={"nope": 1}), 400),
        (dict(body=b"{not json", headers={}), 400),
        (dict(body=b'{"to":"dev@mycompany.test"}', headers={"Content-Type": "text/plain"}), 415),
        (dict(body={"to": "dev@mycompany.test"}, headers={"Sec-Fetch-Site": "cross-site"}), 403),
        (dict(body={"to": "dev@mycompany.test"}, headers={"Origin": "http://evil.test"}), 403),
    ]
    for kw, want in cases:
        st, r = ib.api("POST", "/api/scalr/messages/%d/release" % mid, **kw)
        assert st == want, (kw, st, r)
    st, r = ib.release(mid + 1000, "dev@mycompany.test")
    assert st == 404, r
    st, _ = ib.api("GET", "/api/scalr/messages/%d/release" % mid)
    assert st == 405
    assert srv.rec.connections == 0 and srv.messages == [], srv.rec.connections
    ib.stop()


def test_the_relays_refusal_is_shown():
    srv = relay(rcpt_replies={"gone@mycompany.test": "550 5.1.1 <gone@mycompany.test>: "
                                                     "no such user"})
    ib = released_inbox(srv)
    mid = ib.deliver()
    st, r = ib.release(mid, "gone@mycompany.test")
    assert st == 502, r
    assert r["relay"]["code"] == 550 and r["relay"]["enhanced"] == "5.1.1", r
    assert "no such user" in r["relay"]["text"] and r["stage"] == "RCPT", r
    assert r["outcome"] == "permanent rejection" and r["recipient"] == "gone@mycompany.test", r
    assert srv.messages == []
    ib.stop()


def test_relay_down_is_a_502_with_the_reason():
    srv = relay()
    ib = released_inbox(srv)
    srv.stop()
    SERVERS.remove(srv)
    mid = ib.deliver()
    st, r = ib.release(mid, "dev@mycompany.test")
    assert st == 502 and r["stage"] == "CONNECT", r
    ib.stop()


def test_without_release_env_release_is_off():
    ib = Inbox()
    mid = ib.deliver()
    assert ib.api("GET", "/api/scalr/release") == (200, {"enabled": False, "allow": []})
    st, r = ib.release(mid, "dev@mycompany.test")
    assert st == 501 and "--release-env" in r["error"], r
    # MailHog's release (to any server the caller names) stays unsupported
    st, r = ib.api("POST", "/api/v1/messages/%d/release" % mid,
                   {"Host": "127.0.0.1", "Port": "25", "Email": "x@example.test"})
    assert st == 501, r
    ib.stop()


def run_inbox(*args, env=None):
    p = subprocess.run([BIN, "inbox", "--smtp", "127.0.0.1:0", "--http", "127.0.0.1:0"] +
                       list(args), capture_output=True, env=env or base_env(), timeout=30)
    return p.returncode, p.stderr.decode()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_bad_options():
    good = Path(TMP) / "good.env"
    good.write_text("SMTP_HOST=localhost\nSMTP_PORT=2525\n")
    cases = [
        (["--release-env", str(good)], 64, "at least one --release-allow"),
        (["--release-allow", "*@x.test"], 64, "needs --release-env"),
        (["--release-env", str(good), "--release-allow", "*@*"], 64, "'*' only in the local"),
        (["--release-env", str(good), "--release-allow", "x.test"], 64, "LOCAL@DOMAIN"),
        (["--release-env", str(Path(TMP) / "missing.env"), "--release-allow", "*@x.test"], 78,
         "missing.env"),
    ]
    nohost = Path(TMP) / "nohost.env"
    nohost.write_text("SMTP_PORT=2525\n")
    cases.append((["--release-env", str(nohost), "--release-allow", "*@x.test"], 78, "SMTP_HOST"))
    port = free_port()
    loop = Path(TMP) / "loop.env"
    loop.write_text("SMTP_HOST=127.0.0.1\nSMTP_PORT=%d\nSMTP_USE_TLS=false\n" % port)
    for args, want, text in cases:
        rc, err = run_inbox(*args)
        assert rc == want and text in err, (args, rc, err)
        assert len(err.strip().splitlines()) <= 2, err
    p = subprocess.run([BIN, "inbox", "--smtp", "127.0.0.1:%d" % port, "--http", "127.0.0.1:0",
                        "--release-env", str(loop), "--release-allow", "*"],
                       capture_output=True, env=base_env(), timeout=30)
    assert p.returncode == 78 and b"this inbox itself" in p.stderr, p.stderr


def main():
    tests = [(k, v) for k, v in globals().items() if k.startswith("test_") and callable(v)]
    only = sys.argv[1] if len(sys.argv) > 1 else None
    passed = failed = 0
    for name, fn in tests:
        if only and only not in name:
            continue
        try:
            fn()
            passed += 1
            print("ok   %s" % name, flush=True)
        except Exception:
            failed += 1
            print("FAIL %s\n%s" % (name, traceback.format_exc()), flush=True)
        finally:
            for ib in list(RUNNING):
                try:
                    ib.proc.kill()
                    ib.proc.communicate(timeout=10)
                except Exception:
                    pass
                RUNNING.remove(ib)
            for s in list(SERVERS):
                s.stop()
                SERVERS.remove(s)
    print("inbox-release: %d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
