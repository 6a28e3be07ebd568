"""scalr_email.render() and send(template=...) with the repository's
template fixtures (tests/template/templates), sent to aiosmtpd."""
import email
import email.policy
import os
import pathlib
import tempfile
import unittest

import scalr_email
from scalr_email import InvalidMessageError, EmailError, render, send

from base import EnvTestCase

TEMPLATES = pathlib.Path(__file__).resolve().parents[2] / "tests" / "template" / "templates"
WELCOME = {"first_name": "Ana", "email": "ana@example.com",
           "login_url": "https://acme.example/login"}


class Render(EnvTestCase):
    def test_render_returns_the_three_parts(self):
        r = render("welcome", WELCOME, templates=TEMPLATES)
        self.assertEqual(set(r), {"subject", "body", "body_html"})
        self.assertEqual(r["subject"], "Welcome to Acme, Ana!")
        self.assertIn("Sign in: https://acme.example/login", r["body"])
        self.assertIn('<a href="https://acme.example/login">Sign in</a>', r["body_html"])

    def test_root_from_environment_and_locale(self):
        os.environ["SCALR_EMAIL_TEMPLATES"] = str(TEMPLATES)
        self.addCleanup(os.environ.pop, "SCALR_EMAIL_TEMPLATES", None)
        data = {"number": "7", "customer": {"name": "Zoë <b>"}, "items": [],
                "total": "1 €", "due_date": "demain", "pay_url": "https://x.example/p",
                "unsubscribe_url": "https://x.example/u", "company": "Acme"}
        r = render("invoice", data, locale="fr-CA")
        self.assertTrue(r["subject"].startswith("Facture 7"))
        self.assertIn("Bonjour Zoë &lt;b&gt;", r["body_html"])
        self.assertIn("Bonjour Zoë <b>", r["body"])        # derived text: not escaped

    def test_missing_variable(self):
        with self.assertRaises(InvalidMessageError) as cm:
            render("welcome", {"first_name": "Ana"}, templates=TEMPLATES)
        self.assertIn("missing variable 'email'", str(cm.exception))
        self.assertIn("welcome/body.html:2", str(cm.exception))
        r = render("welcome", {"first_name": "Ana", "login_url": "https://x.example"},
                   templates=TEMPLATES, allow_missing=True)
        self.assertIn("Your account <b></b>", r["body_html"])

    def test_errors(self):
        with self.assertRaises(EmailError) as cm:
            render("nope", {}, templates=TEMPLATES)
        self.assertEqual(cm.exception.code, "EFILE")
        with self.assertRaises(InvalidMessageError):
            render("../welcome", WELCOME, templates=TEMPLATES)
        with self.assertRaises(InvalidMessageError) as cm:
            render("welcome", dict(WELCOME, first_name="x\r\nBcc: a@example.com"),
                   templates=TEMPLATES)
        self.assertIn("header injection", str(cm.exception))
        with self.assertRaises(InvalidMessageError):
            render("welcome", dict(WELCOME, login_url="javascript:alert(1)"),
                   templates=TEMPLATES)
        with self.assertRaises(TypeError):
            render("welcome", ["not", "a", "dict"], templates=TEMPLATES)


class SendTemplate(EnvTestCase):
    def test_send_with_template(self):
        srv = self.smtp_server()
        mid = send("ana@example.com", template="welcome", data=WELCOME, templates=TEMPLATES)
        [got] = srv.wait_messages(1)
        msg = got.message
        self.assertEqual(msg["Subject"], "Welcome to Acme, Ana!")
        self.assertEqual(msg["Message-ID"], mid)
        self.assertEqual([p.get_content_type() for p in msg.iter_parts()],
                         ["text/plain", "text/html"])

    def test_send_async_with_template(self):
        import asyncio
        srv = self.smtp_server()
        mid = asyncio.run(scalr_email.send_async("ana@example.com", template="welcome",
                                                 data=WELCOME, templates=TEMPLATES))
        [got] = srv.wait_messages(1)
        self.assertEqual(got.message["Subject"], "Welcome to Acme, Ana!")
        self.assertEqual(got.message["Message-ID"], mid)

    def test_template_and_subject_are_exclusive(self):
        with self.assertRaises(TypeError):
            send("a@example.com", "Subject", template="welcome", data=WELCOME)
        with self.assertRaises(TypeError):
            send("a@example.com")
        with self.assertRaises(TypeError):
            send("a@example.com", "s", "b", data=WELCOME)

    def test_refused_render_sends_nothing(self):
        srv = self.smtp_server()
        with self.assertRaises(InvalidMessageError):
            send("a@example.com", template="welcome", data={}, templates=TEMPLATES)
        self.assertEqual(srv.messages, [])


if __name__ == "__main__":
    unittest.main()
