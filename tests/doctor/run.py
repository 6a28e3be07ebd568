#!/usr/bin/python3
"""`scalr-email doctor` end to end, against a real DNS server: Debian's dnsmasq,
started here on a free loopback port with the test zones below (--local makes it
answer NXDOMAIN for every other name in them) and stopped at the end.  One test
domain is all good; each other one breaks one thing.  Prints one line per case
and ends with
    doctor: N passed, N failed
$SCALR_EMAIL_BIN is the binary (default build/scalr-email)."""
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
BIN = os.environ.get("SCALR_EMAIL_BIN", str(ROOT / "build/scalr-email"))
if not os.path.isabs(BIN):
    BIN = str(ROOT / BIN)
DNSMASQ = shutil.which("dnsmasq") or "/usr/sbin/dnsmasq"
SES_HOST = "email-smtp.us-east-1.amazonaws.com"

TMP = Path(tempfile.mkdtemp(prefix="doctor-test-"))


def openssl_key(name, kind="rsa"):
    path = TMP / name
    args = ["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"] \
        if kind == "rsa" else ["openssl", "genpkey", "-algorithm", "ED25519"]
    subprocess.run(args + ["-out", str(path)], check=True, capture_output=True)
    return path


def dkim_p(key, kind="rsa"):
    """The p= value, from openssl itself (not from our code)."""
    der = subprocess.run(["openssl", "pkey", "-in", str(key), "-pubout", "-outform", "DER"],
                         check=True, capture_output=True).stdout
    if kind == "ed25519":
        der = der[-32:]
    import base64
    return base64.b64encode(der).decode()


KEY = openssl_key("dkim.pem")
OTHER = openssl_key("other.pem")
P = dkim_p(KEY)
P_OTHER = dkim_p(OTHER)


def chunks(s, n=200):
    """A long TXT value as several character-strings (RFC 7208 3.3 joins them)."""
    return ",".join(s[i:i + n] for i in range(0, len(s), n))


def domain_records(d, spf="v=spf1 include:amazonses.com -all", dkim="key", dmarc=None, mx=True):
    recs = []
    for value in ([spf] if isinstance(spf, str) else spf or []):
        recs.append("--txt-record=%s,%s" % (d, value))
    if dkim:
        p = P if dkim == "key" else P_OTHER
        recs.append("--txt-record=s1._domainkey.%s,%s" % (d, chunks("v=DKIM1; k=rsa; p=" + p)))
    if dmarc is None:
        dmarc = "v=DMARC1; p=reject; rua=mailto:dmarc@%s" % d
    if dmarc:
        recs.append("--txt-record=_dmarc.%s,%s" % (d, dmarc))
    if mx:
        recs.append("--mx-host=%s,mx.%s,10" % (d, d))
    return recs


def zones():
    a = ["--txt-record=amazonses.com,v=spf1 ip4:199.255.192.0/22 ip4:54.240.0.0/18 -all"]
    a += domain_records("good.test")
    a += domain_records("nospf.test", spf=None)
    a += domain_records("twospf.test", spf=["v=spf1 include:amazonses.com -all", "v=spf1 mx -all"])
    # 11 lookups: include, a, mx at the top, then 8 more through nested includes.
    a += domain_records("deep.test", spf="v=spf1 include:i1.deep.test include:amazonses.com a mx -all")
    a += ["--txt-record=i1.deep.test,v=spf1 include:i2.deep.test a:x.deep.test mx:y.deep.test ~all",
          "--txt-record=i2.deep.test,v=spf1 exists:z.deep.test ptr a mx ~all"]
    a += domain_records("plusall.test", spf="v=spf1 include:amazonses.com +all")
    a += domain_records("noinc.test", spf="v=spf1 ip4:192.0.2.0/24 -all")
    a += domain_records("nodkim.test", dkim=None)
    a += domain_records("baddkim.test", dkim="other")
    a += domain_records("nodmarc.test", dmarc=False)
    a += domain_records("pnone.test", dmarc="v=DMARC1; p=none")
    a += domain_records("nomx.test", mx=False)
    return a


def free_port():
    """A port free for both UDP and TCP on 127.0.0.1."""
    for _ in range(50):
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.bind(("127.0.0.1", 0))
        port = u.getsockname()[1]
        t = socket.socket()
        try:
            t.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
        finally:
            u.close()
            t.close()
    raise RuntimeError("no free port")


