/* The queue's public API (scalr_email_queue_*): enqueue and the operator's
 * view and actions, over the store (store.h).  The worker is worker.c. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "client_int.h"
#include "error.h"
#include "queue/queue_int.h"
#include "raw_int.h"
#include "queue/store_int.h"

scalr_email_code scalr_email_queue_open(scalr_email_queue **out, const char *url,
                                        scalr_email_error *err)
{
    se_error_clear(err);
    if (!out)
        return se_fail(err, SCALR_EMAIL_EINVAL, "CONFIG", "queue_open: NULL argument");
    *out = NULL;
    if (!url || !*url)
        url = getenv("SCALR_EMAIL_QUEUE");
    if (!url || !*url)
        url = SE_QUEUE_DEFAULT_URL;
    scalr_email_queue *q = calloc(1, sizeof *q);
    if (!q || !(q->url = strdup(url))) {
        free(q);
        return se_fail(err, SCALR_EMAIL_ENOMEM, "CONFIG", "out of memory");
    }
    q->wake[0] = q->wake[1] = -1;
    if (pipe(q->wake) < 0 || fcntl(q->wake[0], F_SETFL, O_NONBLOCK) < 0 ||
        fcntl(q->wake[1], F_SETFL, O_NONBLOCK) < 0 || fcntl(q->wake[0], F_SETFD, FD_CLOEXEC) < 0 ||
        fcntl(q->wake[1], F_SETFD, FD_CLOEXEC) < 0) {
        free(q->url);
        free(q);
        return se_fail(err, SCALR_EMAIL_EIO, "QUEUE", "cannot make a pipe: %s", strerror(errno));
    }
    scalr_email_code rc = se_qstore_open(&q->st, url, err);
    if (rc != SCALR_EMAIL_OK) {
        close(q->wake[0]);
        close(q->wake[1]);
        free(q->url);
        free(q);
        return rc;
    }
    *out = q;
    return SCALR_EMAIL_OK;
}

void scalr_email_queue_close(scalr_email_queue *q)
{
    if (!q)
        return;
    se_qstore_close(q->st);
    if (q->wake[0] >= 0) {
        close(q->wake[0]);
        close(q->wake[1]);
    }
    free(q->url);
    se_dkim_signer_free(q->dkim);
    for (size_t i = 0; i < q->n_profiles; i++) {
        free(q->profiles[i].name);
        free(q->profiles[i].env_file);
        scalr_email_client_free(q->profiles[i].c);
    }
    free(q);
}

static int same(const char *a, const char *b)
{
    return (!a && !b) || (a && b && !strcmp(a, b));
}

/* The client of a sender profile, made on first use (ECONFIG for an
 * unknown profile or a bad key, nothing stored). */
static scalr_email_code profile_client(scalr_email_queue *q, const char *name, const char *env_file,
                                       scalr_email_client **out, scalr_email_error *err)
{
    for (size_t i = 0; i < q->n_profiles; i++)
        if (!strcmp(q->profiles[i].name, name) && same(q->profiles[i].env_file, env_file)) {
            *out = q->profiles[i].c;
            return SCALR_EMAIL_OK;
        }
    scalr_email_client *c = NULL;
    scalr_email_code rc = scalr_email_client_from_profile(&c, name, env_file, NULL, NULL, err);
    if (rc != SCALR_EMAIL_OK)
        return rc;
    if (q->n_profiles == SE_QUEUE_MAX_PROFILES) {
        free(q->profiles[0].name);
        free(q->profiles[0].env_file);
        scalr_email_client_free(q->profiles[0].c);
        memmove(q->profiles, q->profiles + 1, (SE_QUEUE_MAX_PROFILES - 1) * sizeof q->profiles[0]);
        q->n_profiles--;
    }
    struct se_qprofile *p = &q->profiles[q->n_profiles];
    p->name = strdup(name);
    p->env_file = env_file ? strdup(env_file) : NULL;
    p->c = c;
    if (!p->name || (env_file && !p->env_file)) {
        free(p->name);
        free(p->env_file);
        scalr_email_client_free(c);
        return se_fail(err, SCALR_EMAIL_ENOMEM, "QUEUE", "out of memory");
    }
    q->n_profiles++;
    *out = c;
    return SCALR_EMAIL_OK;
}

/* 1 when the header block of data[0..len) has a List-Unsubscribe field. */
static int has_unsubscribe(const char *d, size_t len)
{
    static const char name[] = "List-Unsubscribe:";
    for (size_t i = 0; i < len;) {
        if (d[i] == '\r' || d[i] == '\n')
            return 0; /* the blank line: the header block ended */
        if (len - i >= sizeof name - 1 && !strncasecmp(d + i, name, sizeof name - 1))
            return 1;
        const char *nl = memchr(d + i, '\n', len - i);
        if (!nl)
            return 0;
        i = (size_t)(nl - d) + 1;
    }
    return 0;
}

