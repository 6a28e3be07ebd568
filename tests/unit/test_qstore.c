/* The queue's store (src/queue): the same cases on SQLite (a temporary
 * file, by default) and on PostgreSQL (SCALR_EMAIL_TEST_QUEUE_URL, set by
 * tests/queue/run_store.sh with a private server). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "queue/queue_int.h"
#include "queue/store_int.h"

static char url[512];
static int n_files;

/* A queue with nothing in it. */
static scalr_email_queue *fresh(void)
{
    const char *u = getenv("SCALR_EMAIL_TEST_QUEUE_URL");
    if (u && *u) {
        snprintf(url, sizeof url, "%s", u);
    } else {
        snprintf(url, sizeof url, "sqlite:/tmp/se-qstore-%d-%d.db", (int)getpid(), n_files++);
        unlink(url + 7);
    }
    scalr_email_queue *q = NULL;
    scalr_email_error e;
    if (scalr_email_queue_open(&q, url, &e) != SCALR_EMAIL_OK) {
        th_fail(__FILE__, __LINE__, "open %s: %s", url, e.message);
        return NULL;
    }
    static const char *const wipe[] = {
        "DELETE FROM scalr_email_queue",     "DELETE FROM scalr_email_attempts",
        "DELETE FROM scalr_email_workers",   "DELETE FROM scalr_email_inflight",
        "DELETE FROM scalr_email_providers", "DELETE FROM scalr_email_profiles",
    };
    for (size_t i = 0; i < sizeof wipe / sizeof wipe[0]; i++)
        CHECK_INT(se_qstore_exec(q->st, wipe[i], NULL, 0, NULL, NULL, &e), 0);
    return q;
}

static void done(scalr_email_queue *q)
{
    scalr_email_queue_close(q);
    if (!strncmp(url, "sqlite:", 7)) {
        char p[600];
        unlink(url + 7);
        snprintf(p, sizeof p, "%s-wal", url + 7);
        unlink(p);
        snprintf(p, sizeof p, "%s-shm", url + 7);
        unlink(p);
    }
}

static long long add(scalr_email_queue *q, const char *subject, const char *tenant, int bulk,
                     const char *key)
{
    scalr_email_error e;
    long long id = 0;
    const scalr_email_message m = {
        .to = SCALR_EMAIL_LIST("Bob <bob@example.test>", "carol@example.test"),
        .bcc = SCALR_EMAIL_LIST("audit@example.test"),
        .subject = subject,
        .body = "hello\n.\nbye",
    };
    const scalr_email_enqueue_opts o = {
        .tenant = tenant, .lane = bulk ? SCALR_EMAIL_LANE_BULK : 0, .idempotency_key = key};
    scalr_email_code rc = scalr_email_queue_add(q, &m, "App <app@example.test>", &o, &id, NULL, &e);
    if (rc != SCALR_EMAIL_OK)
        th_fail(__FILE__, __LINE__, "add: %s", e.message);
    return id;
}

static long long count(scalr_email_queue *q, const char *state)
{
    scalr_email_queue_status s;
    scalr_email_error e;
    CHECK_INT(scalr_email_queue_get_status(q, &s, &e), 0);
    long long *slot[] = {&s.queued,  &s.leased,    &s.sent, &s.failed,
                         &s.expired, &s.cancelled, &s.held, &s.unknown};
    const char *names[] = {"queued",  "leased",    "sent", "failed",
                           "expired", "cancelled", "held", "unknown"};
    for (int i = 0; i < 8; i++)
        if (!strcmp(state, names[i]))
            return *slot[i];
    return -1;
}

typedef struct shown {
    char state[32], last_error[256], rcpt[256], from[128], key[64];
    int attempts, n_attempts;
    char outcomes[256];
} shown;

static void on_item(void *arg, const scalr_email_queue_item *it)
{
    shown *s = arg;
    snprintf(s->state, sizeof s->state, "%s", it->state);
    snprintf(s->last_error, sizeof s->last_error, "%s", it->last_error ? it->last_error : "");
    snprintf(s->rcpt, sizeof s->rcpt, "%s", it->rcpt_to);
    snprintf(s->from, sizeof s->from, "%s", it->mail_from);
    snprintf(s->key, sizeof s->key, "%s", it->idempotency_key ? it->idempotency_key : "(null)");
    s->attempts = it->attempts;
}

