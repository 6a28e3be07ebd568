"""A Django email backend that sends through scalr-email.

    # settings.py
    EMAIL_BACKEND = "scalr_email.django.EmailBackend"

Everything that uses django.core.mail (send_mail, send_mass_mail,
mail_admins, EmailMessage, the password-reset form) then goes through
libscalr-email: verified TLS, bounded waits, pooled connections.

Configuration, first match wins:
  1. keyword arguments of get_connection() (host=, port=, username=,
     password=, use_tls=, use_ssl=, timeout=), as Django's smtp backend;
  2. Django's EMAIL_* settings, when the project's settings set EMAIL_HOST:
     EMAIL_HOST, EMAIL_PORT, EMAIL_HOST_USER, EMAIL_HOST_PASSWORD,
     EMAIL_USE_TLS, EMAIL_USE_SSL, EMAIL_TIMEOUT.  With neither
     EMAIL_USE_TLS nor EMAIL_USE_SSL set, STARTTLS is required (Django's own
     default would be plain text);
  3. otherwise the SMTP_* environment variables, as scalr_email.send().
The sender is the message's from_email; Django's built-in default
("webmaster@localhost", when the project does not set DEFAULT_FROM_EMAIL)
gives way to SMTP_FROM when that is set.

SCALR_EMAIL_ENQUEUE = True puts each message in the durable queue
(scalr_email.enqueue(); SCALR_EMAIL_QUEUE names it) instead of sending, so
a request never waits on SMTP; `scalr-email queue work` sends them.

Importing scalr_email never imports this module, so Django stays optional.
"""

import email.message
import os
from email.mime.base import MIMEBase

from django.conf import settings
from django.core.mail.backends.base import BaseEmailBackend

import scalr_email
from scalr_email import _native
from scalr_email.errors import EmailError, InvalidMessageError, error_from_result

__all__ = ["EmailBackend", "UnsupportedMessageError"]

# Django's global default for DEFAULT_FROM_EMAIL (django/conf/global_settings.py).
_DJANGO_DEFAULT_FROM = "webmaster@localhost"


class UnsupportedMessageError(InvalidMessageError):
    """The message has a part scalr-email cannot carry (e.g. a second
    alternative that is neither text/html nor text/calendar); nothing was sent."""

    def __init__(self, message):
        super().__init__(message, code="EINVAL", stage="COMPOSE")


def _overridden(name):
    """Whether the project's settings set `name` (not Django's default)."""
    return settings.is_overridden(name)


class EmailBackend(BaseEmailBackend):
    """Drop-in for django.core.mail.backends.smtp.EmailBackend."""

    def __init__(self, host=None, port=None, username=None, password=None, use_tls=None,
                 fail_silently=False, use_ssl=None, timeout=None, ssl_keyfile=None,
                 ssl_certfile=None, **kwargs):
        super().__init__(fail_silently=fail_silently)
        if (ssl_keyfile or ssl_certfile or getattr(settings, "EMAIL_SSL_KEYFILE", None)
                or getattr(settings, "EMAIL_SSL_CERTFILE", None)):
            raise ValueError("scalr_email.django.EmailBackend does not support client "
                             "certificates (EMAIL_SSL_KEYFILE, EMAIL_SSL_CERTFILE)")
        self._kw = dict(host=host, port=port, username=username, password=password,
                        use_tls=use_tls, use_ssl=use_ssl, timeout=timeout)
        self.enqueue = kwargs.pop("enqueue", getattr(settings, "SCALR_EMAIL_ENQUEUE", False))
        self.queue = kwargs.pop("queue", getattr(settings, "SCALR_EMAIL_QUEUE", None))
        self._open = False

    # Connections live in libscalr-email's process-wide pool: open() and
    # close() only mark a batch, so send_mass_mail's messages (one backend)
    # and the next request's share one authenticated connection, closed by
    # the library after SMTP_POOL_IDLE seconds unused or at exit.
    def open(self):
        if self._open:
            return False
        self._open = True
        return True

    def close(self):
        self._open = False

    def _config(self):
        """The config tuple for _native.send(), or None to use SMTP_*."""
        kw = self._kw
        use_django = kw["host"] is not None or _overridden("EMAIL_HOST")
        if not use_django:
            return None

        def pick(key, name):
            if kw[key] is not None:
                return kw[key]
            return getattr(settings, name, None)

        host = pick("host", "EMAIL_HOST")
        port = pick("port", "EMAIL_PORT")
        user = pick("username", "EMAIL_HOST_USER") or None
        password = pick("password", "EMAIL_HOST_PASSWORD") or None
        tls_set = kw["use_tls"] is not None or _overridden("EMAIL_USE_TLS")
        ssl_set = kw["use_ssl"] is not None or _overridden("EMAIL_USE_SSL")
        use_tls = bool(pick("use_tls", "EMAIL_USE_TLS"))
        use_ssl = bool(pick("use_ssl", "EMAIL_USE_SSL"))
        if use_tls and use_ssl:
            raise ValueError("EMAIL_USE_TLS/EMAIL_USE_SSL are mutually exclusive, so only set "
                             "one of those settings to True.")
        if use_ssl:
            tls = "implicit"
        elif use_tls or not (tls_set or ssl_set):
            tls = "starttls"  # secure unless the project turned TLS off
        else:
            tls = "none"
        timeout = pick("timeout", "EMAIL_TIMEOUT")
        try:
            timeout_ms = int(float(timeout) * 1000) if timeout else 0
        except (TypeError, ValueError):
            raise ValueError(f"EMAIL_TIMEOUT must be a number of seconds, not {timeout!r}") \
                from None
        if not 0 <= timeout_ms <= 3_600_000:
            raise ValueError(f"EMAIL_TIMEOUT must be between 0 and 3600 seconds, not {timeout!r}")
        try:
            port = int(port) if port else 0
        except (TypeError, ValueError):
            raise ValueError(f"EMAIL_PORT must be a number, not {port!r}") from None
        if not 0 <= port <= 65535:
            raise ValueError(f"EMAIL_PORT must be a TCP port (1-65535), not {port!r}")
        return (host or None, port, user, password, None, tls, timeout_ms)

    def _sender(self, message):
        sender = message.from_email
        if sender == _DJANGO_DEFAULT_FROM and not _overridden("DEFAULT_FROM_EMAIL"):
            sender = os.environ.get("SMTP_FROM") or sender
        return sender

    def send_messages(self, email_messages):
        if not email_messages:
            return 0
        sent = 0
        for message in email_messages:
            if not message.recipients():
                continue
            try:
                self._send(message)
            except InvalidMessageError:
                raise  # a message that cannot be sent as written: never silent
            except EmailError:
                # Delivery failed (or SMTP is not configured, or the queue is
                # unusable): Django's smtp backend is silent about these.
                if not self.fail_silently:
                    raise
                continue
            sent += 1
        return sent

    def _send(self, message):
        args = convert(message, self._sender(message))
        if self.enqueue:
            a = args
            scalr_email.enqueue(a["to"], a["subject"], a["body"], a["body_html"], a["sender"],
                                cc=a["cc"], bcc=a["bcc"], reply_to=a["reply_to"],
                                headers=a["headers"], attachments=a["attachments"],
                                calendar=a["calendar"], queue=self.queue)
            return
        prepared = scalr_email._prepare(args["to"], args["subject"], args["body"],
                                        args["body_html"], args["sender"], args["cc"],
                                        args["bcc"], args["reply_to"], args["headers"],
                                        args["attachments"], calendar=args["calendar"])
        config = self._config()
        res = _native.send(*prepared, config=config)
        if res[0] != "OK":
            raise error_from_result(res)
        return res[7]


