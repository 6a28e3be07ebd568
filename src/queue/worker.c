/* The queue's worker: K lanes (threads, one connection each) claim small
 * batches, send them with the library's own sessions and record each
 * outcome; a keeper thread heartbeats, returns dead workers' leases and
 * prunes.  Retries are decided by reply class and stage (README, "The
 * queue"); the duplicate window is recorded before the end of data. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "client_int.h"
#include "error.h"
#include "queue/queue_int.h"
#include "queue/store_int.h"

#define MAX_LANES 64
#define CLAIM_BATCH 4 /* small: a new transactional message never waits long */

typedef struct lane lane;

/* A sender profile the worker has met: its client (its own pooled
 * connections, made once for the worker's life) and its rate. */
typedef struct wprofile {
    char *name;
    scalr_email_client *c;
    double rate;      /* SCALR_EMAIL_QUEUE_RATE, lowered after throttling; 0: none */
    double next_send; /* monotonic seconds: its next free slot */
} wprofile;

#define MAX_SKIP 64 /* profiles over their rate passed over in one claim */

typedef struct worker {
    scalr_email_queue *q;
    scalr_email_client *c;
    scalr_email_work_opts o;
    const char *provider;
    char id[160];
    pthread_mutex_t mu; /* events, rate, sessions in use, the fatal error */
    /* Writes of this worker's threads take turns here rather than in
     * SQLite's busy handler, which sleeps in steps of milliseconds. */
    pthread_mutex_t db_mu;
    int serialize; /* SQLite: one writer at a time anyway */
    /* Group commit: the lanes' inflight records and outcomes, written
     * together in one transaction (one fsync) by whichever lane comes
     * first, on gst. */
    se_qstore *gst;
    pthread_mutex_t gc_mu;
    pthread_cond_t gc_cond;
    struct gop *gc_head, *gc_tail;
    int gc_busy;
    double next_send; /* rate limit: monotonic seconds */
    double rate;      /* current rate (lowered after throttling) */
    int drained;
    int lanes_left;
    pthread_cond_t lanes_done;
    scalr_email_code fatal;
    scalr_email_error fatal_err;
    const char *crash_at; /* SCALR_EMAIL_TEST_CRASH_AT: test-only */
    lane *lanes;
    unsigned n_lanes;
    pthread_mutex_t pmu; /* the profiles below */
    wprofile **profiles;
    size_t n_profiles;
    /* Clients of held profiles, replaced (the fix is usually in the
     * profile's file) but perhaps still in another lane's hands: freed at
     * the end. */
    scalr_email_client **retired;
    size_t n_retired;
} worker;

struct lane {
    worker *w;
    se_qstore *st;
    se_session *active; /* under w->mu: shut down by an immediate stop */
    int64_t row_id;
    int eod_written;
    pthread_t th;
};

/* One write of a lane for the group commit.  An inflight record is waited
 * for (the end of data must not be written before it is durable); an
 * outcome is not: it rides with the next commit (the next message's
 * inflight record, a claim's flush, the lane's end), which keeps the
 * window at one message per connection (README, "The duplicate window"). */
typedef struct gop {
    struct gop *next;
    int kind; /* 0: inflight, 1: outcome, 2: nothing (a flush) */
    int lazy; /* an outcome: heap-allocated, freed once written */
    int64_t id, delay;
    char outcome[16];
    scalr_email_error e;    /* the outcome's details (copied) */
    scalr_email_error ferr; /* a lazy op's own failure */
    scalr_email_code rc;
    scalr_email_error *err;
    int done;
} gop;

static scalr_email_code run_op(worker *w, gop *o)
{
    if (o->kind == 0)
        return se_qstore_inflight(w->gst, w->id, o->id, o->err);
    if (o->kind == 2)
        return SCALR_EMAIL_OK;
    const se_qattempt a = {
        .outcome = o->outcome,
        .stage = o->e.stage,
        .smtp_code = o->e.smtp_code,
        .enhanced = o->e.enhanced,
        .recipient = o->e.recipient,
        .server_text = o->e.server_text,
        .message = o->e.message,
    };
    return se_qstore_finish(w->gst, w->id, o->id, &a, o->delay, o->err);
}

static int lease_lost(const gop *o)
{
    return o->rc == SCALR_EMAIL_ESTORE && strstr(o->err->message, "lease lost");
}

