"""Signed mail relayed by a real Postfix (Debian's, with its own configuration and
queue on 127.0.0.1, relaying to aiosmtpd) still verifies when read back.  Skipped
(and counted so) where Postfix is neither installed nor unpacked by
scripts/postfix-unpack.sh (the test command runs it)."""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest
from pathlib import Path

import helpers as H
from test_dkim import Keys

sys.path.insert(0, str(H.REPO / "bench"))
import postfix  # noqa: E402  (bench/postfix.py: Postfix with a private configuration)

# The copy scripts/postfix-unpack.sh unpacks (not installed), or Debian's postfix installed.
ROOT = next((r for r in (H.REPO / "bench/work/postfix/root", Path("/"))
             if (r / "usr/lib/postfix/sbin/master").exists()), None)


@unittest.skipUnless(ROOT is not None and os.geteuid() == 0,
                     "needs Debian's postfix installed and root (Postfix drops privileges)")
class PostfixRelay(H.CliTest):
    def test_signed_mail_survives_a_postfix_relay(self):
        keys = Keys()
        self.addCleanup(keys.cleanup)
        sink = self.server("plain")
        base = tempfile.mkdtemp(prefix="se-postfix-")
        os.chmod(base, 0o755)
        self.addCleanup(shutil.rmtree, base, True)
        port = H.free_port() if hasattr(H, "free_port") else _free_port()
        conf = postfix.write_config(ROOT, Path(base) / "pf", port)
        # relay everything to the aiosmtpd sink instead of discarding it
        main = (conf / "main.cf").read_text()
        for k in ("default_transport", "relay_transport"):
            main = main.replace("%s = discard" % k, "%s = smtp" % k)
        main = main.replace("relayhost =", "relayhost = [127.0.0.1]:%d" % sink.port)
        main += "smtp_tls_security_level = none\nsmtp_host_lookup = native\n"
        (conf / "main.cf").write_text(main)
        with open(conf / "master.cf", "a") as f:
            f.write("smtp      unix - - n - - smtp\nrelay     unix - - n - - smtp\n")
        env, argv = postfix.command(ROOT, conf)
        pf = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def stop():
            pf.send_signal(signal.SIGTERM)
            try:
                pf.wait(30)
            except subprocess.TimeoutExpired:
                pf.kill()
                pf.wait()
        self.addCleanup(stop)
        import socket
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        env = self.env_for(sink, **keys.env("dual"))
        env["SMTP_PORT"] = str(port)
        self.assertSent(H.run_cli(self.send_args(
            "--attach", __file__, "--cc", "c@example.net",
            subject="Grüße through Postfix", body="Hello\n.dot line\ntrailing   \n"), env))
        self.assertTrue(sink.rec.wait_messages(1, timeout=60), "Postfix relayed nothing")
        m = sink.messages[0].data
        self.assertIn(b"Received:", m)               # it did pass through Postfix
        self.assertEqual(keys.dkimpy(m), [True, True])
        self.assertEqual(keys.opendkim(m), [True, True])


def _free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
