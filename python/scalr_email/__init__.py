"""Send transactional email through the platform's SMTP provider.

    from scalr_email import send
    send(
        to="user@example.com",
        subject="Your invoice is ready",
        body="Plain-text body here.",
        body_html="<p>HTML body here.</p>",  # optional
    )

Configuration comes from the SMTP_* environment variables, read at every
call (the ones Authentik reads): SMTP_HOST, SMTP_PORT, SMTP_USERNAME,
SMTP_PASSWORD, SMTP_FROM, SMTP_USE_TLS, SMTP_USE_SSL, SMTP_TIMEOUT,
SMTP_HELO_NAME.  With SMTP_HOST empty every send() raises NotConfiguredError.

The work is done by libscalr-email (C): TLS is verified, credentials never
cross an unencrypted connection to a remote host, every wait is bounded by
SMTP_TIMEOUT (default 30 s), and the GIL is released while it talks to the
server, so other threads keep running.  send_async() is the asyncio form.

enqueue() puts the message in the durable queue instead (a worker,
`scalr-email queue work`, sends it with retries); with conn= it is written
inside the caller's own database transaction (the transactional outbox).

Failures raise a subclass of EmailError; see scalr_email.errors for which
library code maps to which class.
"""

import asyncio
import datetime
import functools
import json
import os
from collections.abc import Mapping
from typing import Iterable, Optional, Sequence, Tuple, Union

from . import _native
from .errors import (AuthenticationError, ConfigurationError, EmailError, InvalidMessageError,
                     NotConfiguredError, PermanentError, ProtocolError, QueueError, TLSError,
                     TransientError, error_from_result)
from . import queue as _queue
from .queue import init_queue, queue_show, queue_status

__version__ = "0.1.0"

__all__ = [
    "send",
    "render",
    "send_async",
    "compose",
    "enqueue",
    "init_queue",
    "queue_status",
    "queue_show",
    "EmailError",
    "NotConfiguredError",
    "ConfigurationError",
    "InvalidMessageError",
    "PermanentError",
    "TransientError",
    "AuthenticationError",
    "TLSError",
    "ProtocolError",
    "QueueError",
]

StrPath = Union[str, "os.PathLike[str]", bytes, "os.PathLike[bytes]"]
Addresses = Union[str, Sequence[str]]
Headers = Union[Mapping, Iterable[Tuple[str, str]]]
# A path, or (filename, data) / (filename, data, content_type).
Attachment = Union[StrPath, Tuple[str, bytes], Tuple[str, bytes, Optional[str]]]


def _addresses(value: Optional[Addresses], field: str) -> Optional[Tuple[str, ...]]:
    if value is None:
        return None
    if isinstance(value, str):
        return (value,)
    if isinstance(value, (bytes, bytearray, Mapping)):
        raise TypeError(f"{field} must be a str or a list of str, not {type(value).__name__}")
    try:
        items = tuple(value)
    except TypeError:
        raise TypeError(
            f"{field} must be a str or a list of str, not {type(value).__name__}") from None
    for item in items:
        if not isinstance(item, str):
            raise TypeError(f"{field} must contain str, not {type(item).__name__}")
    return items


def _text(value: Optional[str], field: str) -> Optional[str]:
    if value is not None and not isinstance(value, str):
        raise TypeError(f"{field} must be str or None, not {type(value).__name__}")
    return value


def _headers(value: Optional[Headers]) -> Optional[Tuple[Tuple[str, str], ...]]:
    if value is None:
        return None
    pairs = value.items() if isinstance(value, Mapping) else value
    out = []
    try:
        for pair in pairs:
            if not isinstance(pair, (tuple, list)) or len(pair) != 2:
                raise TypeError
            name, val = pair
            if not isinstance(name, str) or not isinstance(val, str):
                raise TypeError
            out.append((name, val))
    except (TypeError, ValueError):
        raise TypeError("headers must be a dict of str to str, or a list of (str, str) "
                        "pairs") from None
    return tuple(out)