static void on_attempt(void *arg, const scalr_email_queue_attempt *a)
{
    shown *s = arg;
    s->n_attempts++;
    size_t l = strlen(s->outcomes);
    snprintf(s->outcomes + l, sizeof s->outcomes - l, "%s%d:%s:%d", l ? " " : "", a->n, a->outcome,
             a->smtp_code);
}

static shown show(scalr_email_queue *q, long long id)
{
    shown s;
    memset(&s, 0, sizeof s);
    scalr_email_error e;
    CHECK_INT(scalr_email_queue_show(q, id, on_item, on_attempt, &s, &e), 0);
    return s;
}

TEST(qstore_add_stores_composed_bytes_and_envelope)
{
    scalr_email_queue *q = fresh();
    if (!q)
        return;
    scalr_email_error e;
    long long id = 0;
    const scalr_email_message m = {
        .to = SCALR_EMAIL_LIST("Bob <bob@example.test>"),
        .bcc = SCALR_EMAIL_LIST("audit@example.test"),
        .subject = "Invoice",
        .body = "line one\n.\nline three",
    };
    CHECK_INT(scalr_email_queue_add(q, &m, "App <app@example.test>", NULL, &id, NULL, &e), 0);
    CHECK(id > 0);
    CHECK(e.message_id[0] == '<');
    shown s = show(q, id);
    CHECK_STR(s.state, "queued");
    CHECK_STR(s.rcpt, "bob@example.test\naudit@example.test");
    CHECK_STR(s.from, "app@example.test");
    CHECK_INT(s.n_attempts, 0);
    /* What a worker gets is the composed message: CRLF, not dot-stuffed, Bcc absent. */
    se_qrow *rows = NULL;
    size_t n = 0;
    CHECK_INT(se_qstore_claim(q->st, "w1", NULL, 10, 60000, NULL, 0, &rows, &n, &e), 0);
    CHECK_INT(n, 1);
    if (n == 1) {
        CHECK_INT(rows[0].id, id);
        CHECK_STR(rows[0].message_id, e.message_id);
        CHECK_INT(rows[0].n_rcpt, 2);
        CHECK_STR(rows[0].rcpt[1], "audit@example.test");
        rows[0].body[rows[0].size] = 0;
        CHECK(strstr((char *)rows[0].body, "\r\nline one\r\n.\r\nline three\r\n") != NULL);
        CHECK(strstr((char *)rows[0].body, "audit@") == NULL);
        CHECK(strstr((char *)rows[0].body, e.message_id) != NULL);
    }
    se_qrow_free(rows, n);
    CHECK_INT(count(q, "leased"), 1);
    done(q);
}

TEST(qstore_add_refuses_bad_input_and_stores_nothing)
{
    scalr_email_queue *q = fresh();
    if (!q)
        return;
    scalr_email_error e;
    long long id = 7;
    const scalr_email_message bad = {.to = SCALR_EMAIL_LIST("bob@example.test"),
                                     .subject = "x\r\nBcc: victim@example.test"};
    CHECK_INT(scalr_email_queue_add(q, &bad, "app@example.test", NULL, &id, NULL, &e),
              SCALR_EMAIL_EINVAL);
    CHECK_INT(id, 0);
    const scalr_email_message addr = {.to = SCALR_EMAIL_LIST("not an address")};
    CHECK_INT(scalr_email_queue_add(q, &addr, "app@example.test", NULL, &id, NULL, &e),
              SCALR_EMAIL_EINVAL);
    const scalr_email_attachment att[] = {{.path = "/nonexistent/file.pdf"}, {0}};
    const scalr_email_message file = {.to = SCALR_EMAIL_LIST("bob@example.test"),
                                      .attachments = att};
    CHECK_INT(scalr_email_queue_add(q, &file, "app@example.test", NULL, &id, NULL, &e),
              SCALR_EMAIL_EFILE);
    const scalr_email_message nofrom = {.to = SCALR_EMAIL_LIST("bob@example.test")};
    CHECK_INT(scalr_email_queue_add(q, &nofrom, NULL, NULL, &id, NULL, &e),
              SCALR_EMAIL_ENOTCONFIGURED);
    const scalr_email_enqueue_opts o = {.tenant = "a\nb"};
    CHECK_INT(scalr_email_queue_add(q, &nofrom, "app@example.test", &o, &id, NULL, &e),
              SCALR_EMAIL_EINVAL);
    CHECK_INT(count(q, "queued"), 0);
    done(q);
}

