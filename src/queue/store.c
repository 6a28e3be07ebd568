/* The queue's logic, once, over the driver interface (store_int.h).
 * Every write is one transaction; every time is the database's. */
#include "queue/store_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"

#define DAY_MS (24LL * 3600 * 1000)

void se_qres_free(se_qres *r)
{
    if (!r || !r->cells)
        return;
    for (size_t i = 0; i < r->rows * r->cols; i++)
        if (r->cells[i].t == SE_QTEXT || r->cells[i].t == SE_QBLOB)
            free((void *)r->cells[i].s);
    free(r->cells);
    r->cells = NULL;
    r->rows = r->cols = 0;
}

int64_t se_qres_int(const se_qres *r, size_t row, size_t col)
{
    const se_qval *v = se_qcell(r, row, col);
    if (v->t == SE_QINT)
        return v->i;
    if (v->t == SE_QTEXT)
        return strtoll(v->s, NULL, 10);
    return 0;
}

const char *se_qres_text(const se_qres *r, size_t row, size_t col)
{
    const se_qval *v = se_qcell(r, row, col);
    return v->t == SE_QTEXT || v->t == SE_QBLOB ? v->s : NULL;
}

static scalr_email_code X(se_qstore *st, const char *sql, const se_qval *p, int np, se_qres *res,
                          int64_t *changes, scalr_email_error *err)
{
    return st->drv->exec(st, sql, p, np, res, changes, err);
}
#define NP(a) ((int)(sizeof(a) / sizeof((a)[0])))

static scalr_email_code begin(se_qstore *st, scalr_email_error *err)
{
    scalr_email_code rc = st->drv->begin(st, err);
    if (rc == SCALR_EMAIL_OK)
        st->in_tx = 1;
    return rc;
}

static scalr_email_code commit(se_qstore *st, scalr_email_error *err)
{
    st->in_tx = 0;
    scalr_email_code rc = st->drv->commit(st, err);
    if (rc != SCALR_EMAIL_OK)
        st->drv->rollback(st);
    return rc;
}

/* Roll back and pass rc on (the error is already filled). */
static scalr_email_code abort_tx(se_qstore *st, scalr_email_code rc)
{
    if (st->in_tx)
        st->drv->rollback(st);
    st->in_tx = 0;
    return rc;
}

static scalr_email_code migrate(se_qstore *st, scalr_email_error *err)
{
    scalr_email_code rc = begin(st, err);
    if (rc != SCALR_EMAIL_OK)
        return rc;
    se_qres r = {0};
    if (st->drv->migrate_lock)
        rc = X(st, st->drv->migrate_lock, NULL, 0, NULL, NULL, err);
    if (rc == SCALR_EMAIL_OK)
        rc = X(st,
               "CREATE TABLE IF NOT EXISTS scalr_email_meta (key TEXT PRIMARY KEY, value TEXT NOT "
               "NULL)",
               NULL, 0, NULL, NULL, err);
    if (rc == SCALR_EMAIL_OK)
        rc = X(st, "SELECT value FROM scalr_email_meta WHERE key = 'schema_version'", NULL, 0, &r,
               NULL, err);
    if (rc != SCALR_EMAIL_OK)
        return abort_tx(st, rc);
    long version =
        r.rows ? strtol(se_qres_text(&r, 0, 0) ? se_qres_text(&r, 0, 0) : "0", NULL, 10) : 0;
    se_qres_free(&r);
    if (version > SE_QUEUE_SCHEMA_VERSION) {
        abort_tx(st, SCALR_EMAIL_ECONFIG);
        return se_fail(err, SCALR_EMAIL_ECONFIG, "CONFIG",
                       "queue %s has schema version %ld; this scalr-email knows up to %d "
                       "(upgrade scalr-email)",
                       st->where, version, SE_QUEUE_SCHEMA_VERSION);
    }
    if (version < 1) {
        for (const char *const *s = st->drv->schema; *s && rc == SCALR_EMAIL_OK; s++)
            rc = X(st, *s, NULL, 0, NULL, NULL, err);
        if (rc == SCALR_EMAIL_OK)
            rc = X(st, "INSERT INTO scalr_email_meta (key, value) VALUES ('schema_version', '1')",
                   NULL, 0, NULL, NULL, err);
        if (rc != SCALR_EMAIL_OK)
            return abort_tx(st, rc);
        version = 1;
    }
    /* Later versions migrate here, one step at a time, in this transaction. */
    if (version < 2) {
        for (const char *const *s = st->drv->schema2; *s && rc == SCALR_EMAIL_OK; s++)
            rc = X(st, *s, NULL, 0, NULL, NULL, err);
        if (rc == SCALR_EMAIL_OK)
            rc = X(st, "UPDATE scalr_email_meta SET value = '2' WHERE key = 'schema_version'", NULL,
                   0, NULL, NULL, err);
        if (rc != SCALR_EMAIL_OK)
            return abort_tx(st, rc);
    }
    return commit(st, err);
}

