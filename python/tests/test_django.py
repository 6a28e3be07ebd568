"""scalr_email.django.EmailBackend with Debian's python3-django: Django's own
calls arrive at a recording aiosmtpd server as Django's smtplib backend
delivers them (both sent, both parsed, compared side by side)."""
import os
import re
import subprocess
import sys
import tempfile
import unittest
from email import encoders
from email.mime.base import MIMEBase

try:
    import django
    from django.conf import settings
except ImportError:  # counted as skipped, never passed
    django = None

from base import EnvTestCase
import shutil

from servers import SmtpServer, closed_port, self_signed_cert, server_tls_context

if django is not None and not settings.configured:
    settings.configure(
        SECRET_KEY="test-only-not-secret",
        EMAIL_BACKEND="scalr_email.django.EmailBackend",
        ADMINS=[("Ops Admin", "admin@example.com"), ("Second", "second@example.com")],
        SERVER_EMAIL="Server <server@acme.test>",
        INSTALLED_APPS=["django.contrib.auth", "django.contrib.contenttypes",
                        "django.contrib.admin"],
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
        TEMPLATES=[{"BACKEND": "django.template.backends.django.DjangoTemplates",
                    "APP_DIRS": True}],
        PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"],
        USE_TZ=True,
        ROOT_URLCONF=__name__,
    )
    django.setup()

if django is not None:
    from django.contrib.auth import views as auth_views
    from django.urls import path

    urlpatterns = [path("reset/<uidb64>/<token>/", auth_views.PasswordResetConfirmView.as_view(),
                        name="password_reset_confirm")]

SMTPLIB = "django.core.mail.backends.smtp.EmailBackend"
FROM = "Acme <hello@acme.test>"


def summary(rec):
    """What a recipient sees of one received message, comparable across
    senders (Date and Message-ID differ by nature)."""
    m = rec.message

    def addrs(name):
        v = m.get(name)
        return sorted(str(a) for a in v.addresses) if v is not None else []

    text = m.get_body(preferencelist=("plain",))
    html = m.get_body(preferencelist=("html",))
    norm = lambda part: part.get_content().replace("\r\n", "\n") if part is not None else None
    atts = []
    for part in m.iter_attachments():
        data = part.get_payload(decode=True)
        if part.get_content_maintype() == "text":
            # Django's smtplib backend turns a text attachment's line ends
            # into CRLF (8bit, as_bytes(linesep)); scalr-email keeps the
            # bytes as given (base64).  Both read the same.
            data = data.replace(b"\r\n", b"\n")
        atts.append((part.get_filename(), part.get_content_type(), data))
    return {
        "mail_from": rec.mail_from,
        "rcpt": sorted(rec.rcpt_tos),
        "subject": str(m["Subject"]),
        "from": addrs("From"),
        "to": addrs("To"),
        "cc": addrs("Cc"),
        "bcc_header": m.get("Bcc"),
        "reply_to": addrs("Reply-To"),
        "text": norm(text),
        "html": norm(html),
        "attachments": atts,
    }