class Dns:
    def __init__(self):
        self.port = free_port()
        user = subprocess.run(["id", "-un"], capture_output=True, text=True).stdout.strip()
        args = [DNSMASQ, "-k", "--conf-file=/dev/null", "--port=%d" % self.port,
                "--listen-address=127.0.0.1", "--bind-interfaces", "--no-resolv", "--no-hosts",
                "--pid-file=", "--user=" + user, "--local=/test/", "--local=/amazonses.com/",
                "--log-facility=" + str(TMP / "dnsmasq.log")] + zones()
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        # Ready when it answers; waits on a deadline, asserts nothing about time.
        for _ in range(100):
            time.sleep(0.1)
            if self.answers():
                return
            if self.proc.poll() is not None:
                raise RuntimeError("dnsmasq exited: " + self.proc.stderr.read().decode())
        raise RuntimeError("dnsmasq did not answer")

    def answers(self):
        env = dict(os.environ, SCALR_EMAIL_DNS="127.0.0.1:%d" % self.port)
        r = subprocess.run([BIN, "doctor", "good.test", "--timeout", "1", "--json"],
                           env=env, capture_output=True)
        return r.returncode in (0, 1)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)


DNS = None


def doctor(*args, env=None, timeout=60):
    e = {k: v for k, v in os.environ.items() if not k.startswith("SMTP_")}
    e["SCALR_EMAIL_DNS"] = "127.0.0.1:%d" % DNS.port
    e.update(env or {})
    return subprocess.run([BIN, "doctor"] + list(args), env=e, capture_output=True, text=True,
                          timeout=timeout)


SES = {"SMTP_HOST": SES_HOST, "SMTP_DKIM_SELECTOR": "s1", "SMTP_DKIM_KEY_FILE": str(KEY)}


def checks(domain, env=SES, rc=None):
    r = doctor(domain, "--json", env=env)
    assert r.returncode in (0, 1), (r.returncode, r.stderr)
    if rc is not None:
        assert r.returncode == rc, (r.returncode, r.stdout)
    doc = json.loads(r.stdout)
    assert doc["domain"] == domain
    assert [c["name"] for c in doc["checks"]] == ["spf", "dkim", "dmarc", "mx"]
    return {c["name"]: c for c in doc["checks"]}


def only_failing(c, name, status="fail"):
    for k, v in c.items():
        want = status if k == name else "pass"
        assert v["status"] == want, (k, v)
    return c[name]


# --- cases ---------------------------------------------------------------------

def case_all_good():
    c = checks("good.test", rc=0)
    for v in c.values():
        assert v["status"] == "pass" and v["fix"] is None, v
    assert "1 of 10" in c["spf"]["why"] and "Amazon SES" in c["spf"]["why"]
    assert "matches" in c["dkim"]["why"]


def case_default_domain_from_smtp_from():
    r = doctor("--json", env=dict(SES, SMTP_FROM="App <app@good.test>"))
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["domain"] == "good.test"


def case_no_spf():
    f = only_failing(checks("nospf.test", rc=1), "spf")
    assert f["fix"] == {"name": "nospf.test", "type": "TXT",
                        "value": "v=spf1 include:amazonses.com ~all"}, f


def case_two_spf():
    f = only_failing(checks("twospf.test", rc=1), "spf")
    assert "2 SPF records" in f["why"], f
    # DNS returns the two in any order: one record with both records' terms.
    v = f["fix"]["value"].split()
    assert v[0] == "v=spf1" and v[-1] == "-all", f
    assert sorted(v[1:-1]) == ["include:amazonses.com", "mx"], f


def case_eleven_lookups():
    f = only_failing(checks("deep.test", rc=1), "spf")
    assert "11 DNS lookups" in f["why"], f
    for term in ("include:i1.deep.test", "include:i2.deep.test", "exists:z.deep.test", "ptr"):
        assert term in f["why"], (term, f)


def case_plus_all():
    f = only_failing(checks("plusall.test", rc=1), "spf")
    assert "+all" in f["why"]
    assert f["fix"]["value"] == "v=spf1 include:amazonses.com ~all", f


def case_missing_provider_include():
    f = only_failing(checks("noinc.test", rc=1), "spf")
    assert "include:amazonses.com" in f["why"], f
    assert f["fix"]["value"] == "v=spf1 ip4:192.0.2.0/24 include:amazonses.com -all", f
    # Without a known provider the same record passes.
    c = checks("noinc.test", env={"SMTP_HOST": "mail.example.net", "SMTP_DKIM_SELECTOR": "s1",
                                  "SMTP_DKIM_KEY_FILE": str(KEY)}, rc=0)
    assert c["spf"]["status"] == "pass"