scalr_email_code se_qstore_open(se_qstore **out, const char *url, scalr_email_error *err)
{
    *out = NULL;
    const se_qdriver *drv = NULL;
    const char *rest = url;
    if (!url || !*url)
        return se_fail(err, SCALR_EMAIL_ECONFIG, "CONFIG", "queue URL is empty");
    if (!strncmp(url, "sqlite:", 7)) {
        drv = &se_qdriver_sqlite;
        rest = url + 7;
        if (!strncmp(rest, "//", 2))
            rest += 2;
        if (!*rest)
            return se_fail(err, SCALR_EMAIL_ECONFIG, "CONFIG",
                           "queue URL \"sqlite:\" names no file (sqlite:PATH)");
    } else if (!strncmp(url, "postgresql://", 13) || !strncmp(url, "postgres://", 11)) {
        drv = &se_qdriver_pg;
    } else {
        return se_fail(err, SCALR_EMAIL_ECONFIG, "CONFIG",
                       "queue URL must start with sqlite: or postgresql:// (got \"%.40s\")", url);
    }
    se_qstore *st = calloc(1, sizeof *st);
    if (!st)
        return se_fail(err, SCALR_EMAIL_ENOMEM, "CONFIG", "out of memory");
    st->drv = drv;
    scalr_email_code rc = drv->open(st, rest, err);
    if (rc == SCALR_EMAIL_OK)
        rc = migrate(st, err);
    if (rc != SCALR_EMAIL_OK) {
        se_qstore_close(st);
        return rc;
    }
    *out = st;
    return SCALR_EMAIL_OK;
}

void se_qstore_close(se_qstore *st)
{
    if (!st)
        return;
    if (st->db)
        st->drv->close(st);
    free(st->where);
    free(st);
}

int64_t se_qstore_now(se_qstore *st)
{
    se_qres r = {0};
    if (X(st, "SELECT NOW_MS", NULL, 0, &r, NULL, NULL) != SCALR_EMAIL_OK || !r.rows) {
        se_qres_free(&r);
        return -1;
    }
    int64_t t = se_qres_int(&r, 0, 0);
    se_qres_free(&r);
    return t;
}

static char *join_rcpt(const char *const *rcpt, size_t n)
{
    size_t len = 1;
    for (size_t i = 0; i < n; i++)
        len += strlen(rcpt[i]) + 1;
    char *s = malloc(len), *p = s;
    if (!s)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(rcpt[i]);
        if (i)
            *p++ = '\n';
        memcpy(p, rcpt[i], l);
        p += l;
    }
    *p = 0;
    return s;
}

scalr_email_code se_qstore_add(se_qstore *st, const se_qnew *m, int64_t *id, int *existed,
                               scalr_email_error *err)
{
    *id = 0;
    if (existed)
        *existed = 0;
    char *rcpt = join_rcpt(m->rcpt, m->n_rcpt);
    if (!rcpt)
        return se_fail(err, SCALR_EMAIL_ENOMEM, "QUEUE", "out of memory");
    const se_qval p[] = {
        QT(m->lane == SCALR_EMAIL_LANE_BULK ? "bulk" : "transactional"),
        QT(m->tenant ? m->tenant : ""),
        QT(m->provider ? m->provider : ""),
        QT(m->idem_key),
        QT(m->mail_from),
        QT(rcpt),
        QT(m->message_id),
        QB(m->body, m->size),
        QI((int64_t)m->size),
        m->run_at_ms > 0 ? QI(m->run_at_ms) : QN,
        QI(m->expire_in_ms > 0 ? m->expire_in_ms : DAY_MS),
        m->max_attempts ? QI(m->max_attempts) : QN,
        QT(m->profile ? m->profile : ""),
        m->has_unsubscribe >= 0 ? QI(m->has_unsubscribe) : QN,
    };
    se_qres r = {0};
    /* Inside a caller's transaction (a batch), nothing to open or commit;
     * on PostgreSQL the INSERT alone is atomic (and durable at its commit). */
    int own = !st->in_tx && !st->drv->atomic_statements;
    scalr_email_code rc = own ? begin(st, err) : SCALR_EMAIL_OK;
    if (rc == SCALR_EMAIL_OK)
        rc = X(st,
               "INSERT INTO scalr_email_queue (lane, tenant, provider, idempotency_key, mail_from, "
               "rcpt_to, message_id, body, size, run_at, expire_at, max_attempts, profile, "
               "has_unsubscribe) VALUES "
               "(?, ?, ?, ?, ?, ?, ?, ?, ?, COALESCE(?, NOW_MS), NOW_MS + ?, ?, ?, ?) "
               "ON CONFLICT (idempotency_key) DO NOTHING RETURNING id",
               p, NP(p), &r, NULL, err);
    free(rcpt);
    if (rc != SCALR_EMAIL_OK)
        return own ? abort_tx(st, rc) : rc;
    if (r.rows) {
        *id = se_qres_int(&r, 0, 0);
    } else {
        /* The key was there already: that row is the answer. */
        se_qres_free(&r);
        const se_qval k[] = {QT(m->idem_key)};
        rc = X(st, "SELECT id FROM scalr_email_queue WHERE idempotency_key = ?", k, 1, &r, NULL,
               err);
        if (rc != SCALR_EMAIL_OK || !r.rows) {
            se_qres_free(&r);
            if (rc == SCALR_EMAIL_OK)
                rc = se_fail(err, SCALR_EMAIL_ESTORE, "QUEUE", "queue %s: insert stored nothing",
                             st->where);
            return own ? abort_tx(st, rc) : rc;
        }
        *id = se_qres_int(&r, 0, 0);
        if (existed)
            *existed = 1;
    }
    se_qres_free(&r);
    return own ? commit(st, err) : SCALR_EMAIL_OK;
}