static void fatal(worker *w, const scalr_email_error *e);
static void crash_point(const struct worker *w, const char *step);

/* Queue o; unless it is lazy, return once it (and everything queued
 * before it) is durable: the first lane to find no commit under way
 * writes everything queued in one transaction. */
static scalr_email_code group_write(worker *w, gop *o)
{
    pthread_mutex_lock(&w->gc_mu);
    if (w->gc_tail)
        w->gc_tail->next = o;
    else
        w->gc_head = o;
    w->gc_tail = o;
    if (o->lazy) {
        pthread_mutex_unlock(&w->gc_mu);
        return SCALR_EMAIL_OK;
    }
    while (!o->done) {
        if (w->gc_busy) {
            pthread_cond_wait(&w->gc_cond, &w->gc_mu);
            continue;
        }
        w->gc_busy = 1;
        gop *batch = w->gc_head;
        w->gc_head = w->gc_tail = NULL;
        pthread_mutex_unlock(&w->gc_mu);

        if (w->serialize)
            pthread_mutex_lock(&w->db_mu);
        scalr_email_error e;
        int ok = se_qstore_begin(w->gst, &e) == SCALR_EMAIL_OK;
        for (gop *g = batch; ok && g; g = g->next) {
            g->rc = run_op(w, g);
            ok = g->rc == SCALR_EMAIL_OK || lease_lost(g);
        }
        ok = ok && se_qstore_commit(w->gst, &e) == SCALR_EMAIL_OK;
        if (!ok) { /* each alone, so one failure cannot fail the others */
            se_qstore_abort(w->gst, SCALR_EMAIL_OK);
            for (gop *g = batch; g; g = g->next)
                g->rc = run_op(w, g);
        }
        if (w->serialize)
            pthread_mutex_unlock(&w->db_mu);
        for (gop *g = batch; g; g = g->next)
            if (g->kind == 1) {
                if (g->rc != SCALR_EMAIL_OK && !lease_lost(g))
                    fatal(w, g->err);
                crash_point(w, "after_mark");
            }

        pthread_mutex_lock(&w->gc_mu);
        for (gop *g = batch, *nx; g; g = nx) {
            nx = g->next;
            if (g->lazy)
                free(g);
            else
                g->done = 1;
        }
        w->gc_busy = 0;
        pthread_cond_broadcast(&w->gc_cond);
    }
    pthread_mutex_unlock(&w->gc_mu);
    return o->rc;
}

/* Make every queued outcome durable now. */
static void group_flush(worker *w)
{
    scalr_email_error e;
    gop o = {.kind = 2, .err = &e};
    group_write(w, &o);
}

static double mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void sleep_ms(double ms)
{
    if (ms <= 0)
        return;
    struct timespec ts = {(time_t)(ms / 1000),
                          (long)((ms - (double)(long)(ms / 1000) * 1000) * 1e6)};
    nanosleep(&ts, NULL);
}

#define DB(w, call)                                                                                \
    ({                                                                                             \
        if ((w)->serialize)                                                                        \
            pthread_mutex_lock(&(w)->db_mu);                                                       \
        scalr_email_code db_rc_ = (call);                                                          \
        if ((w)->serialize)                                                                        \
            pthread_mutex_unlock(&(w)->db_mu);                                                     \
        db_rc_;                                                                                    \
    })

/* Test-only: SIGKILL this process at a named step, so the crash tests can
 * check what survives.  Does nothing unless the variable names the step. */
static void crash_point(const worker *w, const char *step)
{
    if (w->crash_at && !strcmp(w->crash_at, step))
        kill(getpid(), SIGKILL);
}

static void fatal(worker *w, const scalr_email_error *e)
{
    pthread_mutex_lock(&w->mu);
    if (w->fatal == SCALR_EMAIL_OK) {
        w->fatal = e->code ? e->code : SCALR_EMAIL_ESTORE;
        w->fatal_err = *e;
    }
    pthread_mutex_unlock(&w->mu);
}

static void event(worker *w, long long id, const char *outcome, long long age_ms,
                  const scalr_email_error *e)
{
    if (!w->o.on_event)
        return;
    pthread_mutex_lock(&w->mu);
    w->o.on_event(w->o.arg, id, outcome, age_ms, e);
    pthread_mutex_unlock(&w->mu);
}

