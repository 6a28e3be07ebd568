"""Each exception class is raised in its situation, with its attributes
filled from the library's scalr_email_error."""
import os
import pickle
import time
import unittest

import scalr_email
from scalr_email import (AuthenticationError, ConfigurationError, EmailError,
                         InvalidMessageError, NotConfiguredError, PermanentError, ProtocolError,
                         TLSError, TransientError, send)

from base import EnvTestCase
from servers import ScriptServer, SilentServer, SmtpServer, closed_port


class Configuration(EnvTestCase):
    def test_smtp_host_unset_raises_not_configured(self):
        with self.assertRaises(NotConfiguredError) as cm:
            send(to="user@example.com", subject="s", body="b")
        e = cm.exception
        self.assertIs(type(e), NotConfiguredError)
        self.assertIsInstance(e, EmailError)
        self.assertEqual(e.code, "ENOTCONFIGURED")
        self.assertEqual(e.stage, "CONFIG")
        self.assertIsNone(e.smtp_code)
        self.assertTrue(str(e))

    def test_smtp_host_empty_raises_not_configured(self):
        os.environ["SMTP_HOST"] = ""  # compose files forward ${SMTP_HOST:-}
        with self.assertRaises(NotConfiguredError):
            send("user@example.com", "s", "b")

    def test_invalid_value_raises_configuration_error(self):
        srv = self.smtp_server()
        os.environ["SMTP_PORT"] = "not-a-port"
        with self.assertRaises(NotConfiguredError) as cm:  # the seed's except still works
            send("user@example.com", "s", "b")
        self.assertIs(type(cm.exception), ConfigurationError)
        self.assertEqual(cm.exception.code, "ECONFIG")
        self.assertIn("SMTP_PORT", str(cm.exception))
        self.assertEqual(srv.connections, 0)


class OAuth(EnvTestCase):
    """OAuth2 comes from the environment; the token never reaches Python's
    exception text."""

    def test_expired_fixed_token_is_authentication_error_without_token(self):
        srv = self.start(ScriptServer([b"220 t.local ESMTP", b"250-t.local\r\n250 AUTH XOAUTH2",
                                       b"334 eyJzdGF0dXMiOiI0MDEifQ==",
                                       b"535 5.7.8 token expired"]))
        self.configure(srv.port, SMTP_USERNAME="me@example.com",
                       SMTP_OAUTH_TOKEN="ya29.py-secret-token")
        with self.assertRaises(AuthenticationError) as cm:
            send("user@example.com", "s", "b")
        e = cm.exception
        self.assertEqual((e.code, e.smtp_code, e.stage), ("EAUTH", 535, "AUTH"))
        self.assertIn("cannot be refreshed", str(e))
        for text in (str(e), repr(e), e.server_text or ""):
            self.assertNotIn("py-secret-token", text)
        sent = b"".join(srv.received)
        self.assertIn(b"AUTH XOAUTH2 dXNlcj1tZUBleGFtcGxlLmNvbQFhdXRoPUJlYXJlciB5YTI5LnB5LXNlY3JldC10b2tlbgEB",
                      sent)

    def test_refused_refresh_endpoint_is_not_printed_secret(self):
        srv = self.smtp_server()
        self.configure(srv.port, SMTP_USERNAME="me@example.com",
                       SMTP_OAUTH_TOKEN_URL="https://127.0.0.1:%d/token" % closed_port(),
                       SMTP_OAUTH_CLIENT_ID="cid", SMTP_OAUTH_CLIENT_SECRET="py-client-secret",
                       SMTP_OAUTH_REFRESH_TOKEN="py-refresh-secret")
        with self.assertRaises(TransientError) as cm:
            send("user@example.com", "s", "b")
        self.assertEqual((cm.exception.code, cm.exception.stage), ("ECONNECT", "OAUTH"))
        self.assertNotIn("py-client-secret", str(cm.exception))
        self.assertNotIn("py-refresh-secret", str(cm.exception))
        self.assertEqual(srv.connections, 0)