/* One statement in its own transaction. */
static scalr_email_code write_one(se_qstore *st, const char *sql, const se_qval *p, int np,
                                  scalr_email_error *err)
{
    scalr_email_code rc = begin(st, err);
    if (rc == SCALR_EMAIL_OK)
        rc = X(st, sql, p, np, NULL, NULL, err);
    return rc == SCALR_EMAIL_OK ? commit(st, err) : abort_tx(st, rc);
}

scalr_email_code se_qstore_register(se_qstore *st, const char *worker, scalr_email_error *err)
{
    const se_qval p[] = {QT(worker)};
    return write_one(
        st,
        "INSERT INTO scalr_email_workers (id, started_at, heartbeat_at) VALUES (?, NOW_MS, "
        "NOW_MS) ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at",
        p, 1, err);
}

scalr_email_code se_qstore_heartbeat(se_qstore *st, const char *worker, int64_t lease_ms,
                                     scalr_email_error *err)
{
    const se_qval w[] = {QT(worker)};
    const se_qval l[] = {QI(lease_ms), QT(worker)};
    scalr_email_code rc = begin(st, err);
    if (rc == SCALR_EMAIL_OK)
        rc = X(st,
               "INSERT INTO scalr_email_workers (id, started_at, heartbeat_at) VALUES (?, NOW_MS, "
               "NOW_MS) ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at",
               w, 1, NULL, NULL, err);
    if (rc == SCALR_EMAIL_OK)
        rc = X(st,
               "UPDATE scalr_email_queue SET lease_until = NOW_MS + ? WHERE lease_owner = ? AND "
               "state = 'leased'",
               l, 2, NULL, NULL, err);
    return rc == SCALR_EMAIL_OK ? commit(st, err) : abort_tx(st, rc);
}

void se_qrow_free(se_qrow *rows, size_t n)
{
    if (!rows)
        return;
    for (size_t i = 0; i < n; i++) {
        free(rows[i].mail_from);
        if (rows[i].rcpt)
            free(rows[i].rcpt[0]); /* one allocation, split in place */
        free(rows[i].rcpt);
        free(rows[i].message_id);
        free(rows[i].body);
        free(rows[i].tenant);
        free(rows[i].provider);
        free(rows[i].profile);
    }
    free(rows);
}

static char *dup_cell(const se_qres *r, size_t row, size_t col)
{
    const char *s = se_qres_text(r, row, col);
    return strdup(s ? s : "");
}

/* rcpt_to "a\nb\nc" -> rcpt[] pointing into one copy. */
static int split_rcpt(se_qrow *row, const char *s)
{
    char *copy = strdup(s ? s : "");
    if (!copy)
        return -1;
    size_t n = 1;
    for (const char *p = copy; *p; p++)
        n += *p == '\n';
    row->rcpt = calloc(n + 1, sizeof *row->rcpt);
    if (!row->rcpt) {
        free(copy);
        return -1;
    }
    row->n_rcpt = 0;
    for (char *p = copy;;) {
        row->rcpt[row->n_rcpt++] = p;
        char *nl = strchr(p, '\n');
        if (!nl)
            break;
        *nl = 0;
        p = nl + 1;
    }
    return 0;
}

#define DUE_FILTER                                                                                 \
    "state = 'queued' AND run_at <= NOW_MS AND provider = ? AND provider NOT IN (SELECT provider " \
    "FROM "                                                                                        \
    "scalr_email_providers WHERE held = 1 OR paused_until > NOW_MS) AND profile NOT IN (SELECT "   \
    "profile FROM scalr_email_profiles WHERE held = 1 OR paused_until > NOW_MS)"

