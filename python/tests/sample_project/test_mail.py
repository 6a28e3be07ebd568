"""A user's test suite: mail_inbox comes from the installed scalr_email
plugin; nothing else is set up."""
import os

from shop.orders import confirm_order, ping


def test_order_confirmation_is_caught(mail_inbox):
    assert confirm_order("ann@example.com", 1017, b"%PDF-1.4 receipt") == 1
    (msg,) = mail_inbox.wait_for(count=1, timeout=5)
    assert msg.subject == "Order 1017 confirmed"
    assert msg.from_ == "Shop <orders@shop.test>"
    assert msg.to == ["ann@example.com"]
    assert msg.cc == []
    assert msg.bcc == ["audit@shop.test"]
    assert msg.text.strip() == "Thanks! Order 1017 is on its way."
    assert "<b>1017</b>" in msg.html
    assert msg.attachments == [("receipt-1017.pdf", b"%PDF-1.4 receipt", "application/pdf")]
    assert msg.headers["X-Order"] == "1017"
    assert msg.raw.startswith(b"") and b"X-Order: 1017" in msg.raw


def test_send_points_at_the_inbox_and_clear_empties_it(mail_inbox):
    assert os.environ["SMTP_HOST"] == "127.0.0.1"
    ping("bob@example.com")
    ping("carl@example.com")
    msgs = mail_inbox.wait_for(count=2)
    assert [m.to for m in msgs] == [["bob@example.com"], ["carl@example.com"]]
    mail_inbox.clear()
    assert mail_inbox.messages == []


def test_each_test_starts_empty(mail_inbox):
    assert mail_inbox.messages == []
    with open(os.environ["SAMPLE_PID_LOG"], "a") as f:
        f.write(f"{mail_inbox._proc.pid}\n")


def test_wait_for_fails_with_a_clear_message(mail_inbox):
    import pytest
    with pytest.raises(AssertionError, match="0 message\\(s\\) caught within 0.2 s, expected 1"):
        mail_inbox.wait_for(count=1, timeout=0.2)
    with open(os.environ["SAMPLE_PID_LOG"], "a") as f:
        f.write(f"{mail_inbox._proc.pid}\n")


def test_djangos_own_password_reset_arrives(mail_inbox):
    import re

    from django.contrib.auth.models import User
    from django.test import Client

    User.objects.create_user("ann", "ann@example.com", "old-password-1")
    resp = Client().post("/accounts/password_reset/", {"email": "ann@example.com"})
    assert resp.status_code == 302
    (msg,) = mail_inbox.wait_for(count=1)
    assert msg.subject == "Password reset on testserver"
    assert msg.from_ == "Shop <noreply@shop.test>"
    assert msg.to == ["ann@example.com"]
    link = re.search(r"http://testserver(/accounts/reset/[^/\s]+/[^/\s]+/)", msg.text)
    assert link, msg.text
    # The link works: Django accepts the token it mailed.
    resp = Client().get(link.group(1))
    assert resp.status_code == 302 and resp.url.endswith("/set-password/")