/* At most w->rate sends a second over all lanes of this worker. */
static void rate_wait(worker *w)
{
    pthread_mutex_lock(&w->mu);
    if (w->rate <= 0) {
        pthread_mutex_unlock(&w->mu);
        return;
    }
    double now = mono(), at = w->next_send > now ? w->next_send : now;
    w->next_send = at + 1.0 / w->rate;
    pthread_mutex_unlock(&w->mu);
    sleep_ms((at - now) * 1000);
}

/* The worker's entry for profile, its client made on first use (under
 * pmu: two lanes never make two).  A failure is not kept: the profile is
 * held, and tried again once released. */
static scalr_email_code get_profile(worker *w, const char *name, wprofile **out,
                                    scalr_email_client **client, scalr_email_error *e)
{
    pthread_mutex_lock(&w->pmu);
    wprofile *p = NULL;
    for (size_t i = 0; i < w->n_profiles && !p; i++)
        if (!strcmp(w->profiles[i]->name, name))
            p = w->profiles[i];
    scalr_email_code rc = SCALR_EMAIL_OK;
    if (!p) {
        wprofile **g = realloc(w->profiles, (w->n_profiles + 1) * sizeof *g);
        if (g)
            w->profiles = g;
        p = g ? calloc(1, sizeof *p) : NULL;
        if (p && !(p->name = strdup(name))) {
            free(p);
            p = NULL;
        }
        if (!p) {
            pthread_mutex_unlock(&w->pmu);
            return se_fail(e, SCALR_EMAIL_ENOMEM, "QUEUE", "out of memory");
        }
        w->profiles[w->n_profiles++] = p;
    }
    if (!p->c) {
        char *v = NULL;
        rc = se_profile_get(name, w->o.env_file, "SCALR_EMAIL_QUEUE_RATE", &v, e);
        double rate = 0;
        if (rc == SCALR_EMAIL_OK && v) {
            char *end;
            rate = strtod(v, &end);
            if (end == v || *end || !(rate > 0 && rate < 1e6))
                rc = se_fail(e, SCALR_EMAIL_ECONFIG, "CONFIG",
                             "SCALR_EMAIL_QUEUE_RATE of profile '%s' must be messages per "
                             "second (above 0), got '%.40s'",
                             name, v);
        }
        free(v);
        if (rc == SCALR_EMAIL_OK)
            rc = scalr_email_client_from_profile(&p->c, name, w->o.env_file, w->o.trace,
                                                 w->o.trace_arg, e);
        if (rc == SCALR_EMAIL_OK)
            p->rate = rate;
    }
    *client = p->c; /* read here: a hold may replace p->c meanwhile */
    pthread_mutex_unlock(&w->pmu);
    *out = p;
    return rc;
}

/* p was held: its next message, once released, gets a client made from the
 * profile's file again. */
static void retire_client(worker *w, wprofile *p)
{
    pthread_mutex_lock(&w->pmu);
    scalr_email_client **g = realloc(w->retired, (w->n_retired + 1) * sizeof *g);
    if (g) {
        w->retired = g;
        if (p->c)
            w->retired[w->n_retired++] = p->c;
        p->c = NULL;
        p->next_send = 0;
    } /* out of memory: it stays in use, which is only stale */
    pthread_mutex_unlock(&w->pmu);
}

/* Seconds until p may send again (0: now, and the slot is taken). */
static double profile_slot(worker *w, wprofile *p)
{
    pthread_mutex_lock(&w->pmu);
    double wait = 0, now = mono();
    if (p->rate > 0) {
        if (p->next_send > now + 0.002)
            wait = p->next_send - now;
        else
            p->next_send = (p->next_send > now ? p->next_send : now) + 1.0 / p->rate;
    }
    pthread_mutex_unlock(&w->pmu);
    return wait;
}

/* The profiles over their rate now, for the claim to pass over. */
static size_t profiles_to_skip(worker *w, const char **skip)
{
    size_t n = 0;
    pthread_mutex_lock(&w->pmu);
    double now = mono();
    for (size_t i = 0; i < w->n_profiles && n < MAX_SKIP; i++)
        if (w->profiles[i]->rate > 0 && w->profiles[i]->next_send > now + 0.002)
            skip[n++] = w->profiles[i]->name;
    pthread_mutex_unlock(&w->pmu);
    return n;
}