/* The next tenant with due rows in lane after `after` (wrapping once). */
static scalr_email_code next_tenant(se_qstore *st, const char *lane, const char *after,
                                    const char *provider, int strictly, char *out, size_t outlen,
                                    int *found, scalr_email_error *err)
{
    const se_qval p[] = {QT(lane), QT(after), QT(provider)};
    se_qres r = {0};
    scalr_email_code rc = X(
        st,
        strictly
            ? "SELECT tenant FROM scalr_email_queue WHERE lane = ? AND tenant > ? AND " DUE_FILTER
              " ORDER BY tenant LIMIT 1"
            : "SELECT tenant FROM scalr_email_queue WHERE lane = ? AND tenant >= ? AND " DUE_FILTER
              " ORDER BY tenant LIMIT 1",
        p, 3, &r, NULL, err);
    *found = rc == SCALR_EMAIL_OK && r.rows;
    if (*found)
        snprintf(out, outlen, "%s", se_qres_text(&r, 0, 0) ? se_qres_text(&r, 0, 0) : "");
    se_qres_free(&r);
    return rc;
}

#define CLAIM_COLS                                                                                 \
    "id, mail_from, rcpt_to, message_id, body, size, lane, tenant, provider, attempts, "           \
    "COALESCE(max_attempts, 0), created_at, COALESCE(expire_at, 0), profile"

static scalr_email_code claim_tenant(se_qstore *st, const char *worker, const char *provider,
                                     const char *lane, const char *tenant, size_t k,
                                     int64_t lease_ms, se_qrow **rows, size_t *n, size_t *cap,
                                     scalr_email_error *err)
{
    const se_qval p[] = {QT(worker), QI(lease_ms), QT(lane),
                         QT(tenant), QT(provider), QI((int64_t)k)};
    se_qres r = {0};
    scalr_email_code rc =
        X(st,
          st->drv->skip_locked
              ? "UPDATE scalr_email_queue SET state = 'leased', lease_owner = ?, lease_until = "
                "NOW_MS + ?, "
                "updated_at = NOW_MS WHERE id IN (SELECT id FROM scalr_email_queue WHERE lane = ? "
                "AND "
                "tenant = ? AND " DUE_FILTER " ORDER BY run_at, id LIMIT ? FOR UPDATE SKIP LOCKED) "
                "RETURNING " CLAIM_COLS
              : "UPDATE scalr_email_queue SET state = 'leased', lease_owner = ?, lease_until = "
                "NOW_MS + ?, "
                "updated_at = NOW_MS WHERE id IN (SELECT id FROM scalr_email_queue WHERE lane = ? "
                "AND "
                "tenant = ? AND " DUE_FILTER " ORDER BY run_at, id LIMIT ?) RETURNING " CLAIM_COLS,
          p, NP(p), &r, NULL, err);
    if (rc != SCALR_EMAIL_OK)
        return rc;
    if (*n + r.rows > *cap) {
        size_t nc = *n + r.rows + 8;
        se_qrow *g = realloc(*rows, nc * sizeof *g);
        if (!g) {
            se_qres_free(&r);
            return se_fail(err, SCALR_EMAIL_ENOMEM, "QUEUE", "out of memory");
        }
        *rows = g;
        *cap = nc;
    }
    for (size_t i = 0; i < r.rows; i++) {
        se_qrow *row = &(*rows)[*n];
        memset(row, 0, sizeof *row);
        (*n)++;
        row->id = se_qres_int(&r, i, 0);
        row->mail_from = dup_cell(&r, i, 1);
        row->message_id = dup_cell(&r, i, 3);
        const se_qval *b = se_qcell(&r, i, 4);
        row->size =
            b->t == SE_QBLOB || b->t == SE_QTEXT ? (b->t == SE_QBLOB ? b->n : strlen(b->s)) : 0;
        row->body = malloc(row->size + 1);
        if (row->body && row->size)
            memcpy(row->body, b->s, row->size);
        const char *ln = se_qres_text(&r, i, 6);
        row->lane =
            ln && !strcmp(ln, "bulk") ? SCALR_EMAIL_LANE_BULK : SCALR_EMAIL_LANE_TRANSACTIONAL;
        row->tenant = dup_cell(&r, i, 7);
        row->provider = dup_cell(&r, i, 8);
        row->attempts = (int)se_qres_int(&r, i, 9);
        row->max_attempts = (int)se_qres_int(&r, i, 10);
        row->created_at = se_qres_int(&r, i, 11);
        row->expire_at = se_qres_int(&r, i, 12);
        row->profile = dup_cell(&r, i, 13);
        if (!row->mail_from || !row->message_id || !row->body || !row->tenant || !row->provider ||
            !row->profile || split_rcpt(row, se_qres_text(&r, i, 2)) < 0) {
            se_qres_free(&r);
            return se_fail(err, SCALR_EMAIL_ENOMEM, "QUEUE", "out of memory");
        }
    }
    se_qres_free(&r);
    return SCALR_EMAIL_OK;
}