@unittest.skipIf(django is None, "python3-django is not importable")
class DjangoBackend(EnvTestCase):
    @classmethod
    def setUpClass(cls):
        from django.core.management import call_command
        call_command("migrate", verbosity=0, skip_checks=True)

    def pair(self):
        """(Django's smtplib connection to server A, server A, server B with
        SMTP_* pointing at it for scalr_email.django)."""
        from django.core.mail import get_connection
        ref = self.start(SmtpServer())
        ours = self.smtp_server()
        return get_connection(SMTPLIB, host="127.0.0.1", port=ref.port, timeout=5), ref, ours

    def same(self, ref, ours, n, fix=None):
        a = ref.wait_messages(n)
        b = ours.wait_messages(n)
        self.assertEqual(len(a), n)
        self.assertEqual(len(b), n)
        sa = sorted((summary(x) for x in a), key=repr)
        sb = sorted((summary(x) for x in b), key=repr)
        if fix:
            sa, sb = [fix(s) for s in sa], [fix(s) for s in sb]
        for x, y in zip(sa, sb):
            self.assertEqual(x, y)
        return b

    def test_backend_is_the_configured_one(self):
        from django.core.mail import get_connection
        from scalr_email.django import EmailBackend
        self.assertIsInstance(get_connection(), EmailBackend)

    def test_send_mail_same_as_smtplib(self):
        from django.core.mail import send_mail
        conn, ref, ours = self.pair()
        args = ("Grüße, your invoice", "Hello Zoë,\n\nline two.\n", FROM,
                ["Zoë <zoe@example.com>", "bob@example.com"])
        kw = dict(html_message="<p>Hello <b>Zoë</b></p>")
        self.assertEqual(send_mail(*args, connection=conn, **kw), 1)
        self.assertEqual(send_mail(*args, **kw), 1)
        [got] = self.same(ref, ours, 1)
        self.assertEqual(got.mail_from, "hello@acme.test")

    def test_send_mass_mail_one_connection(self):
        from django.core.mail import send_mass_mail
        conn, ref, ours = self.pair()
        batch = tuple((f"Note {i}", f"Body {i}\n", FROM, [f"user{i}@example.com"])
                      for i in range(3))
        self.assertEqual(send_mass_mail(batch, connection=conn), 3)
        self.assertEqual(send_mass_mail(batch), 3)
        self.same(ref, ours, 3)
        self.assertEqual(ours.connections, 1)  # the pooled connection, reused

    def test_mail_admins_same_as_smtplib(self):
        from django.core.mail import mail_admins
        conn, ref, ours = self.pair()
        mail_admins("Disk full", "The disk is full.\n", connection=conn,
                    html_message="<p>The disk is <i>full</i>.</p>")
        mail_admins("Disk full", "The disk is full.\n",
                    html_message="<p>The disk is <i>full</i>.</p>")
        [got] = self.same(ref, ours, 1)
        self.assertEqual(got.message["Subject"], "[Django] Disk full")
        self.assertEqual(sorted(got.rcpt_tos), ["admin@example.com", "second@example.com"])

    def test_multi_alternatives_with_attachments_same_as_smtplib(self):
        from django.core.mail import EmailMultiAlternatives
        conn, ref, ours = self.pair()
        pdf = b"%PDF-1.4\n" + bytes(range(256)) * 40
        blob = MIMEBase("application", "octet-stream")
        blob.set_payload(b"\x00\x01binary\xff")
        encoders.encode_base64(blob)
        blob.add_header("Content-Disposition", "attachment", filename="data.bin")

        def build(connection):
            m = EmailMultiAlternatives(
                "Your order", "Text body\n", FROM, ["ann@example.com"],
                cc=["Carl <carl@example.com>"], bcc=["audit@acme.test"],
                reply_to=["support@acme.test"],
                headers={"X-Order": "1017", "List-Unsubscribe": "<mailto:u@acme.test>"},
                connection=connection)
            m.attach_alternative("<h1>Your order</h1>", "text/html")
            m.attach("invoice.pdf", pdf, "application/pdf")
            m.attach("notes.txt", "a,b\n1,2\n", "text/plain")
            m.attach(blob)
            return m

        self.assertEqual(build(conn).send(), 1)
        self.assertEqual(build(None).send(), 1)
        [got] = self.same(ref, ours, 1)
        self.assertEqual(got.message["X-Order"], "1017")
        self.assertEqual(got.message["List-Unsubscribe"], "<mailto:u@acme.test>")
        self.assertIn("audit@acme.test", got.rcpt_tos)
        self.assertIsNone(got.message["Bcc"])
        names = [a[0] for a in summary(got)["attachments"]]
        self.assertEqual(names, ["invoice.pdf", "notes.txt", "data.bin"])

    def test_password_reset_form_same_as_smtplib(self):
        from django.contrib.auth.forms import PasswordResetForm
        from django.contrib.auth.models import User
        from django.core import mail
        conn, ref, ours = self.pair()
        User.objects.create_user("ann", "ann@example.com", "old-password-1")
        self.addCleanup(User.objects.filter(username="ann").delete)

        def reset(connection):
            form = PasswordResetForm(data={"email": "ann@example.com"})
            self.assertTrue(form.is_valid())
            if connection is None:
                form.save(domain_override="app.acme.test", from_email=FROM)
            else:
                # save() uses the default connection: point it at the
                # reference server for this one call.
                orig = mail.get_connection
                mail.get_connection = lambda *a, **k: connection
                try:
                    form.save(domain_override="app.acme.test", from_email=FROM)
                finally:
                    mail.get_connection = orig

        reset(conn)
        reset(None)

        def fix(s):  # the token embeds the time in seconds
            s = dict(s)
            s["text"] = re.sub(r"/reset/[^/]+/[^/]+/", "/reset/UID/TOKEN/", s["text"])
            return s

        [got] = self.same(ref, ours, 1, fix)
        self.assertRegex(summary(got)["text"], r"http://app\.acme\.test/reset/[^/]+/[^/]+/")
        self.assertEqual(got.rcpt_tos, ["ann@example.com"])

    def test_fail_silently_against_a_rejecting_server(self):
        from django.core.mail import send_mail, send_mass_mail
        from scalr_email import PermanentError
        srv = self.smtp_server(replies={"RCPT:bad@example.com": "550 5.1.1 no such user"})
        self.assertEqual(send_mail("S", "B", FROM, ["bad@example.com"], fail_silently=True), 0)
        with self.assertRaises(PermanentError) as cm:
            send_mail("S", "B", FROM, ["bad@example.com"])
        self.assertEqual(cm.exception.smtp_code, 550)
        batch = (("1", "b", FROM, ["a@example.com"]), ("2", "b", FROM, ["bad@example.com"]),
                 ("3", "b", FROM, ["c@example.com"]))
        self.assertEqual(send_mass_mail(batch, fail_silently=True), 2)
        got = srv.wait_messages(2)
        self.assertEqual(sorted(str(m.message["Subject"]) for m in got), ["1", "3"])

    def test_fail_silently_when_nothing_listens(self):
        from django.core.mail import send_mail
        from scalr_email import TransientError
        self.configure(closed_port())
        self.assertEqual(send_mail("S", "B", FROM, ["a@example.com"], fail_silently=True), 0)
        with self.assertRaises(TransientError):
            send_mail("S", "B", FROM, ["a@example.com"])

    def test_calendar_alternative_is_an_invite(self):
        from django.core.mail import EmailMultiAlternatives
        from scalr_email import InvalidMessageError
        srv = self.smtp_server()
        ics = ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nMETHOD:REQUEST\r\n"
               "BEGIN:VEVENT\r\nUID:1@example.com\r\nDTSTAMP:20261204T100000Z\r\n"
               "DTSTART:20261210T100000Z\r\nSUMMARY:Demo\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")
        m = EmailMultiAlternatives("Invite", "text", FROM, ["a@example.com"])
        m.attach_alternative("<p>html</p>", "text/html")
        m.attach_alternative(ics, "text/calendar; method=REQUEST")
        self.assertEqual(m.send(), 1)
        got = srv.wait_messages(1)[0].message
        alt = next(p for p in got.walk() if p.get_content_type() == "multipart/alternative")
        kinds = [p.get_content_type() for p in alt.iter_parts()]
        self.assertEqual(kinds, ["text/plain", "text/html", "text/calendar"])
        cal = list(alt.iter_parts())[2]
        self.assertEqual(cal.get_param("method"), "REQUEST")
        self.assertIn("SUMMARY:Demo", cal.get_content())
        # A calendar text without METHOD is refused before anything is sent.
        bad = EmailMultiAlternatives("Invite", "text", FROM, ["a@example.com"])
        bad.attach_alternative("BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n", "text/calendar")
        with self.assertRaises(InvalidMessageError):
            bad.send()
        self.assertEqual(len(srv.messages), 1)

    def test_second_alternative_is_refused_and_nothing_sent(self):
        from django.core.mail import EmailMultiAlternatives
        from scalr_email.django import UnsupportedMessageError
        srv = self.smtp_server()
        m = EmailMultiAlternatives("Invite", "text", FROM, ["a@example.com"])
        m.attach_alternative("<p>html</p>", "text/html")
        m.attach_alternative("<amp-img></amp-img>", "text/x-amp-html")
        with self.assertRaisesRegex(UnsupportedMessageError, "text/x-amp-html"):
            m.send()
        self.assertIsInstance(UnsupportedMessageError("x"), ValueError)
        # fail_silently is about delivery: a part that would be dropped
        # still raises.
        with self.assertRaisesRegex(UnsupportedMessageError, "text/x-amp-html"):
            m.get_connection(fail_silently=True).send_messages([m])
        m2 = EmailMultiAlternatives("Invite", "text", FROM, ["a@example.com"])
        m2.attach_alternative("<p>one</p>", "text/html")
        m2.attach_alternative("<p>two</p>", "text/html")
        with self.assertRaisesRegex(UnsupportedMessageError, "second text/html"):
            m2.send()
        self.assertEqual(srv.connections, 0)
        self.assertEqual(srv.messages, [])

    def test_reserved_extra_header_is_refused_even_silently(self):
        from django.core.mail import EmailMessage
        from scalr_email import InvalidMessageError
        srv = self.smtp_server()
        m = EmailMessage("Hi", "b", FROM, ["a@example.com"],
                         headers={"Message-ID": "<mine@acme.test>"})
        with self.assertRaisesRegex(InvalidMessageError, "Message-ID"):
            m.send(fail_silently=True)
        self.assertEqual(srv.messages, [])

    def test_html_only_message(self):
        from django.core.mail import EmailMessage
        srv = self.smtp_server()
        m = EmailMessage("Hi", "<p>only html</p>", FROM, ["a@example.com"])
        m.content_subtype = "html"
        self.assertEqual(m.send(), 1)
        [got] = srv.wait_messages(1)
        self.assertEqual(summary(got)["html"].rstrip("\n"), "<p>only html</p>")

    def test_smtp_from_replaces_djangos_builtin_default(self):
        from django.core.mail import send_mail
        conn, ref, ours = self.pair()
        send_mail("S", "B", None, ["a@example.com"], connection=conn)
        send_mail("S", "B", None, ["a@example.com"])
        self.assertEqual(ref.wait_messages(1)[0].mail_from, "webmaster@localhost")
        self.assertEqual(ours.wait_messages(1)[0].mail_from, "hello@acme.test")

    def test_default_from_email_wins_over_smtp_from(self):
        from django.core.mail import send_mail
        from django.test import override_settings
        ours = self.smtp_server()
        with override_settings(DEFAULT_FROM_EMAIL="Site <site@acme.test>"):
            send_mail("S", "B", None, ["a@example.com"])
        self.assertEqual(ours.wait_messages(1)[0].mail_from, "site@acme.test")

    def test_email_settings_win_when_the_project_sets_email_host(self):
        from django.core.mail import send_mail
        from django.test import override_settings
        srv = self.start(SmtpServer())
        self.configure(closed_port())  # SMTP_* point nowhere
        with override_settings(EMAIL_HOST="127.0.0.1", EMAIL_PORT=srv.port,
                               EMAIL_USE_TLS=False, EMAIL_TIMEOUT=5):
            self.assertEqual(send_mail("S", "B", FROM, ["a@example.com"]), 1)
        self.assertEqual(len(srv.wait_messages(1)), 1)

    def test_get_connection_keywords_win(self):
        from django.core.mail import get_connection, send_mail
        srv = self.start(SmtpServer())
        self.configure(closed_port())
        conn = get_connection(host="127.0.0.1", port=srv.port, use_tls=False, timeout=5)
        self.assertEqual(send_mail("S", "B", FROM, ["a@example.com"], connection=conn), 1)
        self.assertEqual(len(srv.wait_messages(1)), 1)

    def test_bad_email_settings_are_refused_before_connecting(self):
        from django.core.mail import send_mail
        from django.test import override_settings
        srv = self.smtp_server()
        for bad in (dict(EMAIL_PORT=70000), dict(EMAIL_PORT="smtp"), dict(EMAIL_TIMEOUT=-1),
                    dict(EMAIL_TIMEOUT="soon"), dict(EMAIL_SSL_CERTFILE="/tmp/client.pem")):
            with self.subTest(**bad), override_settings(EMAIL_HOST="127.0.0.1", **bad):
                with self.assertRaises(ValueError):
                    send_mail("S", "B", FROM, ["a@example.com"], fail_silently=True)
        self.assertEqual(srv.connections, 0)

    def test_email_host_without_tls_settings_requires_starttls(self):
        from django.core.mail import send_mail
        from django.test import override_settings
        from scalr_email import TLSError
        srv = self.start(SmtpServer())  # offers no STARTTLS
        with override_settings(EMAIL_HOST="127.0.0.1", EMAIL_PORT=srv.port, EMAIL_TIMEOUT=5):
            with self.assertRaises(TLSError):
                send_mail("S", "B", FROM, ["a@example.com"])
        self.assertEqual(srv.messages, [])

    def test_email_host_user_and_password_authenticate(self):
        from django.core.mail import send_mail
        from django.test import override_settings
        from scalr_email import AuthenticationError
        srv = self.start(SmtpServer(auth=("mailer", "s3cret-pw-1")))
        base = dict(EMAIL_HOST="127.0.0.1", EMAIL_PORT=srv.port, EMAIL_USE_TLS=False,
                    EMAIL_TIMEOUT=5, EMAIL_HOST_USER="mailer")
        with override_settings(EMAIL_HOST_PASSWORD="s3cret-pw-1", **base):
            self.assertEqual(send_mail("S", "B", FROM, ["a@example.com"]), 1)
        self.assertEqual([a[1:] for a in srv.auth_seen], [("mailer", "s3cret-pw-1")])
        with override_settings(EMAIL_HOST_PASSWORD="wrong-pw-2", **base):
            with self.assertRaises(AuthenticationError) as cm:
                send_mail("S", "B", FROM, ["a@example.com"])
        self.assertNotIn("wrong-pw-2", str(cm.exception) + repr(cm.exception))
        self.assertEqual(len(srv.wait_messages(1)), 1)

    def test_email_use_tls_and_use_ssl_with_a_private_ca(self):
        from django.core.mail import send_mail
        from django.test import override_settings
        d = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, d, True)
        pair = self_signed_cert(d)
        if pair is None:
            self.skipTest("openssl command not available")
        os.environ["SSL_CERT_FILE"] = pair[0]
        ctx = server_tls_context(*pair)
        starttls = self.start(SmtpServer(tls_context=ctx, require_starttls=True))
        implicit = self.start(SmtpServer(implicit_tls=ctx))
        with override_settings(EMAIL_HOST="127.0.0.1", EMAIL_PORT=starttls.port,
                               EMAIL_USE_TLS=True, EMAIL_TIMEOUT=5):
            self.assertEqual(send_mail("S", "B", FROM, ["a@example.com"]), 1)
        with override_settings(EMAIL_HOST="127.0.0.1", EMAIL_PORT=implicit.port,
                               EMAIL_USE_SSL=True, EMAIL_TIMEOUT=5):
            self.assertEqual(send_mail("S", "B", FROM, ["a@example.com"]), 1)
        self.assertEqual(len(starttls.wait_messages(1)), 1)
        self.assertEqual(len(implicit.wait_messages(1)), 1)
        with override_settings(EMAIL_HOST="127.0.0.1", EMAIL_USE_TLS=True, EMAIL_USE_SSL=True):
            with self.assertRaisesRegex(ValueError, "mutually exclusive"):
                send_mail("S", "B", FROM, ["a@example.com"], fail_silently=True)

    def test_enqueue_setting_queues_instead_of_sending(self):
        import scalr_email
        from django.core.mail import send_mail
        from django.test import override_settings
        srv = self.smtp_server()
        d = tempfile.TemporaryDirectory()
        self.addCleanup(d.cleanup)
        url = "sqlite:" + os.path.join(d.name, "q.db")
        scalr_email.init_queue(url)
        with override_settings(SCALR_EMAIL_ENQUEUE=True, SCALR_EMAIL_QUEUE=url):
            self.assertEqual(send_mail("Queued", "B", FROM, ["a@example.com", "b@example.com"]),
                             1)
        self.assertEqual(scalr_email.queue_status(url)["counts"].get("queued"), 1)
        self.assertEqual(srv.connections, 0)

    def test_importing_scalr_email_does_not_import_django(self):
        out = subprocess.run(
            [sys.executable, "-c",
             "import sys, scalr_email; print('django' in sys.modules)"],
            capture_output=True, text=True, timeout=60)
        self.assertEqual(out.stdout.strip(), "False", out.stderr)


if __name__ == "__main__":
    unittest.main()
