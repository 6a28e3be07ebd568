#!/usr/bin/python3
"""The sendmail-mode suite: `scalr-email sendmail` driven by real callers.

    /usr/bin/python3 tests/sendmail/run.py [NAME_SUBSTRING ...]

PHP's mail() (php-cli, sendmail_path), git send-email (git-email), s-nail
(through a link named sendmail) and cron-style `sendmail -t -oi` input each
send the same message twice to one recording aiosmtpd server: once through
scalr-email, once through msmtp (Debian's, configured for the same server).
The delivered messages must be equal apart from Received, Date and
Message-ID, with the same envelope and no Bcc field.  Then the flags, the
exit codes, the queue (-bp, -q, enqueue) and a 20 MB message in flat memory.

Ends with one line "sendmail: N passed, N failed[, N skipped]".  The binary
is $SCALR_EMAIL_BIN (default build/scalr-email).  Installs its Debian
packages through scripts/deps.sh when one is missing.
"""

import email
import email.policy
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import traceback
import unittest
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
PKGS = ["php-cli", "git-email", "libmailtools-perl", "msmtp", "s-nail", "time"]

try:
    import aiosmtpd  # noqa: F401
except ImportError:
    if sys.executable != "/usr/bin/python3" and os.path.exists("/usr/bin/python3"):
        os.execv("/usr/bin/python3", ["/usr/bin/python3", str(Path(__file__).resolve())]
                 + sys.argv[1:])
    sys.stderr.write("run.py: aiosmtpd is missing (apt-get install python3-aiosmtpd)\n")
    sys.exit(2)

sys.path.insert(0, str(REPO / "tests" / "integration"))
import helpers  # noqa: E402

BIN = Path(os.environ.get("SCALR_EMAIL_BIN", "build/scalr-email"))
if not BIN.is_absolute():
    BIN = REPO / BIN
SENDER = "System <system@example.org>"
TIMEOUT = 60

IGNORED = {"received", "date", "message-id"}


def headers_and_body(data):
    """(sorted header fields without Received/Date/Message-ID, body) of raw bytes."""
    head, _, body = data.partition(b"\r\n\r\n")
    fields = []
    for line in head.split(b"\r\n"):
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1] += b"\r\n" + line
        else:
            fields.append(line)
    kept = sorted(f for f in fields if f.split(b":", 1)[0].strip().lower().decode() not in IGNORED)
    return kept, body


class SendmailTest(unittest.TestCase):
    maxDiff = None

    def setUp(self):
        self.tmp = Path(tempfile.mkdtemp(prefix="scalr-sendmail-"))
        self.addCleanup(shutil.rmtree, self.tmp, True)

    def server(self, **kw):
        s = helpers.Server("plain", **kw)
        s.start()
        self.addCleanup(s.stop)
        return s

    def env(self, srv, **over):
        e = dict(SMTP_HOST="127.0.0.1", SMTP_PORT=srv.port if srv else 1, SMTP_FROM=SENDER,
                 SMTP_USE_TLS="false", HOME=str(self.tmp), SCALR_EMAIL_QUEUE=None,
                 SCALR_EMAIL_ENV_FILE=None, TMPDIR=str(self.tmp))
        e.update(over)
        return helpers.base_env(**e)

    def msmtp_home(self, srv):
        """A HOME whose .msmtprc points msmtp at srv, as plainly as we are set up."""
        home = self.tmp / "msmtp-home"
        home.mkdir(exist_ok=True)
        rc = home / ".msmtprc"
        rc.write_text("defaults\naccount default\nhost 127.0.0.1\nport %d\nfrom system@example.org\n"
                      "tls off\nauth off\n" % srv.port)
        rc.chmod(0o600)
        return home

    def links(self):
        """A directory with `sendmail` linked to scalr-email."""
        d = self.tmp / "bin"
        d.mkdir(exist_ok=True)
        if not (d / "sendmail").exists():
            (d / "sendmail").symlink_to(BIN)
        return d

    def run_sm(self, args, env, input=b"", via=None):
        argv = [str(via)] + args if via else [str(BIN), "sendmail"] + args
        if isinstance(input, str):
            input = input.encode()
        r = subprocess.run(argv, env=env, input=input, capture_output=True, timeout=TIMEOUT)
        return r.returncode, r.stdout.decode("utf-8", "replace"), r.stderr.decode("utf-8", "replace")

    def assertOk(self, res):
        rc, out, err = res
        self.assertEqual(rc, 0, "exit %d, stderr %r" % (rc, err))
        self.assertEqual(out, "")

    def assertUsage(self, res, code, needle):
        rc, out, err = res
        self.assertEqual(rc, code, "stderr %r" % err)
        lines = err.strip().splitlines()
        self.assertEqual(len(lines), 1, err)
        self.assertTrue(lines[0].startswith("scalr-email: "), err)
        self.assertIn(needle.lower(), lines[0].lower())

    def assertSame(self, ours, theirs):
        """Two deliveries equal apart from Received/Date/Message-ID."""
        self.assertEqual(ours.mail_from, theirs.mail_from)
        self.assertEqual(sorted(ours.rcpt_tos), sorted(theirs.rcpt_tos))
        h1, b1 = headers_and_body(ours.data)
        h2, b2 = headers_and_body(theirs.data)
        self.assertEqual(h1, h2)
        self.assertEqual(b1, b2)
        for f in h1:
            self.assertFalse(f.lower().startswith(b"bcc:"), f)
        # we always give Date and Message-ID
        self.assertRegex(ours.data, rb"(?mi)^Date: ")
        self.assertRegex(ours.data, rb"(?mi)^Message-ID: <")


