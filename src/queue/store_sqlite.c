/* The SQLite store: one host, any number of worker processes.  WAL so
 * readers never wait for the writer, BEGIN IMMEDIATE so two writers never
 * deadlock on a lock upgrade, a busy timeout instead of "database is
 * locked", synchronous=FULL so an accepted enqueue survives power loss. */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "error.h"
#include "queue/store_int.h"

#define BUSY_MS 10000
#define NCACHE 128
#define NOW_SQL "CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)"

typedef struct sq {
    sqlite3 *db;
    struct {
        const char *key; /* the caller's SQL (a literal: its address is stable) */
        sqlite3_stmt *stmt;
    } cache[NCACHE];
} sq;

static scalr_email_code fail(se_qstore *st, scalr_email_error *err, const char *what)
{
    sq *s = st->db;
    int code = s && s->db ? sqlite3_extended_errcode(s->db) : SQLITE_ERROR;
    const char *msg = s && s->db ? sqlite3_errmsg(s->db) : "cannot allocate";
    if ((code & 0xff) == SQLITE_BUSY || (code & 0xff) == SQLITE_LOCKED)
        return se_fail(err, SCALR_EMAIL_ESTORE, "QUEUE", "queue %s stayed locked for %d s while %s",
                       st->where, BUSY_MS / 1000, what);
    return se_fail(err, SCALR_EMAIL_ESTORE, "QUEUE", "queue %s: %s while %s", st->where, msg, what);
}

/* NOW_MS -> the clock expression. */
static char *rewrite(const char *sql)
{
    size_t n = 0;
    for (const char *p = sql; (p = strstr(p, "NOW_MS")); p += 6)
        n++;
    size_t len = strlen(sql) + n * strlen(NOW_SQL) + 1;
    char *out = malloc(len), *o = out;
    if (!out)
        return NULL;
    for (const char *p = sql;;) {
        const char *q = strstr(p, "NOW_MS");
        if (!q) {
            strcpy(o, p);
            break;
        }
        memcpy(o, p, (size_t)(q - p));
        o += q - p;
        strcpy(o, NOW_SQL);
        o += strlen(NOW_SQL);
        p = q + 6;
    }
    return out;
}

static sqlite3_stmt *prepare(se_qstore *st, const char *sql)
{
    sq *s = st->db;
    size_t h = ((size_t)sql >> 4) % NCACHE;
    for (size_t i = 0; i < NCACHE; i++) {
        size_t j = (h + i) % NCACHE;
        if (s->cache[j].key == sql)
            return s->cache[j].stmt;
        if (!s->cache[j].key) {
            char *text = rewrite(sql);
            sqlite3_stmt *stmt = NULL;
            if (!text || sqlite3_prepare_v2(s->db, text, -1, &stmt, NULL) != SQLITE_OK) {
                free(text);
                return NULL;
            }
            free(text);
            s->cache[j].key = sql;
            s->cache[j].stmt = stmt;
            return stmt;
        }
    }
    return NULL; /* cache full: never with the fixed set of statements */
}

