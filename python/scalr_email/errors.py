"""The exceptions scalr_email raises, and which library code maps to which.

Every exception is an :class:`EmailError`; catch that to handle any failure.
The classes group the C library's codes (scalr_email_code, given as
``exc.code``) by what a caller does about them:

NotConfiguredError    ENOTCONFIGURED  SMTP_HOST empty, or no sender at all
ConfigurationError    ECONFIG         an SMTP_* value is invalid (SMTP_PORT=abc);
  (a NotConfiguredError)              so ``except NotConfiguredError`` catches both
InvalidMessageError   EINVAL          bad address, CR/LF in a header, NUL, ...
  (also a ValueError) EFILE           an attachment cannot be read
                                      -> fix the input; nothing was sent
PermanentError        EREJECTED       5xx reply (``recipient`` set at RCPT)
                      ETOOBIG         larger than the server's SIZE, or 552
                      EUNSUPPORTED    needs SMTPUTF8, which the server lacks
                                      -> do not retry as is
TransientError        ETRANSIENT      4xx reply
                      ECONNECT        no address of the host accepted a connection
                      ETIMEOUT        a wait exceeded SMTP_TIMEOUT
                                      -> retry later
AuthenticationError   EAUTH           credentials refused, or no usable mechanism
                      EINSECURE       they would cross an unencrypted connection
TLSError              ETLS            no STARTTLS, handshake, untrusted certificate
ProtocolError         EPROTOCOL       the server broke the SMTP protocol
                      EIO             read/write failed, or the server hung up
QueueError            ESTORE          the queue's database cannot be used (unreadable,
                                      unwritable, locked past the timeout, tables missing)
                      ENOTFOUND       no queued message with that id
EmailError            ENOMEM          (and any code added later)

Attributes of every EmailError: ``code``, ``smtp_code`` (int or None),
``enhanced_code`` (RFC 3463 "5.1.1" or None), ``server_text`` (the server's
reply, or None), ``recipient`` (the refused recipient, or None), ``stage``
(where it failed: "CONNECT", "TLS", "EHLO", "AUTH", "MAIL", "RCPT", "DATA",
"QUIT", "COMPOSE", "CONFIG", or None) and ``message_id`` (set once the
message was composed, else None).  ``str(exc)`` is the library's one-line
message, which never contains a password.
"""

from typing import Dict, Optional, Tuple, Type

__all__ = [
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


class EmailError(Exception):
    """Sending failed.  Base class of every scalr_email exception.

    Attributes: code, smtp_code, enhanced_code, server_text, recipient,
    stage, message_id (see the module documentation of scalr_email.errors).
    """

    code: Optional[str]
    smtp_code: Optional[int]
    enhanced_code: Optional[str]
    server_text: Optional[str]
    recipient: Optional[str]
    stage: Optional[str]
    message_id: Optional[str]

    def __init__(self, message: str = "", *, code: Optional[str] = None,
                 smtp_code: Optional[int] = None, enhanced_code: Optional[str] = None,
                 server_text: Optional[str] = None, recipient: Optional[str] = None,
                 stage: Optional[str] = None, message_id: Optional[str] = None) -> None:
        super().__init__(message)
        self.code = code
        self.smtp_code = smtp_code
        self.enhanced_code = enhanced_code
        self.server_text = server_text
        self.recipient = recipient
        self.stage = stage
        self.message_id = message_id

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""

    def __repr__(self) -> str:
        extra = "".join(
            f", {k}={getattr(self, k)!r}"
            for k in ("code", "smtp_code", "enhanced_code", "recipient", "stage")
            if getattr(self, k) is not None)
        return f"{type(self).__name__}({str(self)!r}{extra})"


class NotConfiguredError(EmailError):
    """SMTP is not set up: SMTP_HOST is empty, or there is no sender
    (neither SMTP_FROM nor sender=).  Code ENOTCONFIGURED.  Also the base of
    ConfigurationError, so ``except NotConfiguredError`` catches both."""


class ConfigurationError(NotConfiguredError):
    """An SMTP_* variable is set but invalid (SMTP_PORT=abc,
    SMTP_USE_TLS=maybe, ...).  Code ECONFIG."""


class InvalidMessageError(EmailError, ValueError):
    """The message itself is unacceptable (bad address, CR or LF in a header,
    a NUL character, ...: code EINVAL) or an attachment cannot be read (code
    EFILE).  Raised before any connection is made: nothing was sent.  Also a
    ValueError."""


class PermanentError(EmailError):
    """The server refused for good: a 5xx reply (EREJECTED; ``recipient`` is
    set when a RCPT was refused), a message too large (ETOOBIG) or one that
    needs an extension the server lacks (EUNSUPPORTED).  Do not retry as is."""


class TransientError(EmailError):
    """A temporary failure worth retrying later: a 4xx reply (ETRANSIENT),
    no connection to the server (ECONNECT) or a timeout (ETIMEOUT)."""


class AuthenticationError(EmailError):
    """The server refused the credentials or no usable mechanism was offered
    (EAUTH), or they would have crossed an unencrypted connection to a
    non-loopback host (EINSECURE)."""


class TLSError(EmailError):
    """TLS could not be set up: STARTTLS not offered, handshake failure,
    untrusted certificate or wrong host name.  Code ETLS."""


class ProtocolError(EmailError):
    """The server broke the SMTP protocol (EPROTOCOL), or reading/writing
    failed or the server hung up (EIO)."""


class QueueError(EmailError):
    """The durable queue could not be used: its database cannot be opened,
    read or written, is locked past the timeout, or lacks the queue's
    tables (ESTORE); or there is no queued message with that id
    (ENOTFOUND).  With enqueue(conn=...), a database error raised by the
    connection is the ``__cause__``."""


CODE_CLASSES: Dict[str, Type[EmailError]] = {
    "ENOTCONFIGURED": NotConfiguredError,
    "ECONFIG": ConfigurationError,
    "EINVAL": InvalidMessageError,
    "EFILE": InvalidMessageError,
    "EREJECTED": PermanentError,
    "ETOOBIG": PermanentError,
    "EUNSUPPORTED": PermanentError,
    "ETRANSIENT": TransientError,
    "ECONNECT": TransientError,
    "ETIMEOUT": TransientError,
    "EAUTH": AuthenticationError,
    "EINSECURE": AuthenticationError,
    "ETLS": TLSError,
    "EPROTOCOL": ProtocolError,
    "EIO": ProtocolError,
    "ESTORE": QueueError,
    "ENOTFOUND": QueueError,
}

# (code, smtp_code, enhanced, stage, recipient, server_text, message, message_id)
Result = Tuple[str, int, str, str, str, str, str, str]


def error_from_result(res: Result) -> EmailError:
    """Build the exception for a failed result tuple of scalr_email._native."""
    code, smtp_code, enhanced, stage, recipient, server_text, message, message_id = res
    cls = CODE_CLASSES.get(code, EmailError)
    return cls(message or code, code=code, smtp_code=smtp_code or None,
               enhanced_code=enhanced or None, server_text=server_text or None,
               recipient=recipient or None, stage=stage or None,
               message_id=message_id or None)