def _attachment(item: Attachment) -> Tuple[Optional[bytes], Optional[bytes], Optional[str],
                                           Optional[str]]:
    if isinstance(item, (str, bytes, os.PathLike)):
        return (os.fsencode(item), None, None, None)
    if isinstance(item, (tuple, list)) and len(item) in (2, 3):
        filename, data = item[0], item[1]
        ctype = item[2] if len(item) == 3 else None
        if not isinstance(filename, str):
            raise TypeError("an attachment's filename must be str")
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError("an attachment's data must be bytes")
        if ctype is not None and not isinstance(ctype, str):
            raise TypeError("an attachment's content type must be str or None")
        return (None, bytes(data), filename, ctype)
    raise TypeError("each attachment must be a path or a (filename, bytes[, content_type]) "
                    "tuple")


def _attachments(value: Optional[Iterable[Attachment]]) -> Optional[tuple]:
    if value is None:
        return None
    if isinstance(value, (str, bytes, os.PathLike)) or (
            isinstance(value, tuple) and len(value) in (2, 3) and isinstance(value[0], str)
            and isinstance(value[1], (bytes, bytearray, memoryview))):
        raise TypeError("attachments must be a list (of paths or (filename, bytes, "
                        "content_type) tuples)")
    return tuple(_attachment(a) for a in value)


def _inline(value: Optional[Iterable[Attachment]]) -> Optional[tuple]:
    """inline= parts: the forms of attachments=, the file name being the
    content ID (<img src="cid:NAME">)."""
    if value is None:
        return None
    if isinstance(value, (str, bytes, os.PathLike)):
        raise TypeError("inline must be a list (of paths or (filename, bytes, "
                        "content_type) tuples)")
    out = []
    for a in _attachments(value):
        name = a[2] if a[2] is not None else os.path.basename(os.fsdecode(a[0]))
        out.append(a + (name,))
    return tuple(out)


def _options(calendar, envelope_from, dsn_notify, dsn_ret, envid):
    if isinstance(dsn_notify, (list, tuple)):
        if not all(isinstance(x, str) for x in dsn_notify):
            raise TypeError("dsn_notify must be a str or a list of str")
        dsn_notify = ",".join(dsn_notify)
    opts = (_text(calendar, "calendar"), _text(envelope_from, "envelope_from"),
            _text(dsn_notify, "dsn_notify"), _text(dsn_ret, "dsn_ret"), _text(envid, "envid"))
    return None if opts == (None,) * 5 else opts


_URI_BAD = set(" <>,") | {chr(c) for c in range(0x20)} | {"\x7f"}