TEST(qstore_idempotency_key_returns_the_existing_id)
{
    scalr_email_queue *q = fresh();
    if (!q)
        return;
    long long a = add(q, "one", NULL, 0, "order-42");
    scalr_email_error e;
    long long b = 0;
    int existed = 0;
    const scalr_email_message m = {.to = SCALR_EMAIL_LIST("x@example.test"), .subject = "two"};
    const scalr_email_enqueue_opts o = {.idempotency_key = "order-42"};
    CHECK_INT(scalr_email_queue_add(q, &m, "app@example.test", &o, &b, &existed, &e), 0);
    CHECK_INT(b, a);
    CHECK_INT(existed, 1);
    long long c = add(q, "three", NULL, 0, "order-43");
    CHECK(c != a);
    add(q, "no key", NULL, 0, NULL);
    add(q, "no key again", NULL, 0, NULL);
    CHECK_INT(count(q, "queued"), 4);
    CHECK_STR(show(q, a).key, "order-42");
    done(q);
}

static void claim_ids(scalr_email_queue *q, const char *w, size_t max, long long *ids, size_t *n,
                      char tenants[][16])
{
    se_qrow *rows = NULL;
    scalr_email_error e;
    CHECK_INT(se_qstore_claim(q->st, w, "", max, 60000, NULL, 0, &rows, n, &e), 0);
    for (size_t i = 0; i < *n; i++) {
        ids[i] = rows[i].id;
        if (tenants)
            snprintf(tenants[i], 16, "%s", rows[i].tenant);
    }
    se_qrow_free(rows, *n);
}

TEST(qstore_claim_transactional_first_then_tenants_round_robin)
{
    scalr_email_queue *q = fresh();
    if (!q)
        return;
    long long bulk = add(q, "newsletter", NULL, 1, NULL);
    long long reset = add(q, "password reset", NULL, 0, NULL);
    long long ids[8];
    size_t n = 0;
    claim_ids(q, "w1", 1, ids, &n, NULL);
    CHECK_INT(n, 1);
    CHECK_INT(ids[0], reset);
    claim_ids(q, "w1", 1, ids, &n, NULL);
    CHECK_INT(n, 1);
    CHECK_INT(ids[0], bulk);
    claim_ids(q, "w1", 1, ids, &n, NULL);
    CHECK_INT(n, 0);
    /* Tenant a enqueued 3 first, then b 3, then c 1: one at a time they alternate. */
    for (int i = 0; i < 3; i++)
        add(q, "a", "a", 0, NULL);
    for (int i = 0; i < 3; i++)
        add(q, "b", "b", 0, NULL);
    add(q, "c", "c", 0, NULL);
    char order[64] = "";
    for (int i = 0; i < 8; i++) {
        char t[1][16];
        claim_ids(q, "w1", 1, ids, &n, t);
        if (n)
            strcat(order, t[0]);
    }
    CHECK_STR(order, "abcabab");
    /* A batch claim shares itself among the tenants. */
    for (int i = 0; i < 6; i++)
        add(q, "a", "a", 0, NULL);
    add(q, "b", "b", 0, NULL);
    char t[8][16];
    claim_ids(q, "w1", 4, ids, &n, t);
    CHECK_INT(n, 4);
    int bs = 0;
    for (size_t i = 0; i < n; i++)
        bs += !strcmp(t[i], "b");
    CHECK_INT(bs, 1);
    done(q);
}

typedef struct racer {
    const char *url;
    int got[400];
    int n;
    int err;
} racer;

static void *race(void *arg)
{
    racer *r = arg;
    scalr_email_queue *q = NULL;
    scalr_email_error e;
    if (scalr_email_queue_open(&q, r->url, &e) != SCALR_EMAIL_OK) {
        r->err = 1;
        return NULL;
    }
    char w[32];
    snprintf(w, sizeof w, "w%p", (void *)r);
    for (;;) {
        se_qrow *rows = NULL;
        size_t n = 0;
        if (se_qstore_claim(q->st, w, "", 3, 60000, NULL, 0, &rows, &n, &e) != SCALR_EMAIL_OK) {
            r->err = 1;
            break;
        }
        for (size_t i = 0; i < n && r->n < 400; i++)
            r->got[r->n++] = (int)rows[i].id;
        se_qrow_free(rows, n);
        if (!n)
            break;
    }
    scalr_email_queue_close(q);
    return NULL;
}

