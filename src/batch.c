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

typedef struct batch {
    scalr_email_client *c;
    const scalr_email_message *msgs;
    size_t n;
    const scalr_email_batch_opts *o;
    scalr_email_error *results;
    unsigned tries;
    pthread_mutex_t lock; /* next, next_slot, failed, first_failed, on_result */
    size_t next;
    long long next_slot;  /* rate limit: earliest start of the next message (ms) */
    long long interval;   /* ms between messages, 0: no limit */
    size_t failed;
    size_t first_failed;
} batch;

static void sleep_ms(long long ms)
{
    if (ms <= 0)
        return;
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* Claim the next message and its start time: a token bucket of depth one
 * across every connection (at most `rate` starts in any second). */
static int claim(batch *b, size_t *index)
{
    long long wait = 0;
    pthread_mutex_lock(&b->lock);
    int ok = b->next < b->n;
    if (ok) {
        *index = b->next++;
        if (b->interval) {
            long long now = se_pool_now_ms();
            long long slot = b->next_slot > now ? b->next_slot : now;
            b->next_slot = slot + b->interval;
            wait = slot - now;
        }
    }
    pthread_mutex_unlock(&b->lock);
    sleep_ms(wait);
    return ok;
}

static void report(batch *b, size_t i, scalr_email_code rc, const scalr_email_error *e)
{
    pthread_mutex_lock(&b->lock);
    if (rc != SCALR_EMAIL_OK && (b->failed++ == 0 || i < b->first_failed))
        b->first_failed = i;
    if (b->results)
        b->results[i] = *e;
    if (b->o && b->o->on_result)
        b->o->on_result(b->o->on_result_arg, i, e);
    pthread_mutex_unlock(&b->lock);
}

/* One message on the worker's session *ss (replaced when it breaks). */
static scalr_email_code send_one(batch *b, se_session **ss, const scalr_email_message *m,
                                 scalr_email_error *e)
{
    se_composed comp;
    memset(&comp, 0, sizeof comp);
    scalr_email_code rc = se_compose(m, b->c->s.from, &se_client_compose_opts, &comp, e);
    if (rc != SCALR_EMAIL_OK)
        return rc;
    snprintf(e->message_id, sizeof e->message_id, "%s", comp.message_id);
    for (unsigned attempt = 1;; attempt++) {
        int handed = 0;
        if (!*ss)
            rc = se_client_session(b->c, ss, e);
        if (*ss) {
            rc = se_client_transact(b->c, *ss, &comp, e, &handed);
            if (!se_smtp_reusable((*ss)->eng)) {
                se_client_release(b->c, *ss); /* closes it */
                *ss = NULL;
            }
        }
        /* Never again once handed over: the server may have it. */
        if (rc == SCALR_EMAIL_OK || handed || !se_client_conn_failure(e) || attempt >= b->tries)
            break;
        if (*ss) { /* a 421 leaves the session closing: take another one */
            se_client_release(b->c, *ss);
            *ss = NULL;
        }
        sleep_ms((long long)BACKOFF_MS << (attempt - 1));
    }
    se_composed_free(&comp);
    return rc;
}

static void *worker(void *arg)
{
    batch *b = arg;
    se_session *ss = NULL;
    size_t i;
    while (claim(b, &i)) {
        scalr_email_error e;
        se_error_clear(&e);
        scalr_email_code rc = send_one(b, &ss, &b->msgs[i], &e);
        e.code = rc;
        report(b, i, rc, &e);
    }
    se_client_release(b->c, ss);
    return NULL;
}

scalr_email_code scalr_email_client_send_batch(scalr_email_client *c,
                                               const scalr_email_message *msgs, size_t n,
                                               const scalr_email_batch_opts *opts,
                                               scalr_email_error *results,
                                               scalr_email_error *err)
{
    se_error_clear(err);
    if (!c || (!msgs && n))
        return se_fail(err, SCALR_EMAIL_EINVAL, "COMPOSE", "send_batch: NULL argument");
    if (opts && !(opts->rate >= 0 && opts->rate <= 1e6))
        return se_fail(err, SCALR_EMAIL_EINVAL, "CONFIG", "send_batch: rate out of range");
    batch b = {.c = c, .msgs = msgs, .n = n, .o = opts, .results = results};
    b.tries = opts && opts->max_tries ? opts->max_tries : DEFAULT_TRIES;
    if (opts && opts->rate > 0) {
        b.interval = (long long)(1000.0 / opts->rate + 0.5);
        if (b.interval < 1)
            b.interval = 1;
    }
    unsigned k = opts && opts->connections ? opts->connections : 1;
    if (k > MAX_CONNECTIONS)
        k = MAX_CONNECTIONS;
    if (k > n)
        k = n ? (unsigned)n : 1;
    if (pthread_mutex_init(&b.lock, NULL) != 0)
        return se_fail(err, SCALR_EMAIL_ENOMEM, "CONNECT", "cannot create a mutex");

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

    if (!b.failed)
        return SCALR_EMAIL_OK;
    scalr_email_code rc = results ? results[b.first_failed].code : SCALR_EMAIL_EREJECTED;
    se_fail(err, rc, "", "%zu of %zu messages were not accepted (first: message %zu)", b.failed,
            n, b.first_failed + 1);
    return rc;
}