#define MAX_TENANTS 64

static int skipped(const char *tenant, const char *const *skip, size_t n_skip)
{
    for (size_t i = 0; i < n_skip; i++)
        if (!strcmp(tenant, skip[i]))
            return 1;
    return 0;
}

scalr_email_code se_qstore_claim(se_qstore *st, const char *worker, const char *provider,
                                 size_t max, int64_t lease_ms, const char *const *skip,
                                 size_t n_skip, se_qrow **rows, size_t *n, scalr_email_error *err)
{
    if (!provider)
        provider = "";
    *rows = NULL;
    *n = 0;
    size_t cap = 0;
    static const char *const lanes[2] = {"transactional", "bulk"};
    scalr_email_code rc = begin(st, err);
    if (rc != SCALR_EMAIL_OK)
        return rc;
    for (int li = 0; li < 2 && *n < max; li++) {
        /* Round-robin: the tenants with due rows, starting after the one
         * served last, then share what is left of max among them. */
        char tenants[MAX_TENANTS][256];
        size_t nt = 0;
        char cur[256];
        snprintf(cur, sizeof cur, "%s", st->last_tenant[li]);
        int wrapped = 0, strictly = 1;
        /* Passed-over tenants still move the cursor; the first one seen
         * again ends the walk as a served one would. */
        char first_skip[256] = "";
        int any_skip = 0;
        while (nt < MAX_TENANTS && nt < max - *n) {
            int found = 0;
            rc = next_tenant(st, lanes[li], cur, provider, strictly, tenants[nt],
                             sizeof tenants[nt], &found, err);
            if (rc != SCALR_EMAIL_OK)
                goto fail;
            if (!found) {
                if (wrapped)
                    break;
                wrapped = 1;
                strictly = 0;
                cur[0] = 0;
                continue;
            }
            int seen = 0;
            for (size_t j = 0; j < nt; j++)
                seen |= !strcmp(tenants[j], tenants[nt]);
            if (seen || (any_skip && !strcmp(first_skip, tenants[nt])))
                break;
            snprintf(cur, sizeof cur, "%s", tenants[nt]);
            strictly = 1;
            if (skipped(tenants[nt], skip, n_skip)) {
                if (!any_skip)
                    memcpy(first_skip, tenants[nt], sizeof first_skip);
                any_skip = 1;
                continue;
            }
            nt++;
        }
        /* Passes until max is reached or every tenant ran dry. */
        int dry[MAX_TENANTS] = {0};
        size_t active = nt;
        while (active && *n < max) {
            size_t left_tenants = active;
            for (size_t j = 0; j < nt && *n < max; j++) {
                if (dry[j])
                    continue;
                size_t left = max - *n, share = (left + left_tenants - 1) / left_tenants;
                size_t before = *n;
                rc = claim_tenant(st, worker, provider, lanes[li], tenants[j], share, lease_ms,
                                  rows, n, &cap, err);
                if (rc != SCALR_EMAIL_OK)
                    goto fail;
                left_tenants--;
                if (*n - before < share) {
                    dry[j] = 1;
                    active--;
                }
                memcpy(st->last_tenant[li], tenants[j], sizeof st->last_tenant[li]);
            }
        }
    }
    rc = commit(st, err);
    if (rc == SCALR_EMAIL_OK)
        return rc;
fail:
    abort_tx(st, rc);
    se_qrow_free(*rows, *n);
    *rows = NULL;
    *n = 0;
    return rc;
}

scalr_email_code se_qstore_inflight(se_qstore *st, const char *worker, int64_t id,
                                    scalr_email_error *err)
{
    const se_qval p[] = {QI(id), QT(worker)};
    int own = !st->in_tx; /* else part of a caller's transaction (group commit) */
    scalr_email_code rc = own ? begin(st, err) : SCALR_EMAIL_OK;
    if (rc == SCALR_EMAIL_OK)
        rc = X(
            st,
            "INSERT INTO scalr_email_inflight (queue_id, worker, since) VALUES (?, ?, NOW_MS) "
            "ON CONFLICT (queue_id) DO UPDATE SET worker = excluded.worker, since = excluded.since",
            p, NP(p), NULL, NULL, err);
    if (!own)
        return rc;
    return rc == SCALR_EMAIL_OK ? commit(st, err) : abort_tx(st, rc);
}