TEST(qstore_concurrent_claims_never_share_a_row)
{
    scalr_email_queue *q = fresh();
    if (!q)
        return;
    scalr_email_error e;
    /* Fast enqueue of 150 rows through the store directly. */
    for (int i = 0; i < 150; i++)
        add(q, "race", i % 3 ? "t1" : "t2", i % 2, NULL);
    racer r[3] = {{.url = url}, {.url = url}, {.url = url}};
    pthread_t t[3];
    for (int i = 0; i < 3; i++)
        pthread_create(&t[i], NULL, race, &r[i]);
    for (int i = 0; i < 3; i++)
        pthread_join(t[i], NULL);
    static char seen[100000];
    memset(seen, 0, sizeof seen);
    int total = 0, dup = 0;
    for (int i = 0; i < 3; i++) {
        CHECK_INT(r[i].err, 0);
        for (int j = 0; j < r[i].n; j++) {
            int id = r[i].got[j];
            if (id > 0 && id < (int)sizeof seen) {
                dup += seen[id];
                seen[id] = 1;
            }
            total++;
        }
    }
    CHECK_INT(total, 150);
    CHECK_INT(dup, 0);
    CHECK_INT(count(q, "leased"), 150);
    (void)e;
    done(q);
}

static se_qattempt att(const char *outcome, int code)
{
    return (se_qattempt){.outcome = outcome,
                         .stage = "RCPT",
                         .smtp_code = code,
                         .enhanced = code >= 500 ? "5.1.1" : "4.2.0",
                         .recipient = "bob@example.test",
                         .server_text = "no such user",
                         .message = "the server said no"};
}

TEST(qstore_finish_moves_states_and_records_attempts)
{
    scalr_email_queue *q = fresh();
    if (!q)
        return;
    scalr_email_error e;
    long long a = add(q, "a", NULL, 0, NULL), b = add(q, "b", NULL, 0, NULL),
              c = add(q, "c", NULL, 0, NULL);
    long long ids[8];
    size_t n;
    claim_ids(q, "w1", 3, ids, &n, NULL);
    CHECK_INT(n, 3);
    se_qattempt x = att("sent", 250);
    CHECK_INT(se_qstore_finish(q->st, "w1", a, &x, 0, &e), 0);
    x = att("retry", 451);
    CHECK_INT(se_qstore_finish(q->st, "w1", b, &x, 3600000, &e), 0);
    x = att("failed", 550);
    CHECK_INT(se_qstore_finish(q->st, "w1", c, &x, 0, &e), 0);
    /* Not leased any more: a second outcome is refused, not recorded twice. */
    x = att("sent", 250);
    CHECK_INT(se_qstore_finish(q->st, "w1", a, &x, 0, &e), SCALR_EMAIL_ESTORE);
    CHECK_STR(show(q, a).state, "sent");
    CHECK_STR(show(q, a).outcomes, "1:sent:250");
    shown sb = show(q, b);
    CHECK_STR(sb.state, "queued");
    CHECK_INT(sb.attempts, 1);
    CHECK_STR(sb.last_error, "the server said no");
    CHECK_STR(show(q, c).state, "failed");
    /* The retry is an hour away: nothing is due. */
    claim_ids(q, "w1", 3, ids, &n, NULL);
    CHECK_INT(n, 0);
    int64_t due = se_qstore_next_due(q->st);
    CHECK(due > 3500000 && due <= 3600000);
    /* A sent row's body is dropped at once. */
    se_qres r = {0};
    const se_qval p[] = {QI(a)};
    CHECK_INT(se_qstore_exec(q->st, "SELECT body FROM scalr_email_queue WHERE id = ?", p, 1, &r,
                             NULL, &e),
              0);
    CHECK(r.rows == 1 && se_qcell(&r, 0, 0)->t == SE_QNULL);
    se_qres_free(&r);
    /* Another worker's lease cannot be finished. */
    long long d = add(q, "d", NULL, 0, NULL);
    claim_ids(q, "w2", 1, ids, &n, NULL);
    x = att("sent", 250);
    CHECK_INT(se_qstore_finish(q->st, "w1", d, &x, 0, &e), SCALR_EMAIL_ESTORE);
    CHECK_INT(se_qstore_finish(q->st, "w2", d, &x, 0, &e), 0);
    done(q);
}

