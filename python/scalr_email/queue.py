"""The durable queue from Python: enqueue() and the transactional outbox.

enqueue() composes the message at once (Message-ID and Date fixed then) and
stores the exact bytes with the envelope; a worker (`scalr-email queue
work`) sends them later, with retries.  Without ``conn`` the C library
writes the row (scalr_email_queue_add) on the queue named by ``queue``,
``$SCALR_EMAIL_QUEUE`` or ``sqlite:scalr-email-queue.db``.  With ``conn`` (a
sqlite3 connection to the queue's database, or a psycopg / psycopg2
connection to the PostgreSQL queue) the row is INSERTed through that
connection, inside the caller's current transaction: the email is sent if and
only if that transaction commits.  The row follows the public contract in
docs/queue-schema.md.
"""

import datetime
import os
import sqlite3
from typing import Any, Optional, Tuple, Union

from . import _native
from .errors import ConfigurationError, QueueError, error_from_result

SCHEMA_VERSION = 2
DEFAULT_QUEUE = "sqlite:scalr-email-queue.db"
LANES = {"transactional": 0, "bulk": 1}

SendAt = Union[datetime.datetime, int, float]
Duration = Union[datetime.timedelta, int, float]

# The database's clock in ms since the epoch (docs/queue-schema.md).
_SQLITE_NOW = "CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)"
_PG_NOW = "(extract(epoch from clock_timestamp()) * 1000)::bigint"
_DAY_MS = 24 * 3600 * 1000

_COLUMNS = ("state, lane, tenant, provider, idempotency_key, mail_from, rcpt_to, message_id, "
            "body, size, created_at, run_at, expire_at, max_attempts, updated_at, attempts, "
            "has_unsubscribe")


def send_at_ms(value: Optional[SendAt]) -> Optional[int]:
    """datetime (naive means local time) or epoch seconds -> epoch ms."""
    if value is None:
        return None
    if isinstance(value, datetime.datetime):
        return int(value.timestamp() * 1000)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError("send_at must be a datetime or epoch seconds, not "
                        f"{type(value).__name__}")
    if value < 0:
        raise ValueError("send_at must not be before 1970")
    return int(value * 1000)


def duration_ms(value: Optional[Duration], field: str) -> Optional[int]:
    """timedelta or seconds -> ms (None stays None)."""
    if value is None:
        return None
    if isinstance(value, datetime.timedelta):
        secs = value.total_seconds()
    elif isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{field} must be seconds or a timedelta, not {type(value).__name__}")
    else:
        secs = float(value)
    ms = int(secs * 1000)
    if ms <= 0:
        raise ValueError(f"{field} must be positive")
    return ms


def lane(priority: str) -> int:
    try:
        return LANES[priority]
    except (KeyError, TypeError):
        raise ValueError(f"priority must be 'transactional' or 'bulk', not {priority!r}") from None


def _kind(conn: Any) -> str:
    if isinstance(conn, sqlite3.Connection):
        return "sqlite"
    mod = type(conn).__module__ or ""
    if mod.split(".")[0] in ("psycopg", "psycopg2"):
        return "pg"
    raise TypeError("conn must be a sqlite3 connection or a psycopg / psycopg2 connection, not "
                    f"{type(conn).__module__}.{type(conn).__name__}")


def _missing() -> QueueError:
    return QueueError("the queue's tables are missing in this database: create them once with "
                      "scalr_email.init_queue(URL) or `scalr-email queue status`",
                      code="ESTORE", stage="QUEUE")


def _check_version(value) -> None:
    try:
        version = int(value)
    except (TypeError, ValueError):
        raise QueueError(f"the queue's schema version is unreadable ({value!r})", code="ESTORE",
                         stage="QUEUE") from None
    if version > SCHEMA_VERSION:
        raise ConfigurationError(f"the queue's schema version {version} is newer than this "
                                 f"scalr_email knows ({SCHEMA_VERSION}): upgrade it",
                                 code="ECONFIG", stage="QUEUE")
    if version < SCHEMA_VERSION:
        # The outbox INSERT names version 2's columns: migrate first.
        raise QueueError(f"the queue's schema is version {version}, this scalr_email writes "
                         f"version {SCHEMA_VERSION}: upgrade it once with "
                         "scalr_email.init_queue(URL) or `scalr-email queue status`",
                         code="ESTORE", stage="QUEUE")


