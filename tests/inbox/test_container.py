"""The inbox's container: docker/entrypoint.sh run directly (no container
engine needed) with the built binary, and, where a container engine answers
(`docker info`), the image built from the Dockerfile and run.  Run:
  SCALR_EMAIL_BIN=build/scalr-email /usr/bin/python3 tests/inbox/test_container.py
Ends with "inbox-container: N passed, N failed[, N skipped]".  Every process
and container started is stopped."""

import os
import shutil
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

ROOT = Path(__file__).resolve().parents[2]
BIN = str(Path(os.environ.get("SCALR_EMAIL_BIN", "build/scalr-email")).resolve())
ENTRY = str(ROOT / "docker" / "entrypoint.sh")
TMP = tempfile.mkdtemp(prefix="inbox-container-")
RUNNING = []


class Skip(Exception):
    pass


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def get(url, host=None):
    req = urllib.request.Request(url, headers={"Host": host} if host else {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def health(http_port):
    env = dict(os.environ, INBOX_HTTP="127.0.0.1:%d" % http_port, INBOX_BIN=BIN)
    return subprocess.run(["sh", ENTRY, "health"], env=env, timeout=30).returncode


def start(extra_env=None, args=()):
    smtp, http = free_port(), free_port()
    env = dict(os.environ, INBOX_SMTP="127.0.0.1:%d" % smtp, INBOX_HTTP="127.0.0.1:%d" % http,
               INBOX_BIN=BIN)
    env.update(extra_env or {})
    p = subprocess.Popen(["sh", ENTRY] + list(args), env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    RUNNING.append(p)
    lines = [p.stdout.readline().decode().strip() for _ in range(2)]
    assert lines[0] == "smtp: 127.0.0.1:%d" % smtp, (lines, p.stderr.read(2000) if p.poll() is not None else "")
    return p, smtp, http


def stop(p):
    RUNNING.remove(p)
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=30)
    return p.returncode, err.decode()


def test_entrypoint_runs_the_inbox_with_the_compose_names():
    p, smtp, http = start()
    base = "http://127.0.0.1:%d" % http
    with smtplib.SMTP("127.0.0.1", smtp, timeout=10) as s:
        s.sendmail("app@example.test", ["dev@example.test"], b"Subject: from the app\r\n\r\nhi\r\n")
    for host in ("mail", "mailhog", "mail:8025", "localhost:%d" % http):
        st, body = get(base + "/api/v2/messages", host)
        assert st == 200 and b"from the app" in body, (host, st, body[:200])
    st, body = get(base + "/api/v2/messages", "evil.example")
    assert st == 403 and b"--allow-host" in body, (st, body)
    assert health(http) == 0
    # exec: the signal reaches the inbox itself, which stops cleanly
    rc, err = stop(p)
    assert rc == 0, (rc, err)
    assert health(http) == 1


def test_entrypoint_options_db_and_extra_arguments():
    db = os.path.join(TMP, "inbox.db")
    p, smtp, http = start({"INBOX_ALLOW_HOSTS": "smtp-catcher", "INBOX_DB": db},
                          ["--max-size", "1000"])
    try:
        with smtplib.SMTP("127.0.0.1", smtp, timeout=10) as s:
            try:
                s.sendmail("a@example.test", ["b@example.test"], b"Subject: big\r\n\r\n" + b"x" * 2000)
                raise AssertionError("--max-size was not passed through")
            except smtplib.SMTPException as e:
                assert "552" in str(e) or getattr(e, "smtp_code", 0) == 552, e
            s.sendmail("a@example.test", ["b@example.test"], b"Subject: small\r\n\r\nok\r\n")
        assert get("http://127.0.0.1:%d/api/v2/messages" % http, "smtp-catcher")[0] == 200
        assert get("http://127.0.0.1:%d/api/v2/messages" % http, "mail")[0] == 403
    finally:
        rc, err = stop(p)
    assert rc == 0, err
    assert os.path.getsize(db) > 0
    # bad options: the inbox's own one-line error and exit code
    env = dict(os.environ, INBOX_BIN=BIN, INBOX_SMTP="nonsense")
    r = subprocess.run(["sh", ENTRY], env=env, capture_output=True, timeout=30)
    assert r.returncode == 64 and b"--smtp wants HOST:PORT" in r.stderr, r
    env = dict(os.environ, INBOX_BIN=BIN)
    r = subprocess.run(["sh", ENTRY, "--help"], env=env, capture_output=True, timeout=30)
    assert r.returncode == 0 and b"usage: scalr-email inbox" in r.stdout, r


def test_dockerfile_names_what_the_binary_links():
    """The runtime stage installs a package for every shared library the
    binary needs (checked against this build with ldd and dpkg -S)."""
    text = (ROOT / "Dockerfile").read_text()
    runtime = text.split("FROM debian:12-slim\n", 1)[1]
    assert "USER inbox" in runtime and "HEALTHCHECK" in runtime and "EXPOSE 1025 8025" in runtime
    libs = subprocess.run(["ldd", BIN], capture_output=True, text=True, check=True).stdout
    base = {"libc6", "libgcc-s1", "libstdc++6", "libzstd1", "zlib1g", "libcrypt1"}  # in debian:12-slim
    missing = []
    for line in libs.splitlines():
        if "=>" not in line or "vdso" in line:
            continue
        path = line.split("=>")[1].split("(")[0].strip()
        if not path:
            continue
        r = subprocess.run(["dpkg", "-S", os.path.realpath(path)], capture_output=True, text=True)
        if r.returncode != 0:
            r = subprocess.run(["dpkg", "-S", path], capture_output=True, text=True)
        pkg = r.stdout.split(":")[0] if r.returncode == 0 else None
        direct = os.path.basename(path)
        if pkg and pkg not in base and pkg in ("libssl3", "libidn2-0", "libsqlite3-0", "libpq5",
                                               "libmicrohttpd12", "libjansson4", "libcurl4"):
            if pkg not in runtime:
                missing.append((direct, pkg))
    assert not missing, missing


def engine():
    for cmd in ("docker", "podman"):
        if shutil.which(cmd):
            r = subprocess.run([cmd, "info"], capture_output=True, timeout=30)
            if r.returncode == 0:
                return cmd
    return None


def test_image_builds_runs_and_reports_healthy():
    cmd = engine()
    if not cmd:
        raise Skip("no container engine answers here (docker info fails); the entrypoint is tested directly")
    tag = "scalr-email-inbox:test-%d" % os.getpid()
    subprocess.run([cmd, "build", "-t", tag, str(ROOT)], check=True, timeout=1200)
    name = "scalr-inbox-test-%d" % os.getpid()
    try:
        subprocess.run([cmd, "run", "-d", "--name", name, "-p", "127.0.0.1::8025", tag], check=True,
                       timeout=60)
        port = subprocess.run([cmd, "port", name, "8025"], capture_output=True, text=True,
                              check=True).stdout.strip().rsplit(":", 1)[1]
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                if get("http://127.0.0.1:%s/api/v2/messages" % port)[0] == 200:
                    break
            except OSError:
                time.sleep(0.2)
        user = subprocess.run([cmd, "exec", name, "id", "-u"], capture_output=True, text=True).stdout
        assert user.strip() == "10025", user
        assert subprocess.run([cmd, "exec", name, "/entrypoint.sh", "health"]).returncode == 0
    finally:
        subprocess.run([cmd, "rm", "-f", name], capture_output=True)
        subprocess.run([cmd, "rmi", "-f", tag], capture_output=True)


def main():
    tests = [(k, v) for k, v in globals().items() if k.startswith("test_") and callable(v)]
    passed = failed = skipped = 0
    for name, fn in tests:
        try:
            fn()
            passed += 1
            print("ok   %s" % name, flush=True)
        except Skip as e:
            skipped += 1
            print("skip %s: %s" % (name, e), flush=True)
        except Exception:
            failed += 1
            print("FAIL %s\n%s" % (name, traceback.format_exc()), flush=True)
        finally:
            for p in list(RUNNING):
                p.kill()
                p.communicate(timeout=10)
                RUNNING.remove(p)
    shutil.rmtree(TMP, ignore_errors=True)
    print("inbox-container: %d passed, %d failed%s" % (passed, failed,
                                                        ", %d skipped" % skipped if skipped else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