static void reap_case(int hold)
{
    scalr_email_queue *q = fresh();
    if (!q)
        return;
    scalr_email_error e;
    CHECK_INT(se_qstore_register(q->st, "dead", &e), 0);
    long long a = add(q, "a", NULL, 0, NULL), b = add(q, "b", NULL, 0, NULL);
    long long ids[4];
    size_t n;
    claim_ids(q, "dead", 2, ids, &n, NULL);
    CHECK_INT(n, 2);
    CHECK_INT(se_qstore_inflight(q->st, "dead", b, &e), 0);
    /* Alive: nothing is taken from it. */
    size_t reaped = 99;
    CHECK_INT(se_qstore_reap(q->st, 60000, hold, &reaped, &e), 0);
    CHECK_INT(reaped, 0);
    usleep(20000);
    CHECK_INT(se_qstore_reap(q->st, 5, hold, &reaped, &e), 0);
    CHECK_INT(reaped, 2);
    shown sa = show(q, a), sb = show(q, b);
    CHECK_STR(sa.state, "queued");
    CHECK_INT(sa.attempts, 0); /* never handed over: no attempt counted */
    CHECK_STR(sb.state, hold ? "unknown" : "queued");
    CHECK_INT(sb.attempts, 1);
    CHECK(strstr(sb.last_error, "outcome unknown") != NULL);
    CHECK_STR(sb.outcomes, hold ? "1:unknown:0" : "1:resent:0");
    CHECK_INT(count(q, "leased"), 0);
    se_qres r = {0};
    CHECK_INT(
        se_qstore_exec(q->st, "SELECT COUNT(*) FROM scalr_email_inflight", NULL, 0, &r, NULL, &e),
        0);
    CHECK_INT(se_qres_int(&r, 0, 0), 0);
    se_qres_free(&r);
    done(q);
}

TEST(qstore_reap_requeues_safe_rows_and_resends_ambiguous)
{
    reap_case(0);
}

TEST(qstore_reap_holds_ambiguous_as_unknown)
{
    reap_case(1);
}

TEST(qstore_release_worker_returns_leases_but_not_the_window)
{
    scalr_email_queue *q = fresh();
    if (!q)
        return;
    scalr_email_error e;
    CHECK_INT(se_qstore_register(q->st, "w1", &e), 0);
    long long a = add(q, "a", NULL, 0, NULL), b = add(q, "b", NULL, 0, NULL);
    long long ids[4];
    size_t n;
    claim_ids(q, "w1", 2, ids, &n, NULL);
    CHECK_INT(se_qstore_inflight(q->st, "w1", b, &e), 0);
    CHECK_INT(se_qstore_release_worker(q->st, "w1", &e), 0);
    CHECK_STR(show(q, a).state, "queued");
    CHECK_STR(show(q, b).state, "leased");
    /* The worker row is gone, so the reaper decides b at once. */
    size_t reaped = 0;
    CHECK_INT(se_qstore_reap(q->st, 60000, 1, &reaped, &e), 0);
    CHECK_INT(reaped, 1);
    CHECK_STR(show(q, b).state, "unknown");
    done(q);
}

TEST(qstore_heartbeat_extends_leases)
{
    scalr_email_queue *q = fresh();
    if (!q)
        return;
    scalr_email_error e;
    CHECK_INT(se_qstore_register(q->st, "w1", &e), 0);
    add(q, "a", NULL, 0, NULL);
    se_qrow *rows = NULL;
    size_t n = 0;
    CHECK_INT(se_qstore_claim(q->st, "w1", "", 1, 1, NULL, 0, &rows, &n, &e), 0); /* 1 ms lease */
    se_qrow_free(rows, n);
    CHECK_INT(se_qstore_heartbeat(q->st, "w1", 600000, &e), 0);
    usleep(20000);
    size_t reaped = 9;
    CHECK_INT(se_qstore_reap(q->st, 600000, 0, &reaped, &e), 0);
    CHECK_INT(reaped, 0);
    CHECK_INT(count(q, "leased"), 1);
    done(q);
}

TEST(qstore_provider_pause_and_hold_stop_claims)
{
    scalr_email_queue *q = fresh();
    if (!q)
        return;
    scalr_email_error e;
    add(q, "a", NULL, 0, NULL);
    long long ids[4];
    size_t n;
    CHECK_INT(se_qstore_provider_pause(q->st, "", 3600000, "421 too many connections", &e), 0);
    claim_ids(q, "w1", 1, ids, &n, NULL);
    CHECK_INT(n, 0);
    CHECK_INT(se_qstore_provider_clear(q->st, "", &e), 0);
    CHECK_INT(se_qstore_provider_hold(q->st, "", "535 authentication failed", &e), 0);
    claim_ids(q, "w1", 1, ids, &n, NULL);
    CHECK_INT(n, 0);
    /* release --all clears held providers too. */
    CHECK_INT(scalr_email_queue_release(q, 0, NULL, &e), 0);
    claim_ids(q, "w1", 1, ids, &n, NULL);
    CHECK_INT(n, 1);
    done(q);
}