def _unsubscribe(url: Optional[str], mailto: Optional[str]) -> Tuple[Tuple[str, str], ...]:
    """The RFC 8058 one-click fields (the same rules as scalr-email's
    --unsubscribe): List-Unsubscribe with an https:// URL (and an optional
    mailto address) and List-Unsubscribe-Post."""
    if url is None:
        if mailto is not None:
            raise TypeError("unsubscribe_mailto needs unsubscribe=")
        return ()
    url = _text(url, "unsubscribe")
    mailto = _text(mailto, "unsubscribe_mailto")
    if (not url.startswith("https://") or len(url) <= 8 or len(url) > 900
            or any(c in _URI_BAD or ord(c) > 0x7e for c in url)):
        raise InvalidMessageError("unsubscribe URL must be an https:// URL of at most 900 "
                                  "printable characters without spaces, '<', '>' or ','",
                                  code="EINVAL", stage="COMPOSE")
    value = "<%s>" % url
    if mailto:
        at = mailto.find("@")
        if (at <= 0 or at == len(mailto) - 1 or len(mailto) > 254 or "?" in mailto
                or any(c in _URI_BAD or ord(c) > 0x7e for c in mailto)):
            raise InvalidMessageError("unsubscribe mailto %r is not an address" % mailto[:80],
                                      code="EINVAL", stage="COMPOSE")
        value += ", <mailto:%s>" % mailto
    return (("List-Unsubscribe", value),
            ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"))


def _prepare(to, subject, body, body_html, sender, cc, bcc, reply_to, headers, attachments,
             inline=None, calendar=None, envelope_from=None, dsn_notify=None, dsn_ret=None,
             envid=None, unsubscribe=None, unsubscribe_mailto=None):
    """Check types and snapshot every argument into the immutable form
    scalr_email._native takes."""
    att = _attachments(attachments)
    inl = _inline(inline)
    if inl:
        att = (att or ()) + inl
    hs = _headers(headers)
    extra = _unsubscribe(unsubscribe, unsubscribe_mailto)
    if extra:
        hs = (hs or ()) + extra
    return (_addresses(to, "to"), _text(subject, "subject"), _text(body, "body"),
            _text(body_html, "body_html"), _text(sender, "sender"), _addresses(cc, "cc"),
            _addresses(bcc, "bcc"), _text(reply_to, "reply_to"), hs,
            att, _options(calendar, envelope_from, dsn_notify, dsn_ret, envid))


def _finish(res) -> str:
    if res[0] == "OK":
        return res[7]
    raise error_from_result(res)


def render(name: str, data: Optional[Mapping] = None, locale: Optional[str] = None, *,
           templates: Optional[Union[str, os.PathLike]] = None,
           allow_missing: bool = False) -> dict:
    """Render template `name` with `data` (a dict, serialised as JSON) and
    return {"subject": ..., "body": ..., "body_html": ...}; body is the text
    part (body.txt, or derived from the HTML).  Nothing is sent.

    templates      the templates folder; default $SCALR_EMAIL_TEMPLATES, else
                   ./templates.  A template is the folder NAME/ in it with
                   subject.txt, body.html and optionally body.txt.
    locale         "fr-CA" picks body.fr-CA.html, then body.fr.html, then
                   body.html (the same for every file).
    allow_missing  False: a variable missing from data raises
                   InvalidMessageError naming it, its file and line.

    Raises InvalidMessageError for a template error, a missing variable, an
    unsafe URL in href/src, a line break in the subject or a path leaving
    the folder; EmailError (code "EFILE") when the template does not exist.
    """
    if not isinstance(name, str):
        raise TypeError("name must be a str")
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise TypeError("data must be a dict (a JSON object)")
    try:
        blob = json.dumps(data, ensure_ascii=False, allow_nan=False, default=str).encode()
    except (TypeError, ValueError) as e:
        raise InvalidMessageError("template data is not JSON: %s" % e, code="EINVAL") from None
    if locale is not None and not isinstance(locale, str):
        raise TypeError("locale must be a str or None")
    root = os.fspath(templates) if templates is not None else None
    res, subject, body, body_html = _native.render(name, blob, locale, root, bool(allow_missing))
    if res[0] != "OK":
        raise error_from_result(res)
    return {"subject": subject, "body": body, "body_html": body_html}


def _from_template(subject, body, body_html, template, data, locale, templates, allow_missing):
    if template is None:
        if subject is None or body is None:
            raise TypeError("send() needs subject and body, or template=")
        if data is not None or locale is not None:
            raise TypeError("data= and locale= go with template=")
        return subject, body, body_html
    if subject is not None or body is not None or body_html is not None:
        raise TypeError("template= makes the subject and bodies: do not pass them too")
    r = render(template, data, locale, templates=templates, allow_missing=allow_missing)
    return r["subject"], r["body"], r["body_html"]


def send(to: Addresses, subject: Optional[str] = None, body: Optional[str] = None,
         body_html: Optional[str] = None,
         sender: Optional[str] = None, *, cc: Optional[Addresses] = None,
         bcc: Optional[Addresses] = None, reply_to: Optional[str] = None,
         headers: Optional[Headers] = None,
         attachments: Optional[Iterable[Attachment]] = None,
         template: Optional[str] = None, data: Optional[Mapping] = None,
         locale: Optional[str] = None, templates: Optional[Union[str, os.PathLike]] = None,
         allow_missing: bool = False,
         inline: Optional[Iterable[Attachment]] = None, calendar: Optional[str] = None,
         envelope_from: Optional[str] = None,
         dsn_notify: Optional[Union[str, Iterable[str]]] = None,
         dsn_ret: Optional[str] = None, envid: Optional[str] = None,
         unsubscribe: Optional[str] = None, unsubscribe_mailto: Optional[str] = None,
         profile: Optional[str] = None) -> str:
    """Send one email and return its Message-ID (e.g. "<...@yourdomain.com>").

    Either subject and body (and optionally body_html), or template="NAME"
    with data={...} (and locale, templates, allow_missing as in render()).

    to          "user@example.com", "Name <user@example.com>", or a list of them.
    subject     the subject line; any Unicode (encoded per RFC 2047).
    body        the text/plain body.
    body_html   optional text/html alternative (sent as multipart/alternative).
    sender      optional From: for this message; overrides SMTP_FROM.
    cc, bcc     like `to`; bcc recipients get the mail but appear in no header.
    reply_to    optional Reply-To: address.
    headers     extra header fields: a dict, or a list of (name, value) pairs.
    attachments a list of paths (str or os.PathLike, read when sending), or
                (filename, data_bytes, content_type_or_None) tuples.
    inline      images the HTML shows: the forms of attachments, each file's
                name being its content ID, so body_html says
                <img src="cid:logo.png">.  Needs body_html; a cid: the
                HTML names that no inline part carries is refused.
    calendar    an iCalendar text (with a METHOD line) added as the last
                alternative, text/calendar; method=...: an invite.
    envelope_from  the bounce address (MAIL FROM) apart from From; "<>"
                is the null sender.  Default: SMTP_RETURN_PATH, else From.
    dsn_notify  "never", or any of "success", "failure", "delay" (a str
                joined by ',' or a list); dsn_ret "full" or "hdrs"; envid
                an envelope ID.  Delivery status notifications (RFC 3461),
                sent only when the server offers DSN (each recipient also
                gets ORCPT).
    unsubscribe one-click unsubscribe for bulk mail (RFC 8058): an https://
                URL; adds List-Unsubscribe (with unsubscribe_mailto, a mailto
                address too) and List-Unsubscribe-Post; DKIM signs both.
    profile     a sender profile (tenant): $SCALR_EMAIL_PROFILES/NAME.env, whose
                SMTP_* variables win over the environment's; a sender outside
                its SMTP_ALLOWED_FROM_DOMAINS is InvalidMessageError.

    Configuration: SMTP_* environment variables, read at each call.

    Blocks until the server accepted the message for every recipient (or
    refused it), at most a few times SMTP_TIMEOUT; the GIL is released
    meanwhile.  Delivery is all or nothing: if one recipient is refused the
    message goes to nobody.

    Raises (all subclasses of EmailError):
      NotConfiguredError   SMTP_HOST empty, or no sender (ConfigurationError
                           for invalid SMTP_* values is a subclass);
      InvalidMessageError  bad input (also a ValueError); nothing was sent;
      PermanentError       5xx rejection, too big, needs SMTPUTF8;
      TransientError       4xx, connection refused, timeout: retry later;
      AuthenticationError  credentials refused, or would go unencrypted;
      TLSError             STARTTLS missing, handshake or certificate failure;
      ProtocolError        the server broke SMTP or hung up.
    TypeError for arguments of the wrong type.
    """
    subject, body, body_html = _from_template(subject, body, body_html, template, data, locale,
                                              templates, allow_missing)
    args = _prepare(to, subject, body, body_html, sender, cc, bcc, reply_to, headers,
                    attachments, inline, calendar, envelope_from, dsn_notify, dsn_ret, envid,
                    unsubscribe, unsubscribe_mailto)
    return _finish(_native.send(*args, profile=_text(profile, "profile")))


async def send_async(to: Addresses, subject: Optional[str] = None, body: Optional[str] = None,
                     body_html: Optional[str] = None,
                     sender: Optional[str] = None, *, cc: Optional[Addresses] = None,
                     bcc: Optional[Addresses] = None, reply_to: Optional[str] = None,
                     headers: Optional[Headers] = None,
                     attachments: Optional[Iterable[Attachment]] = None,
                     template: Optional[str] = None, data: Optional[Mapping] = None,
                     locale: Optional[str] = None,
                     templates: Optional[Union[str, os.PathLike]] = None,
                     allow_missing: bool = False,
                     inline: Optional[Iterable[Attachment]] = None, calendar: Optional[str] = None,
                     envelope_from: Optional[str] = None,
                     dsn_notify: Optional[Union[str, Iterable[str]]] = None,
                     dsn_ret: Optional[str] = None, envid: Optional[str] = None,
                     unsubscribe: Optional[str] = None,
                     unsubscribe_mailto: Optional[str] = None,
                     profile: Optional[str] = None) -> str:
    """Awaitable send(): same arguments, result and exceptions.

    The arguments are checked and copied at once; the blocking send then
    runs in the event loop's default executor (loop.run_in_executor), so the
    loop keeps serving other tasks while the server is talked to.  A
    template is rendered at once, before the executor.
    """
    subject, body, body_html = _from_template(subject, body, body_html, template, data, locale,
                                              templates, allow_missing)
    args = _prepare(to, subject, body, body_html, sender, cc, bcc, reply_to, headers,
                    attachments, inline, calendar, envelope_from, dsn_notify, dsn_ret, envid,
                    unsubscribe, unsubscribe_mailto)
    loop = asyncio.get_running_loop()
    res = await loop.run_in_executor(None, functools.partial(_native.send, *args,
                                                             profile=_text(profile, "profile")))
    return _finish(res)


def compose(to: Addresses, subject: str, body: str, body_html: Optional[str] = None,
            sender: Optional[str] = None, *, cc: Optional[Addresses] = None,
            bcc: Optional[Addresses] = None, reply_to: Optional[str] = None,
            headers: Optional[Headers] = None,
            attachments: Optional[Iterable[Attachment]] = None,
            inline: Optional[Iterable[Attachment]] = None, calendar: Optional[str] = None,
            envelope_from: Optional[str] = None,
            dsn_notify: Optional[Union[str, Iterable[str]]] = None,
            dsn_ret: Optional[str] = None, envid: Optional[str] = None,
            unsubscribe: Optional[str] = None, unsubscribe_mailto: Optional[str] = None,
            profile: Optional[str] = None) -> bytes:
    """Return the exact bytes send() would transmit (CRLF line endings, not
    dot-stuffed), without connecting anywhere (SMTP_HOST need not be set).
    Same arguments as send(); the From: is `sender`, else SMTP_FROM
    (NotConfiguredError when neither is set).  DKIM-signed as send() signs
    when SMTP_DKIM_* is set.  profile: as send()'s, the tenant's SMTP_FROM,
    allowed domains (InvalidMessageError outside them) and DKIM key.
    Useful for previews and tests.  Raises InvalidMessageError for bad
    input, ConfigurationError for an unknown profile or an unusable key."""
    args = _prepare(to, subject, body, body_html, sender, cc, bcc, reply_to, headers,
                    attachments, inline, calendar, envelope_from, dsn_notify, dsn_ret, envid,
                    unsubscribe, unsubscribe_mailto)
    res, data = _native.compose(*args, profile=_text(profile, "profile"))
    if res[0] != "OK":
        raise error_from_result(res)
    return data



def enqueue(to: Addresses, subject: str, body: str, body_html: Optional[str] = None,
            sender: Optional[str] = None, *, cc: Optional[Addresses] = None,
            bcc: Optional[Addresses] = None, reply_to: Optional[str] = None,
            headers: Optional[Headers] = None,
            attachments: Optional[Iterable[Attachment]] = None,
            inline: Optional[Iterable[Attachment]] = None, calendar: Optional[str] = None,
            envelope_from: Optional[str] = None,
            dsn_notify: Optional[Union[str, Iterable[str]]] = None,
            dsn_ret: Optional[str] = None, envid: Optional[str] = None,
            unsubscribe: Optional[str] = None, unsubscribe_mailto: Optional[str] = None,
            send_at: Optional[Union[datetime.datetime, int, float]] = None,
            priority: str = "transactional", tenant: Optional[str] = None,
            idempotency_key: Optional[str] = None,
            expire_in: Optional[Union[datetime.timedelta, int, float]] = None,
            max_attempts: Optional[int] = None, queue: Optional[str] = None,
            conn=None, profile: Optional[str] = None) -> int:
    """Put one email in the durable queue and return its queue id (int).

    Same message arguments as send().  The message is composed now (its
    Message-ID and Date are fixed) and stored with its envelope; a worker
    (`scalr-email queue work`) sends it, retrying transient failures, so
    every retry is byte-identical.  The From: is `sender`, else SMTP_FROM.

    send_at         not before this: a datetime (naive = local time) or epoch
                    seconds; None: now.
    priority        "transactional" (always sent first) or "bulk".
    tenant          fairness key inside the lane (round-robin).
    profile         a sender profile (tenant): $SCALR_EMAIL_PROFILES/NAME.env.
                    The message is composed with its SMTP_FROM, checked
                    against its SMTP_ALLOWED_FROM_DOMAINS (InvalidMessageError)
                    and DKIM-signed with its key now; the worker sends it with
                    the profile's account.  The tenant is the profile (another
                    tenant: ValueError).  Unknown profile or bad key:
                    ConfigurationError.  Not with conn.
    idempotency_key the same key again returns the existing id and stores
                    nothing new.
    expire_in       give up after this long: seconds or a timedelta
                    (default 24 h).
    max_attempts    tries before giving up (None: the worker's default, 20).
    queue           the queue's URL ("sqlite:PATH" or "postgresql://...");
                    None: $SCALR_EMAIL_QUEUE, else sqlite:scalr-email-queue.db.
    conn            a sqlite3 connection to the queue's SQLite database, or a
                    psycopg / psycopg2 connection to the PostgreSQL queue: the
                    row is INSERTed through it, inside the caller's current
                    transaction and not committed, so the email is sent if and
                    only if that transaction commits (the transactional
                    outbox).  The tables must exist (init_queue()).

    Raises what send() raises for bad input (InvalidMessageError,
    NotConfiguredError when there is no sender; nothing is stored) and
    QueueError when the queue's database cannot be used.  Nothing is sent
    here.  Without conn the GIL is released while the row is written.
    """
    args = _prepare(to, subject, body, body_html, sender, cc, bcc, reply_to, headers,
                    attachments, inline, calendar, envelope_from, dsn_notify, dsn_ret, envid,
                    unsubscribe, unsubscribe_mailto)
    lane = _queue.lane(priority)
    run_at = _queue.send_at_ms(send_at)
    expire_ms = _queue.duration_ms(expire_in, "expire_in")
    tenant = _text(tenant, "tenant")
    key = _text(idempotency_key, "idempotency_key")
    if max_attempts is not None and (isinstance(max_attempts, bool)
                                     or not isinstance(max_attempts, int)):
        raise TypeError("max_attempts must be int or None")
    if max_attempts is not None and max_attempts <= 0:
        raise ValueError("max_attempts must be positive")
    profile = _text(profile, "profile")
    if profile is not None and tenant is not None and tenant != profile:
        raise ValueError(f"tenant {tenant!r} is not profile {profile!r}: in the queue the "
                         "tenant is the profile (leave tenant out)")
    default_from = os.environ.get("SMTP_FROM") or None
    if conn is not None:
        if queue is not None:
            raise TypeError("give queue= or conn=, not both")
        if profile is not None:
            raise TypeError("profile= is not supported with conn= (the transactional outbox); "
                            "enqueue without conn")
        return _queue.outbox_insert(conn, args, default_from, lane, tenant, key, run_at,
                                    expire_ms, max_attempts)
    if queue is not None and not isinstance(queue, str):
        raise TypeError(f"queue must be a URL str, not {type(queue).__name__}")
    res, qid, _existed = _native.enqueue(*args, default_from=default_from, queue=queue,
                                         send_at_ms=run_at, lane=lane, tenant=tenant, key=key,
                                         expire_in_ms=expire_ms, max_attempts=max_attempts,
                                         profile=profile)
    if res[0] != "OK":
        raise error_from_result(res)
    return qid
