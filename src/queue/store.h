/* The queue's store: one interface, two backends (store_sqlite.c and
 * store_pg.c), the same semantics.  The schema is a public contract:
 * docs/queue-schema.md.  Every time comes from the database's clock
 * (milliseconds since the epoch); every write is one transaction
 * (SQLite: BEGIN IMMEDIATE, busy timeout, WAL, synchronous=FULL;
 * PostgreSQL: claims with FOR UPDATE SKIP LOCKED).
 *
 * A store handle is used by one thread at a time; a worker with K
 * connections opens one handle per thread (or serialises with a mutex). */
#ifndef SE_QUEUE_STORE_H
#define SE_QUEUE_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "scalr_email.h"

typedef struct se_qstore se_qstore;

/* A message to store (already composed: exact bytes, fixed Message-ID). */
typedef struct se_qnew {
    const char *mail_from;
    const char *const *rcpt; /* n_rcpt addr-specs */
    size_t n_rcpt;
    const char *message_id;
    const void *body; /* CRLF, not dot-stuffed */
    size_t size;
    int lane;              /* SCALR_EMAIL_LANE_* */
    const char *tenant;    /* NULL: '' */
    const char *provider;  /* NULL: '' */
    const char *idem_key;  /* NULL: none */
    int64_t run_at_ms;     /* 0: now */
    int64_t expire_in_ms;  /* 0: 24 h */
    unsigned max_attempts; /* 0: NULL (worker default) */
    const char *profile;   /* the sender profile; NULL: '' (the worker's own client) */
    int has_unsubscribe;   /* 1/0: the message has List-Unsubscribe; -1: unknown */
} se_qnew;

/* A claimed message, as a worker needs it.  Freed with se_qrow_free. */
typedef struct se_qrow {
    int64_t id;
    char *mail_from;
    char **rcpt;
    size_t n_rcpt;
    char *message_id;
    unsigned char *body;
    size_t size;
    int lane;
    char *tenant;
    char *provider;
    int attempts;     /* before this try */
    int max_attempts; /* 0: worker default */
    int64_t created_at;
    int64_t expire_at; /* 0: worker default from created_at */
    char *profile;     /* "" when none */
} se_qrow;

/* The outcome of one try, recorded in scalr_email_attempts. */
typedef struct se_qattempt {
    const char *outcome; /* sent retry failed expired held unknown released deferred */
    const char *stage;
    int smtp_code;
    const char *enhanced;
    const char *recipient;
    const char *server_text;
    const char *message;
} se_qattempt;

/* Open (creating and migrating the schema) the store named by url:
 * "sqlite:PATH" or "postgresql://..." / "postgres://...".  ECONFIG for an
 * unknown scheme or a newer schema; SCALR_EMAIL_ESTORE when the database
 * cannot be opened, read or written (corrupt, unwritable, unreachable). */
scalr_email_code se_qstore_open(se_qstore **out, const char *url, scalr_email_error *err);
void se_qstore_close(se_qstore *st);
int64_t se_qstore_now(se_qstore *st); /* the database's clock, ms; -1 on error */

/* Insert m.  With an idempotency key already present: *existed = 1, *id is
 * that row's id, nothing is written. */
scalr_email_code se_qstore_add(se_qstore *st, const se_qnew *m, int64_t *id, int *existed,
                               scalr_email_error *err);

/* Worker lifecycle.  register: insert/refresh the worker row; heartbeat:
 * refresh it and extend every lease it holds to now + lease_ms. */
scalr_email_code se_qstore_register(se_qstore *st, const char *worker, scalr_email_error *err);
scalr_email_code se_qstore_heartbeat(se_qstore *st, const char *worker, int64_t lease_ms,
                                     scalr_email_error *err);
/* Claim up to max due rows of provider (state queued, run_at <= now, the
 * provider neither paused nor held, nor the row's profile): transactional
 * lane first, round-robin across tenants inside a lane, oldest run_at first
 * within a tenant; the n_skip tenants in skip (may be NULL) are passed over
 * (profiles over their rate).  They become leased by worker until now +
 * lease_ms.  *rows is malloc'd (n may be 0). */