static int64_t backoff(const worker *w, int attempts)
{
    double d = (double)w->o.backoff_base_ms;
    for (int i = 0; i < attempts && d < (double)w->o.backoff_cap_ms; i++)
        d *= 2;
    if (d > (double)w->o.backoff_cap_ms)
        d = (double)w->o.backoff_cap_ms;
    unsigned char r[2] = {0};
    RAND_bytes(r, sizeof r);
    double jitter = 0.5 + 0.5 * ((r[0] << 8 | r[1]) / 65535.0); /* 50-100% */
    int64_t v = (int64_t)(d * jitter);
    return v < 1 ? 1 : v;
}

static int is_throttle(const scalr_email_error *e)
{
    return e->smtp_code == 421 || e->smtp_code == 454 || !strncmp(e->enhanced, "4.7.", 4);
}

/* Provider-wide problems that fail every message until a person fixes them. */
static int is_provider_fault(const scalr_email_error *e)
{
    return e->code == SCALR_EMAIL_EAUTH || e->code == SCALR_EMAIL_ETLS ||
           e->code == SCALR_EMAIL_ENOTCONFIGURED || e->code == SCALR_EMAIL_ECONFIG ||
           e->code == SCALR_EMAIL_EINSECURE;
}

static int before_eod(void *arg, scalr_email_error *err)
{
    lane *l = arg;
    crash_point(l->w, "before_eod");
    gop o = {.kind = 0, .id = l->row_id, .err = err};
    scalr_email_code rc = group_write(l->w, &o);
    return rc != SCALR_EMAIL_OK;
}

static void after_eod(void *arg)
{
    lane *l = arg;
    l->eod_written = 1;
    crash_point(l->w, "after_eod");
}

static int has_8bit(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] >= 0x80)
            return 1;
    return 0;
}

/* One try of one row with client c: returns the outcome and fills e. */
static scalr_email_code try_send(lane *l, scalr_email_client *c, const se_qrow *row,
                                 scalr_email_error *e)
{
    worker *w = l->w;
    se_composed comp;
    memset(&comp, 0, sizeof comp);
    comp.data.data = (char *)row->body;
    comp.data.len = row->size;
    comp.data.cap = row->size + 1;
    comp.mail_from = row->mail_from;
    comp.rcpt = row->rcpt;
    comp.n_rcpt = row->n_rcpt;
    comp.is_8bit = has_8bit(row->body, row->size);
    comp.needs_smtputf8 = has_8bit((const unsigned char *)row->mail_from, strlen(row->mail_from));
    for (size_t i = 0; i < row->n_rcpt; i++)
        comp.needs_smtputf8 |= has_8bit((const unsigned char *)row->rcpt[i], strlen(row->rcpt[i]));
    snprintf(comp.message_id, sizeof comp.message_id, "%s", row->message_id);
    comp.size = row->size;
    const se_pipeline pl = {
        .arg = l,
        .before_eod = before_eod,
        .after_eod = after_eod,
        .eod_timeout_ms = (unsigned)w->o.data_timeout_ms,
    };
    l->row_id = row->id;
    l->eod_written = 0;
    for (int attempt = 0;; attempt++) {
        se_session *ss = NULL;
        se_error_clear(e);
        scalr_email_code rc = se_client_session(c, &ss, e);
        crash_point(w, "connect");
        if (rc != SCALR_EMAIL_OK)
            return rc;
        pthread_mutex_lock(&w->mu);
        l->active = ss;
        int stop_now = w->q->stop == 2;
        pthread_mutex_unlock(&w->mu);
        if (stop_now) {
            pthread_mutex_lock(&w->mu);
            l->active = NULL;
            pthread_mutex_unlock(&w->mu);
            se_client_release(c, ss);
            return se_fail(e, SCALR_EMAIL_EIO, "MAIL", "the worker is stopping");
        }
        int handed = 0, reused = ss->reused;
        rc = se_client_transact(c, ss, &comp, e, &handed, &pl);
        pthread_mutex_lock(&w->mu);
        l->active = NULL;
        pthread_mutex_unlock(&w->mu);
        se_client_release(c, ss);
        if (rc != SCALR_EMAIL_OK && reused && !handed && attempt == 0 && se_client_conn_failure(e))
            continue; /* a stale pooled connection: nothing was handed over */
        snprintf(e->message_id, sizeof e->message_id, "%s", row->message_id);
        return rc;
    }
}