static scalr_email_code sq_exec(se_qstore *st, const char *sql, const se_qval *p, int np,
                                se_qres *res, int64_t *changes, scalr_email_error *err)
{
    sq *s = st->db;
    if (res)
        memset(res, 0, sizeof *res);
    sqlite3_stmt *stmt = prepare(st, sql);
    if (!stmt)
        return fail(st, err, "preparing a statement");
    for (int i = 0; i < np; i++) {
        int rc = SQLITE_OK;
        switch (p[i].t) {
        case SE_QNULL: rc = sqlite3_bind_null(stmt, i + 1); break;
        case SE_QINT: rc = sqlite3_bind_int64(stmt, i + 1, p[i].i); break;
        case SE_QTEXT: rc = sqlite3_bind_text(stmt, i + 1, p[i].s, -1, SQLITE_STATIC); break;
        case SE_QBLOB:
            rc = sqlite3_bind_blob64(stmt, i + 1, p[i].n ? p[i].s : "", p[i].n, SQLITE_STATIC);
            break;
        }
        if (rc != SQLITE_OK) {
            sqlite3_reset(stmt);
            sqlite3_clear_bindings(stmt);
            return fail(st, err, "binding a value");
        }
    }
    size_t cap = 0;
    int rc;
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        if (!res)
            continue;
        size_t cols = (size_t)sqlite3_column_count(stmt);
        res->cols = cols;
        if ((res->rows + 1) * cols > cap) {
            size_t nc = cap ? cap * 2 : cols * 8;
            se_qval *g = realloc(res->cells, nc * sizeof *g);
            if (!g) {
                sqlite3_reset(stmt);
                se_qres_free(res);
                return se_fail(err, SCALR_EMAIL_ENOMEM, "QUEUE", "out of memory");
            }
            res->cells = g;
            cap = nc;
        }
        for (size_t c = 0; c < cols; c++) {
            se_qval *v = &res->cells[res->rows * cols + c];
            memset(v, 0, sizeof *v);
            switch (sqlite3_column_type(stmt, (int)c)) {
            case SQLITE_NULL: v->t = SE_QNULL; break;
            case SQLITE_INTEGER:
            case SQLITE_FLOAT:
                v->t = SE_QINT;
                v->i = sqlite3_column_int64(stmt, (int)c);
                break;
            default: {
                int blob = sqlite3_column_type(stmt, (int)c) == SQLITE_BLOB;
                const void *d = blob ? sqlite3_column_blob(stmt, (int)c)
                                     : (const void *)sqlite3_column_text(stmt, (int)c);
                size_t n = (size_t)sqlite3_column_bytes(stmt, (int)c);
                char *copy = malloc(n + 1);
                if (!copy) {
                    res->rows++;
                    sqlite3_reset(stmt);
                    se_qres_free(res);
                    return se_fail(err, SCALR_EMAIL_ENOMEM, "QUEUE", "out of memory");
                }
                if (n)
                    memcpy(copy, d, n);
                copy[n] = 0;
                v->t = blob ? SE_QBLOB : SE_QTEXT;
                v->s = copy;
                v->n = n;
            }
            }
        }
        res->rows++;
    }
    scalr_email_code out = SCALR_EMAIL_OK;
    if (rc != SQLITE_DONE) {
        out = fail(st, err, "running a statement");
        if (res)
            se_qres_free(res);
    } else if (changes) {
        *changes = sqlite3_changes64(s->db);
    }
    sqlite3_reset(stmt);
    sqlite3_clear_bindings(stmt);
    return out;
}

