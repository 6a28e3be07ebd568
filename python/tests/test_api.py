"""The public surface: the seed's signature, documentation, typing files."""
import inspect
import os
import pydoc
import unittest

import scalr_email


class Surface(unittest.TestCase):
    def test_send_signature_starts_like_the_seed(self):
        params = list(inspect.signature(scalr_email.send).parameters.values())
        self.assertEqual([p.name for p in params[:5]],
                         ["to", "subject", "body", "body_html", "sender"])
        for p in params[:5]:
            self.assertEqual(p.kind, p.POSITIONAL_OR_KEYWORD, p)
        self.assertIsNone(params[3].default)
        self.assertIsNone(params[4].default)
        self.assertEqual({p.name: p.kind for p in params[5:]},
                         {n: inspect.Parameter.KEYWORD_ONLY
                          for n in ("cc", "bcc", "reply_to", "headers", "attachments",
                                    "template", "data", "locale", "templates",
                                    "allow_missing", "inline", "calendar", "envelope_from", "dsn_notify",
                                    "dsn_ret", "envid",
                                    "unsubscribe", "unsubscribe_mailto", "profile")})
        self.assertEqual(inspect.signature(scalr_email.send_async).parameters.keys(),
                         inspect.signature(scalr_email.send).parameters.keys())

    def test_help_reads_well(self):
        text = pydoc.render_doc(scalr_email.send, renderer=pydoc.plaintext)
        for word in ("Message-ID", "body_html", "NotConfiguredError", "PermanentError",
                     "TransientError", "InvalidMessageError", "SMTP_"):
            self.assertIn(word, text)
        self.assertIn("run_in_executor", scalr_email.send_async.__doc__)
        self.assertIn("EREJECTED", scalr_email.errors.__doc__)

    def test_exports(self):
        for name in scalr_email.__all__:
            self.assertTrue(hasattr(scalr_email, name), name)
        self.assertEqual(scalr_email._native.LIBRARY_VERSION, scalr_email.__version__)

    def test_typing_files_are_installed(self):
        pkg = os.path.dirname(scalr_email.__file__)
        self.assertTrue(os.path.exists(os.path.join(pkg, "py.typed")))
        self.assertTrue(os.path.exists(os.path.join(pkg, "_native.pyi")))
        hints = scalr_email.send.__annotations__
        self.assertEqual(hints["return"], str)


if __name__ == "__main__":
    unittest.main()