static const char *state_of(const char *outcome, int *terminal, int *counted)
{
    *terminal = 0;
    *counted = 1;
    if (!strcmp(outcome, "sent"))
        return *terminal = 1, "sent";
    if (!strcmp(outcome, "failed"))
        return *terminal = 1, "failed";
    if (!strcmp(outcome, "expired"))
        return *terminal = 1, "expired";
    if (!strcmp(outcome, "held"))
        return "held";
    if (!strcmp(outcome, "unknown"))
        return "unknown";
    if (!strcmp(outcome, "released"))
        return *counted = 0, "queued";
    if (!strcmp(outcome, "retry"))
        return "queued";
    if (!strcmp(outcome, "deferred"))
        return *counted = 0, "queued";
    return NULL;
}

/* Back to the queue for later, as if never claimed: no attempt counted or
 * recorded, last_error kept. */
static scalr_email_code defer(se_qstore *st, const char *worker, int64_t id, int64_t delay_ms,
                              scalr_email_error *err)
{
    const se_qval p[] = {QI(delay_ms), QI(id), QT(worker)};
    int64_t changed = 0;
    int own = !st->in_tx;
    scalr_email_code rc = own ? begin(st, err) : SCALR_EMAIL_OK;
    if (rc == SCALR_EMAIL_OK)
        rc = X(st,
               "UPDATE scalr_email_queue SET state = 'queued', run_at = NOW_MS + ?, lease_owner = "
               "NULL, lease_until = NULL, updated_at = NOW_MS WHERE id = ? AND state = 'leased' "
               "AND lease_owner = ?",
               p, NP(p), NULL, &changed, err);
    if (rc == SCALR_EMAIL_OK && changed == 0)
        rc = se_fail(err, SCALR_EMAIL_ESTORE, "QUEUE",
                     "message %lld is no longer leased by this worker (lease lost); outcome "
                     "\"deferred\" not recorded",
                     (long long)id);
    if (!own)
        return rc;
    return rc == SCALR_EMAIL_OK ? commit(st, err) : abort_tx(st, rc);
}

static scalr_email_code add_attempt(se_qstore *st, int64_t id, const char *worker,
                                    const se_qattempt *a, scalr_email_error *err)
{
    const se_qval p[] = {
        QI(id),
        QI(id),
        QT(worker),
        QT(a->outcome),
        QT(a->stage ? a->stage : ""),
        QI(a->smtp_code),
        QT(a->enhanced ? a->enhanced : ""),
        QT(a->recipient ? a->recipient : ""),
        QT(a->server_text ? a->server_text : ""),
        QT(a->message ? a->message : ""),
    };
    return X(
        st,
        "INSERT INTO scalr_email_attempts (queue_id, n, at, worker, outcome, stage, smtp_code, "
        "enhanced, recipient, server_text, message) VALUES (?, (SELECT COUNT(*) + 1 FROM "
        "scalr_email_attempts WHERE queue_id = ?), NOW_MS, ?, ?, ?, ?, ?, ?, ?, ?)",
        p, NP(p), NULL, NULL, err);
}

scalr_email_code se_qstore_finish(se_qstore *st, const char *worker, int64_t id,
                                  const se_qattempt *a, int64_t delay_ms, scalr_email_error *err)
{
    int terminal, counted;
    const char *state = state_of(a->outcome, &terminal, &counted);
    if (!state)
        return se_fail(err, SCALR_EMAIL_EINVAL, "QUEUE", "unknown outcome \"%s\"", a->outcome);
    int sent = !strcmp(state, "sent"), retry = !strcmp(a->outcome, "retry");
    if (!strcmp(a->outcome, "deferred"))
        return defer(st, worker, id, delay_ms, err);
    const se_qval p[] = {
        QT(state),    QI(counted),  QI(retry),
        QI(delay_ms), QI(terminal), sent ? QN : QT(a->message ? a->message : ""),
        QI(sent),     QI(id),       QT(worker),
    };
    int64_t changed = 0;
    int own = !st->in_tx; /* else part of a caller's transaction (group commit) */
    scalr_email_code rc = own ? begin(st, err) : SCALR_EMAIL_OK;
    if (rc == SCALR_EMAIL_OK)
        rc = X(st,
               "UPDATE scalr_email_queue SET state = ?, attempts = attempts + ?, "
               "run_at = CASE WHEN ? = 1 THEN NOW_MS + ? ELSE run_at END, lease_owner = NULL, "
               "lease_until = NULL, updated_at = NOW_MS, "
               "finished_at = CASE WHEN ? = 1 THEN NOW_MS ELSE NULL END, last_error = ?, "
               "body = CASE WHEN ? = 1 THEN NULL ELSE body END "
               "WHERE id = ? AND state = 'leased' AND lease_owner = ?",
               p, NP(p), NULL, &changed, err);
    if (rc == SCALR_EMAIL_OK && changed == 0)
        rc = se_fail(err, SCALR_EMAIL_ESTORE, "QUEUE",
                     "message %lld is no longer leased by this worker (lease lost); outcome "
                     "\"%s\" not recorded",
                     (long long)id, a->outcome);
    if (rc == SCALR_EMAIL_OK)
        rc = add_attempt(st, id, worker, a, err);
    if (rc == SCALR_EMAIL_OK) {
        const se_qval q[] = {QI(id)};
        rc = X(st, "DELETE FROM scalr_email_inflight WHERE queue_id = ?", q, 1, NULL, NULL, err);
    }
    if (!own)
        return rc;
    return rc == SCALR_EMAIL_OK ? commit(st, err) : abort_tx(st, rc);
}