class RealCallers(SendmailTest):
    """The same input from a real caller, once to us and once to msmtp."""

    def pair(self, srv, n=2):
        self.assertTrue(srv.rec.wait_messages(n), "expected %d messages, got %d"
                        % (n, len(srv.messages)))
        self.assertEqual(len(srv.messages), n)
        return srv.messages

    def test_php_mail(self):
        srv = self.server()
        script = self.tmp / "m.php"
        script.write_text(
            '<?php\n$ok = mail("Ann <ann@example.net>, bob@example.net", "Grüße aus PHP",\n'
            '  "Hello from PHP.\\n.\\nA line with a dot above.\\n..two dots\\n",\n'
            '  ["From" => "App <app@example.org>", "Cc" => "carol@example.net",\n'
            '   "Bcc" => "hidden@example.net", "X-App" => "tests"], "-fbounce@example.org");\n'
            'exit($ok ? 0 : 3);\n')
        for path in ("%s sendmail -t -i" % BIN, "/usr/bin/msmtp -t -i"):
            env = self.env(srv, HOME=str(self.msmtp_home(srv)))
            r = subprocess.run(["php", "-n", "-d", "sendmail_path=" + path, str(script)], env=env,
                               capture_output=True, timeout=TIMEOUT)
            self.assertEqual(r.returncode, 0, (path, r.stdout, r.stderr))
        ours, theirs = self.pair(srv)
        self.assertEqual(ours.mail_from, "bounce@example.org")
        self.assertEqual(sorted(ours.rcpt_tos), ["ann@example.net", "bob@example.net",
                                                 "carol@example.net", "hidden@example.net"])
        self.assertIn("Grüße aus PHP".encode(), ours.data)  # the server offers SMTPUTF8
        self.assertIn("SMTPUTF8", ours.mail_options)
        self.assertNotIn(b"hidden@example.net", ours.data)
        self.assertIn(b"\r\n.\r\nA line with a dot above.\r\n..two dots\r\n", ours.data)
        self.assertSame(ours, theirs)

    def test_php_mail_failure_is_false(self):
        # PHP's mail() returns false when sendmail exits non-zero.
        script = self.tmp / "m.php"
        script.write_text('<?php exit(mail("a@example.net", "s", "b") ? 0 : 3);\n')
        env = self.env(None)
        r = subprocess.run(["php", "-n", "-d", "sendmail_path=%s sendmail -t -i" % BIN, str(script)],
                           env=env, capture_output=True, timeout=TIMEOUT)
        self.assertEqual(r.returncode, 3, r)

    def git_repo(self):
        repo = self.tmp / "repo"
        repo.mkdir()
        env = dict(os.environ, HOME=str(self.tmp), GIT_CONFIG_NOSYSTEM="1",
                   GIT_AUTHOR_NAME="Dev Eloper", GIT_AUTHOR_EMAIL="dev@example.org",
                   GIT_COMMITTER_NAME="Dev Eloper", GIT_COMMITTER_EMAIL="dev@example.org")
        def git(*a):
            subprocess.run(["git", "-C", str(repo)] + list(a), env=env, check=True,
                           capture_output=True, timeout=TIMEOUT)
        git("init", "-q")
        (repo / "a.txt").write_text("line\n.\n")
        git("add", "a.txt")
        git("commit", "-q", "-m", "Add a.txt with a lone dot\n\nCc: reviewer@example.net")
        git("format-patch", "-q", "-1", "-o", str(self.tmp / "patches"))
        return repo, env, sorted((self.tmp / "patches").iterdir())

    def test_git_send_email(self):
        srv = self.server()
        repo, genv, patches = self.git_repo()
        ways = (  # --sendmail-cmd, sendemail.smtpServer set to a link named sendmail, msmtp
            ([], ["--sendmail-cmd=%s sendmail" % BIN]),
            (["-c", "sendemail.smtpServer=%s" % (self.links() / "sendmail")], []),
            ([], ["--sendmail-cmd=/usr/bin/msmtp"]),
        )
        for conf, way in ways:
            env = dict(genv, **{k: v for k, v in self.env(srv, HOME=str(self.msmtp_home(srv))).items()
                                if k.startswith(("SMTP_", "SSL_", "HOME"))})
            r = subprocess.run(["git", "-C", str(repo)] + conf + ["send-email"] + way +
                               ["--to=list@example.net", "--bcc=archive@example.net",
                                "--from=Dev Eloper <dev@example.org>", "--confirm=never",
                                "--suppress-cc=self", "--no-chain-reply-to", "--quiet",
                                "--envelope-sender=auto"]
                               + [str(p) for p in patches], env=env, capture_output=True,
                               timeout=TIMEOUT)
            self.assertEqual(r.returncode, 0, (way, conf, r.stdout, r.stderr))
        ours, link, theirs = self.pair(srv, 3)
        self.assertEqual(ours.mail_from, "dev@example.org")
        self.assertEqual(sorted(ours.rcpt_tos), ["archive@example.net", "list@example.net",
                                                 "reviewer@example.net"])
        self.assertNotIn(b"archive@example.net", ours.data)
        self.assertIn(b"\r\n+.\r\n", ours.data)
        self.assertSame(ours, theirs)
        self.assertSame(link, theirs)

    def test_s_nail_through_a_link(self):
        srv = self.server()
        body = "Hello from s-nail.\n.\nThe dot above stays.\n"
        # msmtp through a wrapper that names its configuration (s-nail runs
        # the MTA with its own idea of HOME)
        wrap = self.tmp / "msmtp-wrap"
        wrap.write_text("#!/bin/sh\nexec /usr/bin/msmtp -C %s \"$@\"\n"
                        % (self.msmtp_home(srv) / ".msmtprc"))
        wrap.chmod(0o755)
        for mta in (self.links() / "sendmail", wrap):
            env = self.env(srv, HOME=str(self.msmtp_home(srv)), MAILRC="/dev/null")
            r = subprocess.run(["s-nail", "-n", "-#", "-S", "mta=%s" % mta, "-S", "sendwait",
                                "-S", "expandaddr", "-s", "Report from s-nail",
                                "-r", "Ops <ops@example.org>", "-c", "cc@example.net",
                                "-b", "bcc@example.net", "to@example.net"],
                               env=env, input=body.encode(), capture_output=True,
                               timeout=TIMEOUT)
            self.assertEqual(r.returncode, 0, (mta, r.stdout, r.stderr))
        ours, theirs = self.pair(srv)
        self.assertEqual(ours.mail_from, "ops@example.org")
        self.assertEqual(sorted(ours.rcpt_tos), ["bcc@example.net", "cc@example.net",
                                                 "to@example.net"])
        self.assertIn(b"\r\n.\r\nThe dot above stays.", ours.data)
        self.assertSame(ours, theirs)

    def test_cron_style(self):
        # Vixie cron: sendmail -FCronDaemon -odi -oem -oi -t, a message with LF endings.
        srv = self.server()
        msg = ("From: root (Cron Daemon)\nTo: ops@example.net\n"
               "Subject: Cron <root@host> /usr/local/bin/backup\n"
               "MIME-Version: 1.0\nContent-Type: text/plain; charset=UTF-8\n"
               "Content-Transfer-Encoding: 8bit\nX-Cron-Env: <SHELL=/bin/sh>\n\n"
               "backup: 3 files, 1.2 GB, ok \u2713\n.\nlast line\n")
        env = self.env(srv, HOME=str(self.msmtp_home(srv)), SMTP_DEFAULT_DOMAIN="example.org")
        self.assertOk(self.run_sm(["-FCronDaemon", "-odi", "-oem", "-oi", "-t"], env, msg))
        r = subprocess.run(["/usr/bin/msmtp", "-FCronDaemon", "-odi", "-oem", "-oi", "-t"], env=env,
                           input=msg.encode(), capture_output=True, timeout=TIMEOUT)
        self.assertEqual(r.returncode, 0, r)
        ours, theirs = self.pair(srv)
        self.assertEqual(ours.rcpt_tos, ["ops@example.net"])
        self.assertIn("BODY=8BITMIME", ours.mail_options)
        self.assertSame(ours, theirs)


