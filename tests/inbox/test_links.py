"""The inbox's message checks.  The link check: every link and image of a message listed with its
flags (http://, a link text showing another domain), and checked only on
request, against a local http.server (200, 404, a 405 to HEAD, a redirect)
and a closed port.  The HTML check against the bundled caniemail data.  Run:
  SCALR_EMAIL_BIN=build/scalr-email /usr/bin/python3 tests/inbox/test_links.py
Ends with "inbox-links: N passed, N failed".  Every server started is stopped."""

import http.server
import json
import os
import signal
import smtplib
import socket
import subprocess
import sys
import threading
import time
import traceback
import urllib.error
import urllib.request

BIN = os.environ.get("SCALR_EMAIL_BIN", "build/scalr-email")
RUNNING = []


class Site(http.server.BaseHTTPRequestHandler):
    hits = []

    def log_message(self, *a):
        pass

    def answer(self, body):
        Site.hits.append((self.command, self.path))
        if self.path == "/ok":
            code = 200
        elif self.path == "/gone":
            code = 404
        elif self.path == "/nohead":
            code = 405 if self.command == "HEAD" else 200
        elif self.path == "/redir":
            self.send_response(302)
            self.send_header("Location", "/ok")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        else:
            code = 500
        self.send_response(code)
        self.send_header("Content-Length", "1" if body else "0")
        self.end_headers()
        if body:
            self.wfile.write(b"x")

    def do_HEAD(self):
        self.answer(False)

    def do_GET(self):
        self.answer(True)


def closed_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class Inbox:
    def __init__(self):
        self.proc = subprocess.Popen([BIN, "inbox", "--smtp", "127.0.0.1:0", "--http", "127.0.0.1:0"],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        RUNNING.append(self)
        lines = [self.proc.stdout.readline().decode().strip() for _ in range(2)]
        if not lines[1].startswith("http: "):
            raise AssertionError("inbox did not start: %r" % lines)
        self.port = int(lines[0].rsplit(":", 1)[1])
        self.http = lines[1][len("http: "):]

    def stop(self):
        RUNNING.remove(self)
        self.proc.send_signal(signal.SIGTERM)
        self.proc.communicate(timeout=30)
        assert self.proc.returncode == 0

    def deliver(self, data):
        with smtplib.SMTP("127.0.0.1", self.port, timeout=10) as s:
            s.sendmail("app@example.test", ["dev@example.test"], data)
        return json.loads(urllib.request.urlopen(self.http + "/api/scalr/messages").read())["items"][0]["id"]

    def api(self, method, path):
        req = urllib.request.Request(self.http + path, method=method, data=b"" if method == "POST" else None)
        try:
            with urllib.request.urlopen(req, timeout=120) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, None


def message(site, dead):
    html = ('<html><body><a href="%(s)s/ok">Pay now</a>'
            '<a class=x href=\'https://paypal.com.evil.test/login?a=1&amp;b=2\'>www.PayPal.com</a>'
            '<a href="https://news.example.test/u">https://example.test/unsubscribe</a>'
            '<A HREF="%(s)s/nohead"><b>Your</b>\n   account</A>'
            '<img alt="logo" src="%(s)s/gone"><img src="cid:logo@x"><img src="data:image/png;base64,AA">'
            '<a href="mailto:help@example.test">help</a><a href="http://127.0.0.1:%(d)d/x">down</a>'
            '</body></html>') % {"s": site, "d": dead}
    text = "Pay at %s/redir. Thanks!\r\n" % site
    return ("From: app@example.test\r\nTo: dev@example.test\r\nSubject: links\r\nMIME-Version: 1.0\r\n"
            "Content-Type: multipart/alternative; boundary=b\r\n\r\n"
            "--b\r\nContent-Type: text/plain\r\n\r\n" + text +
            "--b\r\nContent-Type: text/html\r\n\r\n" + html + "\r\n--b--\r\n").encode()


def test_links_listed_flagged_and_checked_only_on_request():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Site)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    ib = Inbox()
    try:
        site = "http://127.0.0.1:%d" % srv.server_address[1]
        dead = closed_port()
        mid = ib.deliver(message(site, dead))
        st, j = ib.api("GET", "/api/scalr/messages/%d/links" % mid)
        assert st == 200 and j["checked"] is False, j
        got = [(l["url"], l["kind"], l["part"], l["text"], l["flags"]) for l in j["links"]]
        want = [
            (site + "/ok", "link", "html", "Pay now", ["insecure"]),
            ("https://paypal.com.evil.test/login?a=1&b=2", "link", "html", "www.PayPal.com",
             ["text-mismatch"]),
            ("https://news.example.test/u", "link", "html", "https://example.test/unsubscribe", []),
            (site + "/nohead", "link", "html", "Your account", ["insecure"]),
            (site + "/gone", "image", "html", None, ["insecure"]),
            ("mailto:help@example.test", "link", "html", "help", []),
            ("http://127.0.0.1:%d/x" % dead, "link", "html", "down", ["insecure"]),
            (site + "/redir", "link", "text", None, ["insecure"]),
        ]
        assert got == want, json.dumps(got, indent=1)
        assert Site.hits == [], Site.hits  # listing fetches nothing
        st, j = ib.api("POST", "/api/scalr/messages/%d/links/check" % mid)
        assert st == 200 and j["checked"] is True, j
        res = {l["url"]: (l.get("status"), l.get("error")) for l in j["links"]}
        assert res[site + "/ok"] == (200, None), res
        assert res[site + "/gone"] == (404, None), res
        assert res[site + "/nohead"] == (200, None), res   # HEAD 405, then GET
        assert res[site + "/redir"] == (200, None), res    # followed to /ok
        assert res["mailto:help@example.test"][0] is None, res
        assert res["http://127.0.0.1:%d/x" % dead][0] is None and res["http://127.0.0.1:%d/x" % dead][1], res
        assert ("HEAD", "/nohead") in Site.hits and ("GET", "/nohead") in Site.hits, Site.hits
        assert not any(p.startswith("/u") for _, p in Site.hits)
        assert ib.api("GET", "/api/scalr/messages/%d/links/check" % mid)[0] == 405
        assert ib.api("POST", "/api/scalr/messages/%d/links" % mid)[0] == 405
        assert ib.api("GET", "/api/scalr/messages/99999/links")[0] == 404
        ib.stop()
    finally:
        srv.shutdown()
        srv.server_close()