static scalr_email_code check_opts(const scalr_email_enqueue_opts *opts, scalr_email_error *err)
{
    if (opts->lane != SCALR_EMAIL_LANE_TRANSACTIONAL && opts->lane != SCALR_EMAIL_LANE_BULK)
        return se_fail(err, SCALR_EMAIL_EINVAL, "QUEUE", "unknown lane %d", (int)opts->lane);
    if (opts->expire_in_ms < 0 || opts->send_at_ms < 0)
        return se_fail(err, SCALR_EMAIL_EINVAL, "QUEUE", "negative send time or expiry");
    for (const char *s = opts->tenant; s && *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return se_fail(err, SCALR_EMAIL_EINVAL, "QUEUE", "tenant contains a control character");
    for (const char *s = opts->idempotency_key; s && *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return se_fail(err, SCALR_EMAIL_EINVAL, "QUEUE",
                           "idempotency key contains a control character");
    if (opts->tenant && strlen(opts->tenant) > 255)
        return se_fail(err, SCALR_EMAIL_EINVAL, "QUEUE", "tenant longer than 255 bytes");
    /* In the queue the tenant is the profile: fairness and rate limits
     * apply per profile, so the two cannot disagree. */
    if (opts->profile && *opts->profile && opts->tenant && *opts->tenant &&
        strcmp(opts->tenant, opts->profile))
        return se_fail(err, SCALR_EMAIL_EINVAL, "QUEUE",
                       "tenant '%.64s' is not profile '%.64s': in the queue the tenant is the "
                       "profile (leave the tenant out)",
                       opts->tenant, opts->profile);
    return SCALR_EMAIL_OK;
}

/* Store one message with its envelope: the common end of the adds. */
static scalr_email_code store(scalr_email_queue *q, const char *mail_from, char **rcpt,
                              size_t n_rcpt, const char *message_id, const char *data, size_t size,
                              const scalr_email_enqueue_opts *opts, long long *id, int *existed,
                              scalr_email_error *err)
{
    if (err)
        snprintf(err->message_id, sizeof err->message_id, "%s", message_id);
    const char *profile = opts->profile && *opts->profile ? opts->profile : NULL;
    const se_qnew m = {
        .mail_from = mail_from,
        .rcpt = (const char *const *)rcpt,
        .n_rcpt = n_rcpt,
        .message_id = message_id,
        .body = data,
        .size = size,
        .lane = opts->lane,
        .tenant = opts->tenant && *opts->tenant ? opts->tenant : profile,
        .provider = opts->provider,
        .profile = profile,
        .has_unsubscribe = has_unsubscribe(data, size),
        .idem_key = opts->idempotency_key && *opts->idempotency_key ? opts->idempotency_key : NULL,
        .run_at_ms = opts->send_at_ms,
        .expire_in_ms = opts->expire_in_ms,
        .max_attempts = opts->max_attempts,
    };
    int64_t got = 0;
    int ex = 0;
    scalr_email_code rc = se_qstore_add(q->st, &m, &got, &ex, err);
    if (rc != SCALR_EMAIL_OK)
        return rc;
    *id = got;
    if (existed)
        *existed = ex;
    if (ex && err) { /* the message that is queued is the earlier one */
        se_qres r = {0};
        const se_qval p[] = {QI(got)};
        if (se_qstore_exec(q->st, "SELECT message_id FROM scalr_email_queue WHERE id = ?", p, 1, &r,
                           NULL, NULL) == SCALR_EMAIL_OK &&
            r.rows)
            snprintf(err->message_id, sizeof err->message_id, "%s", se_qres_text(&r, 0, 0));
        se_qres_free(&r);
    }
    if (err)
        snprintf(err->message, sizeof err->message, "%s %lld",
                 ex ? "already queued as" : "queued as", (long long)got);
    return SCALR_EMAIL_OK;
}

scalr_email_code scalr_email_queue_add(scalr_email_queue *q, const scalr_email_message *msg,
                                       const char *default_from,
                                       const scalr_email_enqueue_opts *opts, long long *id,
                                       int *existed, scalr_email_error *err)
{
    se_error_clear(err);
    static const scalr_email_enqueue_opts none = {0};
    if (!opts)
        opts = &none;
    if (id)
        *id = 0;
    if (existed)
        *existed = 0;
    if (!q || !msg || !id)
        return se_fail(err, SCALR_EMAIL_EINVAL, "QUEUE", "queue_add: NULL argument");
    scalr_email_code rc = check_opts(opts, err);
    if (rc != SCALR_EMAIL_OK)
        return rc;
    /* The stored envelope has no place for them: say so rather than drop them. */
    if (msg->dsn_notify || msg->dsn_ret || msg->dsn_envid)
        return se_fail(err, SCALR_EMAIL_EINVAL, "QUEUE",
                       "the queue does not keep DSN parameters (notify, ret, envid); send the "
                       "message directly to use them");
    /* A profile's message is composed, checked and signed with the
     * profile's configuration, as its send would be. */
    scalr_email_client *pc = NULL;
    if (opts->profile && *opts->profile) {
        rc = profile_client(q, opts->profile, opts->env_file, &pc, err);
        if (rc != SCALR_EMAIL_OK)
            return rc;
        if (pc->s.from)
            default_from = pc->s.from;
    }
    /* Composed once, here: every retry sends these exact bytes. */
    se_composed comp;
    memset(&comp, 0, sizeof comp);
    rc = se_compose(msg, default_from, NULL, &comp, err);
    if (rc == SCALR_EMAIL_OK)
        rc = se_composed_flatten(&comp, err);
    if (rc == SCALR_EMAIL_OK && pc) {
        if (se_client_apply_return_path(pc, msg, &comp) < 0)
            rc = se_fail(err, SCALR_EMAIL_ENOMEM, "QUEUE", "out of memory");
        if (rc == SCALR_EMAIL_OK)
            rc = se_client_check_from(pc, &comp, err);
        if (rc == SCALR_EMAIL_OK)
            rc = se_client_dkim_sign(pc, &comp, err);
    } else if (rc == SCALR_EMAIL_OK && q->dkim) {
        rc = se_dkim_sign_composed(q->dkim->keys, q->dkim->n, q->dkim->allow_mismatch, &comp,
                                   time(NULL), err);
    }
    if (rc == SCALR_EMAIL_OK)
        rc = store(q, comp.mail_from, comp.rcpt, comp.n_rcpt, comp.message_id, comp.data.data,
                   comp.data.len, opts, id, existed, err);
    se_composed_free(&comp);
    return rc;
}

scalr_email_code scalr_email_queue_add_raw(scalr_email_queue *q, scalr_email_raw *raw,
                                           const char *mail_from, const char *const *rcpt,
                                           const char *default_from,
                                           const scalr_email_enqueue_opts *opts, long long *id,
                                           int *existed, scalr_email_error *err)
{
    se_error_clear(err);
    static const scalr_email_enqueue_opts none = {0};
    if (!opts)
        opts = &none;
    if (id)
        *id = 0;
    if (existed)
        *existed = 0;
    if (!q || !raw || !id)
        return se_fail(err, SCALR_EMAIL_EINVAL, "QUEUE", "queue_add_raw: NULL argument");
    scalr_email_code rc = check_opts(opts, err);
    if (rc != SCALR_EMAIL_OK)
        return rc;
    /* A profile's message: its From, allowed domains and DKIM key, as its
     * direct send would have. */
    scalr_email_client *pc = NULL;
    if (opts->profile && *opts->profile) {
        rc = profile_client(q, opts->profile, opts->env_file, &pc, err);
        if (rc != SCALR_EMAIL_OK)
            return rc;
        if (pc->s.from)
            default_from = pc->s.from;
    }
    const se_dkim_signer *signer = pc ? pc->dkim : q->dkim;
    se_raw_env e;
    if ((rc = se_raw_prepare(raw, mail_from, rcpt, default_from, &e, err)) != SCALR_EMAIL_OK)
        return rc;
    /* The worker's server is not known now: RFC 2047 is understood by all. */
    se_buf all = {0};
    se_ibody b = {0};
    unsigned char bh[32];
    if (se_ingest_header(&raw->in, 0, e.add.data, &all, err) < 0) {
        rc = err ? err->code : SCALR_EMAIL_EINVAL;
    } else if (pc && (rc = se_client_check_sender(pc, e.mail_from, all.data, all.len, err)) !=
                         SCALR_EMAIL_OK) {
        /* outside the profile's allowed domains: nothing stored */
    } else if (signer && ((rc = se_raw_body_hash(raw, bh, err)) != SCALR_EMAIL_OK ||
                          (rc = se_raw_dkim_sign(signer, bh, &all, err)) != SCALR_EMAIL_OK)) {
        /* signed at enqueue, as queue_add: every retry sends these bytes */
    } else if (se_ingest_rewind(&b, &raw->in) < 0) {
        rc = se_fail(err, SCALR_EMAIL_ENOMEM, "QUEUE", "out of memory");
    } else {
        for (;;) {
            const char *p;
            size_t n;
            if (se_ingest_body_next(&b, &p, &n, err) < 0) {
                rc = err ? err->code : SCALR_EMAIL_EFILE;
                break;
            }
            if (!n)
                break;
            se_buf_append(&all, p, n);
        }
        if (rc == SCALR_EMAIL_OK && all.oom)
            rc = se_fail(err, SCALR_EMAIL_ENOMEM, "QUEUE", "out of memory");
        if (rc == SCALR_EMAIL_OK)
            rc = store(q, e.mail_from, e.rcpt, e.n_rcpt, e.message_id, all.data, all.len, opts, id,
                       existed, err);
    }
    se_ibody_free(&b);
    se_buf_free(&all);
    se_raw_env_free(&e);
    return rc;
}

#define ITEM_COLS                                                                                  \
    "id, state, lane, tenant, provider, idempotency_key, mail_from, rcpt_to, message_id, size, "   \
    "attempts, COALESCE(max_attempts, 0), created_at, run_at, COALESCE(expire_at, 0), "            \
    "updated_at, COALESCE(finished_at, 0), lease_owner, COALESCE(lease_until, 0), last_error, "    \
    "profile"

static void fill_item(const se_qres *r, size_t i, scalr_email_queue_item *it)
{
    memset(it, 0, sizeof *it);
    it->id = se_qres_int(r, i, 0);
    it->state = se_qres_text(r, i, 1);
    it->lane = se_qres_text(r, i, 2);
    it->tenant = se_qres_text(r, i, 3);
    it->provider = se_qres_text(r, i, 4);
    it->idempotency_key = se_qres_text(r, i, 5);
    it->mail_from = se_qres_text(r, i, 6);
    it->rcpt_to = se_qres_text(r, i, 7);
    it->message_id = se_qres_text(r, i, 8);
    it->size = se_qres_int(r, i, 9);
    it->attempts = (int)se_qres_int(r, i, 10);
    it->max_attempts = (int)se_qres_int(r, i, 11);
    it->created_at = se_qres_int(r, i, 12);
    it->run_at = se_qres_int(r, i, 13);
    it->expire_at = se_qres_int(r, i, 14);
    it->updated_at = se_qres_int(r, i, 15);
    it->finished_at = se_qres_int(r, i, 16);
    it->lease_owner = se_qres_text(r, i, 17);
    it->lease_until = se_qres_int(r, i, 18);
    it->last_error = se_qres_text(r, i, 19);
    it->profile = se_qres_text(r, i, 20);
    if (!it->profile)
        it->profile = "";
}

static const char *const states[] = {"queued",  "leased",    "sent", "failed",
                                     "expired", "cancelled", "held", "unknown"};

static int known_state(const char *s)
{
    for (size_t i = 0; i < sizeof states / sizeof states[0]; i++)
        if (!strcmp(s, states[i]))
            return 1;
    return 0;
}

scalr_email_code scalr_email_queue_get_status(scalr_email_queue *q, scalr_email_queue_status *st,
                                              scalr_email_error *err)
{
    se_error_clear(err);
    if (!q || !st)
        return se_fail(err, SCALR_EMAIL_EINVAL, "QUEUE", "queue_get_status: NULL argument");
    memset(st, 0, sizeof *st);
    se_qres r = {0};
    scalr_email_code rc =
        se_qstore_exec(q->st, "SELECT state, COUNT(*) FROM scalr_email_queue GROUP BY state", NULL,
                       0, &r, NULL, err);
    if (rc != SCALR_EMAIL_OK)
        return rc;
    for (size_t i = 0; i < r.rows; i++) {
        const char *s = se_qres_text(&r, i, 0);
        long long n = se_qres_int(&r, i, 1);
        long long *slot[] = {&st->queued,  &st->leased,    &st->sent, &st->failed,
                             &st->expired, &st->cancelled, &st->held, &st->unknown};
        for (size_t k = 0; s && k < 8; k++)
            if (!strcmp(s, states[k]))
                *slot[k] = n;
    }
    se_qres_free(&r);
    rc = se_qstore_exec(q->st,
                        "SELECT NOW_MS, (SELECT MIN(created_at) FROM scalr_email_queue WHERE state "
                        "= 'queued'), (SELECT MIN(run_at) FROM scalr_email_queue WHERE state = "
                        "'queued'), (SELECT COUNT(*) FROM scalr_email_queue WHERE state = 'sent' "
                        "AND finished_at > NOW_MS - 60000)",
                        NULL, 0, &r, NULL, err);
    if (rc != SCALR_EMAIL_OK)
        return rc;
    if (r.rows) {
        st->now = se_qres_int(&r, 0, 0);
        long long oldest = se_qres_int(&r, 0, 1);
        st->oldest_queued_ms = oldest ? st->now - oldest : 0;
        if (st->oldest_queued_ms < 0)
            st->oldest_queued_ms = 0;
        st->next_run_at = se_qres_int(&r, 0, 2);
        st->sent_last_minute = se_qres_int(&r, 0, 3);
    }
    se_qres_free(&r);
    return SCALR_EMAIL_OK;
}

static scalr_email_code act_all(scalr_email_queue *q, const char *sql, const se_qval *p, int np,
                                long long *changed, scalr_email_error *err);

typedef void (*hold_fn)(void *arg, const char *name, int held, long long paused_until,
                        const char *reason);

/* The held or paused rows of a holds table (providers or profiles). */
static scalr_email_code list_holds(scalr_email_queue *q, const char *sql, hold_fn fn, void *arg,
                                   scalr_email_error *err)
{
    se_qres r = {0};
    scalr_email_code rc = se_qstore_exec(q->st, sql, NULL, 0, &r, NULL, err);
    if (rc != SCALR_EMAIL_OK)
        return rc;
    for (size_t i = 0; i < r.rows; i++)
        fn(arg, se_qres_text(&r, i, 0), (int)se_qres_int(&r, i, 1), se_qres_int(&r, i, 2),
           se_qres_text(&r, i, 3));
    se_qres_free(&r);
    return SCALR_EMAIL_OK;
}

scalr_email_code scalr_email_queue_profiles(scalr_email_queue *q, hold_fn fn, void *arg,
                                            scalr_email_error *err)
{
    se_error_clear(err);
    if (!q || !fn)
        return se_fail(err, SCALR_EMAIL_EINVAL, "QUEUE", "queue_profiles: NULL argument");
    return list_holds(q,
                      "SELECT profile, held, COALESCE(paused_until, 0), COALESCE(reason, '') "
                      "FROM scalr_email_profiles WHERE held = 1 OR paused_until > NOW_MS "
                      "ORDER BY profile",
                      fn, arg, err);
}

scalr_email_code scalr_email_queue_unsubscribe_missing(scalr_email_queue *q,
                                                       void (*fn)(void *arg, const char *tenant,
                                                                  long long count),
                                                       void *arg, scalr_email_error *err)
{
    se_error_clear(err);
    if (!q || !fn)
        return se_fail(err, SCALR_EMAIL_EINVAL, "QUEUE",
                       "queue_unsubscribe_missing: NULL argument");
    se_qres r = {0};
    scalr_email_code rc =
        se_qstore_exec(q->st,
                       "SELECT tenant, COUNT(*) FROM scalr_email_queue WHERE lane = 'bulk' AND "
                       "has_unsubscribe = 0 "
                       "AND state IN ('queued', 'leased', 'held') GROUP BY tenant ORDER BY tenant",
                       NULL, 0, &r, NULL, err);
    if (rc != SCALR_EMAIL_OK)
        return rc;
    for (size_t i = 0; i < r.rows; i++)
        fn(arg, se_qres_text(&r, i, 0) ? se_qres_text(&r, i, 0) : "", se_qres_int(&r, i, 1));
    se_qres_free(&r);
    return SCALR_EMAIL_OK;
}

scalr_email_code scalr_email_queue_release_profile(scalr_email_queue *q, const char *profile,
                                                   scalr_email_error *err)
{
    se_error_clear(err);
    if (!q || !profile)
        return se_fail(err, SCALR_EMAIL_EINVAL, "QUEUE", "queue_release_profile: NULL argument");
    const se_qval p[] = {QT(profile)};
    long long n = 0;
    scalr_email_code rc = act_all(q,
                                  "DELETE FROM scalr_email_profiles WHERE profile = ? AND (held = "
                                  "1 OR paused_until IS NOT NULL)",
                                  p, 1, &n, err);
    if (rc == SCALR_EMAIL_OK && n == 0)
        return se_fail(err, SCALR_EMAIL_ENOTFOUND, "QUEUE",
                       "profile '%.64s' is neither held nor paused", profile);
    return rc;
}

scalr_email_code scalr_email_queue_providers(scalr_email_queue *q, hold_fn fn, void *arg,
                                             scalr_email_error *err)
{
    se_error_clear(err);
    if (!q || !fn)
        return se_fail(err, SCALR_EMAIL_EINVAL, "QUEUE", "queue_providers: NULL argument");
    return list_holds(q,
                      "SELECT provider, held, COALESCE(paused_until, 0), COALESCE(reason, '') "
                      "FROM scalr_email_providers WHERE held = 1 OR paused_until > NOW_MS "
                      "ORDER BY provider",
                      fn, arg, err);
}

#define PAGE 500

scalr_email_code scalr_email_queue_list(scalr_email_queue *q, const char *state, size_t limit,
                                        void (*fn)(void *arg, const scalr_email_queue_item *it),
                                        void *arg, scalr_email_error *err)
{
    se_error_clear(err);
    if (!q || !fn)
        return se_fail(err, SCALR_EMAIL_EINVAL, "QUEUE", "queue_list: NULL argument");
    if (state && !known_state(state))
        return se_fail(err, SCALR_EMAIL_EINVAL, "QUEUE",
                       "unknown state \"%.40s\" (queued, leased, sent, failed, expired, cancelled, "
                       "held, unknown)",
                       state);
    /* Pages by id, so memory stays flat however long the queue is. */
    long long after = 0;
    size_t done = 0;
    for (;;) {
        size_t want = limit && limit - done < PAGE ? limit - done : PAGE;
        const se_qval p[] = {QT(state), QT(state), QI(after), QI((int64_t)want)};
        se_qres r = {0};
        scalr_email_code rc =
            se_qstore_exec(q->st,
                           "SELECT " ITEM_COLS
                           " FROM scalr_email_queue WHERE (CAST(? AS TEXT) IS NULL OR state = ?) "
                           "AND id > ? ORDER BY id LIMIT ?",
                           p, 4, &r, NULL, err);
        if (rc != SCALR_EMAIL_OK)
            return rc;
        for (size_t i = 0; i < r.rows; i++) {
            scalr_email_queue_item it;
            fill_item(&r, i, &it);
            fn(arg, &it);
            after = it.id;
        }
        size_t got = r.rows;
        se_qres_free(&r);
        done += got;
        if (got < want || (limit && done >= limit))
            return SCALR_EMAIL_OK;
    }
}

scalr_email_code scalr_email_queue_show(scalr_email_queue *q, long long id,
                                        void (*item)(void *arg, const scalr_email_queue_item *it),
                                        void (*attempt)(void *arg,
                                                        const scalr_email_queue_attempt *a),
                                        void *arg, scalr_email_error *err)
{
    se_error_clear(err);
    if (!q)
        return se_fail(err, SCALR_EMAIL_EINVAL, "QUEUE", "queue_show: NULL argument");
    const se_qval p[] = {QI(id)};
    se_qres r = {0};
    scalr_email_code rc = se_qstore_exec(
        q->st, "SELECT " ITEM_COLS " FROM scalr_email_queue WHERE id = ?", p, 1, &r, NULL, err);
    if (rc != SCALR_EMAIL_OK)
        return rc;
    if (!r.rows) {
        se_qres_free(&r);
        return se_fail(err, SCALR_EMAIL_ENOTFOUND, "QUEUE", "no queued message with id %lld", id);
    }
    if (item) {
        scalr_email_queue_item it;
        fill_item(&r, 0, &it);
        item(arg, &it);
    }
    se_qres_free(&r);
    if (!attempt)
        return SCALR_EMAIL_OK;
    rc = se_qstore_exec(q->st,
                        "SELECT n, at, worker, outcome, stage, smtp_code, enhanced, recipient, "
                        "server_text, message FROM scalr_email_attempts WHERE queue_id = ? ORDER "
                        "BY n, id",
                        p, 1, &r, NULL, err);
    if (rc != SCALR_EMAIL_OK)
        return rc;
    for (size_t i = 0; i < r.rows; i++) {
        const scalr_email_queue_attempt a = {
            .n = (int)se_qres_int(&r, i, 0),
            .at = se_qres_int(&r, i, 1),
            .worker = se_qres_text(&r, i, 2),
            .outcome = se_qres_text(&r, i, 3),
            .stage = se_qres_text(&r, i, 4),
            .smtp_code = (int)se_qres_int(&r, i, 5),
            .enhanced = se_qres_text(&r, i, 6),
            .recipient = se_qres_text(&r, i, 7),
            .server_text = se_qres_text(&r, i, 8),
            .message = se_qres_text(&r, i, 9),
        };
        attempt(arg, &a);
    }
    se_qres_free(&r);
    return SCALR_EMAIL_OK;
}

/* Act on one row: run sql (whose last parameter is the id); when it
 * changes nothing, say whether the row is missing or in the wrong state. */
static scalr_email_code act_one(scalr_email_queue *q, const char *verb, const char *sql,
                                const se_qval *p, int np, long long id, const char *allowed,
                                long long *changed, scalr_email_error *err)
{
    int64_t n = 0;
    scalr_email_code rc = se_qstore_begin(q->st, err);
    if (rc == SCALR_EMAIL_OK)
        rc = se_qstore_exec(q->st, sql, p, np, NULL, &n, err);
    if (rc != SCALR_EMAIL_OK)
        return se_qstore_abort(q->st, rc);
    if (n == 0) {
        const se_qval k[] = {QI(id)};
        se_qres r = {0};
        rc = se_qstore_exec(q->st, "SELECT state FROM scalr_email_queue WHERE id = ?", k, 1, &r,
                            NULL, err);
        if (rc == SCALR_EMAIL_OK) {
            if (!r.rows)
                rc = se_fail(err, SCALR_EMAIL_ENOTFOUND, "QUEUE", "no queued message with id %lld",
                             id);
            else
                rc = se_fail(err, SCALR_EMAIL_EINVAL, "QUEUE",
                             "cannot %s message %lld: it is %s (only %s)", verb, id,
                             se_qres_text(&r, 0, 0), allowed);
        }
        se_qres_free(&r);
        return se_qstore_abort(q->st, rc);
    }
    if (changed)
        *changed = n;
    return se_qstore_commit(q->st, err);
}

static scalr_email_code act_all(scalr_email_queue *q, const char *sql, const se_qval *p, int np,
                                long long *changed, scalr_email_error *err)
{
    int64_t n = 0;
    scalr_email_code rc = se_qstore_begin(q->st, err);
    if (rc == SCALR_EMAIL_OK)
        rc = se_qstore_exec(q->st, sql, p, np, NULL, &n, err);
    if (rc != SCALR_EMAIL_OK)
        return se_qstore_abort(q->st, rc);
    if (changed)
        *changed = n;
    return se_qstore_commit(q->st, err);
}

#define RETRY_SET                                                                                  \
    "UPDATE scalr_email_queue SET state = 'queued', run_at = NOW_MS, attempts = 0, "               \
    "expire_at = CASE WHEN expire_at IS NULL THEN NULL ELSE NOW_MS + (expire_at - created_at) "    \
    "END, finished_at = NULL, updated_at = NOW_MS WHERE body IS NOT NULL AND "
#define RETRYABLE "state IN ('failed', 'expired', 'held', 'unknown', 'queued')"

scalr_email_code scalr_email_queue_retry(scalr_email_queue *q, long long id, const char *state,
                                         long long *changed, scalr_email_error *err)
{
    se_error_clear(err);
    if (changed)
        *changed = 0;
    if (!q)
        return se_fail(err, SCALR_EMAIL_EINVAL, "QUEUE", "queue_retry: NULL argument");
    if (id > 0) {
        const se_qval p[] = {QI(id)};
        return act_one(q, "retry", RETRY_SET RETRYABLE " AND id = ?", p, 1, id,
                       "failed, expired, held, unknown or queued messages can be retried", changed,
                       err);
    }
    if (!state || !known_state(state) || !strcmp(state, "leased") || !strcmp(state, "sent") ||
        !strcmp(state, "cancelled"))
        return se_fail(err, SCALR_EMAIL_EINVAL, "QUEUE",
                       "retry --state takes failed, expired, held, unknown or queued");
    const se_qval p[] = {QT(state)};
    return act_all(q, RETRY_SET "state = ?", p, 1, changed, err);
}

scalr_email_code scalr_email_queue_cancel(scalr_email_queue *q, long long id,
                                          scalr_email_error *err)
{
    se_error_clear(err);
    if (!q || id <= 0)
        return se_fail(err, SCALR_EMAIL_EINVAL, "QUEUE", "queue_cancel: needs a queue and an id");
    const se_qval p[] = {QI(id)};
    return act_one(q, "cancel",
                   "UPDATE scalr_email_queue SET state = 'cancelled', finished_at = NOW_MS, "
                   "updated_at = NOW_MS, last_error = 'cancelled by an operator' WHERE state IN "
                   "('queued', 'held', 'unknown') AND id = ?",
                   p, 1, id, "queued, held or unknown messages can be cancelled", NULL, err);
}

scalr_email_code scalr_email_queue_hold(scalr_email_queue *q, long long id, long long *changed,
                                        scalr_email_error *err)
{
    se_error_clear(err);
    if (changed)
        *changed = 0;
    if (!q)
        return se_fail(err, SCALR_EMAIL_EINVAL, "QUEUE", "queue_hold: NULL argument");
#define HOLD                                                                                       \
    "UPDATE scalr_email_queue SET state = 'held', updated_at = NOW_MS, last_error = 'held by an "  \
    "operator' WHERE state = 'queued'"
    if (id > 0) {
        const se_qval p[] = {QI(id)};
        return act_one(q, "hold", HOLD " AND id = ?", p, 1, id, "queued messages can be held",
                       changed, err);
    }
    return act_all(q, HOLD, NULL, 0, changed, err);
}

scalr_email_code scalr_email_queue_release(scalr_email_queue *q, long long id, long long *changed,
                                           scalr_email_error *err)
{
    se_error_clear(err);
    if (changed)
        *changed = 0;
    if (!q)
        return se_fail(err, SCALR_EMAIL_EINVAL, "QUEUE", "queue_release: NULL argument");
#define RELEASE                                                                                    \
    "UPDATE scalr_email_queue SET state = 'queued', updated_at = NOW_MS, last_error = NULL "       \
    "WHERE state = 'held'"
    if (id > 0) {
        const se_qval p[] = {QI(id)};
        return act_one(q, "release", RELEASE " AND id = ?", p, 1, id,
                       "held messages can be released", changed, err);
    }
    scalr_email_code rc = act_all(q, RELEASE, NULL, 0, changed, err);
    if (rc == SCALR_EMAIL_OK)
        rc = act_all(q,
                     "UPDATE scalr_email_providers SET held = 0, paused_until = NULL, reason = "
                     "NULL WHERE held = 1 OR paused_until IS NOT NULL",
                     NULL, 0, NULL, err);
    if (rc == SCALR_EMAIL_OK)
        rc = act_all(q, "DELETE FROM scalr_email_profiles", NULL, 0, NULL, err);
    return rc;
}

scalr_email_code scalr_email_queue_purge(scalr_email_queue *q, const char *state,
                                         long long older_than_ms, long long *removed,
                                         scalr_email_error *err)
{
    se_error_clear(err);
    if (removed)
        *removed = 0;
    if (!q)
        return se_fail(err, SCALR_EMAIL_EINVAL, "QUEUE", "queue_purge: NULL argument");
    if (!state || (strcmp(state, "sent") && strcmp(state, "failed") && strcmp(state, "expired") &&
                   strcmp(state, "cancelled")))
        return se_fail(err, SCALR_EMAIL_EINVAL, "QUEUE",
                       "purge --state takes sent, failed, expired or cancelled");
    if (older_than_ms < 0)
        return se_fail(err, SCALR_EMAIL_EINVAL, "QUEUE", "purge: negative age");
    const se_qval p[] = {QT(state), QI(older_than_ms)};
    scalr_email_code rc = se_qstore_begin(q->st, err);
    int64_t n = 0;
    if (rc == SCALR_EMAIL_OK)
        rc = se_qstore_exec(q->st,
                            "DELETE FROM scalr_email_attempts WHERE queue_id IN (SELECT id FROM "
                            "scalr_email_queue WHERE state = ? AND finished_at <= NOW_MS - ?)",
                            p, 2, NULL, NULL, err);
    if (rc == SCALR_EMAIL_OK)
        rc = se_qstore_exec(q->st,
                            "DELETE FROM scalr_email_queue WHERE state = ? AND finished_at <= "
                            "NOW_MS - ?",
                            p, 2, NULL, &n, err);
    if (rc != SCALR_EMAIL_OK)
        return se_qstore_abort(q->st, rc);
    if (removed)
        *removed = n;
    return se_qstore_commit(q->st, err);
}

scalr_email_code scalr_email_queue_depth(scalr_email_queue *q,
                                         void (*fn)(void *arg, const char *state, const char *lane,
                                                    const char *tenant, long long count),
                                         void *arg, scalr_email_error *err)
{
    se_error_clear(err);
    if (!q || !fn)
        return se_fail(err, SCALR_EMAIL_EINVAL, "QUEUE", "queue_depth: NULL argument");
    se_qres r = {0};
    scalr_email_code rc = se_qstore_exec(q->st,
                                         "SELECT state, lane, tenant, COUNT(*) FROM "
                                         "scalr_email_queue GROUP BY state, lane, tenant ORDER BY "
                                         "state, lane, tenant",
                                         NULL, 0, &r, NULL, err);
    if (rc != SCALR_EMAIL_OK)
        return rc;
    for (size_t i = 0; i < r.rows; i++)
        fn(arg, se_qres_text(&r, i, 0), se_qres_text(&r, i, 1), se_qres_text(&r, i, 2),
           se_qres_int(&r, i, 3));
    se_qres_free(&r);
    return SCALR_EMAIL_OK;
}

scalr_email_code scalr_email_queue_begin(scalr_email_queue *q, scalr_email_error *err)
{
    se_error_clear(err);
    if (!q)
        return se_fail(err, SCALR_EMAIL_EINVAL, "QUEUE", "queue_begin: NULL argument");
    return se_qstore_begin(q->st, err);
}

scalr_email_code scalr_email_queue_commit(scalr_email_queue *q, scalr_email_error *err)
{
    se_error_clear(err);
    if (!q)
        return se_fail(err, SCALR_EMAIL_EINVAL, "QUEUE", "queue_commit: NULL argument");
    return se_qstore_commit(q->st, err);
}

void scalr_email_queue_rollback(scalr_email_queue *q)
{
    if (q)
        se_qstore_abort(q->st, SCALR_EMAIL_OK);
}