scalr_email_code se_qstore_release_worker(se_qstore *st, const char *worker, scalr_email_error *err)
{
    const se_qval p[] = {QT(worker), QT(worker)};
    const se_qval w[] = {QT(worker)};
    scalr_email_code rc = begin(st, err);
    /* Rows in the duplicate window stay leased: the reaper decides them. */
    if (rc == SCALR_EMAIL_OK)
        rc = X(st,
               "UPDATE scalr_email_queue SET state = 'queued', lease_owner = NULL, lease_until = "
               "NULL, updated_at = NOW_MS WHERE lease_owner = ? AND state = 'leased' AND id NOT IN "
               "(SELECT queue_id FROM scalr_email_inflight WHERE worker = ?)",
               p, 2, NULL, NULL, err);
    if (rc == SCALR_EMAIL_OK)
        rc = X(st, "DELETE FROM scalr_email_workers WHERE id = ?", w, 1, NULL, NULL, err);
    return rc == SCALR_EMAIL_OK ? commit(st, err) : abort_tx(st, rc);
}

#define ORPHAN                                                                                     \
    "state = 'leased' AND (lease_until < NOW_MS OR lease_owner IS NULL OR lease_owner NOT IN "     \
    "(SELECT id FROM scalr_email_workers))"

scalr_email_code se_qstore_reap(se_qstore *st, int64_t dead_ms, int hold, size_t *n,
                                scalr_email_error *err)
{
    int64_t a = 0, b = 0;
    const se_qval d[] = {QI(dead_ms)};
    const se_qval h[] = {QT(hold ? "unknown" : "resent")};
    const se_qval s[] = {QT(hold ? "unknown" : "queued")};
    scalr_email_code rc = begin(st, err);
    if (rc == SCALR_EMAIL_OK)
        rc = X(st, "DELETE FROM scalr_email_workers WHERE heartbeat_at < NOW_MS - ?", d, 1, NULL,
               NULL, err);
    /* Ambiguous: the end of data may have reached the server. */
    if (rc == SCALR_EMAIL_OK)
        rc = X(st,
               "INSERT INTO scalr_email_attempts (queue_id, n, at, worker, outcome, stage, "
               "smtp_code, enhanced, recipient, server_text, message) SELECT q.id, (SELECT "
               "COUNT(*) + 1 FROM scalr_email_attempts a WHERE a.queue_id = q.id), NOW_MS, "
               "COALESCE(q.lease_owner, ''), ?, 'DATA', 0, '', '', '', 'the worker stopped after "
               "writing the end of data; the server may have the message' FROM scalr_email_queue q "
               "WHERE q." ORPHAN " AND q.id IN (SELECT queue_id FROM scalr_email_inflight)",
               h, 1, NULL, NULL, err);
    if (rc == SCALR_EMAIL_OK)
        rc = X(
            st,
            "UPDATE scalr_email_queue SET state = ?, attempts = attempts + 1, lease_owner = NULL, "
            "lease_until = NULL, updated_at = NOW_MS, last_error = 'the worker stopped after "
            "writing the end of data; outcome unknown' WHERE " ORPHAN
            " AND id IN (SELECT queue_id FROM scalr_email_inflight)",
            s, 1, NULL, &a, err);
    /* Never handed over: no risk, no attempt counted. */
    if (rc == SCALR_EMAIL_OK)
        rc = X(st,
               "UPDATE scalr_email_queue SET state = 'queued', lease_owner = NULL, lease_until = "
               "NULL, updated_at = NOW_MS WHERE " ORPHAN,
               NULL, 0, NULL, &b, err);
    if (rc == SCALR_EMAIL_OK)
        rc = X(st,
               "DELETE FROM scalr_email_inflight WHERE queue_id NOT IN (SELECT id FROM "
               "scalr_email_queue WHERE state = 'leased')",
               NULL, 0, NULL, NULL, err);
    if (rc != SCALR_EMAIL_OK)
        return abort_tx(st, rc);
    if (n)
        *n = (size_t)(a + b);
    return commit(st, err);
}

#define TERMINAL "state IN ('sent', 'failed', 'expired', 'cancelled')"