def case_no_dkim_record():
    f = only_failing(checks("nodkim.test", rc=1), "dkim")
    assert f["fix"] == {"name": "s1._domainkey.nodkim.test", "type": "TXT",
                        "value": "v=DKIM1; k=rsa; p=" + P}, f


def case_dkim_key_mismatch():
    f = only_failing(checks("baddkim.test", rc=1), "dkim")
    assert "does not match" in f["why"], f
    assert f["fix"]["value"] == "v=DKIM1; k=rsa; p=" + P


def case_dkim_without_selector_names_provider():
    c = checks("good.test", env={"SMTP_HOST": SES_HOST}, rc=0)
    assert c["dkim"]["status"] == "warn" and "Easy DKIM" in c["dkim"]["why"], c["dkim"]


def case_no_dmarc():
    f = only_failing(checks("nodmarc.test", rc=1), "dmarc")
    assert f["fix"] == {"name": "_dmarc.nodmarc.test", "type": "TXT",
                        "value": "v=DMARC1; p=quarantine; rua=mailto:dmarc-reports@nodmarc.test"}


def case_dmarc_p_none():
    f = only_failing(checks("pnone.test", rc=0), "dmarc", "warn")
    assert "p=none" in f["why"] and "rua" in f["why"], f
    assert f["fix"]["value"] == "v=DMARC1; p=quarantine; rua=mailto:dmarc-reports@pnone.test"


def case_no_mx():
    f = only_failing(checks("nomx.test", rc=1), "mx")
    assert f["fix"]["type"] == "MX" and f["fix"]["name"] == "nomx.test", f


def case_table_says_what_to_publish():
    r = doctor("nodmarc.test", env=SES)
    assert r.returncode == 1
    assert "dmarc  fail" in r.stdout, r.stdout
    assert 'publish: _dmarc.nodmarc.test TXT "v=DMARC1; p=quarantine;' in r.stdout, r.stdout
    assert "result: 1 fail, 0 warn, 3 pass" in r.stdout, r.stdout


