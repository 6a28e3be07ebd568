/* The PostgreSQL store: workers on several machines.  Claims lock rows with
 * FOR UPDATE SKIP LOCKED, so concurrent workers never wait for (or take)
 * each other's rows; an insert trigger NOTIFYs, so an idle worker wakes as
 * soon as a message is enqueued (also by another program's INSERT), with
 * polling as the fallback. */
#include <libpq-fe.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "error.h"
#include "queue/store_int.h"

#define NOW_SQL "((extract(epoch from clock_timestamp()) * 1000)::bigint)"
#define MAXP 16
#define NCACHE 128

/* Statements are prepared once per connection (named by their slot), keyed
 * by the caller's SQL pointer: the queue's SQL is a fixed set of literals. */
typedef struct pgh {
    PGconn *c;
    const char *cache[NCACHE];
} pgh;
#define CONN(st) (((pgh *)(st)->db)->c)

static scalr_email_code fail(se_qstore *st, scalr_email_error *err, const char *what,
                             const PGresult *r)
{
    PGconn *c = st->db ? CONN(st) : NULL;
    const char *msg = r ? PQresultErrorMessage(r) : c ? PQerrorMessage(c) : "";
    char line[400];
    se_copy_line(line, sizeof line, msg, strlen(msg));
    size_t n = strlen(line);
    while (n && line[n - 1] == ' ')
        line[--n] = 0;
    return se_fail(err, SCALR_EMAIL_ESTORE, "QUEUE", "queue %s: %s while %s", st->where,
                   line[0] ? line : "connection lost", what);
}

/* "?" -> $n, NOW_MS -> the clock.  The SQL given has no "?" in literals. */
static char *rewrite(const char *sql)
{
    size_t len = strlen(sql) * 2 + 64;
    for (const char *p = sql; (p = strstr(p, "NOW_MS")); p += 6)
        len += strlen(NOW_SQL);
    char *out = malloc(len), *o = out;
    if (!out)
        return NULL;
    int n = 0;
    for (const char *p = sql; *p;) {
        if (*p == '?') {
            o += sprintf(o, "$%d", ++n);
            p++;
        } else if (!strncmp(p, "NOW_MS", 6)) {
            o += sprintf(o, "%s", NOW_SQL);
            p += 6;
        } else {
            *o++ = *p++;
        }
    }
    *o = 0;
    return out;
}