def _attachment(att):
    """(filename, bytes, content_type) from one of Django's attachments."""
    if isinstance(att, MIMEBase) or isinstance(att, email.message.Message):
        ctype = att.get_content_type()
        if att.get_content_maintype() == "multipart" or ctype == "message/rfc822":
            data = att.as_bytes()
            if ctype == "message/rfc822":
                payload = att.get_payload()
                if isinstance(payload, list) and payload:
                    data = payload[0].as_bytes()
        else:
            data = att.get_payload(decode=True)
            if data is None:
                data = (att.get_payload() or "").encode("utf-8")
        filename = att.get_filename()
        if not filename:
            raise UnsupportedMessageError(f"a {ctype} attachment without a file name cannot be sent "
                               "(scalr-email attaches named parts only)")
        return (filename, data, ctype)
    filename, content, mimetype = att[0], att[1], att[2]
    if not filename:
        raise UnsupportedMessageError("an attachment without a file name cannot be sent (scalr-email "
                           "attaches named parts only)")
    if isinstance(content, str):
        content = content.encode("utf-8")
    elif hasattr(content, "message"):  # a Django EmailMessage attached as message/rfc822
        content = content.message().as_bytes()
        mimetype = mimetype or "message/rfc822"
    elif isinstance(content, email.message.Message):
        content = content.as_bytes()
        mimetype = mimetype or "message/rfc822"
    return (filename, bytes(content), mimetype)


def convert(message, sender):
    """Map a Django EmailMessage / EmailMultiAlternatives onto send()'s
    arguments; raise UnsupportedMessageError for what cannot be carried."""
    body = message.body or ""
    body_html = None
    subtype = getattr(message, "content_subtype", "plain")
    if subtype == "html":
        body, body_html = "", body
    elif subtype != "plain":
        raise UnsupportedMessageError(f"a text/{subtype} body cannot be sent; scalr-email sends text/plain "
                           "with an optional text/html alternative")
    calendar = None
    for alt in getattr(message, "alternatives", None) or ():
        content, mimetype = alt[0], alt[1]
        if mimetype.split(";")[0].strip().lower() == "text/calendar":
            # An invite: scalr-email places it last, its method from the text.
            if calendar is not None:
                raise UnsupportedMessageError("a second text/calendar alternative cannot be sent; "
                                              "scalr-email carries one")
            calendar = content.decode("utf-8") if isinstance(content, bytes) else str(content)
            continue
        if mimetype != "text/html":
            raise UnsupportedMessageError(f"an alternative of type {mimetype} cannot be sent; scalr-email "
                               "carries one text/html and one text/calendar alternative")
        if body_html is not None:
            raise UnsupportedMessageError("a second text/html alternative cannot be sent; scalr-email "
                               "carries one")
        if isinstance(content, bytes):
            content = content.decode("utf-8")
        body_html = content
    headers = []
    reply_to = list(message.reply_to or ())
    for name, value in (message.extra_headers or {}).items():
        low = name.lower()
        if low == "from":
            sender = str(value)
        elif low == "reply-to":
            reply_to = [str(value)]
        else:
            headers.append((str(name), str(value)))
    if len(reply_to) > 1:
        reply = ", ".join(reply_to)
    else:
        reply = reply_to[0] if reply_to else None
    return dict(
        to=list(message.to or ()),
        subject=str(message.subject or ""),
        body=str(body),
        body_html=body_html,
        sender=sender,
        cc=list(message.cc or ()) or None,
        bcc=list(message.bcc or ()) or None,
        reply_to=reply,
        headers=headers or None,
        attachments=[_attachment(a) for a in (message.attachments or ())] or None,
        calendar=calendar,
    )