TEST(qstore_operator_actions_follow_the_state_rules)
{
    scalr_email_queue *q = fresh();
    if (!q)
        return;
    scalr_email_error e;
    long long a = add(q, "a", NULL, 0, NULL), b = add(q, "b", NULL, 0, NULL);
    long long ch = 0;
    CHECK_INT(scalr_email_queue_hold(q, a, &ch, &e), 0);
    CHECK_INT(ch, 1);
    CHECK_STR(show(q, a).state, "held");
    CHECK_INT(scalr_email_queue_hold(q, a, &ch, &e), SCALR_EMAIL_EINVAL);
    CHECK(strstr(e.message, "it is held") != NULL);
    CHECK_INT(scalr_email_queue_release(q, a, &ch, &e), 0);
    CHECK_STR(show(q, a).state, "queued");
    CHECK_INT(scalr_email_queue_cancel(q, b, &e), 0);
    CHECK_STR(show(q, b).state, "cancelled");
    CHECK_INT(scalr_email_queue_cancel(q, b, &e), SCALR_EMAIL_EINVAL);
    CHECK_INT(scalr_email_queue_cancel(q, 999999, &e), SCALR_EMAIL_ENOTFOUND);
    CHECK_INT(scalr_email_queue_show(q, 999999, NULL, NULL, NULL, &e), SCALR_EMAIL_ENOTFOUND);
    CHECK_INT(scalr_email_queue_retry(q, 999999, NULL, &ch, &e), SCALR_EMAIL_ENOTFOUND);
    CHECK_INT(scalr_email_queue_retry(q, 0, "sent", &ch, &e), SCALR_EMAIL_EINVAL);
    CHECK_INT(scalr_email_queue_purge(q, "queued", 0, &ch, &e), SCALR_EMAIL_EINVAL);
    /* A failed message retried is due now, with its attempts reset. */
    long long ids[4];
    size_t n;
    claim_ids(q, "w1", 1, ids, &n, NULL);
    CHECK_INT(ids[0], a);
    se_qattempt x = att("failed", 550);
    CHECK_INT(se_qstore_finish(q->st, "w1", a, &x, 0, &e), 0);
    CHECK_INT(scalr_email_queue_retry(q, 0, "failed", &ch, &e), 0);
    CHECK_INT(ch, 1);
    shown s = show(q, a);
    CHECK_STR(s.state, "queued");
    CHECK_INT(s.attempts, 0);
    /* A leased message can be neither cancelled nor held. */
    claim_ids(q, "w1", 1, ids, &n, NULL);
    CHECK_INT(scalr_email_queue_cancel(q, a, &e), SCALR_EMAIL_EINVAL);
    CHECK_INT(scalr_email_queue_hold(q, 0, &ch, &e), 0);
    CHECK_INT(ch, 0);
    /* purge and prune remove terminal rows with their attempts. */
    CHECK_INT(scalr_email_queue_purge(q, "cancelled", 3600000, &ch, &e), 0);
    CHECK_INT(ch, 0);
    CHECK_INT(scalr_email_queue_purge(q, "cancelled", 0, &ch, &e), 0);
    CHECK_INT(ch, 1);
    CHECK_INT(scalr_email_queue_show(q, b, NULL, NULL, NULL, &e), SCALR_EMAIL_ENOTFOUND);
    x = att("sent", 250);
    CHECK_INT(se_qstore_finish(q->st, "w1", a, &x, 0, &e), 0);
    size_t pruned = 0;
    CHECK_INT(se_qstore_prune(q->st, 3600000, &pruned, &e), 0);
    CHECK_INT(pruned, 0);
    usleep(5000);
    CHECK_INT(se_qstore_prune(q->st, 1, &pruned, &e), 0);
    CHECK_INT(pruned, 1);
    se_qres r = {0};
    CHECK_INT(
        se_qstore_exec(q->st, "SELECT COUNT(*) FROM scalr_email_attempts", NULL, 0, &r, NULL, &e),
        0);
    CHECK_INT(se_qres_int(&r, 0, 0), 0);
    se_qres_free(&r);
    done(q);
}

static void on_list(void *arg, const scalr_email_queue_item *it)
{
    (void)it;
    (*(int *)arg)++;
}