def _insert_sqlite(conn, row) -> int:
    cur = conn.cursor()
    try:
        try:
            got = cur.execute("SELECT value FROM scalr_email_meta "
                              "WHERE key = 'schema_version'").fetchone()
        except sqlite3.OperationalError as e:
            if "no such table" in str(e):
                raise _missing() from e
            raise
        if got is None:
            raise _missing()
        _check_version(got[0])
        key = row["key"]
        if key is not None:
            got = cur.execute("SELECT id FROM scalr_email_queue WHERE idempotency_key = ?",
                              (key,)).fetchone()
            if got:
                return int(got[0])
        now = _SQLITE_NOW
        # One statement: 'now' is the same value everywhere in it.
        cur.execute(
            f"INSERT INTO scalr_email_queue ({_COLUMNS}) VALUES ('queued', ?, ?, '', ?, ?, ?, ?, "
            f"?, ?, {now}, COALESCE(?, {now}), {now} + ?, ?, {now}, 0, ?) "
            "ON CONFLICT (idempotency_key) DO NOTHING",
            (row["lane"], row["tenant"], key, row["mail_from"], row["rcpt_to"],
             row["message_id"], row["body"], row["size"], row["run_at"], row["expire_in"],
             row["max_attempts"], row["has_unsubscribe"]))
        if cur.rowcount == 1:
            return int(cur.lastrowid)
        # Another connection committed the same key since the SELECT.
        got = cur.execute("SELECT id FROM scalr_email_queue WHERE idempotency_key = ?",
                          (key,)).fetchone()
        if not got:
            raise QueueError("the row was not stored (idempotency key conflict with no row)",
                             code="ESTORE", stage="QUEUE")
        return int(got[0])
    finally:
        cur.close()


def _insert_pg(conn, row) -> int:
    cur = conn.cursor()
    try:
        # A failing statement would abort the caller's transaction: look
        # before reading.
        cur.execute("SELECT to_regclass('scalr_email_meta') IS NOT NULL, "
                    "to_regclass('scalr_email_queue') IS NOT NULL")
        meta, queue = cur.fetchone()
        if not (meta and queue):
            raise _missing()
        cur.execute("SELECT value FROM scalr_email_meta WHERE key = 'schema_version'")
        got = cur.fetchone()
        if got is None:
            raise _missing()
        _check_version(got[0])
        key = row["key"]
        cur.execute(
            f"WITH t(now) AS (SELECT {_PG_NOW}) "
            f"INSERT INTO scalr_email_queue ({_COLUMNS}) "
            "SELECT 'queued', %s, %s, '', %s, %s, %s, %s, %s, %s, now, COALESCE(%s, now), "
            "now + %s, %s, now, 0, %s FROM t "
            "ON CONFLICT (idempotency_key) DO NOTHING RETURNING id",
            (row["lane"], row["tenant"], key, row["mail_from"], row["rcpt_to"],
             row["message_id"], row["body"], row["size"], row["run_at"], row["expire_in"],
             row["max_attempts"], row["has_unsubscribe"]))
        got = cur.fetchone()
        if got is None:
            # The key exists (perhaps committed by another transaction that
            # this INSERT waited for): return that row.
            cur.execute("SELECT id FROM scalr_email_queue WHERE idempotency_key = %s", (key,))
            got = cur.fetchone()
            if got is None:
                raise QueueError("the row was not stored (idempotency key conflict with no "
                                 "row)", code="ESTORE", stage="QUEUE")
        return int(got[0])
    finally:
        cur.close()


