#!/usr/bin/python3
"""A private PostgreSQL for tests: Debian's server binaries, a temporary
directory, a free loopback port, never the packaged cluster.

initdb refuses to run as root, so initdb and pg_ctl run through runuser as an
unprivileged system user (made when missing).  fsync is off: the data is
thrown away.

    with PgServer() as pg: pg.url  ->  postgresql://scalr@127.0.0.1:PORT/scalr
    pgserver.py start DIR          prints the URL (the server keeps running)
    pgserver.py stop DIR
"""
import glob
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time

USER = "scalr-email-test"


def bindir():
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        raise RuntimeError("PostgreSQL's server is not installed (Debian package postgresql)")
    return os.path.dirname(found[-1])


def ensure_user():
    try:
        pwd.getpwnam(USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
                        USER], check=True)


def as_user(args, **kw):
    if os.geteuid() == 0:
        args = ["runuser", "-u", USER, "--"] + args
    return subprocess.run(args, check=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **kw)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PgServer:
    def __init__(self, root=None):
        self.own_root = root is None
        self.root = root or tempfile.mkdtemp(prefix="se-pg-")
        self.data = os.path.join(self.root, "data")
        self.port = None
        self.url = None

    def start(self):
        if os.geteuid() == 0:
            ensure_user()
            os.chmod(self.root, 0o755)
            shutil.chown(self.root, USER)
        b = bindir()
        as_user([os.path.join(b, "initdb"), "--no-sync", "-A", "trust", "-U", "scalr", "-E",
                 "UTF8", "-D", self.data])
        self.port = free_port()
        opts = ("-c listen_addresses=127.0.0.1 -c port=%d -c unix_socket_directories=%s "
                "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
                "-c max_connections=60" % (self.port, self.root))
        as_user([os.path.join(b, "pg_ctl"), "-D", self.data, "-o", opts, "-w", "-t", "60",
                 "-l", os.path.join(self.root, "log"), "start"])
        as_user([os.path.join(b, "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U",
                 "scalr", "scalr"], env=dict(os.environ, PGCONNECT_TIMEOUT="10"))
        self.url = "postgresql://scalr@127.0.0.1:%d/scalr" % self.port
        with open(os.path.join(self.root, "url"), "w") as f:
            f.write(self.url)
        return self.url

    def stop(self):
        if os.path.exists(os.path.join(self.data, "postmaster.pid")):
            try:
                as_user([os.path.join(bindir(), "pg_ctl"), "-D", self.data, "-m", "immediate",
                         "-w", "-t", "30", "stop"])
            except subprocess.CalledProcessError:
                pass
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self):
        try:
            self.start()
        except Exception:
            self.stop()
            raise
        return self

    def __exit__(self, *exc):
        self.stop()


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in ("start", "stop"):
        print("usage: pgserver.py start|stop DIR", file=sys.stderr)
        return 2
    root = sys.argv[2]
    if sys.argv[1] == "start":
        os.makedirs(root, exist_ok=True)
        pg = PgServer(root)
        try:
            print(pg.start())
        except subprocess.CalledProcessError as e:
            sys.stderr.write(e.stdout.decode(errors="replace"))
            pg.stop()
            return 1
    else:
        PgServer(root).stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