class Rejections(EnvTestCase):
    def test_550_at_rcpt_is_permanent_with_details(self):
        srv = self.smtp_server(replies={
            "RCPT:nobody@example.com": "550 5.1.1 <nobody@example.com>: user unknown"})
        with self.assertRaises(PermanentError) as cm:
            send(["ok@example.com", "nobody@example.com"], "s", "b")
        e = cm.exception
        self.assertEqual(e.code, "EREJECTED")
        self.assertEqual(e.smtp_code, 550)
        self.assertEqual(e.enhanced_code, "5.1.1")
        self.assertEqual(e.recipient, "nobody@example.com")
        self.assertEqual(e.stage, "RCPT")
        self.assertIn("user unknown", e.server_text)
        self.assertIn("550", str(e))
        self.assertIsNotNone(e.message_id)
        self.assertEqual(srv.wait_messages(0, timeout=0.2), [])  # all or nothing

    def test_451_is_transient(self):
        srv = self.smtp_server(replies={"DATA": "451 4.3.0 Try again later"})
        with self.assertRaises(TransientError) as cm:
            send("user@example.com", "s", "b")
        e = cm.exception
        self.assertEqual(e.code, "ETRANSIENT")
        self.assertEqual(e.smtp_code, 451)
        self.assertEqual(e.enhanced_code, "4.3.0")
        self.assertEqual(e.stage, "DATA")
        self.assertIn("Try again later", e.server_text)
        self.assertEqual(srv.messages, [])

    def test_552_is_permanent_too_big(self):
        self.smtp_server(replies={"DATA": "552 5.3.4 Message too big"})
        with self.assertRaises(PermanentError) as cm:
            send("user@example.com", "s", "b")
        self.assertEqual(cm.exception.code, "ETOOBIG")
        self.assertEqual(cm.exception.smtp_code, 552)

    def test_size_limit_is_checked_before_sending(self):
        srv = self.smtp_server(size_limit=2000)
        with self.assertRaises(PermanentError) as cm:
            send("user@example.com", "s", "x" * 5000)
        self.assertEqual(cm.exception.code, "ETOOBIG")
        self.assertEqual(srv.messages, [])

    def test_utf8_mailbox_needs_smtputf8(self):
        srv = self.smtp_server(smtputf8=False)
        with self.assertRaises(PermanentError) as cm:
            send("jörg@example.com", "s", "b")
        self.assertEqual(cm.exception.code, "EUNSUPPORTED")
        self.assertEqual(srv.messages, [])

    def test_mail_from_refused(self):
        self.smtp_server(replies={"MAIL": "553 5.7.1 Sender not allowed"})
        with self.assertRaises(PermanentError) as cm:
            send("user@example.com", "s", "b")
        self.assertEqual(cm.exception.stage, "MAIL")
        self.assertIsNone(cm.exception.recipient)