static scalr_email_code pg_exec(se_qstore *st, const char *sql, const se_qval *p, int np,
                                se_qres *res, int64_t *changes, scalr_email_error *err)
{
    pgh *h = st->db;
    PGconn *c = h->c;
    if (res)
        memset(res, 0, sizeof *res);
    if (np > MAXP)
        return se_fail(err, SCALR_EMAIL_EINVAL, "QUEUE", "too many parameters");
    /* The slot of this statement, prepared on first use. */
    size_t slot = ((size_t)sql >> 4) % NCACHE;
    for (size_t i = 0; i < NCACHE && h->cache[slot] && h->cache[slot] != sql; i++)
        slot = (slot + 1) % NCACHE;
    char name[16];
    snprintf(name, sizeof name, "se%zu", slot);
    int cached = h->cache[slot] == sql;
    if (!cached && !h->cache[slot]) {
        char *text = rewrite(sql);
        if (!text)
            return se_fail(err, SCALR_EMAIL_ENOMEM, "QUEUE", "out of memory");
        PGresult *pr = PQprepare(c, name, text, 0, NULL);
        free(text);
        if (PQresultStatus(pr) != PGRES_COMMAND_OK) {
            scalr_email_code rc = fail(st, err, "preparing a statement", pr);
            PQclear(pr);
            return rc;
        }
        PQclear(pr);
        h->cache[slot] = sql;
        cached = 1;
    }
    char *text = cached ? NULL : rewrite(sql); /* cache full: unnamed, parsed each time */
    if (!cached && !text)
        return se_fail(err, SCALR_EMAIL_ENOMEM, "QUEUE", "out of memory");
    const char *vals[MAXP];
    int lens[MAXP], fmts[MAXP];
    char ints[MAXP][24];
    for (int i = 0; i < np; i++) {
        lens[i] = 0;
        fmts[i] = 0;
        switch (p[i].t) {
        case SE_QNULL: vals[i] = NULL; break;
        case SE_QINT:
            snprintf(ints[i], sizeof ints[i], "%lld", (long long)p[i].i);
            vals[i] = ints[i];
            break;
        case SE_QTEXT: vals[i] = p[i].s; break;
        case SE_QBLOB:
            vals[i] = p[i].n ? p[i].s : "";
            lens[i] = (int)p[i].n;
            fmts[i] = 1; /* binary: bytea as is */
            break;
        }
    }
    PGresult *r = cached ? PQexecPrepared(c, name, np, vals, lens, fmts, 0)
                         : PQexecParams(c, text, np, NULL, vals, lens, fmts, 0);
    free(text);
    ExecStatusType s = PQresultStatus(r);
    if (s != PGRES_TUPLES_OK && s != PGRES_COMMAND_OK) {
        scalr_email_code rc = fail(st, err, "running a statement", r);
        PQclear(r);
        return rc;
    }
    if (changes) {
        const char *t = PQcmdTuples(r);
        *changes = t && *t ? strtoll(t, NULL, 10) : 0;
    }
    if (res && s == PGRES_TUPLES_OK) {
        size_t rows = (size_t)PQntuples(r), cols = (size_t)PQnfields(r);
        res->rows = rows;
        res->cols = cols;
        res->cells = calloc(rows * cols + 1, sizeof *res->cells);
        if (!res->cells) {
            PQclear(r);
            return se_fail(err, SCALR_EMAIL_ENOMEM, "QUEUE", "out of memory");
        }
        for (size_t i = 0; i < rows; i++)
            for (size_t j = 0; j < cols; j++) {
                se_qval *v = &res->cells[i * cols + j];
                if (PQgetisnull(r, (int)i, (int)j)) {
                    v->t = SE_QNULL;
                    continue;
                }
                const char *val = PQgetvalue(r, (int)i, (int)j);
                Oid type = PQftype(r, (int)j);
                if (type == 20 || type == 21 || type == 23) { /* int8, int2, int4 */
                    v->t = SE_QINT;
                    v->i = strtoll(val, NULL, 10);
                } else if (type == 17) { /* bytea, hex in text results */
                    size_t n = 0;
                    unsigned char *b = PQunescapeBytea((const unsigned char *)val, &n);
                    char *copy = b ? malloc(n + 1) : NULL;
                    if (copy) {
                        memcpy(copy, b, n);
                        copy[n] = 0;
                    }
                    PQfreemem(b);
                    if (!copy) {
                        PQclear(r);
                        se_qres_free(res);
                        return se_fail(err, SCALR_EMAIL_ENOMEM, "QUEUE", "out of memory");
                    }
                    v->t = SE_QBLOB;
                    v->s = copy;
                    v->n = n;
                } else {
                    char *copy = strdup(val);
                    if (!copy) {
                        PQclear(r);
                        se_qres_free(res);
                        return se_fail(err, SCALR_EMAIL_ENOMEM, "QUEUE", "out of memory");
                    }
                    v->t = SE_QTEXT;
                    v->s = copy;
                    v->n = strlen(copy);
                }
            }
    }
    PQclear(r);
    return SCALR_EMAIL_OK;
}

static scalr_email_code simple(se_qstore *st, const char *sql, scalr_email_error *err)
{
    PGresult *r = PQexec(CONN(st), sql);
    scalr_email_code rc = SCALR_EMAIL_OK;
    if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK)
        rc = fail(st, err, sql, r);
    PQclear(r);
    return rc;
}

static scalr_email_code pg_begin(se_qstore *st, scalr_email_error *err)
{
    return simple(st, "BEGIN", err);
}
static scalr_email_code pg_commit(se_qstore *st, scalr_email_error *err)
{
    return simple(st, "COMMIT", err);
}
static void pg_rollback(se_qstore *st)
{
    if (PQtransactionStatus(CONN(st)) != PQTRANS_IDLE)
        PQclear(PQexec(CONN(st), "ROLLBACK"));
}

