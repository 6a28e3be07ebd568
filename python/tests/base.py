"""Shared set-up: every test starts with no SMTP_* variable set and gets
them back as they were afterwards; servers it starts are stopped."""
import os
import unittest

from servers import SMTP_VARS, SmtpServer

FROM = "Acme <hello@acme.test>"


class EnvTestCase(unittest.TestCase):
    def setUp(self):
        saved = {k: os.environ.get(k) for k in SMTP_VARS}
        for k in SMTP_VARS:
            os.environ.pop(k, None)

        def restore():
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v

        self.addCleanup(restore)

    def configure(self, port, **extra):
        """Point SMTP_* at 127.0.0.1:port, plain SMTP, 5 s timeout."""
        os.environ.update({
            "SMTP_HOST": "127.0.0.1",
            "SMTP_PORT": str(port),
            "SMTP_USE_TLS": "false",
            "SMTP_USE_SSL": "false",
            "SMTP_FROM": FROM,
            "SMTP_TIMEOUT": "5",
        })
        for k, v in extra.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v

    def start(self, server):
        """Register server.stop() as a cleanup and return server."""
        self.addCleanup(server.stop)
        return server

    def smtp_server(self, **kw):
        server = self.start(SmtpServer(**kw))
        self.configure(server.port)
        return server