static void process(lane *l, const se_qrow *row)
{
    worker *w = l->w;
    scalr_email_error e, ferr;
    se_error_clear(&e);
    int64_t now = se_qstore_now(l->st);
    int64_t expire_at = row->expire_at ? row->expire_at : row->created_at + w->o.expire_ms;
    int max_attempts = row->max_attempts > 0 ? row->max_attempts : (int)w->o.max_attempts;
    long long age = now > row->created_at ? now - row->created_at : 0;
    const char *outcome;
    int64_t delay = 0;
    int quiet = 0; /* no event: a deferral is not a try */
    wprofile *pf = NULL;
    scalr_email_client *pc = NULL;
    scalr_email_code prc = SCALR_EMAIL_OK;
    double wait = 0;
    if (now >= 0 && now < expire_at && row->profile[0]) {
        prc = get_profile(w, row->profile, &pf, &pc, &e);
        if (prc == SCALR_EMAIL_OK)
            wait = profile_slot(w, pf);
    }
    if (prc != SCALR_EMAIL_OK) {
        /* The profile's configuration is broken (a key gone, the file
         * removed): every message of it would fail; hold the profile only. */
        if (DB(l->w, se_qstore_profile_hold(l->st, row->profile, e.message, &ferr)) !=
            SCALR_EMAIL_OK)
            fatal(w, &ferr);
        outcome = "released";
    } else if (wait > 0) {
        /* Over its rate: back to the queue until its slot, rather than
         * sleeping on a row while other tenants wait. */
        outcome = "deferred";
        delay = (int64_t)(wait * 1000) + 1;
        quiet = 1;
    } else if (now >= 0 && now >= expire_at) {
        se_fail(&e, SCALR_EMAIL_ETIMEOUT, "QUEUE",
                "expired after %d attempt%s: older than its expiry", row->attempts,
                row->attempts == 1 ? "" : "s");
        outcome = "expired";
    } else {
        rate_wait(w);
        scalr_email_code rc = try_send(l, pf ? pc : w->c, row, &e);
        if (rc == SCALR_EMAIL_OK) {
            crash_point(w, "after_250");
            outcome = "sent";
        } else if (l->eod_written &&
                   (rc == SCALR_EMAIL_ETIMEOUT || rc == SCALR_EMAIL_EIO || rc == SCALR_EMAIL_ETLS ||
                    rc == SCALR_EMAIL_EPROTOCOL) &&
                   !e.smtp_code) {
            /* No reply to the end of data: the server may have it. */
            size_t n = strlen(e.message);
            snprintf(e.message + n, sizeof e.message - n,
                     "; no reply to the end of data: outcome unknown");
            outcome = w->o.on_ambiguous_hold ? "unknown" : "retry";
            delay = backoff(w, row->attempts);
        } else if (is_provider_fault(&e)) {
            /* Every message would fail the same way (a 535 to AUTH too, so
             * before the 5xx rule): hold the provider (a profile's own
             * server: that profile only), do not burn this message's
             * attempts. */
            if (DB(l->w, pf ? se_qstore_profile_hold(l->st, row->profile, e.message, &ferr)
                            : se_qstore_provider_hold(l->st, w->provider, e.message, &ferr)) !=
                SCALR_EMAIL_OK)
                fatal(w, &ferr);
            if (pf)
                retire_client(w, pf);
            outcome = "released";
        } else if (e.smtp_code >= 500 || rc == SCALR_EMAIL_EREJECTED || rc == SCALR_EMAIL_ETOOBIG ||
                   rc == SCALR_EMAIL_EUNSUPPORTED || rc == SCALR_EMAIL_EINVAL) {
            outcome = "failed";
        } else if (is_throttle(&e)) {
            int64_t pause = w->o.backoff_base_ms * 2;
            if (DB(l->w, pf ? se_qstore_profile_pause(l->st, row->profile, pause, e.message, &ferr)
                            : se_qstore_provider_pause(l->st, w->provider, pause, e.message,
                                                       &ferr)) != SCALR_EMAIL_OK)
                fatal(w, &ferr);
            if (pf) {
                pthread_mutex_lock(&w->pmu);
                if (pf->rate > 0 && pf->rate / 2 >= 0.1)
                    pf->rate /= 2;
                pthread_mutex_unlock(&w->pmu);
            } else {
                pthread_mutex_lock(&w->mu);
                if (w->rate > 0 && w->rate / 2 >= 0.1)
                    w->rate /= 2;
                pthread_mutex_unlock(&w->mu);
            }
            outcome = "retry";
            delay = pause;
        } else {
            outcome = "retry";
            delay = backoff(w, row->attempts);
        }
        if (!strcmp(outcome, "retry") &&
            (row->attempts + 1 >= max_attempts || (now >= 0 && now + delay >= expire_at))) {
            size_t n = strlen(e.message);
            snprintf(e.message + n, sizeof e.message - n, "; gave up after %d attempt%s",
                     row->attempts + 1, row->attempts + 1 == 1 ? "" : "s");
            outcome = "expired";
        }
    }
    const se_qattempt a = {
        .outcome = outcome,
        .stage = e.stage,
        .smtp_code = e.smtp_code,
        .enhanced = e.enhanced,
        .recipient = e.recipient,
        .server_text = e.server_text,
        .message = e.message,
    };
    (void)a;
    gop *o = calloc(1, sizeof *o);
    if (!o) {
        se_fail(&ferr, SCALR_EMAIL_ENOMEM, "QUEUE", "out of memory");
        fatal(w, &ferr);
    } else {
        o->kind = 1;
        o->lazy = 1;
        o->id = row->id;
        o->delay = delay;
        snprintf(o->outcome, sizeof o->outcome, "%s", outcome);
        o->e = e;
        o->err = &o->ferr;
        group_write(w, o);
    }
    if (!quiet)
        event(w, row->id, outcome, age, &e);
}