def test_html_check_api_lists_unsupported_features_with_lines():
    """GET /api/scalr/messages/{id}/htmlcheck against the bundled caniemail data."""
    ib = Inbox()
    try:
        html = ('<!doctype html>\r\n<html>\r\n<body>\r\n<p>Hi</p>\r\n'
                '<div style="color: red; display:flex">\r\n<dfn>x</dfn></div>\r\n</body>\r\n</html>')
        mid = ib.deliver(("From: a@example.test\r\nSubject: h\r\nContent-Type: text/html\r\n\r\n"
                          + html + "\r\n").encode())
        st, j = ib.api("GET", "/api/scalr/messages/%d/htmlcheck" % mid)
        assert st == 200, st
        by = {f["slug"]: f for f in j["features"]}
        flex = by["css-display-flex"]
        assert flex["line"] == 5 and flex["title"] == "display:flex", flex
        outlook = [u for u in flex["unsupported"] if u["family"] == "outlook"]
        assert outlook and "Windows" in outlook[0]["platforms"], flex["unsupported"]
        assert by["html-dfn"]["line"] == 6, by["html-dfn"]
        assert "css-display-grid" not in by
        assert 0 <= j["scores"]["outlook"]["score"] < 100 and j["scores"]["outlook"]["name"] == "Outlook", j["scores"]
        assert j["found"] >= len(j["features"]) and j["data_date"], j
        text = ib.deliver(b"From: a@example.test\r\nSubject: t\r\n\r\nplain\r\n")
        assert ib.api("GET", "/api/scalr/messages/%d/htmlcheck" % text)[0] == 404
        assert ib.api("POST", "/api/scalr/messages/%d/htmlcheck" % mid)[0] == 405
        ib.stop()
    finally:
        pass


def main():
    tests = [(k, v) for k, v in globals().items() if k.startswith("test_") and callable(v)]
    passed = failed = 0
    for name, fn in tests:
        try:
            fn()
            passed += 1
            print("ok   %s" % name, flush=True)
        except Exception:
            failed += 1
            print("FAIL %s\n%s" % (name, traceback.format_exc()), flush=True)
        finally:
            for ib in list(RUNNING):
                ib.proc.kill()
                ib.proc.communicate(timeout=10)
                RUNNING.remove(ib)
    print("inbox-links: %d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