def _db_errors(kind: str) -> Tuple[type, ...]:
    if kind == "sqlite":
        return (sqlite3.Error,)
    errs = []
    for name in ("psycopg", "psycopg2"):
        try:
            mod = __import__(name)
            errs.append(mod.Error)
        except ImportError:
            pass
    return tuple(errs)


def _has_unsubscribe(data: bytes) -> int:
    """1 when the header block carries List-Unsubscribe (queue status warns
    about bulk messages without it)."""
    head = data.split(b"\r\n\r\n", 1)[0]
    return int(any(line[:17].lower() == b"list-unsubscribe:" for line in head.split(b"\r\n")))


def outbox_insert(conn: Any, args: tuple, default_from: Optional[str], lane_n: int,
                  tenant: Optional[str], key: Optional[str], run_at: Optional[int],
                  expire_in: Optional[int], max_attempts: Optional[int]) -> int:
    """Compose in C, then INSERT with the caller's connection (no commit)."""
    kind = _kind(conn)
    res, data, message_id, mail_from, rcpt = _native.envelope(*args, default_from=default_from)
    if res[0] != "OK":
        raise error_from_result(res)
    row = {
        "lane": "bulk" if lane_n else "transactional",
        "tenant": tenant or "",
        "key": key,
        "mail_from": mail_from,
        "rcpt_to": "\n".join(rcpt),
        "message_id": message_id,
        "body": data,
        "size": len(data),
        "run_at": run_at,
        "expire_in": expire_in if expire_in else _DAY_MS,
        "max_attempts": max_attempts,
        "has_unsubscribe": _has_unsubscribe(data),
    }
    try:
        return _insert_sqlite(conn, row) if kind == "sqlite" else _insert_pg(conn, row)
    except _db_errors(kind) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise QueueError(f"queue insert failed: {first}", code="ESTORE", stage="QUEUE",
                         message_id=message_id) from e


def init_queue(queue: Optional[str] = None) -> None:
    """Create (or migrate) the queue's tables in the database named by the
    URL ``queue`` (default: $SCALR_EMAIL_QUEUE, else
    sqlite:scalr-email-queue.db).  Needed once before enqueue(conn=...);
    enqueue() without conn and every `scalr-email queue` command do it
    themselves."""
    if queue is not None and not isinstance(queue, str):
        raise TypeError(f"queue must be a URL str, not {type(queue).__name__}")
    url = queue or os.environ.get("SCALR_EMAIL_QUEUE") or DEFAULT_QUEUE
    res = _native.queue_init(url)
    if res[0] != "OK":
        raise error_from_result(res)


def _url(queue: Optional[str]) -> Optional[str]:
    if queue is not None and not isinstance(queue, str):
        raise TypeError(f"queue must be a URL str, not {type(queue).__name__}")
    return queue


def queue_status(queue: Optional[str] = None) -> dict:
    """Counts by state and timings of the queue (as `scalr-email queue status
    --json`): {"counts": {"queued": n, ...}, "oldest_queued_ms", "next_run_at",
    "sent_last_minute", "now"}; times in ms since the epoch, database clock."""
    res, st = _native.queue_status(_url(queue))
    if res[0] != "OK":
        raise error_from_result(res)
    return st


def queue_show(queue_id: int, queue: Optional[str] = None) -> dict:
    """One queued message and its attempts (as `scalr-email queue show ID
    --json`): the row's columns (without the body; rcpt_to as a list) plus
    "attempts", a list of {"n", "at", "outcome", "stage", "smtp_code",
    "enhanced", "recipient", "server_text", "message", "worker"}.  QueueError
    (ENOTFOUND) when there is no such id."""
    if isinstance(queue_id, bool) or not isinstance(queue_id, int):
        raise TypeError("queue_id must be int")
    res, item, attempts = _native.queue_show(queue_id, _url(queue))
    if res[0] != "OK":
        raise error_from_result(res)
    item["attempts"] = attempts
    return item
