/* Batches: many messages over up to K parallel pooled connections, with an
 * optional rate limit shared by all of them (see scalr_email.h). */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "client_int.h"
#include "error.h"

#define DEFAULT_TRIES 3
#define BACKOFF_MS 100
#define MAX_CONNECTIONS 256
#define MAX_PROFILES 1024 /* distinct sender profiles in one batch */

/* A sender profile's client, made the first time a message names it and
 * kept for the batch (or why it could not be made). */
typedef struct prof {
    char *name;
    scalr_email_client *c; /* NULL: rc and err say why */
    scalr_email_code rc;
    scalr_email_error err;
} prof;

typedef struct batch {
    scalr_email_client *c;
    const scalr_email_source *src; /* messages are read one at a time */
    int eof;
    const scalr_email_batch_opts *o;
    unsigned tries;
    pthread_mutex_t lock; /* the source, next, next_slot, failed, first_failed, on_result */
    size_t next;
    long long next_slot; /* rate limit: earliest start of the next message (ms) */
    long long interval;  /* ms between messages, 0: no limit */
    size_t failed;
    size_t first_failed;
    scalr_email_code first_code;
    pthread_mutex_t plock; /* profs */
    prof *profs;
    size_t n_profs;
} batch;

static void sleep_ms(long long ms)
{
    if (ms <= 0)
        return;
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* The next message from the source and its profile name (b->lock held); 0
 * at its end. */
static int take(batch *b, size_t *index, const scalr_email_message **msg, const char **profile)
{
    if (b->eof)
        return 0;
    if (!b->src->next(b->src->arg, b->next, msg)) {
        b->eof = 1;
        return 0;
    }
    *profile = b->src->profile ? b->src->profile(b->src->arg, b->next, *msg) : NULL;
    *index = b->next++;
    return 1;
}

/* The client for a message of profile name (NULL: the batch's), made once
 * per batch: its pool key, From, allowed domains and DKIM keys are the
 * profile's, so one tenant's connection never carries another's mail. */
static scalr_email_client *client_for(batch *b, const char *name, scalr_email_error *e)
{
    /* the batch's own profile: its client, so the lines keep pipelining */
    if (b->c && (!name || (b->c->profile && !strcmp(b->c->profile, name))))
        return b->c;
    if (!name) { /* every line was to name its profile */
        se_fail(e, SCALR_EMAIL_ENOTCONFIGURED, "CONFIG",
                "SMTP is not configured (SMTP_HOST is empty) and the message names no sender "
                "profile");
        return NULL;
    }
    pthread_mutex_lock(&b->plock);
    prof *p = NULL;
    for (size_t i = 0; i < b->n_profs && !p; i++)
        if (!strcmp(b->profs[i].name, name))
            p = &b->profs[i];
    if (!p && b->n_profs >= MAX_PROFILES) {
        pthread_mutex_unlock(&b->plock);
        se_fail(e, SCALR_EMAIL_ECONFIG, "CONFIG",
                "more than %d sender profiles in one batch; split it", MAX_PROFILES);
        return NULL;
    }
    if (!p) {
        prof *more = realloc(b->profs, (b->n_profs + 1) * sizeof *more);
        char *copy = strdup(name);
        if (!more || !copy) {
            if (more)
                b->profs = more;
            free(copy);
            pthread_mutex_unlock(&b->plock);
            se_fail(e, SCALR_EMAIL_ENOMEM, "CONFIG", "out of memory");
            return NULL;
        }
        b->profs = more;
        p = &b->profs[b->n_profs++];
        memset(p, 0, sizeof *p);
        p->name = copy;
        p->rc = scalr_email_client_from_profile(&p->c, name, b->o ? b->o->env_file : NULL,
                                                b->c ? b->c->trace : NULL,
                                                b->c ? b->c->trace_arg : NULL, &p->err);
    }
    scalr_email_client *c = p->c;
    if (!c)
        *e = p->err;
    pthread_mutex_unlock(&b->plock);
    return c;
}

/* Claim the next message and its start time: a token bucket of depth one
 * across every connection (at most `rate` starts in any second). */
static int claim(batch *b, size_t *index, const scalr_email_message **msg, const char **profile)
{
    long long wait = 0;
    pthread_mutex_lock(&b->lock);
    int ok = take(b, index, msg, profile);
    if (ok && b->interval) {
        long long now = se_pool_now_ms();
        long long slot = b->next_slot > now ? b->next_slot : now;
        b->next_slot = slot + b->interval;
        wait = slot - now;
    }
    pthread_mutex_unlock(&b->lock);
    sleep_ms(wait);
    return ok;
}

static void report(batch *b, size_t i, scalr_email_code rc, const scalr_email_error *e)
{
    pthread_mutex_lock(&b->lock);
    if (rc != SCALR_EMAIL_OK && (b->failed++ == 0 || i < b->first_failed)) {
        b->first_failed = i;
        b->first_code = rc;
    }
    if (b->o && b->o->on_result)
        b->o->on_result(b->o->on_result_arg, i, e);
    pthread_mutex_unlock(&b->lock);
}

/* A message of the batch being sent by one worker. */
typedef struct job {
    size_t index;
    scalr_email_client *c; /* the batch's, or its profile's */
    se_composed comp;
    unsigned tries;
    int queued; /* its commands follow the previous message's end of data */
} job;

static void job_done(batch *b, job *j, scalr_email_code rc, scalr_email_error *e)
{
    e->code = rc;
    snprintf(e->message_id, sizeof e->message_id, "%s", j->comp.message_id);
    if (rc == SCALR_EMAIL_OK)
        snprintf(e->message, sizeof e->message, "sent %s", j->comp.message_id);
    report(b, j->index, rc, e);
    se_composed_free(&j->comp);
    memset(j, 0, sizeof *j);
}

/* Claim and compose the next message.  `now`: only when the rate limit
 * allows it right away (to join a flight); else wait for its slot.
 * Messages that fail to compose are reported and skipped. */
static int next_job(batch *b, job *j, int now)
{
    for (;;) {
        size_t i;
        const scalr_email_message *msg = NULL;
        const char *profile = NULL;
        if (now) {
            pthread_mutex_lock(&b->lock);
            long long t = se_pool_now_ms();
            int ok = (!b->interval || b->next_slot <= t) && take(b, &i, &msg, &profile);
            if (ok && b->interval)
                b->next_slot = (b->next_slot > t ? b->next_slot : t) + b->interval;
            pthread_mutex_unlock(&b->lock);
            if (!ok)
                return 0;
        } else if (!claim(b, &i, &msg, &profile)) {
            return 0;
        }
        memset(j, 0, sizeof *j);
        j->index = i;
        scalr_email_error e;
        se_error_clear(&e);
        scalr_email_client *c = j->c = client_for(b, profile, &e);
        /* Composed (copied) here; then the source may forget the message. */
        scalr_email_code rc =
            c ? se_compose(msg, c->s.from, &se_client_compose_opts, &j->comp, &e) : e.code;
        if (rc == SCALR_EMAIL_OK && se_client_apply_return_path(c, msg, &j->comp) < 0)
            rc = se_fail(&e, SCALR_EMAIL_ENOMEM, "COMPOSE", "out of memory");
        if (rc == SCALR_EMAIL_OK &&
            ((rc = se_client_check_from(c, &j->comp, &e)) != SCALR_EMAIL_OK ||
             (rc = se_client_dkim_sign(c, &j->comp, &e)) != SCALR_EMAIL_OK))
            se_composed_free(&j->comp);
        if (b->src->release) {
            pthread_mutex_lock(&b->lock);
            b->src->release(b->src->arg, i, msg);
            pthread_mutex_unlock(&b->lock);
        }
        if (rc == SCALR_EMAIL_OK)
            return 1;
        e.code = rc;
        report(b, i, rc, &e);
    }
}

/* The worker's state, for the pipeline callbacks. */
typedef struct lane {
    batch *b;
    job cur, nxt;
    int have_nxt;
    job pre; /* composed and signed during a wait, not yet queued */
    int have_pre;
} lane;

/* While the server answers: the next message is composed (and signed)
 * now, so that it is ready when it may join the next flight. */
static void lane_idle(void *arg)
{
    lane *l = arg;
    if (!l->have_pre && next_job(l->b, &l->pre, 1))
        l->have_pre = 1;
}

static void lane_queue(void *arg, se_smtp *eng)
{
    lane *l = arg;
    if (l->have_nxt)
        return;
    if (l->have_pre) {
        l->nxt = l->pre;
        memset(&l->pre, 0, sizeof l->pre);
        l->have_pre = 0;
    } else if (!next_job(l->b, &l->nxt, 1)) {
        return;
    }
    l->have_nxt = 1;
    if (l->nxt.comp.n_parts)
        return; /* streamed attachments: sent on its own afterwards */
    if (l->nxt.c != l->cur.c)
        return; /* another profile's: never on this one's connection */
    const se_composed *c = &l->nxt.comp;
    const se_smtp_envelope env = {
        .mail_from = c->mail_from,
        .rcpt = (const char *const *)c->rcpt,
        .n_rcpt = c->n_rcpt,
        .needs_smtputf8 = c->needs_smtputf8,
        .is_8bit = c->is_8bit,
        .dsn = c->dsn,
        .dsn_notify = c->dsn_notify,
        .dsn_ret = c->dsn_ret,
        .dsn_envid = c->dsn_envid,
    };
    scalr_email_error why;
    se_error_clear(&why);
    int rc = se_smtp_mail_next(eng, &env, c->data.data, c->data.len, &why);
    if (rc == 0) {
        l->nxt.queued = 1;
    } else if (rc > 0) { /* refused before anything was sent (SIZE, SMTPUTF8) */
        job_done(l->b, &l->nxt, why.code, &why);
        l->have_nxt = 0;
    }
}

static void lane_done(void *arg, int ok, const scalr_email_error *e)
{
    lane *l = arg;
    scalr_email_error copy = *e;
    job_done(l->b, &l->cur, ok ? SCALR_EMAIL_OK : (e->code ? e->code : SCALR_EMAIL_EPROTOCOL),
             &copy);
    l->cur = l->nxt; /* the queued one is under way now: its first try */
    l->cur.queued = 0;
    l->cur.tries = 1;
    memset(&l->nxt, 0, sizeof l->nxt);
    l->have_nxt = 0;
}

static void *worker(void *arg)
{
    lane l = {.b = arg};
    batch *b = l.b;
    se_session *ss = NULL;
    scalr_email_client *ss_c = NULL; /* whose session ss is */
    const se_pipeline pl = {.queue = lane_queue, .done = lane_done, .idle = lane_idle, .arg = &l};
    for (;;) {
        if (l.have_nxt) { /* not sent after all: it goes on its own */
            l.cur = l.nxt;
            l.cur.queued = 0;
            memset(&l.nxt, 0, sizeof l.nxt);
            l.have_nxt = 0;
        } else if (l.have_pre) {
            l.cur = l.pre;
            memset(&l.pre, 0, sizeof l.pre);
            l.have_pre = 0;
        } else if (!next_job(b, &l.cur, 0)) {
            break;
        }
        if (ss && ss_c != l.cur.c) { /* back to its own profile's pool */
            se_client_release(ss_c, ss);
            ss = NULL;
        }
        for (;;) {
            scalr_email_error e;
            se_error_clear(&e);
            int handed = 0;
            scalr_email_code rc = SCALR_EMAIL_OK;
            l.cur.tries++;
            if (!ss) {
                ss_c = l.cur.c;
                rc = se_client_session(ss_c, &ss, &e);
            }
            if (ss) {
                rc = se_client_transact(ss_c, ss, &l.cur.comp, &e, &handed, &pl);
                if (!se_smtp_reusable(ss->eng)) {
                    se_client_release(ss_c, ss); /* closes it */
                    ss = NULL;
                }
            }
            if (l.have_nxt && l.nxt.queued) {
                /* The session ended before the previous message's end of
                 * data was answered: the queued one's content was never
                 * sent, so it may go again (counted as a try). */
                l.nxt.queued = 0;
                l.nxt.tries++;
            }
            /* Never again once handed over: the server may have it. */
            if (rc == SCALR_EMAIL_OK || handed || !se_client_conn_failure(&e) ||
                l.cur.tries >= b->tries) {
                job_done(b, &l.cur, rc, &e);
                break;
            }
            if (ss) { /* a 421 leaves the session closing: take another one */
                se_client_release(ss_c, ss);
                ss = NULL;
            }
            sleep_ms((long long)BACKOFF_MS << (l.cur.tries - 1));
        }
        if (l.have_nxt && l.nxt.tries >= b->tries) { /* its tries are used up */
            scalr_email_error e;
            se_fail(&e, SCALR_EMAIL_EIO, "MAIL", "the connection was lost %u times", l.nxt.tries);
            job_done(b, &l.nxt, SCALR_EMAIL_EIO, &e);
            l.have_nxt = 0;
        }
    }
    if (ss)
        se_client_release(ss_c, ss);
    return NULL;
}

scalr_email_code scalr_email_client_send_stream(scalr_email_client *c,
                                                const scalr_email_source *src,
                                                const scalr_email_batch_opts *opts,
                                                scalr_email_error *err)
{
    se_error_clear(err);
    /* Without a client of its own, every message must name a profile. */
    if (!src || !src->next || (!c && !src->profile))
        return se_fail(err, SCALR_EMAIL_EINVAL, "COMPOSE", "send_stream: NULL argument");
    if (opts && !(opts->rate >= 0 && opts->rate <= 1e6))
        return se_fail(err, SCALR_EMAIL_EINVAL, "CONFIG", "send_stream: rate out of range");
    batch b = {.c = c, .src = src, .o = opts};
    b.tries = opts && opts->max_tries ? opts->max_tries : DEFAULT_TRIES;
    if (opts && opts->rate > 0) {
        b.interval = (long long)(1000.0 / opts->rate + 0.5);
        if (b.interval < 1)
            b.interval = 1;
    }
    unsigned k = opts && opts->connections ? opts->connections : 1;
    if (k > MAX_CONNECTIONS)
        k = MAX_CONNECTIONS;
    if (opts && opts->expected && k > opts->expected)
        k = (unsigned)opts->expected;
    if (pthread_mutex_init(&b.lock, NULL) != 0)
        return se_fail(err, SCALR_EMAIL_ENOMEM, "CONNECT", "cannot create a mutex");
    if (pthread_mutex_init(&b.plock, NULL) != 0) {
        pthread_mutex_destroy(&b.lock);
        return se_fail(err, SCALR_EMAIL_ENOMEM, "CONNECT", "cannot create a mutex");
    }

    pthread_t *th = calloc(k, sizeof *th);
    unsigned started = 0;
    if (th)
        for (; started + 1 < k; started++)
            if (pthread_create(&th[started], NULL, worker, &b) != 0)
                break;
    worker(&b); /* this thread is one of the connections */
    for (unsigned i = 0; i < started; i++)
        pthread_join(th[i], NULL);
    free(th);
    pthread_mutex_destroy(&b.lock);
    pthread_mutex_destroy(&b.plock);
    for (size_t i = 0; i < b.n_profs; i++) {
        scalr_email_client_free(b.profs[i].c);
        free(b.profs[i].name);
    }
    free(b.profs);

    if (!b.failed)
        return SCALR_EMAIL_OK;
    se_fail(err, b.first_code, "", "%zu of %zu messages were not accepted (first: message %zu)",
            b.failed, b.next, b.first_failed + 1);
    return b.first_code;
}

/* The array form: a source over msgs, results kept by index. */
typedef struct array_src {
    const scalr_email_message *msgs;
    size_t n;
    scalr_email_error *results;
    const scalr_email_batch_opts *user;
} array_src;

static int array_next(void *arg, size_t index, const scalr_email_message **msg)
{
    array_src *a = arg;
    if (index >= a->n)
        return 0;
    *msg = &a->msgs[index];
    return 1;
}

static void array_result(void *arg, size_t index, const scalr_email_error *e)
{
    array_src *a = arg;
    if (a->results)
        a->results[index] = *e;
    if (a->user && a->user->on_result)
        a->user->on_result(a->user->on_result_arg, index, e);
}

scalr_email_code scalr_email_client_send_batch(scalr_email_client *c,
                                               const scalr_email_message *msgs, size_t n,
                                               const scalr_email_batch_opts *opts,
                                               scalr_email_error *results, scalr_email_error *err)
{
    se_error_clear(err);
    if (!c || (!msgs && n))
        return se_fail(err, SCALR_EMAIL_EINVAL, "COMPOSE", "send_batch: NULL argument");
    array_src a = {.msgs = msgs, .n = n, .results = results, .user = opts};
    scalr_email_batch_opts o = opts ? *opts : (scalr_email_batch_opts){0};
    o.on_result = array_result;
    o.on_result_arg = &a;
    o.expected = n ? n : 1;
    const scalr_email_source src = {.next = array_next, .arg = &a};
    return scalr_email_client_send_stream(c, &src, &o, err);
}