class Flags(SendmailTest):
    def test_t_folded_grouped_dedup_and_bcc_removed(self):
        srv = self.server()
        msg = ("To: Ann <ann@example.net>,\n \"Doe, Bob\" <bob@example.net>\n"
               "Cc: team: carol@example.net, ann@example.net;\n"
               "Bcc: hidden@example.net\nbcc: (secret) other@example.net\n"
               "Subject: hi\n\nbody\n")
        self.assertOk(self.run_sm(["-t", "-i", "extra@example.net", "ann@example.net"],
                                  self.env(srv), msg))
        m = srv.messages[0]
        self.assertEqual(m.rcpt_tos, ["extra@example.net", "ann@example.net", "bob@example.net",
                                      "carol@example.net", "hidden@example.net",
                                      "other@example.net"])
        self.assertNotIn(b"hidden", m.data)
        self.assertNotIn(b"other@", m.data)
        self.assertIn(b"To: Ann <ann@example.net>,\r\n \"Doe, Bob\" <bob@example.net>\r\n", m.data)

    def test_clusters_and_ignored_flags(self):
        srv = self.server()
        for args in (["-ti"], ["-it"], ["-oi", "-t"], ["-t", "-oem", "-odb", "-oee", "-m", "-n",
                     "-U", "-Am", "-bm", "-B", "8BITMIME", "-N", "never", "-R", "hdrs",
                     "-V", "envid", "-i"]):
            with self.subTest(args=args):
                srv.rec.reset()
                self.assertOk(self.run_sm(args, self.env(srv),
                                          "To: a@example.net\nSubject: s\n\nx\n.\ny\n"))
                self.assertIn(b"x\r\n.\r\ny\r\n", srv.messages[0].data)

    def test_mutt_style_arguments(self):
        # mutt: -oem -oi -f ADDR -- RCPT...; the header's recipients are not added without -t
        srv = self.server()
        self.assertOk(self.run_sm(["-oem", "-oi", "-f", "m@example.org", "--", "a@example.net",
                                   "b@example.net"], self.env(srv),
                                  "From: m@example.org\nTo: a@example.net\nCc: c@example.net\n"
                                  "Subject: s\n\n.\nx\n"))
        m = srv.messages[0]
        self.assertEqual((m.mail_from, m.rcpt_tos), ("m@example.org", ["a@example.net",
                                                                      "b@example.net"]))
        self.assertTrue(m.data.endswith(b"\r\n\r\n.\r\nx\r\n"), m.data)

    def test_lone_dot_ends_input_without_i(self):
        srv = self.server()
        self.assertOk(self.run_sm(["a@example.net"], self.env(srv),
                                  "Subject: s\n\nfirst\n.dot stays\n.\nnot sent\n"))
        m = srv.messages[0]
        self.assertTrue(m.data.endswith(b"\r\n\r\nfirst\r\n.dot stays\r\n"), m.data)
        # on the wire the dot line was stuffed (RFC 5321 4.5.2)
        self.assertIn(b"\r\n..dot stays\r\n", srv.rec.client_bytes())

    def test_line_endings_and_dot_stuffing(self):
        srv = self.server()
        self.assertOk(self.run_sm(["-i", "a@example.net"], self.env(srv),
                                  b"Subject: s\r\n\r\nbare lf\nbare cr\rcrlf\r\n.\n.x\nend"))
        m = srv.messages[0]
        self.assertTrue(m.data.endswith(b"\r\n\r\nbare lf\r\nbare cr\r\ncrlf\r\n.\r\n.x\r\nend\r\n"),
                        m.data)
        wire = srv.rec.client_bytes()
        self.assertIn(b"\r\n..\r\n..x\r\nend\r\n.\r\n", wire)
        self.assertNotIn(b"\n.\n", wire)

    def test_added_fields_and_envelope_sender(self):
        srv = self.server()
        self.assertOk(self.run_sm(["-i", "-f", "bounce@example.org", "-F", "Zoë Batch",
                                   "a@example.net"], self.env(srv), "Subject: s\n\nx\n"))
        self.assertOk(self.run_sm(["-i", "-f<>", "a@example.net"], self.env(srv),
                                  "From: me@example.org\nDate: Mon, 1 Jan 2024 00:00:00 +0000\n"
                                  "Message-ID: <keep@example.org>\n\nx\n"))
        self.assertOk(self.run_sm(["-i", "-r", "r@example.org", "a@example.net"], self.env(srv),
                                  "Subject: s\n\nx\n"))
        a, b, c = srv.messages
        self.assertEqual(a.mail_from, "bounce@example.org")
        self.assertRegex(a.data, rb"(?m)^From: =\?UTF-8\?[BQ]\?.*\?= <bounce@example.org>\r$")
        self.assertRegex(a.data, rb"(?m)^Message-ID: <[0-9a-f]{32}@example.org>\r$")
        self.assertRegex(a.data, rb"(?m)^Date: \w{3}, \d\d \w{3} \d{4} ")
        self.assertEqual(b.mail_from, "<>")  # as aiosmtpd records the null sender
        self.assertIn(b"Message-ID: <keep@example.org>\r\n", b.data)
        self.assertEqual(b.data.count(b"Date:"), 1)
        self.assertEqual(c.mail_from, "r@example.org")
        self.assertIn(b"From: r@example.org\r\n", c.data)

    def test_sender_from_the_message_when_none_configured(self):
        srv = self.server()
        self.assertOk(self.run_sm(["-t", "-i"], self.env(srv, SMTP_FROM=None),
                                  "From: App <app@example.org>\nTo: a@example.net\n\nx\n"))
        self.assertEqual(srv.messages[0].mail_from, "app@example.org")
        res = self.run_sm(["-t", "-i"], self.env(srv, SMTP_FROM=None), "To: a@example.net\n\nx\n")
        self.assertUsage(res, 78, "no envelope sender")

    def test_default_domain(self):
        srv = self.server()
        self.assertOk(self.run_sm(["-t", "-i"], self.env(srv, SMTP_DEFAULT_DOMAIN="example.com"),
                                  "To: root\nSubject: s\n\nx\n"))
        self.assertEqual(srv.messages[0].rcpt_tos, ["root@example.com"])
        self.assertIn(b"To: root\r\n", srv.messages[0].data)  # the message is kept as is
        res = self.run_sm(["-i", "root"], self.env(srv), "Subject: s\n\nx\n")
        self.assertUsage(res, 65, "SMTP_DEFAULT_DOMAIN")
        self.assertEqual(len(srv.messages), 1)

    def test_usage_errors_send_nothing(self):
        srv = self.server()
        cases = [
            (["-bs"], "-bs"), (["-bi"], "-bi"), (["-Z", "a@example.net"], "-Z"),
            (["-t", "-i"], "no recipients"), (["-i"], "no recipients"),
            (["-f", "a@example.org -X/tmp/x", "b@example.net"], "space"),
            (["-f", "a@example.org\nRCPT TO:<x@y>", "b@example.net"], "control"),
            (["-f", "-oQ/tmp", "b@example.net"], "starts with '-'"),
            (["-bp"], "needs a queue"), (["-q"], "needs a queue"), (["-q15m"], "-q15m"),
            (["-f"], "needs a value"), (["--queue"], "needs a value"),
        ]
        for args, needle in cases:
            with self.subTest(args=args):
                self.assertUsage(self.run_sm(args, self.env(srv), "Subject: s\n\nx\n"), 64, needle)
        self.assertEqual(srv.messages, [])
        self.assertEqual(srv.rec.client_bytes(), b"")

    def test_silent_input_gives_up(self):
        # A caller that never closes its end: one line, exit 75, nothing sent.
        srv = self.server()
        p = subprocess.Popen([str(BIN), "sendmail", "--input-timeout", "0.3", "-i", "a@example.net"],
                             env=self.env(srv), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
        try:
            p.stdin.write(b"Subject: s\n\npartial")
            p.stdin.flush()
            p.wait(timeout=TIMEOUT)  # stdin stays open
            err = p.stderr.read()
            p.stdout.close()
            p.stderr.close()
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
            p.stdin.close()
        self.assertEqual(p.returncode, 75, err)
        self.assertIn(b"no input on standard input", err)
        self.assertEqual(srv.rec.client_bytes(), b"")

    def test_bad_recipient_is_65_before_connecting(self):
        srv = self.server()
        res = self.run_sm(["-i", "-oi", "--", "-oQ@example.net"], self.env(srv), "Subject: s\n\nx\n")
        self.assertEqual(res[0], 65, res)
        self.assertEqual(srv.rec.client_bytes(), b"")

    def test_exit_codes_from_the_server(self):
        srv = self.server(rcpt_replies={"nobody@example.net": "550 5.1.1 no such user"})
        res = self.run_sm(["-i", "nobody@example.net"], self.env(srv), "Subject: s\n\nx\n")
        self.assertEqual(res[0], 69, res)   # EX_UNAVAILABLE
        self.assertIn("550", res[2])
        res = self.run_sm(["-i", "a@example.net"], self.env(None), "Subject: s\n\nx\n")
        self.assertEqual(res[0], 75, res)   # EX_TEMPFAIL: cron and PHP may try again
        res = self.run_sm(["-i", "a@example.net"], self.env(srv, SMTP_HOST=None), "Subject: s\n\nx\n")
        self.assertEqual(res[0], 78, res)   # EX_CONFIG

    def test_help_and_link(self):
        rc, out, err = self.run_sm(["--help"], self.env(None))
        self.assertEqual(rc, 0)
        self.assertIn("-t ", out)
        self.assertIn("/etc/scalr-email.env", out)
        srv = self.server()
        self.assertOk(self.run_sm(["-t", "-i"], self.env(srv), "To: a@example.net\n\nx\n",
                                  via=self.links() / "sendmail"))
        self.assertEqual(len(srv.messages), 1)

    def test_env_file_and_system_default(self):
        srv = self.server()
        f = self.tmp / "scalr.env"
        f.write_text("SMTP_HOST=127.0.0.1\nSMTP_PORT=%d\nSMTP_USE_TLS=false\n"
                     "SMTP_FROM=file@example.org\nSMTP_DEFAULT_DOMAIN=example.net\n" % srv.port)
        bare = self.env(None, SMTP_HOST=None, SMTP_PORT=None, SMTP_FROM=None, SMTP_USE_TLS=None)
        self.assertOk(self.run_sm(["--env-file", str(f), "-i", "root"], bare, "Subject: s\n\nx\n"))
        self.assertOk(self.run_sm(["-i", "root"], dict(bare, SCALR_EMAIL_ENV_FILE=str(f)),
                                  "Subject: s\n\nx\n"))
        self.assertEqual([m.mail_from for m in srv.messages], ["file@example.org"] * 2)
        self.assertEqual([m.rcpt_tos for m in srv.messages], [["root@example.net"]] * 2)


    def test_system_wide_env_file(self):
        # /etc/scalr-email.env, seen through an overlay on /etc in a private
        # mount namespace: the machine's /etc is never touched.
        srv = self.server()
        upper, work = self.tmp / "upper", self.tmp / "work"
        upper.mkdir()
        work.mkdir()
        (upper / "scalr-email.env").write_text(
            "SMTP_HOST=127.0.0.1\nSMTP_PORT=%d\nSMTP_USE_TLS=false\nSMTP_FROM=etc@example.org\n"
            % srv.port)
        probe = subprocess.run(["unshare", "--mount", "true"], capture_output=True)
        if probe.returncode != 0:
            self.skipTest("no private mount namespace here: %s" % probe.stderr.decode().strip())
        bare = self.env(None, SMTP_HOST=None, SMTP_PORT=None, SMTP_FROM=None, SMTP_USE_TLS=None)
        script = ('mount -t overlay overlay -o lowerdir=/etc,upperdir="$1",workdir="$2" /etc && '
                  'exec "$3" sendmail -i a@example.net')
        r = subprocess.run(["unshare", "--mount", "sh", "-c", script, "sh", str(upper), str(work),
                            str(BIN)], env=bare, input=b"Subject: s\n\nx\n", capture_output=True,
                           timeout=TIMEOUT)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual([m.mail_from for m in srv.messages], ["etc@example.org"])
        self.assertFalse(os.path.exists("/etc/scalr-email.env") and
                         "etc@example.org" in Path("/etc/scalr-email.env").read_text())


class Encoding(SendmailTest):
    MSG = ("From: Zoë Ünïcode <zoe@example.org>\nTo: \"Jörg\" <j@example.net>\n"
           "Subject: Grüße, café\nX-Note: plain\n\nbody é\n").encode()

    def test_rfc2047_without_smtputf8(self):
        srv = self.server(enable_SMTPUTF8=False)
        self.assertOk(self.run_sm(["-t", "-i"], self.env(srv), self.MSG))
        m = srv.messages[0]
        self.assertNotIn("SMTPUTF8", m.mail_options)
        self.assertIn("BODY=8BITMIME", m.mail_options)
        head = m.data.split(b"\r\n\r\n")[0]
        self.assertTrue(all(b < 0x80 for b in head), head)
        parsed = email.message_from_bytes(m.data, policy=email.policy.default)
        self.assertEqual(str(parsed["Subject"]), "Grüße, café")
        self.assertEqual(parsed["From"].addresses[0].display_name, "Zoë Ünïcode")
        self.assertEqual(parsed["To"].addresses[0].display_name, "Jörg")
        self.assertIn(b"X-Note: plain\r\n", m.data)
        self.assertTrue(m.data.endswith("body é\r\n".encode()))

    def test_utf8_passthrough_with_smtputf8(self):
        srv = self.server()
        self.assertOk(self.run_sm(["-t", "-i"], self.env(srv), self.MSG))
        m = srv.messages[0]
        self.assertIn("SMTPUTF8", m.mail_options)
        self.assertIn("Subject: Grüße, café\r\n".encode(), m.data)

    def test_non_ascii_local_part_without_smtputf8_is_65(self):
        srv = self.server(enable_SMTPUTF8=False)
        res = self.run_sm(["-i", "a@example.net"], self.env(srv),
                          "From: jörg@example.org\nSubject: s\n\nx\n")
        self.assertUsage(res, 65, "non-ASCII local part")
        self.assertEqual(srv.messages, [])
        self.assertNotIn(b"MAIL FROM", srv.rec.client_bytes())

    def test_ascii_message_is_7bit(self):
        srv = self.server()
        self.assertOk(self.run_sm(["-i", "a@example.net"], self.env(srv), "Subject: s\n\nx\n"))
        self.assertEqual([o for o in srv.messages[0].mail_options if not o.startswith("SIZE")], [])


class Queue(SendmailTest):
    def test_enqueue_list_and_run(self):
        srv = self.server()
        db = self.tmp / "q.db"
        env = self.env(srv, SCALR_EMAIL_QUEUE="sqlite:%s" % db)
        self.assertOk(self.run_sm(["-t", "-i"], env, "To: a@example.net\nBcc: b@example.net\n"
                                  "Subject: Grüße\n\nqueued body\n"))
        self.assertEqual(srv.messages, [])           # enqueued, not sent
        rc, out, err = self.run_sm(["-bp"], env)
        self.assertEqual(rc, 0, err)
        self.assertIn("a@example.net", out)
        self.assertIn("b@example.net", out)
        self.assertIn("1 message", out)
        self.assertEqual(self.run_sm(["-q"], env)[0], 0)
        self.assertEqual(len(srv.messages), 1)
        m = srv.messages[0]
        self.assertEqual(sorted(m.rcpt_tos), ["a@example.net", "b@example.net"])
        self.assertNotIn(b"Bcc", m.data)
        self.assertIn(b"Subject: =?UTF-8?", m.data)  # the worker's server was not known
        rc, out, err = self.run_sm(["-bp"], env)
        self.assertIn("Mail queue is empty", out)
        # mailq is sendmail -bp
        mailq = self.links() / "mailq"
        mailq.symlink_to(BIN)
        r = subprocess.run([str(mailq)], env=env, capture_output=True, timeout=TIMEOUT)
        self.assertEqual((r.returncode, r.stdout), (0, b"Mail queue is empty\n"))

    def test_queue_flag(self):
        db = self.tmp / "q2.db"
        env = self.env(None)
        self.assertOk(self.run_sm(["--queue", "sqlite:%s" % db, "-i", "a@example.net"], env,
                                  "Subject: s\n\nx\n"))
        with sqlite3.connect(str(db)) as c:
            self.assertEqual(c.execute("SELECT count(*) FROM scalr_email_queue").fetchone()[0], 1)


class Memory(SendmailTest):
    def test_20mb_message_in_flat_memory(self):
        srv = self.server()
        src = self.tmp / "big.eml"
        line = b"0123456789" * 7 + b"abcdef\n"
        n = 20 * 1024 * 1024 // len(line)
        with open(src, "wb") as f:
            f.write(b"To: a@example.net\nSubject: big\n\n")
            f.write(line * n)
        with open(src, "rb") as inp:
            r = subprocess.run(["/usr/bin/time", "-f", "maxrss=%M", str(BIN), "sendmail", "-t",
                                "-i"], env=self.env(srv), stdin=inp, capture_output=True,
                               timeout=TIMEOUT)
        self.assertEqual(r.returncode, 0, r.stderr)
        kb = int(r.stderr.decode().strip().rsplit("maxrss=", 1)[1])
        self.assertLess(kb, 16 * 1024, "peak RSS %d KiB" % kb)
        m = srv.messages[0]
        self.assertEqual(m.data.split(b"\r\n\r\n", 1)[1], line.replace(b"\n", b"\r\n") * n)
        self.assertEqual(os.listdir(self.tmp), ["big.eml"])  # the spool file left nothing


# --------------------------------------------------------------------------

def ensure_packages():
    missing = [p for p in PKGS if subprocess.run(
        ["dpkg-query", "-W", "-f=${Status}", p], capture_output=True).stdout.find(
        b"install ok installed") < 0]
    if missing:
        subprocess.run(["bash", str(REPO / "scripts" / "deps.sh")] + missing, check=False)


def main(argv):
    ensure_packages()
    filters = argv[1:]
    loader = unittest.TestLoader()
    tests = []
    for cls in (RealCallers, Flags, Encoding, Queue, Memory):
        for name in loader.getTestCaseNames(cls):
            t = cls(name)
            if not filters or any(f in t.id() for f in filters):
                tests.append(t)
    print("testing %s (%d tests)" % (BIN, len(tests)), flush=True)
    passed = failed = skipped = 0
    t0 = time.monotonic()
    for t in tests:
        res = unittest.TestResult()
        start = time.monotonic()
        t.run(res)
        problems = res.failures + res.errors
        if problems or res.unexpectedSuccesses:
            failed += 1
            status = "FAIL"
        elif res.skipped:
            skipped += 1
            status = "skip"
        else:
            passed += 1
            status = "ok"
        print("%-4s %s (%.2fs)" % (status, t.id().split(".", 1)[-1], time.monotonic() - start),
              flush=True)
        for _, text in problems:
            print("     " + text.rstrip().replace("\n", "\n     "), flush=True)
    print("(%.1fs)" % (time.monotonic() - t0))
    line = "sendmail: %d passed, %d failed" % (passed, failed)
    if skipped:
        line += ", %d skipped" % skipped
    print(line, flush=True)
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