static int nothing_left(se_qstore *st, const char *provider)
{
    se_qres r = {0};
    const se_qval p[] = {QT(provider)};
    if (se_qstore_exec(st,
                       "SELECT COUNT(*) FROM scalr_email_queue WHERE state IN ('queued', 'leased') "
                       "AND provider = ? AND profile NOT IN (SELECT profile FROM "
                       "scalr_email_profiles WHERE held = 1)",
                       p, 1, &r, NULL, NULL) != SCALR_EMAIL_OK)
        return 0;
    int none = r.rows && se_qres_int(&r, 0, 0) == 0;
    se_qres_free(&r);
    return none;
}

static void *lane_main(void *arg)
{
    lane *l = arg;
    worker *w = l->w;
    scalr_email_error e;
    int pg = strncmp(w->q->url, "sqlite:", 7) != 0;
    while (!w->q->stop && !w->drained && w->fatal == SCALR_EMAIL_OK) {
        se_qrow *rows = NULL;
        size_t n = 0;
        const char *skip[MAX_SKIP];
        size_t n_skip = profiles_to_skip(w, skip);
        if (DB(l->w, se_qstore_claim(l->st, w->id, w->provider, CLAIM_BATCH, w->o.lease_ms, skip,
                                     n_skip, &rows, &n, &e)) != SCALR_EMAIL_OK) {
            fatal(w, &e);
            break;
        }
        if (n)
            crash_point(w, "claim");
        if (!n) {
            group_flush(w); /* nothing more to send: the outcomes now */
            if (w->o.drain && nothing_left(l->st, w->provider)) {
                w->drained = 1;
                break;
            }
            /* Idle: SQLite is polled (cheap); PostgreSQL wakes on NOTIFY. */
            int64_t t = pg ? 500 : 20, due = se_qstore_next_due(l->st);
            if (due >= 0 && due < t)
                t = due;
            /* Due rows that cannot be claimed (a held profile, one over its
             * rate, another provider's): no spinning on them. */
            if (t < 10)
                t = 10;
            if (se_qstore_wait(l->st, t, &e) != SCALR_EMAIL_OK) {
                fatal(w, &e);
                break;
            }
            continue;
        }
        size_t i = 0;
        for (; i < n && w->q->stop != 2 && w->fatal == SCALR_EMAIL_OK; i++)
            process(l, &rows[i]);
        /* Stopping: what this lane claimed but did not try goes back. */
        for (; i < n; i++) {
            const se_qattempt a = {.outcome = "released", .message = "the worker stopped"};
            DB(l->w, se_qstore_finish(l->st, w->id, rows[i].id, &a, 0, &e));
        }
        se_qrow_free(rows, n);
    }
    group_flush(w);
    pthread_mutex_lock(&w->mu);
    w->lanes_left--;
    pthread_cond_broadcast(&w->lanes_done);
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

/* The keeper: heartbeat (which extends this worker's leases), reap dead
 * workers' leases, prune old rows.  Runs in the calling thread. */
static void keep(worker *w, se_qstore *st)
{
    scalr_email_error e;
    double last_beat = 0, last_reap = 0, last_prune = 0;
    double beat = (double)w->o.lease_ms / 3000.0;
    for (;;) {
        double now = mono();
        if (now - last_beat >= beat) {
            if (DB(w, se_qstore_heartbeat(st, w->id, w->o.lease_ms, &e)) != SCALR_EMAIL_OK)
                fatal(w, &e);
            last_beat = now;
        }
        if (now - last_reap >= beat) {
            size_t n = 0;
            if (DB(w, se_qstore_reap(st, w->o.lease_ms, w->o.on_ambiguous_hold, &n, &e)) !=
                SCALR_EMAIL_OK)
                fatal(w, &e);
            last_reap = now;
        }
        if (now - last_prune >= 60) {
            size_t n = 0;
            if (DB(w, se_qstore_prune(st, w->o.retention_ms, &n, &e)) != SCALR_EMAIL_OK)
                fatal(w, &e);
            last_prune = now;
        }
        pthread_mutex_lock(&w->mu);
        if (w->q->stop == 2) {
            /* At once: cut the connections in use; each lane sees the
             * failure, records it and ends. */
            for (unsigned i = 0; i < w->n_lanes; i++)
                if (w->lanes[i].active)
                    shutdown(se_conn_fd(w->lanes[i].active->conn), SHUT_RDWR);
        }
        if (w->lanes_left == 0) {
            pthread_mutex_unlock(&w->mu);
            return;
        }
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        long step = 50 * 1000000L;
        until.tv_nsec += step;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&w->lanes_done, &w->mu, &until);
        pthread_mutex_unlock(&w->mu);
    }
}