def case_dead_dns_server():
    # A UDP socket that never answers: the query's deadline ends it.
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    try:
        r = doctor("good.test", "--timeout", "1",
                   env={"SCALR_EMAIL_DNS": "127.0.0.1:%d" % s.getsockname()[1]}, timeout=30)
    finally:
        s.close()
    assert r.returncode == 75, (r.returncode, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "no answer from 127.0.0.1" in lines[0] and "1 s" in lines[0], lines
    assert r.stdout == ""


def case_refusals():
    r = doctor()
    assert r.returncode == 78 and "no domain to check" in r.stderr, (r.returncode, r.stderr)
    r = doctor("not a domain")
    assert r.returncode == 65, (r.returncode, r.stderr)
    r = doctor("good.test", env={"SCALR_EMAIL_DNS": "localhost"})
    assert r.returncode == 78 and "HOST:PORT" in r.stderr, r.stderr
    r = doctor("good.test", "--dkim-key", str(TMP / "missing.pem"))
    assert r.returncode == 66 and "missing.pem" in r.stderr, r.stderr
    r = doctor("good.test", "--selector", "bad selector")
    assert r.returncode == 64, r.returncode
    r = doctor("--help")
    assert r.returncode == 0 and "usage: scalr-email doctor" in r.stdout


def case_ed25519_key():
    key = openssl_key("ed.pem", "ed25519")
    r = doctor("good.test", "--json", "--selector", "s1", "--dkim-key", str(key),
               env={"SMTP_HOST": SES_HOST})
    c = {x["name"]: x for x in json.loads(r.stdout)["checks"]}
    # The record is an RSA key: the type mismatch is named, the fix is the Ed25519 record.
    assert c["dkim"]["status"] == "fail" and "ed25519" in c["dkim"]["why"], c["dkim"]
    assert c["dkim"]["fix"]["value"] == "v=DKIM1; k=ed25519; p=" + dkim_p(key, "ed25519")


def case_check_adds_a_deliverability_line():
    from aiosmtpd.controller import Controller

    class Sink:
        async def handle_DATA(self, server, session, envelope):
            return "250 OK"

    port = free_port()
    ctl = Controller(Sink(), hostname="127.0.0.1", port=port)
    ctl.start()
    try:
        env = {"SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(port), "SMTP_USE_TLS": "false",
               "SMTP_FROM": "app@nodmarc.test", "SMTP_TIMEOUT": "10"}
        e = {k: v for k, v in os.environ.items() if not k.startswith("SMTP_")}
        e.update(env, SCALR_EMAIL_DNS="127.0.0.1:%d" % DNS.port)
        r = subprocess.run([BIN, "check"], env=e, capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, (r.returncode, r.stderr)
        assert "deliverability: nodmarc.test: 1 fail, 1 warn, 2 pass; run scalr-email doctor " \
            "nodmarc.test" in r.stdout, r.stdout
        assert "publish:" not in r.stdout
        r = subprocess.run([BIN, "check", "-v"], env=e, capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        assert 'publish: _dmarc.nodmarc.test TXT' in r.stdout, r.stdout
        # A dead DNS server is a note, not a failed check.
        e["SCALR_EMAIL_DNS"] = "127.0.0.1:1"
        r = subprocess.run([BIN, "check"], env=e, capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        assert "deliverability: not checked (DNS query" in r.stdout, r.stdout
    finally:
        ctl.stop()


def case_inbox_deliverability_note():
    import smtplib
    import urllib.request
    proc = subprocess.Popen([BIN, "inbox", "--smtp", "127.0.0.1:0", "--http", "127.0.0.1:0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        lines = [proc.stdout.readline().decode().strip() for _ in range(2)]
        assert lines[0].startswith("smtp: ") and lines[1].startswith("http: "), lines
        port, http = int(lines[0].rsplit(":", 1)[1]), lines[1][len("http: "):]

        def get(path):
            with urllib.request.urlopen(http + path, timeout=10) as r:
                return json.loads(r.read().decode())

        msgs = [  # (envelope sender, From, extra header lines)
            ("bounce@mail.other.test", "a@acme.test", ""),
            ("bounce@mail.other.test", "a@news.acme.test",
             "DKIM-Signature: v=1; a=rsa-sha256; d=other.test; s=s1; b=AAAA\r\n"
             "DKIM-Signature: v=1; a=rsa-sha256;\r\n\td=acme.test; s=s2;\r\n b=AAAA\r\n"),
            ("b@bounce.acme.test", "a@acme.test", ""),
        ]
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
            for i, (env, frm, extra) in enumerate(msgs):
                smtp.sendmail(env, ["to@example.test"],
                              ("%sFrom: %s\r\nTo: to@example.test\r\nSubject: m%d\r\n\r\nhi\r\n"
                               % (extra, frm, i)).encode())
        items = get("/api/scalr/messages")["items"]
        ids = {it["subject"]: it["id"] for it in items}
        d0 = get("/api/scalr/messages/%d/deliverability" % ids["m0"])
        assert d0["would_fail_dmarc"] is True and d0["from_domain"] == "acme.test", d0
        assert d0["envelope_domain"] == "mail.other.test" and d0["dkim"] == [], d0
        assert "would fail DMARC" in d0["note"], d0
        d1 = get("/api/scalr/messages/%d/deliverability" % ids["m1"])
        assert d1["would_fail_dmarc"] is False and d1["dkim_aligned"] is True, d1
        assert d1["dkim"] == [{"d": "other.test", "s": "s1", "aligned": False},
                              {"d": "acme.test", "s": "s2", "aligned": True}], d1
        d2 = get("/api/scalr/messages/%d/deliverability" % ids["m2"])
        assert d2["would_fail_dmarc"] is False and d2["spf_aligned"] is True, d2
        assert d2["dkim_aligned"] is False, d2
        # Computed on request only: the message itself carries no such field.
        assert "deliverability" not in json.dumps(get("/api/scalr/messages/%d" % ids["m0"]))
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=20)
    assert b"Sanitizer" not in err, err.decode(errors="replace")[-2000:]


def main():
    global DNS
    cases = [(n, f) for n, f in globals().items() if n.startswith("case_")]
    passed = failed = 0
    try:
        DNS = Dns()
        for name, fn in cases:
            try:
                fn()
                print("ok   %s" % name[5:])
                passed += 1
            except Exception:
                print("FAIL %s" % name[5:])
                traceback.print_exc(file=sys.stdout)
                failed += 1
    except Exception:
        traceback.print_exc(file=sys.stdout)
        failed += 1
    finally:
        if DNS:
            DNS.stop()
        shutil.rmtree(TMP, ignore_errors=True)
    print("doctor: %d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