class Connection(EnvTestCase):
    def test_closed_port_is_transient(self):
        self.configure(closed_port())
        with self.assertRaises(TransientError) as cm:
            send("user@example.com", "s", "b")
        self.assertEqual(cm.exception.code, "ECONNECT")
        self.assertEqual(cm.exception.stage, "CONNECT")
        self.assertIsNone(cm.exception.smtp_code)

    def test_silent_server_times_out(self):
        srv = self.start(SilentServer())
        self.configure(srv.port, SMTP_TIMEOUT="0.5")
        with self.assertRaises(TransientError) as cm:
            send("user@example.com", "s", "b")
        self.assertEqual(cm.exception.code, "ETIMEOUT")

    def test_send_timeout_bounds_the_whole_send(self):
        # each wait is within SMTP_TIMEOUT, the whole send is not within SMTP_SEND_TIMEOUT
        srv = self.start(SmtpServer(data_delay=2.0))
        self.configure(srv.port, SMTP_TIMEOUT="5", SMTP_SEND_TIMEOUT="0.8")
        t0 = time.monotonic()
        with self.assertRaises(TransientError) as cm:
            send("user@example.com", "s", "b")
        self.assertEqual(cm.exception.code, "ETIMEOUT")
        self.assertIn("time limit", str(cm.exception))
        self.assertLess(time.monotonic() - t0, 4.5)

    def test_garbage_greeting_is_protocol_error(self):
        srv = self.start(ScriptServer([b"hello, I am not an SMTP server"]))
        self.configure(srv.port)
        with self.assertRaises(ProtocolError) as cm:
            send("user@example.com", "s", "b")
        self.assertIn(cm.exception.code, ("EPROTOCOL", "EIO"))

    def test_421_greeting_is_transient(self):
        srv = self.start(ScriptServer([b"421 4.3.2 Too many connections"], read_between=False))
        self.configure(srv.port)
        with self.assertRaises(TransientError) as cm:
            send("user@example.com", "s", "b")
        self.assertEqual((cm.exception.code, cm.exception.smtp_code), ("ETRANSIENT", 421))
        self.assertEqual(cm.exception.enhanced_code, "4.3.2")

    def test_timeout_names_the_stage_it_waited_in(self):
        # Stalls after the greeting: the client waits for the EHLO reply.
        srv = self.start(ScriptServer([b"220 test.local ESMTP"], hold=3))
        self.configure(srv.port, SMTP_TIMEOUT="0.3")
        with self.assertRaises(TransientError) as cm:
            send("user@example.com", "s", "b")
        self.assertEqual((cm.exception.code, cm.exception.stage), ("ETIMEOUT", "EHLO"))

    def test_timeout_waiting_for_the_end_of_data_reply_is_stage_data(self):
        self.smtp_server(data_delay=2.0)
        os.environ["SMTP_TIMEOUT"] = "0.3"
        with self.assertRaises(TransientError) as cm:
            send("user@example.com", "s", "b")
        self.assertEqual((cm.exception.code, cm.exception.stage), ("ETIMEOUT", "DATA"))

    def test_hang_up_during_data_is_protocol_error(self):
        srv = self.start(ScriptServer(
            [b"220 test.local ESMTP", b"250 test.local", b"250 OK", b"250 OK", b"354 go"],
            hold=0.2))
        self.configure(srv.port)
        with self.assertRaises(ProtocolError) as cm:
            send("user@example.com", "s", "b")
        self.assertEqual((cm.exception.code, cm.exception.stage), ("EIO", "DATA"))

    def test_hang_up_after_greeting_is_protocol_error(self):
        srv = self.start(ScriptServer([b"220 test.local ESMTP"], read_between=False))
        self.configure(srv.port)
        with self.assertRaises(ProtocolError) as cm:
            send("user@example.com", "s", "b")
        self.assertEqual(cm.exception.code, "EIO")


class Authentication(EnvTestCase):
    def test_535_is_authentication_error(self):
        srv = self.smtp_server(auth=("app", "right"))
        os.environ.update(SMTP_USERNAME="app", SMTP_PASSWORD="wrong-secret")
        with self.assertRaises(AuthenticationError) as cm:
            send("user@example.com", "s", "b")
        e = cm.exception
        self.assertEqual(e.code, "EAUTH")
        self.assertEqual(e.smtp_code, 535)
        self.assertEqual(e.stage, "AUTH")
        self.assertNotIn("wrong-secret", str(e))
        self.assertNotIn("wrong-secret", repr(e))
        self.assertEqual(srv.messages, [])

    def test_right_credentials_send(self):
        srv = self.smtp_server(auth=("app", "p@ss wörd"))
        os.environ.update(SMTP_USERNAME="app", SMTP_PASSWORD="p@ss wörd")
        send("user@example.com", "s", "b")
        self.assertEqual(len(srv.wait_messages(1)), 1)
        self.assertEqual(srv.auth_seen[0][1:], ("app", "p@ss wörd"))