scalr_email_code se_qstore_claim(se_qstore *st, const char *worker, const char *provider,
                                 size_t max, int64_t lease_ms, const char *const *skip,
                                 size_t n_skip, se_qrow **rows, size_t *n, scalr_email_error *err);
void se_qrow_free(se_qrow *rows, size_t n);

/* The duplicate window: durable before the end of data is written. */
scalr_email_code se_qstore_inflight(se_qstore *st, const char *worker, int64_t id,
                                    scalr_email_error *err);

/* Record a try's outcome, delete the inflight row, bump attempts (except
 * for outcome "released") and move the row, all in one transaction:
 *   "sent"      -> sent, body dropped, finished_at set
 *   "retry"     -> queued with run_at = now + delay_ms
 *   "failed" "expired" -> terminal, finished_at set
 *   "held" "unknown"   -> waits for a person
 *   "released"  -> queued, run_at unchanged, attempts not counted
 *   "deferred"  -> queued with run_at = now + delay_ms, attempts not
 *                  counted, no attempt row (a profile over its rate)
 * Only when the row is still leased by worker (else SCALR_EMAIL_ESTORE:
 * the lease was lost and the outcome is not recorded twice). */
scalr_email_code se_qstore_finish(se_qstore *st, const char *worker, int64_t id,
                                  const se_qattempt *a, int64_t delay_ms, scalr_email_error *err);

/* Give back every lease worker still holds (graceful stop) as "released". */
scalr_email_code se_qstore_release_worker(se_qstore *st, const char *worker,
                                          scalr_email_error *err);
/* Return the leases of workers silent for longer than dead_ms (and any
 * lease past lease_until): rows without an inflight row go back to queued
 * uncounted; rows with one are ambiguous: queued again when hold is 0,
 * else unknown.  Dead worker rows are removed.  *n: rows returned. */
scalr_email_code se_qstore_reap(se_qstore *st, int64_t dead_ms, int hold, size_t *n,
                                scalr_email_error *err);
/* Delete terminal rows (and their attempts) finished more than
 * retention_ms ago. */
scalr_email_code se_qstore_prune(se_qstore *st, int64_t retention_ms, size_t *n,
                                 scalr_email_error *err);

/* Providers: pause until now + ms (throttling), hold with a reason
 * (auth/TLS/config failure), or clear (release). */
scalr_email_code se_qstore_provider_pause(se_qstore *st, const char *provider, int64_t ms,
                                          const char *reason, scalr_email_error *err);
scalr_email_code se_qstore_provider_hold(se_qstore *st, const char *provider, const char *reason,
                                         scalr_email_error *err);
scalr_email_code se_qstore_provider_clear(se_qstore *st, const char *provider,
                                          scalr_email_error *err);

/* The same per sender profile: a profile's own server throttled or
 * refused it; only that profile's rows wait. */
scalr_email_code se_qstore_profile_pause(se_qstore *st, const char *profile, int64_t ms,
                                         const char *reason, scalr_email_error *err);
scalr_email_code se_qstore_profile_hold(se_qstore *st, const char *profile, const char *reason,
                                        scalr_email_error *err);

/* Block until something may be due: PostgreSQL LISTEN/NOTIFY (with a
 * polling fallback), SQLite polling; returns after at most timeout_ms.
 * *due_in_ms (may be NULL): ms until the next queued row's run_at, or -1. */
scalr_email_code se_qstore_wait(se_qstore *st, int64_t timeout_ms, scalr_email_error *err);
int64_t se_qstore_next_due(se_qstore *st); /* ms from now, 0 if due, -1: none */

/* The public admin API (scalr_email_queue_status/list/show/retry/cancel/
 * hold/release/purge) is implemented once in queue.c over these: */
typedef struct se_qstore_ops se_qstore_ops; /* backend vtable: store_int.h */

#endif