static int drain(PGconn *c)
{
    int got = 0;
    PGnotify *n;
    while ((n = PQnotifies(c))) {
        got = 1;
        PQfreemem(n);
    }
    return got;
}

static scalr_email_code pg_wait(se_qstore *st, int64_t timeout_ms, scalr_email_error *err)
{
    PGconn *c = CONN(st);
    if (!PQconsumeInput(c))
        return fail(st, err, "waiting for work", NULL);
    if (drain(c))
        return SCALR_EMAIL_OK;
    struct pollfd pfd = {.fd = PQsocket(c), .events = POLLIN};
    if (pfd.fd < 0)
        return fail(st, err, "waiting for work", NULL);
    if (poll(&pfd, 1, timeout_ms > 0 ? (int)timeout_ms : 0) > 0) {
        if (!PQconsumeInput(c))
            return fail(st, err, "waiting for work", NULL);
        drain(c);
    }
    return SCALR_EMAIL_OK;
}

static void pg_close(se_qstore *st)
{
    pgh *h = st->db;
    if (h)
        PQfinish(h->c);
    free(h);
    st->db = NULL;
}

static void quiet(void *arg, const PGresult *r)
{
    (void)arg;
    (void)r;
}

static scalr_email_code pg_open(se_qstore *st, const char *url, scalr_email_error *err)
{
    /* Errors name host and database, never the URL (it may hold a password). */
    PQconninfoOption *opts = PQconninfoParse(url, NULL);
    const char *host = "", *db = "";
    char where[300];
    for (PQconninfoOption *o = opts; o && o->keyword; o++) {
        if (!strcmp(o->keyword, "host") && o->val)
            host = o->val;
        if (!strcmp(o->keyword, "dbname") && o->val)
            db = o->val;
    }
    snprintf(where, sizeof where, "postgresql %s/%s", host, db);
    if (opts)
        PQconninfoFree(opts);
    else
        return se_fail(err, SCALR_EMAIL_ECONFIG, "CONFIG",
                       "queue URL is not a valid PostgreSQL URL");
    st->where = strdup(where);
    if (!st->where)
        return se_fail(err, SCALR_EMAIL_ENOMEM, "QUEUE", "out of memory");
    const char *keys[] = {"dbname", "connect_timeout", NULL};
    const char *vals[] = {url, "10", NULL};
    pgh *h = calloc(1, sizeof *h);
    if (!h)
        return se_fail(err, SCALR_EMAIL_ENOMEM, "QUEUE", "out of memory");
    st->db = h;
    h->c = PQconnectdbParams(keys, vals, 1);
    if (!h->c)
        return se_fail(err, SCALR_EMAIL_ENOMEM, "QUEUE", "out of memory");
    if (PQstatus(h->c) != CONNECTION_OK)
        return fail(st, err, "connecting", NULL);
    PQsetNoticeReceiver(h->c, quiet, NULL);
    scalr_email_code rc = simple(st, "SET client_min_messages = warning", err);
    if (rc == SCALR_EMAIL_OK)
        rc = simple(st, "LISTEN scalr_email_queue", err);
    return rc;
}