static scalr_email_code simple(se_qstore *st, const char *sql, scalr_email_error *err)
{
    sq *s = st->db;
    char *msg = NULL;
    if (sqlite3_exec(s->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        sqlite3_free(msg);
        return fail(st, err, sql);
    }
    return SCALR_EMAIL_OK;
}

static scalr_email_code sq_begin(se_qstore *st, scalr_email_error *err)
{
    return simple(st, "BEGIN IMMEDIATE", err);
}
static scalr_email_code sq_commit(se_qstore *st, scalr_email_error *err)
{
    return simple(st, "COMMIT", err);
}
static void sq_rollback(se_qstore *st)
{
    sq *s = st->db;
    if (!sqlite3_get_autocommit(s->db))
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
}

/* No notifications in SQLite: a short sleep, and the caller polls. */
static scalr_email_code sq_wait(se_qstore *st, int64_t timeout_ms, scalr_email_error *err)
{
    (void)st;
    (void)err;
    if (timeout_ms > 0) {
        struct timespec ts = {timeout_ms / 1000, (long)(timeout_ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
    return SCALR_EMAIL_OK;
}

static void sq_close(se_qstore *st)
{
    sq *s = st->db;
    if (!s)
        return;
    for (size_t i = 0; i < NCACHE; i++)
        if (s->cache[i].stmt)
            sqlite3_finalize(s->cache[i].stmt);
    sqlite3_close(s->db);
    free(s);
    st->db = NULL;
}

static scalr_email_code sq_open(se_qstore *st, const char *path, scalr_email_error *err)
{
    sq *s = calloc(1, sizeof *s);
    st->where = strdup(path);
    if (!s || !st->where) {
        free(s);
        return se_fail(err, SCALR_EMAIL_ENOMEM, "QUEUE", "out of memory");
    }
    st->db = s;
    if (sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
        SQLITE_OK)
        return fail(st, err, "opening it");
    if (sqlite3_db_readonly(s->db, "main") == 1)
        return se_fail(err, SCALR_EMAIL_ESTORE, "QUEUE",
                       "queue %s is read-only (the queue needs to write it)", path);
    sqlite3_busy_timeout(s->db, BUSY_MS);
    sqlite3_extended_result_codes(s->db, 1);
    scalr_email_code rc = simple(st, "PRAGMA journal_mode=WAL", err);
    if (rc == SCALR_EMAIL_OK)
        rc = simple(st, "PRAGMA synchronous=FULL", err);
    if (rc == SCALR_EMAIL_OK)
        rc = simple(st, "PRAGMA foreign_keys=OFF", err);
    return rc;
}

#define NOWD "(" NOW_SQL ")"
static const char *const schema[] = {
    "CREATE TABLE scalr_email_queue ("
    " id INTEGER PRIMARY KEY,"
    " state TEXT NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'leased', 'sent', 'failed',"
    "  'expired', 'cancelled', 'held', 'unknown')),"
    " lane TEXT NOT NULL DEFAULT 'transactional' CHECK (lane IN ('transactional', 'bulk')),"
    " tenant TEXT NOT NULL DEFAULT '' CHECK (length(tenant) <= 255),"
    " provider TEXT NOT NULL DEFAULT '',"
    " idempotency_key TEXT UNIQUE,"
    " mail_from TEXT NOT NULL,"
    " rcpt_to TEXT NOT NULL,"
    " message_id TEXT NOT NULL,"
    " body BLOB,"
    " size INTEGER NOT NULL,"
    " created_at INTEGER NOT NULL DEFAULT " NOWD ","
    " run_at INTEGER NOT NULL DEFAULT " NOWD ","
    " expire_at INTEGER,"
    " attempts INTEGER NOT NULL DEFAULT 0,"
    " max_attempts INTEGER,"
    " lease_owner TEXT,"
    " lease_until INTEGER,"
    " updated_at INTEGER NOT NULL DEFAULT " NOWD ","
    " finished_at INTEGER,"
    " last_error TEXT)",
    "CREATE INDEX scalr_email_queue_due ON scalr_email_queue (state, lane, tenant, run_at)",
    "CREATE INDEX scalr_email_queue_run ON scalr_email_queue (state, run_at)",
    "CREATE INDEX scalr_email_queue_lease ON scalr_email_queue (lease_owner)",
    "CREATE INDEX scalr_email_queue_finished ON scalr_email_queue (state, finished_at)",
    "CREATE TABLE scalr_email_attempts ("
    " id INTEGER PRIMARY KEY, queue_id INTEGER NOT NULL, n INTEGER NOT NULL, at INTEGER NOT NULL,"
    " worker TEXT NOT NULL, outcome TEXT NOT NULL, stage TEXT NOT NULL, smtp_code INTEGER NOT NULL,"
    " enhanced TEXT NOT NULL, recipient TEXT NOT NULL, server_text TEXT NOT NULL,"
    " message TEXT NOT NULL)",
    "CREATE INDEX scalr_email_attempts_queue ON scalr_email_attempts (queue_id)",
    "CREATE TABLE scalr_email_workers (id TEXT PRIMARY KEY, started_at INTEGER NOT NULL,"
    " heartbeat_at INTEGER NOT NULL)",
    "CREATE TABLE scalr_email_inflight (queue_id INTEGER PRIMARY KEY, worker TEXT NOT NULL,"
    " since INTEGER NOT NULL)",
    "CREATE TABLE scalr_email_providers (provider TEXT PRIMARY KEY, paused_until INTEGER,"
    " held INTEGER NOT NULL DEFAULT 0, reason TEXT, rate REAL)",
    NULL,
};

/* Version 2: the sender profile of a row (its tenant), whether it carries
 * List-Unsubscribe (NULL: enqueued before the flag existed), and the
 * profiles paused or held by a worker. */
static const char *const schema2[] = {
    "ALTER TABLE scalr_email_queue ADD COLUMN profile TEXT NOT NULL DEFAULT ''",
    "ALTER TABLE scalr_email_queue ADD COLUMN has_unsubscribe INTEGER",
    "CREATE TABLE IF NOT EXISTS scalr_email_profiles (profile TEXT PRIMARY KEY,"
    " paused_until INTEGER, held INTEGER NOT NULL DEFAULT 0, reason TEXT)",
    NULL,
};

const se_qdriver se_qdriver_sqlite = {
    .name = "sqlite",
    .skip_locked = 0, /* BEGIN IMMEDIATE already serialises writers */
    .open = sq_open,
    .close = sq_close,
    .exec = sq_exec,
    .begin = sq_begin,
    .commit = sq_commit,
    .rollback = sq_rollback,
    .wait = sq_wait,
    .schema = schema,
    .schema2 = schema2,
};