TEST(qstore_list_pages_through_everything)
{
    scalr_email_queue *q = fresh();
    if (!q)
        return;
    scalr_email_error e;
    for (int i = 0; i < 620; i++)
        add(q, "many", NULL, 0, NULL);
    int seen = 0;
    CHECK_INT(scalr_email_queue_list(q, NULL, 0, on_list, &seen, &e), 0);
    CHECK_INT(seen, 620);
    seen = 0;
    CHECK_INT(scalr_email_queue_list(q, "queued", 510, on_list, &seen, &e), 0);
    CHECK_INT(seen, 510);
    seen = 0;
    CHECK_INT(scalr_email_queue_list(q, "sent", 0, on_list, &seen, &e), 0);
    CHECK_INT(seen, 0);
    CHECK_INT(scalr_email_queue_list(q, "bogus", 0, on_list, &seen, &e), SCALR_EMAIL_EINVAL);
    scalr_email_queue_status st;
    CHECK_INT(scalr_email_queue_get_status(q, &st, &e), 0);
    CHECK_INT(st.queued, 620);
    CHECK(st.now > 1700000000000LL);
    CHECK(st.next_run_at > 0 && st.next_run_at <= st.now);
    done(q);
}

/* The SQLite file itself going wrong: one clear line, a distinct code. */
/* Named qsqlite_ so that the PostgreSQL run (filter "qstore_") leaves it out. */
TEST(qsqlite_bad_files_are_clear_errors)
{
    scalr_email_queue *q = NULL;
    scalr_email_error e;
    CHECK_INT(scalr_email_queue_open(&q, "sqlite:/nonexistent-dir/q.db", &e), SCALR_EMAIL_ESTORE);
    CHECK(strstr(e.message, "/nonexistent-dir/q.db") != NULL);
    CHECK_INT(scalr_email_queue_open(&q, "mysql://x", &e), SCALR_EMAIL_ECONFIG);
    CHECK_INT(scalr_email_queue_open(&q, "sqlite:", &e), SCALR_EMAIL_ECONFIG);
    char path[128];
    snprintf(path, sizeof path, "/tmp/se-qstore-garbage-%d.db", (int)getpid());
    FILE *f = fopen(path, "w");
    for (int i = 0; f && i < 200; i++)
        fputs("this is not a database, it is a text file that someone pointed the queue at\n", f);
    if (f)
        fclose(f);
    char u[160];
    snprintf(u, sizeof u, "sqlite:%s", path);
    CHECK_INT(scalr_email_queue_open(&q, u, &e), SCALR_EMAIL_ESTORE);
    CHECK(strstr(e.message, path) != NULL);
    CHECK(strchr(e.message, '\n') == NULL);
    unlink(path);
    /* A newer schema than this program knows is refused, never touched. */
    snprintf(path, sizeof path, "/tmp/se-qstore-newer-%d.db", (int)getpid());
    unlink(path);
    snprintf(u, sizeof u, "sqlite:%s", path);
    CHECK_INT(scalr_email_queue_open(&q, u, &e), 0);
    CHECK_INT(
        se_qstore_exec(q->st, "UPDATE scalr_email_meta SET value = '99'", NULL, 0, NULL, NULL, &e),
        0);
    scalr_email_queue_close(q);
    CHECK_INT(scalr_email_queue_open(&q, u, &e), SCALR_EMAIL_ECONFIG);
    CHECK(strstr(e.message, "schema version 99") != NULL);
    /* Read-only: refused at open, and what is stored is still there. */
    CHECK_INT(scalr_email_queue_open(&q, u, &e) == SCALR_EMAIL_OK ? 1 : 0, 0);
    char wal[200];
    snprintf(wal, sizeof wal, "%s-wal", path);
    unlink(wal);
    snprintf(wal, sizeof wal, "%s-shm", path);
    unlink(wal);
    unlink(path);
    if (geteuid() != 0) { /* root may write anything; the check below is for users */
        CHECK_INT(scalr_email_queue_open(&q, u, &e), 0);
        add(q, "kept", NULL, 0, NULL);
        scalr_email_queue_close(q);
        chmod(path, 0444);
        CHECK_INT(scalr_email_queue_open(&q, u, &e), SCALR_EMAIL_ESTORE);
        chmod(path, 0644);
        unlink(path);
    }
}

static void on_prof(void *arg, const char *profile, int held, long long paused_until,
                    const char *reason)
{
    (void)paused_until;
    char *out = arg;
    snprintf(out + strlen(out), 64, "%s:%d:%s;", profile, held, reason);
}