scalr_email_code se_qstore_prune(se_qstore *st, int64_t retention_ms, size_t *n,
                                 scalr_email_error *err)
{
    const se_qval p[] = {QI(retention_ms)};
    int64_t c = 0;
    scalr_email_code rc = begin(st, err);
    if (rc == SCALR_EMAIL_OK)
        rc = X(st,
               "DELETE FROM scalr_email_attempts WHERE queue_id IN (SELECT id FROM "
               "scalr_email_queue WHERE " TERMINAL " AND finished_at < NOW_MS - ?)",
               p, 1, NULL, NULL, err);
    if (rc == SCALR_EMAIL_OK)
        rc = X(st, "DELETE FROM scalr_email_queue WHERE " TERMINAL " AND finished_at < NOW_MS - ?",
               p, 1, NULL, &c, err);
    if (rc != SCALR_EMAIL_OK)
        return abort_tx(st, rc);
    if (n)
        *n = (size_t)c;
    return commit(st, err);
}

scalr_email_code se_qstore_provider_pause(se_qstore *st, const char *provider, int64_t ms,
                                          const char *reason, scalr_email_error *err)
{
    const se_qval p[] = {QT(provider ? provider : ""), QI(ms), QT(reason ? reason : "")};
    return write_one(
        st,
        "INSERT INTO scalr_email_providers (provider, paused_until, held, reason) VALUES "
        "(?, NOW_MS + ?, 0, ?) ON CONFLICT (provider) DO UPDATE SET paused_until = "
        "excluded.paused_until, reason = excluded.reason",
        p, NP(p), err);
}

scalr_email_code se_qstore_provider_hold(se_qstore *st, const char *provider, const char *reason,
                                         scalr_email_error *err)
{
    const se_qval p[] = {QT(provider ? provider : ""), QT(reason ? reason : "")};
    return write_one(st,
                     "INSERT INTO scalr_email_providers (provider, held, reason) VALUES (?, 1, ?) "
                     "ON CONFLICT (provider) DO UPDATE SET held = 1, reason = excluded.reason",
                     p, NP(p), err);
}

scalr_email_code se_qstore_provider_clear(se_qstore *st, const char *provider,
                                          scalr_email_error *err)
{
    const se_qval p[] = {QT(provider ? provider : "")};
    return write_one(st, "DELETE FROM scalr_email_providers WHERE provider = ?", p, 1, err);
}

scalr_email_code se_qstore_profile_pause(se_qstore *st, const char *profile, int64_t ms,
                                         const char *reason, scalr_email_error *err)
{
    const se_qval p[] = {QT(profile ? profile : ""), QI(ms), QT(reason ? reason : "")};
    return write_one(
        st,
        "INSERT INTO scalr_email_profiles (profile, paused_until, held, reason) VALUES "
        "(?, NOW_MS + ?, 0, ?) ON CONFLICT (profile) DO UPDATE SET paused_until = "
        "excluded.paused_until, reason = excluded.reason",
        p, NP(p), err);
}

scalr_email_code se_qstore_profile_hold(se_qstore *st, const char *profile, const char *reason,
                                        scalr_email_error *err)
{
    const se_qval p[] = {QT(profile ? profile : ""), QT(reason ? reason : "")};
    return write_one(st,
                     "INSERT INTO scalr_email_profiles (profile, held, reason) VALUES (?, 1, ?) "
                     "ON CONFLICT (profile) DO UPDATE SET held = 1, reason = excluded.reason",
                     p, NP(p), err);
}

scalr_email_code se_qstore_wait(se_qstore *st, int64_t timeout_ms, scalr_email_error *err)
{
    return st->drv->wait(st, timeout_ms, err);
}

int64_t se_qstore_next_due(se_qstore *st)
{
    se_qres r = {0};
    if (X(st, "SELECT MIN(run_at) - NOW_MS FROM scalr_email_queue WHERE state = 'queued'", NULL, 0,
          &r, NULL, NULL) != SCALR_EMAIL_OK ||
        !r.rows || se_qcell(&r, 0, 0)->t == SE_QNULL) {
        se_qres_free(&r);
        return -1;
    }
    int64_t d = se_qres_int(&r, 0, 0);
    se_qres_free(&r);
    return d < 0 ? 0 : d;
}

/* For queue.c: run a statement from outside this file. */
scalr_email_code se_qstore_exec(se_qstore *st, const char *sql, const se_qval *p, int np,
                                se_qres *res, int64_t *changes, scalr_email_error *err)
{
    return X(st, sql, p, np, res, changes, err);
}
scalr_email_code se_qstore_begin(se_qstore *st, scalr_email_error *err)
{
    return begin(st, err);
}
scalr_email_code se_qstore_commit(se_qstore *st, scalr_email_error *err)
{
    return commit(st, err);
}
scalr_email_code se_qstore_abort(se_qstore *st, scalr_email_code rc)
{
    return abort_tx(st, rc);
}
const char *se_qstore_where(const se_qstore *st)
{
    return st->where;
}