class InvalidInput(EnvTestCase):
    def assert_invalid(self, srv, code="EINVAL", **kw):
        args = dict(to="user@example.com", subject="s", body="b")
        args.update(kw)
        with self.assertRaises(InvalidMessageError) as cm:
            send(**args)
        self.assertIsInstance(cm.exception, ValueError)
        self.assertEqual(cm.exception.code, code)
        self.assertEqual(srv.connections, 0)  # raised before connecting
        return cm.exception

    def test_cr_in_subject(self):
        srv = self.smtp_server()
        e = self.assert_invalid(srv, subject="Hi\r\nBcc: victim@example.com")
        self.assertEqual(e.stage, "COMPOSE")
        self.assertIn("subject", str(e).lower())
        self.assertEqual(srv.messages, [])

    def test_lone_cr_and_lf_in_subject(self):
        srv = self.smtp_server()
        self.assert_invalid(srv, subject="a\rb")
        self.assert_invalid(srv, subject="a\nb")

    def test_header_injection_in_extra_header_and_address(self):
        srv = self.smtp_server()
        self.assert_invalid(srv, headers={"X-Tag": "a\r\nBcc: x@example.com"})
        self.assert_invalid(srv, headers={"Bad Name": "v"})
        self.assert_invalid(srv, to="a@example.com\r\nRCPT TO:<x@example.com>")
        self.assert_invalid(srv, reply_to="r@example.com\nX: y")

    def test_bad_addresses(self):
        srv = self.smtp_server()
        self.assert_invalid(srv, to="not an address")
        self.assert_invalid(srv, to=[])
        self.assert_invalid(srv, sender="nobody")

    def test_nul_characters(self):
        srv = self.smtp_server()
        self.assert_invalid(srv, subject="a\0b")
        self.assert_invalid(srv, to="a\0@example.com")
        self.assert_invalid(srv, body="before\0after")
        self.assert_invalid(srv, body_html="<p>\0</p>")

    def test_library_itself_refuses_nul_in_body(self):
        # The binding passes body_len, so the C library sees the NUL too.
        srv = self.smtp_server()
        res = scalr_email._native.send(("user@example.com",), "s", "a\0b", None, None, None,
                                       None, None, None, None, check_body_nul=False)
        self.assertEqual(res[0], "EINVAL", res)
        self.assertEqual(srv.connections, 0)

    def test_lone_surrogate(self):
        srv = self.smtp_server()
        self.assert_invalid(srv, subject="bad \udc80 text")

    def test_missing_attachment_file(self):
        srv = self.smtp_server()
        e = self.assert_invalid(srv, code="EFILE", attachments=["/nonexistent/file.pdf"])
        self.assertIn("file.pdf", str(e))

    def test_wrong_types_raise_type_error(self):
        srv = self.smtp_server()
        for kw in ({"subject": 3}, {"to": 5}, {"to": [b"a@example.com"]}, {"body": b"bytes"},
                   {"headers": {"X": 1}}, {"headers": ["ab"]}, {"attachments": [42]},
                   {"attachments": "file.txt"}, {"cc": {"a@example.com": 1}}):
            args = dict(to="u@example.com", subject="s", body="b")
            args.update(kw)
            with self.assertRaises(TypeError, msg=kw):
                send(**args)
        self.assertEqual(srv.connections, 0)


class ExceptionObjects(unittest.TestCase):
    def test_hierarchy(self):
        self.assertTrue(issubclass(ConfigurationError, NotConfiguredError))
        self.assertTrue(issubclass(InvalidMessageError, ValueError))
        for cls in (NotConfiguredError, ConfigurationError, InvalidMessageError, PermanentError,
                    TransientError, AuthenticationError, TLSError, ProtocolError):
            self.assertTrue(issubclass(cls, EmailError), cls)
            self.assertTrue(cls.__doc__)

    def test_code_mapping(self):
        from scalr_email.errors import CODE_CLASSES, QueueError, error_from_result
        expected = {
            "ENOTCONFIGURED": NotConfiguredError, "ECONFIG": ConfigurationError,
            "EINVAL": InvalidMessageError, "EFILE": InvalidMessageError,
            "EREJECTED": PermanentError, "ETOOBIG": PermanentError,
            "EUNSUPPORTED": PermanentError, "ETRANSIENT": TransientError,
            "ECONNECT": TransientError, "ETIMEOUT": TransientError,
            "EAUTH": AuthenticationError, "EINSECURE": AuthenticationError,
            "ETLS": TLSError, "EPROTOCOL": ProtocolError, "EIO": ProtocolError,
            "ESTORE": QueueError, "ENOTFOUND": QueueError}
        self.assertEqual(CODE_CLASSES, expected)
        e = error_from_result(("ENOMEM", 0, "", "", "", "", "out of memory", ""))
        self.assertIs(type(e), EmailError)
        for code in list(expected) + ["ENOMEM"]:
            self.assertTrue(scalr_email._native.strerror(code))

    def test_pickle_round_trip(self):
        e = PermanentError("refused", code="EREJECTED", smtp_code=550, enhanced_code="5.1.1",
                           recipient="x@example.com", stage="RCPT", server_text="no")
        f = pickle.loads(pickle.dumps(e))
        self.assertIs(type(f), PermanentError)
        self.assertEqual((str(f), f.code, f.smtp_code, f.enhanced_code, f.recipient, f.stage),
                         ("refused", "EREJECTED", 550, "5.1.1", "x@example.com", "RCPT"))
        self.assertIn("smtp_code=550", repr(f))


if __name__ == "__main__":
    unittest.main()