static void on_nounsub(void *arg, const char *tenant, long long count)
{
    char *out = arg;
    snprintf(out + strlen(out), 64, "%s=%lld;", tenant, count);
}

/* Sender profiles: a held profile's rows are not claimed, a profile over
 * its rate is passed over, a deferred row is not a try, and bulk rows
 * without List-Unsubscribe are counted per tenant. */
TEST(qstore_profiles_hold_skip_defer_and_unsubscribe_flag)
{
    scalr_email_queue *q = fresh();
    if (!q)
        return;
    scalr_email_error e;
    const char *rcpt[] = {"r@example.test"};
    int64_t ids[4];
    const char *profiles[4] = {"p1", "p1", "p2", ""};
    for (int i = 0; i < 4; i++) {
        const se_qnew m = {.mail_from = "a@example.test",
                           .rcpt = rcpt,
                           .n_rcpt = 1,
                           .message_id = "<x@example.test>",
                           .body = "x\r\n",
                           .size = 3,
                           .lane = i == 3 ? SCALR_EMAIL_LANE_TRANSACTIONAL : SCALR_EMAIL_LANE_BULK,
                           .tenant = profiles[i][0] ? profiles[i] : "t",
                           .profile = profiles[i],
                           .has_unsubscribe = i == 2 ? 1 : 0};
        CHECK_INT(se_qstore_add(q->st, &m, &ids[i], NULL, &e), 0);
    }
    char seen[256] = "";
    CHECK_INT(scalr_email_queue_unsubscribe_missing(q, on_nounsub, seen, &e), 0);
    CHECK_STR(seen, "p1=2;"); /* p2's has it; t's is transactional */

    CHECK_INT(se_qstore_profile_hold(q->st, "p1", "535 auth", &e), 0);
    seen[0] = 0;
    CHECK_INT(scalr_email_queue_profiles(q, on_prof, seen, &e), 0);
    CHECK_STR(seen, "p1:1:535 auth;");
    /* p2 passed over (over its rate), p1 held: only the row without a profile */
    se_qrow *rows = NULL;
    size_t n = 0;
    const char *skip[] = {"p2"};
    CHECK_INT(se_qstore_claim(q->st, "w1", "", 10, 60000, skip, 1, &rows, &n, &e), 0);
    CHECK_INT(n, 1);
    if (n)
        CHECK_INT(rows[0].id, ids[3]);
    se_qrow_free(rows, n);
    /* now p2 may go: claimed, then deferred for an hour, uncounted */
    CHECK_INT(se_qstore_claim(q->st, "w1", "", 10, 60000, NULL, 0, &rows, &n, &e), 0);
    CHECK_INT(n, 1);
    if (n) {
        CHECK_STR(rows[0].profile, "p2");
        const se_qattempt d = {.outcome = "deferred"};
        CHECK_INT(se_qstore_finish(q->st, "w1", rows[0].id, &d, 3600000, &e), 0);
    }
    se_qrow_free(rows, n);
    CHECK_INT(se_qstore_claim(q->st, "w1", "", 10, 60000, NULL, 0, &rows, &n, &e), 0);
    CHECK_INT(n, 0);
    se_qrow_free(rows, n);
    se_qres r = {0};
    const se_qval p[] = {QI(ids[2])};
    CHECK_INT(se_qstore_exec(q->st,
                             "SELECT attempts, state, (SELECT COUNT(*) FROM scalr_email_attempts "
                             "WHERE queue_id = scalr_email_queue.id) FROM scalr_email_queue "
                             "WHERE id = ?",
                             p, 1, &r, NULL, &e),
              0);
    if (r.rows) {
        CHECK_INT(se_qres_int(&r, 0, 0), 0);
        CHECK_STR(se_qres_text(&r, 0, 1), "queued");
        CHECK_INT(se_qres_int(&r, 0, 2), 0);
    }
    se_qres_free(&r);
    /* released: p1's two rows are claimed */
    CHECK_INT(scalr_email_queue_release_profile(q, "p1", &e), 0);
    CHECK_INT(scalr_email_queue_release_profile(q, "p1", &e), SCALR_EMAIL_ENOTFOUND);
    CHECK_INT(se_qstore_claim(q->st, "w1", "", 10, 60000, NULL, 0, &rows, &n, &e), 0);
    CHECK_INT(n, 2);
    se_qrow_free(rows, n);
    done(q);
}