scalr_email_code scalr_email_queue_work(scalr_email_queue *q, scalr_email_client *client,
                                        const scalr_email_work_opts *opts, scalr_email_error *err)
{
    se_error_clear(err);
    if (!q || !client)
        return se_fail(err, SCALR_EMAIL_EINVAL, "QUEUE", "queue_work: NULL argument");
    static const scalr_email_work_opts none = {0};
    worker *w = calloc(1, sizeof *w);
    if (!w)
        return se_fail(err, SCALR_EMAIL_ENOMEM, "QUEUE", "out of memory");
    w->q = q;
    w->c = client;
    w->o = opts ? *opts : none;
    if (!w->o.connections)
        w->o.connections = 1;
    if (w->o.connections > MAX_LANES)
        w->o.connections = MAX_LANES;
    if (w->o.backoff_base_ms <= 0)
        w->o.backoff_base_ms = 30000;
    if (w->o.backoff_cap_ms <= 0)
        w->o.backoff_cap_ms = 3600000;
    if (w->o.backoff_cap_ms < w->o.backoff_base_ms)
        w->o.backoff_cap_ms = w->o.backoff_base_ms;
    if (!w->o.max_attempts)
        w->o.max_attempts = 20;
    if (w->o.lease_ms <= 0)
        w->o.lease_ms = 60000;
    if (w->o.retention_ms <= 0)
        w->o.retention_ms = 7LL * 24 * 3600 * 1000;
    if (w->o.data_timeout_ms <= 0)
        w->o.data_timeout_ms = 600000;
    if (w->o.expire_ms <= 0)
        w->o.expire_ms = 24LL * 3600 * 1000;
    w->provider = w->o.provider ? w->o.provider : "";
    w->rate = w->o.rate;
    w->crash_at = getenv("SCALR_EMAIL_TEST_CRASH_AT");
    char host[64] = "";
    gethostname(host, sizeof host - 1);
    unsigned char rnd[4] = {0};
    RAND_bytes(rnd, sizeof rnd);
    snprintf(w->id, sizeof w->id, "%s:%d:%02x%02x%02x%02x", host, (int)getpid(), rnd[0], rnd[1],
             rnd[2], rnd[3]);
    pthread_mutex_init(&w->mu, NULL);
    pthread_mutex_init(&w->db_mu, NULL);
    pthread_mutex_init(&w->gc_mu, NULL);
    pthread_mutex_init(&w->pmu, NULL);
    pthread_cond_init(&w->gc_cond, NULL);
    w->serialize = !strncmp(q->url, "sqlite:", 7);
    pthread_cond_init(&w->lanes_done, NULL);
    scalr_email_code rc = SCALR_EMAIL_OK;
    se_qstore *keeper = NULL;
    w->lanes = calloc(w->o.connections, sizeof *w->lanes);
    if (!w->lanes)
        rc = se_fail(err, SCALR_EMAIL_ENOMEM, "QUEUE", "out of memory");
    if (rc == SCALR_EMAIL_OK)
        rc = se_qstore_open(&keeper, q->url, err);
    if (rc == SCALR_EMAIL_OK)
        rc = se_qstore_register(keeper, w->id, err);
    if (rc == SCALR_EMAIL_OK)
        rc = se_qstore_open(&w->gst, q->url, err);
    /* One store handle per lane: a handle is used by one thread at a time. */
    for (unsigned i = 0; rc == SCALR_EMAIL_OK && i < w->o.connections; i++) {
        w->lanes[i].w = w;
        rc = se_qstore_open(&w->lanes[i].st, q->url, err);
    }
    for (unsigned i = 0; rc == SCALR_EMAIL_OK && i < w->o.connections; i++) {
        pthread_mutex_lock(&w->mu);
        w->lanes_left++;
        w->n_lanes++;
        pthread_mutex_unlock(&w->mu);
        if (pthread_create(&w->lanes[i].th, NULL, lane_main, &w->lanes[i]) != 0) {
            pthread_mutex_lock(&w->mu);
            w->lanes_left--;
            w->n_lanes--;
            pthread_mutex_unlock(&w->mu);
            rc = se_fail(err, SCALR_EMAIL_ENOMEM, "QUEUE", "cannot start a thread");
            q->stop = 2;
        }
    }
    if (w->n_lanes)
        keep(w, keeper);
    for (unsigned i = 0; i < w->n_lanes; i++)
        pthread_join(w->lanes[i].th, NULL);
    if (keeper) {
        scalr_email_error e2;
        se_qstore_release_worker(keeper, w->id, &e2);
        se_qstore_close(keeper);
    }
    for (unsigned i = 0; w->lanes && i < w->o.connections; i++)
        se_qstore_close(w->lanes[i].st);
    se_qstore_close(w->gst);
    if (rc == SCALR_EMAIL_OK && w->fatal != SCALR_EMAIL_OK) {
        rc = w->fatal;
        if (err)
            *err = w->fatal_err;
    }
    if (rc == SCALR_EMAIL_OK && q->stop == 2)
        rc = se_fail(err, SCALR_EMAIL_ETRANSIENT, "QUEUE",
                     "stopped at once; unsent messages were given back to the queue");
    free(w->lanes);
    pthread_cond_destroy(&w->lanes_done);
    pthread_mutex_destroy(&w->mu);
    pthread_mutex_destroy(&w->db_mu);
    pthread_mutex_destroy(&w->gc_mu);
    pthread_cond_destroy(&w->gc_cond);
    for (size_t i = 0; i < w->n_profiles; i++) {
        scalr_email_client_free(w->profiles[i]->c);
        free(w->profiles[i]->name);
        free(w->profiles[i]);
    }
    free(w->profiles);
    for (size_t i = 0; i < w->n_retired; i++)
        scalr_email_client_free(w->retired[i]);
    free(w->retired);
    pthread_mutex_destroy(&w->pmu);
    free(w);
    return rc;
}

void scalr_email_queue_stop(scalr_email_queue *q, int immediate)
{
    if (!q)
        return;
    q->stop = immediate ? 2 : (q->stop == 2 ? 2 : 1);
    if (q->wake[1] >= 0) {
        char b = 1;
        ssize_t r = write(q->wake[1], &b, 1); /* async-signal-safe */
        (void)r;
    }
}