#define NOWD "(" NOW_SQL ")"
static const char *const schema[] = {
    "CREATE TABLE IF NOT EXISTS scalr_email_queue ("
    " id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,"
    " state TEXT NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'leased', 'sent', 'failed',"
    "  'expired', 'cancelled', 'held', 'unknown')),"
    " lane TEXT NOT NULL DEFAULT 'transactional' CHECK (lane IN ('transactional', 'bulk')),"
    " tenant TEXT NOT NULL DEFAULT '' CHECK (length(tenant) <= 255),"
    " provider TEXT NOT NULL DEFAULT '',"
    " idempotency_key TEXT UNIQUE,"
    " mail_from TEXT NOT NULL,"
    " rcpt_to TEXT NOT NULL,"
    " message_id TEXT NOT NULL,"
    " body BYTEA,"
    " size BIGINT NOT NULL,"
    " created_at BIGINT NOT NULL DEFAULT " NOWD ","
    " run_at BIGINT NOT NULL DEFAULT " NOWD ","
    " expire_at BIGINT,"
    " attempts INTEGER NOT NULL DEFAULT 0,"
    " max_attempts INTEGER,"
    " lease_owner TEXT,"
    " lease_until BIGINT,"
    " updated_at BIGINT NOT NULL DEFAULT " NOWD ","
    " finished_at BIGINT,"
    " last_error TEXT)",
    "CREATE INDEX IF NOT EXISTS scalr_email_queue_due ON scalr_email_queue (state, lane, tenant, "
    "run_at)",
    "CREATE INDEX IF NOT EXISTS scalr_email_queue_run ON scalr_email_queue (state, run_at)",
    "CREATE INDEX IF NOT EXISTS scalr_email_queue_lease ON scalr_email_queue (lease_owner)",
    "CREATE INDEX IF NOT EXISTS scalr_email_queue_finished ON scalr_email_queue (state, "
    "finished_at)",
    "CREATE TABLE IF NOT EXISTS scalr_email_attempts ("
    " id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, queue_id BIGINT NOT NULL,"
    " n INTEGER NOT NULL, at BIGINT NOT NULL, worker TEXT NOT NULL, outcome TEXT NOT NULL,"
    " stage TEXT NOT NULL, smtp_code INTEGER NOT NULL, enhanced TEXT NOT NULL,"
    " recipient TEXT NOT NULL, server_text TEXT NOT NULL, message TEXT NOT NULL)",
    "CREATE INDEX IF NOT EXISTS scalr_email_attempts_queue ON scalr_email_attempts (queue_id)",
    "CREATE TABLE IF NOT EXISTS scalr_email_workers (id TEXT PRIMARY KEY,"
    " started_at BIGINT NOT NULL, heartbeat_at BIGINT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS scalr_email_inflight (queue_id BIGINT PRIMARY KEY,"
    " worker TEXT NOT NULL, since BIGINT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS scalr_email_providers (provider TEXT PRIMARY KEY,"
    " paused_until BIGINT, held INTEGER NOT NULL DEFAULT 0, reason TEXT, rate DOUBLE PRECISION)",
    "CREATE OR REPLACE FUNCTION scalr_email_queue_notify() RETURNS trigger LANGUAGE plpgsql AS"
    " $$ BEGIN PERFORM pg_notify('scalr_email_queue', ''); RETURN NULL; END $$",
    "DROP TRIGGER IF EXISTS scalr_email_queue_notify ON scalr_email_queue",
    "CREATE TRIGGER scalr_email_queue_notify AFTER INSERT ON scalr_email_queue"
    " FOR EACH STATEMENT EXECUTE FUNCTION scalr_email_queue_notify()",
    NULL,
};

/* Version 2: as in store_sqlite.c. */
static const char *const schema2[] = {
    "ALTER TABLE scalr_email_queue ADD COLUMN IF NOT EXISTS profile TEXT NOT NULL DEFAULT ''",
    "ALTER TABLE scalr_email_queue ADD COLUMN IF NOT EXISTS has_unsubscribe INTEGER",
    "CREATE TABLE IF NOT EXISTS scalr_email_profiles (profile TEXT PRIMARY KEY,"
    " paused_until BIGINT, held INTEGER NOT NULL DEFAULT 0, reason TEXT)",
    NULL,
};

const se_qdriver se_qdriver_pg = {
    .name = "postgresql",
    .skip_locked = 1,
    .atomic_statements = 1,
    .open = pg_open,
    .close = pg_close,
    .exec = pg_exec,
    .begin = pg_begin,
    .commit = pg_commit,
    .rollback = pg_rollback,
    .wait = pg_wait,
    .schema = schema,
    .schema2 = schema2,
    /* Two programs creating the schema at once: one waits for the other. */
    .migrate_lock = "SELECT pg_advisory_xact_lock(7294019123)",
};
