/* scalr-email queue: enqueue, work, and look at the durable queue. */
#define _GNU_SOURCE /* strptime, timegm */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <getopt.h>
#include <jansson.h>
#include <microhttpd.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

static const char usage[] =
    "usage: scalr-email queue add [send options] [--at TIME] [--priority transactional|bulk]\n"
    "                             [--tenant T] [--key K] [--expire DURATION] [--max-attempts N]\n"
    "                             [--profile NAME] [--json] [--queue URL]\n"
    "       scalr-email queue add --jsonl FILE [the options above as defaults] [--queue URL]\n"
    "       scalr-email queue work [--connections K] [--rate N] [--drain] [--backoff-base D]\n"
    "                              [--backoff-cap D] [--on-ambiguous resend|hold] [--lease D]\n"
    "                              [--data-timeout D] [--max-attempts N] [--expire D]\n"
    "                              [--retention D] [--metrics HOST:PORT] [--json] [--env-file F]\n"
    "                              [-v] [--queue URL]\n"
    "       scalr-email queue status [--json] [--watch]\n"
    "       scalr-email queue list [--state S] [--limit N] [--json]\n"
    "       scalr-email queue show ID [--json]\n"
    "       scalr-email queue retry ID | --state S\n"
    "       scalr-email queue cancel ID\n"
    "       scalr-email queue hold ID | --all\n"
    "       scalr-email queue release ID | --all | --profile NAME\n"
    "       scalr-email queue purge --state S --older-than DURATION\n"
    "\n"
    "The queue is SCALR_EMAIL_QUEUE or --queue URL: sqlite:PATH (default\n"
    "sqlite:scalr-email-queue.db) or postgresql://... .  Durations: 100ms 30s 5m 24h 7d.\n"
    "TIME: seconds since the epoch, +DURATION from now, or YYYY-MM-DDTHH:MM:SSZ.\n"
    "States: queued leased sent failed expired cancelled held unknown.\n"
    "--profile NAME: a sender profile ($SCALR_EMAIL_PROFILES/NAME.env), also \"profile\" in\n"
    "a --jsonl line: composed, checked and DKIM-signed with it now, sent with its account; the\n"
    "tenant is the profile.  Its SCALR_EMAIL_QUEUE_RATE caps its messages per second.\n";

static int help(void)
{
    fputs(usage, stdout);
    return EX_OK;
}

/* "100ms" "30s" "5m" "24h" "7d" (a bare number is seconds) -> ms, or -1. */
static long long duration_ms(const char *s)
{
    if (!s || !*s)
        return -1;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || v < 0)
        return -1;
    double mult = 1000;
    if (!strcmp(end, "ms"))
        mult = 1;
    else if (!strcmp(end, "s") || !*end)
        mult = 1000;
    else if (!strcmp(end, "m"))
        mult = 60000;
    else if (!strcmp(end, "h"))
        mult = 3600000;
    else if (!strcmp(end, "d"))
        mult = 86400000;
    else
        return -1;
    double ms = v * mult;
    return ms > 1e15 ? -1 : (long long)ms;
}

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* TIME -> ms since the epoch, or -1. */
static long long time_ms(const char *s)
{
    if (s[0] == '+') {
        long long d = duration_ms(s + 1);
        return d < 0 ? -1 : now_ms() + d;
    }
    struct tm tm = {0};
    const char *end = strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm);
    if (!end || *end)
        end = strptime(s, "%Y-%m-%dT%H:%MZ", &tm);
    if (end && !*end)
        return (long long)timegm(&tm) * 1000;
    char *e;
    errno = 0;
    double v = strtod(s, &e);
    if (errno || e == s || *e || v < 0)
        return -1;
    return (long long)(v * 1000);
}

static int open_queue(const char *url, scalr_email_queue **q)
{
    scalr_email_error err;
    if (scalr_email_queue_open(q, url, &err) != SCALR_EMAIL_OK)
        return cli_report(&err);
    return 0;
}

static long long parse_id(const char *s)
{
    char *e;
    errno = 0;
    long long v = strtoll(s, &e, 10);
    return errno || e == s || *e || v <= 0 ? -1 : v;
}

/* ---- queue add ---------------------------------------------------------- */

enum {
    O_QUEUE = 1000,
    O_AT,
    O_PRIORITY,
    O_TENANT,
    O_KEY,
    O_EXPIRE,
    O_MAXATT,
    O_JSON,
    O_JSONL,
    O_HELP,
};

typedef struct add_args {
    const char *queue, *jsonl;
    scalr_email_enqueue_opts o;
    int json;
} add_args;

static int on_add_opt(void *arg, int opt, const char *val)
{
    add_args *a = arg;
    long long v;
    switch (opt) {
    case O_QUEUE: a->queue = val; break;
    case O_JSONL: a->jsonl = val; break;
    case O_JSON: a->json = 1; break;
    case O_TENANT: a->o.tenant = val; break;
    case O_KEY: a->o.idempotency_key = val; break;
    case O_HELP: return -1;
    case O_AT:
        if ((v = time_ms(val)) < 0)
            return cli_usage_error("--at '%s' is not a time (epoch seconds, +30m, "
                                   "2026-12-24T08:00:00Z)",
                                   val);
        a->o.send_at_ms = v;
        break;
    case O_PRIORITY:
        if (!strcmp(val, "transactional"))
            a->o.lane = SCALR_EMAIL_LANE_TRANSACTIONAL;
        else if (!strcmp(val, "bulk"))
            a->o.lane = SCALR_EMAIL_LANE_BULK;
        else
            return cli_usage_error("--priority takes transactional or bulk, not '%s'", val);
        break;
    case O_EXPIRE:
        if ((v = duration_ms(val)) <= 0)
            return cli_usage_error("--expire '%s' is not a duration (30s, 5m, 24h, 7d)", val);
        a->o.expire_in_ms = v;
        break;
    case O_MAXATT:
        if ((v = parse_id(val)) < 0 || v > 1000)
            return cli_usage_error("--max-attempts takes 1 to 1000, not '%s'", val);
        a->o.max_attempts = (unsigned)v;
        break;
    }
    return 0;
}

static const struct option add_opts[] = {
    {"queue", required_argument, NULL, O_QUEUE},
    {"at", required_argument, NULL, O_AT},
    {"priority", required_argument, NULL, O_PRIORITY},
    {"tenant", required_argument, NULL, O_TENANT},
    {"key", required_argument, NULL, O_KEY},
    {"expire", required_argument, NULL, O_EXPIRE},
    {"max-attempts", required_argument, NULL, O_MAXATT},
    {"json", no_argument, NULL, O_JSON},
    {"jsonl", required_argument, NULL, O_JSONL},
    {"help", no_argument, NULL, O_HELP},
};
#define N_ADD_OPTS (sizeof add_opts / sizeof add_opts[0])

/* --jsonl: one message per line, streamed; one result line each.  Lines
 * are stored in transactions of up to BATCH messages (one fsync each), and
 * a batch's results are printed once it is durable: memory stays bounded
 * by the batch, whatever the file's length. */
#define BATCH 1000

typedef struct pending {
    char **lines; /* JSON result lines of the open batch */
    size_t n, stored;
} pending;

static void pending_flush(pending *p, const char *failure, size_t *bad)
{
    for (size_t i = 0; i < p->n; i++) {
        if (failure && strstr(p->lines[i], "\"id\":")) {
            /* stored in the batch that was rolled back: not queued */
            json_error_t je;
            json_t *o = json_loads(p->lines[i], 0, &je);
            json_t *line = o ? json_object_get(o, "line") : NULL;
            printf("{\"line\":%lld,\"error\":", line ? (long long)json_integer_value(line) : 0LL);
            json_t *m = json_string(failure);
            char *t = json_dumps(m, JSON_ENCODE_ANY | JSON_ENSURE_ASCII);
            printf("%s,\"code\":\"ESTORE\"}\n", t ? t : "\"\"");
            free(t);
            json_decref(m);
            json_decref(o);
            (*bad)++;
        } else {
            puts(p->lines[i]);
        }
        free(p->lines[i]);
    }
    p->n = 0;
    p->stored = 0;
}

/* Bulk mail without one-click unsubscribe (RFC 8058) is what Gmail and
 * Yahoo penalise: say so at enqueue. */
static int lacks_unsubscribe(const scalr_email_message *m, scalr_email_lane lane)
{
    if (lane != SCALR_EMAIL_LANE_BULK)
        return 0;
    for (const scalr_email_header *h = m->headers; h && h->name; h++)
        if (!strcasecmp(h->name, "List-Unsubscribe"))
            return 0;
    return 1;
}

static int add_jsonl(add_args *a, const char *env_file)
{
    FILE *in = strcmp(a->jsonl, "-") ? fopen(a->jsonl, "rb") : stdin;
    if (!in) {
        fprintf(stderr, "scalr-email: cannot read %s: %s (input file unreadable)\n", a->jsonl,
                strerror(errno));
        return EX_NOINPUT;
    }
    scalr_email_queue *q = NULL;
    char *from = NULL;
    scalr_email_error err;
    int status = open_queue(a->queue, &q);
    if (!status && scalr_email_config_get(env_file, "SMTP_FROM", &from, &err) != SCALR_EMAIL_OK)
        status = cli_report(&err);
    if (!status && scalr_email_queue_dkim_from_env(q, env_file, &err) != SCALR_EMAIL_OK)
        status = cli_report(&err);
    pending p = {.lines = calloc(BATCH, sizeof(char *))};
    if (!p.lines && !status)
        status = EX_OSERR;
    char *line = NULL;
    size_t cap = 0, lineno = 0, bad = 0;
    ssize_t len;
    int worst = 0, in_tx = 0;
    while (!status && (len = getline(&line, &cap, in)) >= 0) {
        lineno++;
        while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            len--;
        if (!len)
            continue;
        cli_item it;
        memset(&it, 0, sizeof it);
        it.line = lineno;
        json_t *o = json_object();
        json_object_set_new(o, "line", json_integer((json_int_t)lineno));
        int prc = cli_item_parse(&it, line, (size_t)len);
        if (prc < 0 && !it.why[0])
            snprintf(it.why, sizeof it.why, "cannot parse the line");
        if (it.why[0]) {
            json_object_set_new(o, "error", json_string(it.why));
            json_object_set_new(o, "code", json_string("EINVAL"));
            bad++;
            if (!worst)
                worst = EX_DATAERR;
        } else {
            long long id = 0;
            int existed = 0;
            scalr_email_code rc = SCALR_EMAIL_OK;
            scalr_email_enqueue_opts lo = a->o;
            if (it.profile)
                lo.profile = it.profile;
            lo.env_file = env_file;
            if (!in_tx && (rc = scalr_email_queue_begin(q, &err)) == SCALR_EMAIL_OK)
                in_tx = 1;
            if (rc == SCALR_EMAIL_OK)
                rc = scalr_email_queue_add(q, &it.m, from, &lo, &id, &existed, &err);
            if (rc == SCALR_EMAIL_OK) {
                if (lacks_unsubscribe(&it.m, a->o.lane))
                    json_object_set_new(o, "warning",
                                        json_string("bulk message without \"unsubscribe\""));
                json_object_set_new(o, "id", json_integer(id));
                json_object_set_new(o, "message_id", json_string(err.message_id));
                if (existed)
                    json_object_set_new(o, "existed", json_true());
                p.stored++;
            } else if (rc == SCALR_EMAIL_ESTORE || rc == SCALR_EMAIL_ENOMEM) {
                /* The store itself failed: the open batch is rolled back. */
                if (in_tx)
                    scalr_email_queue_rollback(q);
                in_tx = 0;
                pending_flush(&p, err.message, &bad);
                json_object_set_new(o, "error", json_string(err.message));
                json_object_set_new(o, "code", json_string(cli_code_name(rc)));
                status = cli_exit_status(rc);
                fprintf(stderr,
                        "scalr-email: %s; the lines of the open batch and from %zu on "
                        "were not queued\n",
                        err.message, lineno);
            } else {
                json_object_set_new(o, "error", json_string(err.message));
                json_object_set_new(o, "code", json_string(cli_code_name(rc)));
                bad++;
                if (!worst)
                    worst = cli_exit_status(rc);
            }
        }
        char *text = json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII);
        json_decref(o);
        cli_item_free(&it);
        if (!text) {
            status = EX_OSERR;
            break;
        }
        if (status) {
            puts(text);
            free(text);
            break;
        }
        p.lines[p.n++] = text;
        if (p.n == BATCH) {
            if (in_tx && scalr_email_queue_commit(q, &err) != SCALR_EMAIL_OK) {
                scalr_email_queue_rollback(q);
                pending_flush(&p, err.message, &bad);
                status = cli_report(&err);
            } else {
                pending_flush(&p, NULL, &bad);
            }
            in_tx = 0;
        }
    }
    if (in_tx) {
        if (scalr_email_queue_commit(q, &err) != SCALR_EMAIL_OK) {
            scalr_email_queue_rollback(q);
            pending_flush(&p, err.message, &bad);
            if (!status)
                status = cli_report(&err);
        }
    }
    pending_flush(&p, NULL, &bad);
    if (!status && ferror(in)) {
        fprintf(stderr, "scalr-email: reading %s: %s\n", a->jsonl, strerror(errno));
        status = EX_IOERR;
    }
    if (!status && bad)
        fprintf(stderr, "scalr-email: %zu of %zu lines were not queued\n", bad, lineno);
    free(p.lines);
    free(line);
    free(from);
    if (in != stdin)
        fclose(in);
    scalr_email_queue_close(q);
    if (fflush(stdout) != 0 && !status)
        status = EX_IOERR;
    return status ? status : worst;
}

static int q_add(int argc, char **argv)
{
    add_args a = {0};
    int jsonl = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h"))
            return help();
        if (!strcmp(argv[i], "--jsonl") || !strncmp(argv[i], "--jsonl=", 8))
            jsonl = 1;
    }
    if (jsonl) {
        /* Only the queue options (and --env-file) apply; each line is a message. */
        static const struct option more[] = {{"env-file", required_argument, NULL, 'e'},
                                             {"profile", required_argument, NULL, 'p'}};
        struct option all[N_ADD_OPTS + 3];
        memcpy(all, add_opts, sizeof add_opts);
        all[N_ADD_OPTS] = more[0];
        all[N_ADD_OPTS + 1] = more[1];
        memset(&all[N_ADD_OPTS + 2], 0, sizeof all[0]);
        const char *env_file = NULL;
        optind = 1;
        opterr = 0;
        int c;
        while ((c = getopt_long(argc, argv, ":", all, NULL)) != -1) {
            if (c == 'e') {
                env_file = optarg;
                continue;
            }
            if (c == 'p') { /* the lines' default profile */
                a.o.profile = optarg;
                continue;
            }
            if (c == ':')
                return cli_usage_error("option '%s' needs a value", argv[optind - 1]);
            if (c < 1000)
                return cli_usage_error("queue add --jsonl: unexpected option '%s'",
                                       argv[optind - 1]);
            int st = on_add_opt(&a, c, optarg);
            if (st)
                return st;
        }
        if (optind < argc)
            return cli_usage_error("unexpected argument '%s'", argv[optind]);
        if (a.o.profile && a.o.tenant && strcmp(a.o.profile, a.o.tenant))
            return cli_usage_error("--tenant %s with --profile %s: in the queue the tenant is the "
                                   "profile (leave --tenant out)",
                                   a.o.tenant, a.o.profile);
        return add_jsonl(&a, env_file);
    }
    cli_msg *m = NULL;
    int status = cli_msg_parse(argc, argv, add_opts, N_ADD_OPTS, on_add_opt, &a, &m);
    if (status)
        return status;
    const char *profile = cli_msg_profile(m);
    if (profile) {
        if (a.o.tenant && strcmp(a.o.tenant, profile)) {
            status = cli_usage_error("--tenant %s with --profile %s: in the queue the tenant is "
                                     "the profile (leave --tenant out)",
                                     a.o.tenant, profile);
            cli_msg_free(m);
            return status;
        }
        a.o.profile = profile;
        a.o.env_file = cli_msg_env_file(m);
    }
    scalr_email_queue *q = NULL;
    char *from = NULL;
    scalr_email_error err;
    status = open_queue(a.queue, &q);
    if (!status && !cli_msg_message(m)->sender &&
        scalr_email_config_get(cli_msg_env_file(m), "SMTP_FROM", &from, &err) != SCALR_EMAIL_OK)
        status = cli_report(&err);
    if (!status && scalr_email_queue_dkim_from_env(q, cli_msg_env_file(m), &err) != SCALR_EMAIL_OK)
        status = cli_report(&err);
    long long id = 0;
    int existed = 0;
    if (!status && scalr_email_queue_add(q, cli_msg_message(m), from, &a.o, &id, &existed, &err) !=
                       SCALR_EMAIL_OK)
        status = cli_report(&err);
    if (!status && lacks_unsubscribe(cli_msg_message(m), a.o.lane))
        fputs("scalr-email: warning: a bulk message without --unsubscribe (Gmail and Yahoo want "
              "one-click unsubscribe for bulk mail)\n",
              stderr);
    if (!status) {
        if (a.json)
            printf("{\"id\":%lld,\"existed\":%s,\"message_id\":\"%s\"}\n", id,
                   existed ? "true" : "false", err.message_id);
        else
            printf("%lld\n", id);
        if (fflush(stdout) != 0)
            status = EX_IOERR;
    }
    free(from);
    scalr_email_queue_close(q);
    cli_msg_free(m);
    return status;
}

/* ---- queue work --------------------------------------------------------- */

static scalr_email_queue *work_q;
static volatile sig_atomic_t n_signals;

static void on_signal(int sig)
{
    n_signals++;
    /* First TERM: finish what is in flight.  A second, or INT: at once. */
    scalr_email_queue_stop(work_q, sig == SIGINT || n_signals > 1);
}

#define N_BUCKETS 12
static const double buckets[N_BUCKETS] = {0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300};

typedef struct stats {
    pthread_mutex_t mu;
    int json;
    long long by_outcome[7];
    long long by_class[6]; /* reply class 0 (none), 2, 3, 4, 5 */
    long long hist[N_BUCKETS + 1];
    double hist_sum;
    long long hist_n;
    const char *url;
} stats;

static const char *const outcomes[7] = {"sent", "retry",   "failed",  "expired",
                                        "held", "unknown", "released"};

static void on_event(void *arg, long long id, const char *outcome, long long age_ms,
                     const scalr_email_error *e)
{
    stats *s = arg;
    pthread_mutex_lock(&s->mu);
    for (int i = 0; i < 7; i++)
        if (!strcmp(outcome, outcomes[i]))
            s->by_outcome[i]++;
    int cls = e->smtp_code / 100;
    s->by_class[cls >= 2 && cls <= 5 ? cls : 0]++;
    if (!strcmp(outcome, "sent")) {
        double secs = (double)age_ms / 1000.0;
        int b = 0;
        while (b < N_BUCKETS && secs > buckets[b])
            b++;
        s->hist[b]++;
        s->hist_sum += secs;
        s->hist_n++;
    }
    pthread_mutex_unlock(&s->mu);
    if (s->json) {
        json_t *o = json_object();
        json_object_set_new(o, "id", json_integer(id));
        json_object_set_new(o, "outcome", json_string(outcome));
        json_object_set_new(o, "age_ms", json_integer(age_ms));
        json_object_set_new(o, "smtp_code", json_integer(e->smtp_code));
        json_object_set_new(o, "enhanced", json_string(e->enhanced));
        json_object_set_new(o, "stage", json_string(e->stage));
        json_object_set_new(o, "message_id", json_string(e->message_id));
        if (strcmp(outcome, "sent"))
            json_object_set_new(o, "error", json_string(e->message));
        char *t = json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII);
        if (t)
            puts(t);
        free(t);
        json_decref(o);
    } else if (!strcmp(outcome, "sent")) {
        printf("%lld sent %s (%d%s%s)\n", id, e->message_id, e->smtp_code,
               e->enhanced[0] ? " " : "", e->enhanced);
    } else {
        printf("%lld %s: %s\n", id, outcome, e->message);
    }
    fflush(stdout);
}

typedef struct mbuf {
    char *p;
    size_t n, cap;
} mbuf;

static void mput(mbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void mput(mbuf *b, const char *fmt, ...)
{
    va_list ap;
    for (;;) {
        va_start(ap, fmt);
        int n = vsnprintf(b->p ? b->p + b->n : NULL, b->p ? b->cap - b->n : 0, fmt, ap);
        va_end(ap);
        if (n < 0)
            return;
        if (b->p && b->n + (size_t)n < b->cap) {
            b->n += (size_t)n;
            return;
        }
        size_t nc = (b->cap + (size_t)n + 1) * 2;
        char *g = realloc(b->p, nc);
        if (!g)
            return;
        b->p = g;
        b->cap = nc;
    }
}

/* Prometheus label values: \ " and newline escaped. */
static void mlabel(mbuf *b, const char *v)
{
    for (; v && *v; v++) {
        if (*v == '\\' || *v == '"')
            mput(b, "\\%c", *v);
        else if (*v == '\n')
            mput(b, "\\n");
        else
            mput(b, "%c", *v);
    }
}

static void depth_line(void *arg, const char *state, const char *lane, const char *tenant,
                       long long count)
{
    mbuf *b = arg;
    mput(b, "scalr_email_queue_messages{state=\"%s\",lane=\"%s\",tenant=\"", state, lane);
    mlabel(b, tenant);
    mput(b, "\"} %lld\n", count);
}

static enum MHD_Result serve_metrics(void *cls, struct MHD_Connection *conn, const char *url,
                                     const char *method, const char *version, const char *upload,
                                     size_t *upload_size, void **ptr)
{
    (void)version;
    (void)upload;
    (void)upload_size;
    (void)ptr;
    stats *s = cls;
    if (strcmp(method, "GET") || strcmp(url, "/metrics")) {
        struct MHD_Response *r =
            MHD_create_response_from_buffer(10, (void *)"not found\n", MHD_RESPMEM_PERSISTENT);
        enum MHD_Result ret = MHD_queue_response(conn, MHD_HTTP_NOT_FOUND, r);
        MHD_destroy_response(r);
        return ret;
    }
    mbuf b = {0};
    scalr_email_queue *q = NULL;
    scalr_email_error err;
    scalr_email_queue_status st;
    if (scalr_email_queue_open(&q, s->url, &err) == SCALR_EMAIL_OK) {
        mput(&b, "# HELP scalr_email_queue_messages Messages in the queue by state, lane and "
                 "tenant.\n# TYPE scalr_email_queue_messages gauge\n");
        scalr_email_queue_depth(q, depth_line, &b, &err);
        if (scalr_email_queue_get_status(q, &st, &err) == SCALR_EMAIL_OK)
            mput(&b,
                 "# HELP scalr_email_queue_oldest_queued_seconds Age of the oldest queued "
                 "message.\n# TYPE scalr_email_queue_oldest_queued_seconds gauge\n"
                 "scalr_email_queue_oldest_queued_seconds %.3f\n",
                 (double)st.oldest_queued_ms / 1000.0);
        scalr_email_queue_close(q);
    } else {
        mput(&b, "# queue unavailable: %s\n", err.message);
    }
    pthread_mutex_lock(&s->mu);
    mput(&b, "# HELP scalr_email_worker_outcomes_total Outcomes of this worker's tries.\n"
             "# TYPE scalr_email_worker_outcomes_total counter\n");
    for (int i = 0; i < 7; i++)
        mput(&b, "scalr_email_worker_outcomes_total{outcome=\"%s\"} %lld\n", outcomes[i],
             s->by_outcome[i]);
    mput(&b, "# HELP scalr_email_worker_replies_total Tries by the class of the last reply.\n"
             "# TYPE scalr_email_worker_replies_total counter\n");
    static const char *const classes[6] = {"none", "", "2xx", "3xx", "4xx", "5xx"};
    for (int i = 0; i < 6; i++)
        if (i != 1)
            mput(&b, "scalr_email_worker_replies_total{class=\"%s\"} %lld\n", classes[i],
                 s->by_class[i]);
    mput(&b, "# HELP scalr_email_enqueue_to_sent_seconds From enqueue to sent.\n"
             "# TYPE scalr_email_enqueue_to_sent_seconds histogram\n");
    long long cum = 0;
    for (int i = 0; i < N_BUCKETS; i++) {
        cum += s->hist[i];
        mput(&b, "scalr_email_enqueue_to_sent_seconds_bucket{le=\"%g\"} %lld\n", buckets[i], cum);
    }
    cum += s->hist[N_BUCKETS];
    mput(&b, "scalr_email_enqueue_to_sent_seconds_bucket{le=\"+Inf\"} %lld\n", cum);
    mput(&b, "scalr_email_enqueue_to_sent_seconds_sum %.3f\n", s->hist_sum);
    mput(&b, "scalr_email_enqueue_to_sent_seconds_count %lld\n", s->hist_n);
    pthread_mutex_unlock(&s->mu);
    struct MHD_Response *r =
        MHD_create_response_from_buffer(b.n, b.p ? b.p : (void *)"", MHD_RESPMEM_MUST_FREE);
    if (!b.p)
        r = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    MHD_add_response_header(r, "Content-Type", "text/plain; version=0.0.4");
    enum MHD_Result ret = MHD_queue_response(conn, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return ret;
}

static struct MHD_Daemon *start_metrics(const char *hostport, stats *s)
{
    char host[256];
    const char *colon = strrchr(hostport, ':');
    if (!colon || (size_t)(colon - hostport) >= sizeof host)
        return NULL;
    memcpy(host, hostport, (size_t)(colon - hostport));
    host[colon - hostport] = 0;
    long port = strtol(colon + 1, NULL, 10);
    if (port <= 0 || port > 65535)
        return NULL;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, strcmp(host, "localhost") ? host : "127.0.0.1", &sa.sin_addr) != 1)
        return NULL;
    return MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD, (uint16_t)port, NULL, NULL,
                            serve_metrics, s, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
                            MHD_OPTION_CONNECTION_LIMIT, (unsigned)16,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)10, MHD_OPTION_END);
}

enum {
    W_CONN = 1100,
    W_RATE,
    W_DRAIN,
    W_BASE,
    W_CAP,
    W_AMBIG,
    W_LEASE,
    W_DATA,
    W_MAXATT,
    W_EXPIRE,
    W_RETAIN,
    W_METRICS,
    W_JSON,
    W_QUEUE,
    W_ENV,
    W_HELP,
};

static int q_work(int argc, char **argv)
{
    static const struct option o[] = {
        {"connections", required_argument, NULL, W_CONN},
        {"rate", required_argument, NULL, W_RATE},
        {"drain", no_argument, NULL, W_DRAIN},
        {"backoff-base", required_argument, NULL, W_BASE},
        {"backoff-cap", required_argument, NULL, W_CAP},
        {"on-ambiguous", required_argument, NULL, W_AMBIG},
        {"lease", required_argument, NULL, W_LEASE},
        {"data-timeout", required_argument, NULL, W_DATA},
        {"max-attempts", required_argument, NULL, W_MAXATT},
        {"expire", required_argument, NULL, W_EXPIRE},
        {"retention", required_argument, NULL, W_RETAIN},
        {"metrics", required_argument, NULL, W_METRICS},
        {"json", no_argument, NULL, W_JSON},
        {"queue", required_argument, NULL, W_QUEUE},
        {"env-file", required_argument, NULL, W_ENV},
        {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, W_HELP},
        {0, 0, 0, 0},
    };
    scalr_email_work_opts wo = {0};
    const char *url = NULL, *env_file = NULL, *metrics = NULL;
    int verbose = 0, c;
    stats s = {.mu = PTHREAD_MUTEX_INITIALIZER};
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":vh", o, NULL)) != -1) {
        long long v = 0;
        char *end;
        switch (c) {
        case W_HELP:
        case 'h': return help();
        case 'v': verbose = 1; break;
        case W_DRAIN: wo.drain = 1; break;
        case W_JSON: s.json = 1; break;
        case W_QUEUE: url = optarg; break;
        case W_ENV: env_file = optarg; break;
        case W_METRICS: metrics = optarg; break;
        case W_CONN:
            v = parse_id(optarg);
            if (v < 1 || v > 64)
                return cli_usage_error("--connections takes 1 to 64, not '%s'", optarg);
            wo.connections = (unsigned)v;
            break;
        case W_RATE:
            wo.rate = strtod(optarg, &end);
            if (*end || wo.rate <= 0)
                return cli_usage_error("--rate takes messages per second, not '%s'", optarg);
            break;
        case W_MAXATT:
            v = parse_id(optarg);
            if (v < 1 || v > 1000)
                return cli_usage_error("--max-attempts takes 1 to 1000, not '%s'", optarg);
            wo.max_attempts = (unsigned)v;
            break;
        case W_AMBIG:
            if (!strcmp(optarg, "hold"))
                wo.on_ambiguous_hold = 1;
            else if (strcmp(optarg, "resend"))
                return cli_usage_error("--on-ambiguous takes resend or hold, not '%s'", optarg);
            break;
        case W_BASE:
        case W_CAP:
        case W_LEASE:
        case W_DATA:
        case W_EXPIRE:
        case W_RETAIN:
            v = duration_ms(optarg);
            if (v <= 0)
                return cli_usage_error("'%s' is not a duration (100ms, 30s, 5m, 24h, 7d)", optarg);
            if (c == W_BASE)
                wo.backoff_base_ms = v;
            else if (c == W_CAP)
                wo.backoff_cap_ms = v;
            else if (c == W_LEASE)
                wo.lease_ms = v;
            else if (c == W_DATA)
                wo.data_timeout_ms = v;
            else if (c == W_EXPIRE)
                wo.expire_ms = v;
            else
                wo.retention_ms = v;
            break;
        case ':': return cli_usage_error("option '%s' needs a value", argv[optind - 1]);
        default: return cli_usage_error("unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return cli_usage_error("unexpected argument '%s'", argv[optind]);
    scalr_email_client *client = NULL;
    scalr_email_error err;
    if (scalr_email_client_from_env(&client, env_file, verbose ? cli_trace : NULL, NULL, &err) !=
        SCALR_EMAIL_OK)
        return cli_report(&err);
    int status = open_queue(url, &work_q);
    if (status) {
        scalr_email_client_free(client);
        return status;
    }
    s.url = url;
    struct MHD_Daemon *md = NULL;
    if (metrics && !(md = start_metrics(metrics, &s))) {
        scalr_email_queue_close(work_q);
        scalr_email_client_free(client);
        return cli_usage_error("--metrics %s: cannot listen there (HOST:PORT, an IPv4 address)",
                               metrics);
    }
    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    wo.on_event = on_event;
    wo.arg = &s;
    wo.env_file = env_file; /* under the profiles, as for the worker's own client */
    wo.trace = verbose ? cli_trace : NULL;
    scalr_email_code rc = scalr_email_queue_work(work_q, client, &wo, &err);
    if (md)
        MHD_stop_daemon(md);
    if (rc != SCALR_EMAIL_OK)
        status = cli_report(&err);
    scalr_email_queue_close(work_q);
    work_q = NULL;
    scalr_email_client_free(client);
    return status;
}

/* ---- status, list, show ------------------------------------------------- */

typedef struct prov_list {
    json_t *arr;
    int json;
} prov_list;

static void on_provider(void *arg, const char *provider, int held, long long paused_until,
                        const char *reason)
{
    prov_list *p = arg;
    if (p->json) {
        json_t *o = json_object();
        json_object_set_new(o, "provider", json_string(provider));
        json_object_set_new(o, "held", json_boolean(held));
        json_object_set_new(o, "paused_until", json_integer(paused_until));
        json_object_set_new(o, "reason", json_string(reason));
        json_array_append_new(p->arr, o);
    } else if (held) {
        printf("HELD provider %s: %s (fix it, then: scalr-email queue release --all)\n",
               provider[0] ? provider : "(default)", reason);
    } else {
        printf("paused provider %s until %lld: %s\n", provider[0] ? provider : "(default)",
               paused_until, reason);
    }
}

static void on_profile(void *arg, const char *profile, int held, long long paused_until,
                       const char *reason)
{
    prov_list *p = arg;
    if (p->json) {
        json_t *o = json_object();
        json_object_set_new(o, "profile", json_string(profile));
        json_object_set_new(o, "held", json_boolean(held));
        json_object_set_new(o, "paused_until", json_integer(paused_until));
        json_object_set_new(o, "reason", json_string(reason));
        json_array_append_new(p->arr, o);
    } else if (held) {
        printf("HELD profile %s: %s (other profiles keep sending; fix it, then: scalr-email "
               "queue release --profile %s)\n",
               profile, reason, profile);
    } else {
        printf("paused profile %s until %lld: %s\n", profile, paused_until, reason);
    }
}

static void on_no_unsub(void *arg, const char *tenant, long long count)
{
    prov_list *p = arg;
    if (p->json) {
        json_t *o = json_object();
        json_object_set_new(o, "tenant", json_string(tenant));
        json_object_set_new(o, "count", json_integer(count));
        json_array_append_new(p->arr, o);
    } else {
        printf("warning: tenant %s: %lld bulk message%s without List-Unsubscribe (Gmail and "
               "Yahoo want one-click unsubscribe for bulk mail)\n",
               tenant[0] ? tenant : "(none)", count, count == 1 ? "" : "s");
    }
}

/* Held or paused profiles, then bulk mail without unsubscribe: into o
 * (JSON) or printed. */
static scalr_email_code status_tenants(scalr_email_queue *q, json_t *o, scalr_email_error *err)
{
    prov_list pr = {.arr = json_array(), .json = o != NULL};
    prov_list un = {.arr = json_array(), .json = o != NULL};
    scalr_email_code rc = scalr_email_queue_profiles(q, on_profile, &pr, err);
    if (rc == SCALR_EMAIL_OK)
        rc = scalr_email_queue_unsubscribe_missing(q, on_no_unsub, &un, err);
    if (rc == SCALR_EMAIL_OK && o) {
        json_object_set(o, "profiles", pr.arr);
        json_object_set(o, "bulk_without_unsubscribe", un.arr);
    }
    json_decref(pr.arr);
    json_decref(un.arr);
    return rc;
}

static int print_status(scalr_email_queue *q, int json)
{
    scalr_email_queue_status st;
    scalr_email_error err;
    if (scalr_email_queue_get_status(q, &st, &err) != SCALR_EMAIL_OK)
        return cli_report(&err);
    long long counts[8] = {st.queued,  st.leased,    st.sent, st.failed,
                           st.expired, st.cancelled, st.held, st.unknown};
    static const char *const names[8] = {"queued",  "leased",    "sent", "failed",
                                         "expired", "cancelled", "held", "unknown"};
    prov_list p = {.arr = json_array(), .json = json};
    if (json) {
        json_t *o = json_object(), *c = json_object();
        for (int i = 0; i < 8; i++)
            json_object_set_new(c, names[i], json_integer(counts[i]));
        json_object_set_new(o, "counts", c);
        json_object_set_new(o, "oldest_queued_seconds",
                            json_real((double)st.oldest_queued_ms / 1000.0));
        json_object_set_new(o, "next_retry_in_seconds",
                            st.next_run_at ? json_real((double)(st.next_run_at - st.now) / 1000.0)
                                           : json_null());
        json_object_set_new(o, "sent_per_second", json_real((double)st.sent_last_minute / 60.0));
        if (scalr_email_queue_providers(q, on_provider, &p, &err) != SCALR_EMAIL_OK) {
            json_decref(o);
            json_decref(p.arr);
            return cli_report(&err);
        }
        json_object_set(o, "providers", p.arr);
        if (status_tenants(q, o, &err) != SCALR_EMAIL_OK) {
            json_decref(o);
            json_decref(p.arr);
            return cli_report(&err);
        }
        char *t = json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII);
        if (t)
            puts(t);
        free(t);
        json_decref(o);
    } else {
        for (int i = 0; i < 8; i++)
            printf("%-10s %lld\n", names[i], counts[i]);
        if (st.oldest_queued_ms)
            printf("oldest queued: %.1f s ago\n", (double)st.oldest_queued_ms / 1000.0);
        if (st.next_run_at > st.now)
            printf("next try: in %.1f s\n", (double)(st.next_run_at - st.now) / 1000.0);
        printf("sent in the last minute: %lld (%.1f/s)\n", st.sent_last_minute,
               (double)st.sent_last_minute / 60.0);
        if (scalr_email_queue_providers(q, on_provider, &p, &err) != SCALR_EMAIL_OK ||
            status_tenants(q, NULL, &err) != SCALR_EMAIL_OK) {
            json_decref(p.arr);
            return cli_report(&err);
        }
    }
    json_decref(p.arr);
    return fflush(stdout) == 0 ? EX_OK : EX_IOERR;
}

static int simple_opts(int argc, char **argv, const char *extra_name, const char **extra_val,
                       int *json, int *watch, int *all, const char **url, const char **state,
                       const char **older, const char **profile)
{
    static const struct option o[] = {
        {"json", no_argument, NULL, 'j'},        {"watch", no_argument, NULL, 'w'},
        {"all", no_argument, NULL, 'a'},         {"queue", required_argument, NULL, 'q'},
        {"state", required_argument, NULL, 's'}, {"older-than", required_argument, NULL, 'o'},
        {"limit", required_argument, NULL, 'l'}, {"profile", required_argument, NULL, 'p'},
        {"help", no_argument, NULL, 'h'},        {0, 0, 0, 0},
    };
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", o, NULL)) != -1) {
        switch (c) {
        case 'h': return -1;
        case 'j':
            if (!json)
                goto bad;
            *json = 1;
            break;
        case 'w':
            if (!watch)
                goto bad;
            *watch = 1;
            break;
        case 'a':
            if (!all)
                goto bad;
            *all = 1;
            break;
        case 'q': *url = optarg; break;
        case 's':
            if (!state)
                goto bad;
            *state = optarg;
            break;
        case 'o':
            if (!older)
                goto bad;
            *older = optarg;
            break;
        case 'l':
            if (!extra_name || strcmp(extra_name, "limit"))
                goto bad;
            *extra_val = optarg;
            break;
        case 'p':
            if (!profile)
                goto bad;
            *profile = optarg;
            break;
        case ':': return cli_usage_error("option '%s' needs a value", argv[optind - 1]);
        default:
        bad:
            return cli_usage_error("unknown option '%s'", argv[optind - 1]);
        }
    }
    return 0;
}

static int q_status(int argc, char **argv)
{
    int json = 0, watch = 0;
    const char *url = NULL;
    int st = simple_opts(argc, argv, NULL, NULL, &json, &watch, NULL, &url, NULL, NULL, NULL);
    if (st)
        return st < 0 ? help() : st;
    if (optind < argc)
        return cli_usage_error("unexpected argument '%s'", argv[optind]);
    scalr_email_queue *q = NULL;
    if ((st = open_queue(url, &q)))
        return st;
    do {
        if (watch && isatty(STDOUT_FILENO))
            fputs("\033[H\033[2J", stdout);
        st = print_status(q, json);
        if (watch && !st)
            sleep(1);
    } while (watch && !st);
    scalr_email_queue_close(q);
    return st;
}

static json_t *item_json(const scalr_email_queue_item *it)
{
    json_t *o = json_object();
    json_object_set_new(o, "id", json_integer(it->id));
    json_object_set_new(o, "state", json_string(it->state));
    json_object_set_new(o, "lane", json_string(it->lane));
    json_object_set_new(o, "tenant", json_string(it->tenant));
    json_object_set_new(o, "provider", json_string(it->provider));
    json_object_set_new(o, "profile", json_string(it->profile ? it->profile : ""));
    json_object_set_new(o, "idempotency_key",
                        it->idempotency_key ? json_string(it->idempotency_key) : json_null());
    json_object_set_new(o, "mail_from", json_string(it->mail_from));
    json_t *r = json_array();
    for (const char *p = it->rcpt_to; p && *p;) {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        json_array_append_new(r, json_stringn(p, n));
        p += n + (nl ? 1 : 0);
    }
    json_object_set_new(o, "rcpt_to", r);
    json_object_set_new(o, "message_id", json_string(it->message_id));
    json_object_set_new(o, "size", json_integer(it->size));
    json_object_set_new(o, "attempts", json_integer(it->attempts));
    json_object_set_new(o, "max_attempts",
                        it->max_attempts ? json_integer(it->max_attempts) : json_null());
    json_object_set_new(o, "created_at", json_integer(it->created_at));
    json_object_set_new(o, "run_at", json_integer(it->run_at));
    json_object_set_new(o, "expire_at", it->expire_at ? json_integer(it->expire_at) : json_null());
    json_object_set_new(o, "updated_at", json_integer(it->updated_at));
    json_object_set_new(o, "finished_at",
                        it->finished_at ? json_integer(it->finished_at) : json_null());
    json_object_set_new(o, "lease_owner",
                        it->lease_owner ? json_string(it->lease_owner) : json_null());
    json_object_set_new(o, "last_error",
                        it->last_error ? json_string(it->last_error) : json_null());
    return o;
}

typedef struct lister {
    int json;
    json_t *obj;
} lister;

static void print_item(void *arg, const scalr_email_queue_item *it)
{
    lister *l = arg;
    if (l->json) {
        json_t *o = item_json(it);
        char *t = json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII);
        if (t)
            puts(t);
        free(t);
        json_decref(o);
        return;
    }
    char first[128];
    const char *nl = strchr(it->rcpt_to, '\n');
    snprintf(first, sizeof first, "%.*s%s", (int)(nl ? nl - it->rcpt_to : 100), it->rcpt_to,
             nl ? " ..." : "");
    printf("%lld\t%s\t%s\t%s\ttries %d\t%s\t%s\n", it->id, it->state, it->lane, first, it->attempts,
           it->message_id, it->last_error ? it->last_error : "");
}

static int q_list(int argc, char **argv)
{
    int json = 0;
    const char *url = NULL, *state = NULL, *limit = NULL;
    int st = simple_opts(argc, argv, "limit", &limit, &json, NULL, NULL, &url, &state, NULL, NULL);
    if (st)
        return st < 0 ? help() : st;
    if (optind < argc)
        return cli_usage_error("unexpected argument '%s'", argv[optind]);
    long long lim = 0;
    if (limit && (lim = parse_id(limit)) < 0)
        return cli_usage_error("--limit takes a positive number, not '%s'", limit);
    scalr_email_queue *q = NULL;
    if ((st = open_queue(url, &q)))
        return st;
    scalr_email_error err;
    lister l = {.json = json};
    if (scalr_email_queue_list(q, state, (size_t)lim, print_item, &l, &err) != SCALR_EMAIL_OK)
        st = cli_report(&err);
    scalr_email_queue_close(q);
    if (!st && fflush(stdout) != 0)
        st = EX_IOERR;
    return st;
}

static void show_item(void *arg, const scalr_email_queue_item *it)
{
    lister *l = arg;
    if (l->json) {
        l->obj = item_json(it);
        json_object_set_new(l->obj, "attempts_list", json_array());
        return;
    }
    printf("id:           %lld\nstate:        %s\nlane:         %s\ntenant:       %s\n"
           "message-id:   %s\nfrom:         %s\nsize:         %lld\nattempts:     %d\n",
           it->id, it->state, it->lane, it->tenant, it->message_id, it->mail_from, it->size,
           it->attempts);
    printf("recipients:   ");
    for (const char *p = it->rcpt_to; *p; p++)
        fputs(*p == '\n' ? ", " : (char[]){*p, 0}, stdout);
    printf("\n");
    if (it->profile && it->profile[0])
        printf("profile:      %s\n", it->profile);
    if (it->idempotency_key)
        printf("key:          %s\n", it->idempotency_key);
    if (it->last_error)
        printf("last error:   %s\n", it->last_error);
}

static void show_attempt(void *arg, const scalr_email_queue_attempt *a)
{
    lister *l = arg;
    if (l->json) {
        json_t *o = json_object();
        json_object_set_new(o, "n", json_integer(a->n));
        json_object_set_new(o, "at", json_integer(a->at));
        json_object_set_new(o, "worker", json_string(a->worker));
        json_object_set_new(o, "outcome", json_string(a->outcome));
        json_object_set_new(o, "stage", json_string(a->stage));
        json_object_set_new(o, "smtp_code", json_integer(a->smtp_code));
        json_object_set_new(o, "enhanced", json_string(a->enhanced));
        json_object_set_new(o, "recipient", json_string(a->recipient));
        json_object_set_new(o, "server_text", json_string(a->server_text));
        json_object_set_new(o, "message", json_string(a->message));
        json_array_append_new(json_object_get(l->obj, "attempts_list"), o);
        return;
    }
    printf("attempt %d:    %s at %lld, stage %s, %d %s %s%s%s: %s\n", a->n, a->outcome, a->at,
           a->stage[0] ? a->stage : "-", a->smtp_code, a->enhanced, a->server_text,
           a->recipient[0] ? " for " : "", a->recipient, a->message);
}

static int q_show(int argc, char **argv)
{
    int json = 0;
    const char *url = NULL;
    int st = simple_opts(argc, argv, NULL, NULL, &json, NULL, NULL, &url, NULL, NULL, NULL);
    if (st)
        return st < 0 ? help() : st;
    if (optind != argc - 1)
        return cli_usage_error("queue show takes one message id");
    long long id = parse_id(argv[optind]);
    if (id < 0)
        return cli_usage_error("'%s' is not a message id", argv[optind]);
    scalr_email_queue *q = NULL;
    if ((st = open_queue(url, &q)))
        return st;
    scalr_email_error err;
    lister l = {.json = json};
    if (scalr_email_queue_show(q, id, show_item, show_attempt, &l, &err) != SCALR_EMAIL_OK)
        st = cli_report(&err);
    if (!st && json && l.obj) {
        /* "attempts" is the count (as in list); the tries are in "tries". */
        json_object_set(l.obj, "tries", json_object_get(l.obj, "attempts_list"));
        json_object_del(l.obj, "attempts_list");
        char *t = json_dumps(l.obj, JSON_COMPACT | JSON_ENSURE_ASCII);
        if (t)
            puts(t);
        free(t);
    }
    json_decref(l.obj);
    scalr_email_queue_close(q);
    return st;
}

/* ---- retry, cancel, hold, release, purge -------------------------------- */

static int q_act(const char *verb, int argc, char **argv)
{
    int all = 0;
    const char *url = NULL, *state = NULL, *older = NULL, *profile = NULL;
    int want_all = !strcmp(verb, "hold") || !strcmp(verb, "release");
    int want_state = !strcmp(verb, "retry") || !strcmp(verb, "purge");
    int st = simple_opts(argc, argv, NULL, NULL, NULL, NULL, want_all ? &all : NULL, &url,
                         want_state ? &state : NULL, !strcmp(verb, "purge") ? &older : NULL,
                         !strcmp(verb, "release") ? &profile : NULL);
    if (st)
        return st < 0 ? help() : st;
    if (profile) { /* a held or paused sender profile sends again */
        if (optind < argc || all)
            return cli_usage_error("queue release --profile NAME takes nothing else");
        scalr_email_queue *pq = NULL;
        if ((st = open_queue(url, &pq)))
            return st;
        scalr_email_error perr;
        if (scalr_email_queue_release_profile(pq, profile, &perr) != SCALR_EMAIL_OK)
            st = cli_report(&perr);
        else
            printf("release: profile %s\n", profile);
        scalr_email_queue_close(pq);
        return st;
    }
    long long id = 0;
    if (optind < argc) {
        if (optind != argc - 1 || (id = parse_id(argv[optind])) < 0)
            return cli_usage_error("queue %s takes one message id", verb);
    }
    if (!strcmp(verb, "purge")) {
        if (!state || !older || id)
            return cli_usage_error("queue purge needs --state S and --older-than DURATION");
    } else if (!id && !all && !state) {
        return cli_usage_error("queue %s needs a message id%s", verb,
                               want_all     ? " or --all"
                               : want_state ? " or --state S"
                                            : "");
    } else if (id && (all || state)) {
        return cli_usage_error("queue %s takes a message id or %s, not both", verb,
                               want_all ? "--all" : "--state");
    }
    long long older_ms = 0;
    if (older && (older_ms = duration_ms(older)) < 0)
        return cli_usage_error("--older-than '%s' is not a duration (30s, 5m, 24h, 7d)", older);
    scalr_email_queue *q = NULL;
    if ((st = open_queue(url, &q)))
        return st;
    scalr_email_error err;
    scalr_email_code rc;
    long long n = 1;
    if (!strcmp(verb, "retry"))
        rc = scalr_email_queue_retry(q, id, state, &n, &err);
    else if (!strcmp(verb, "cancel"))
        rc = scalr_email_queue_cancel(q, id, &err);
    else if (!strcmp(verb, "hold"))
        rc = scalr_email_queue_hold(q, id, &n, &err);
    else if (!strcmp(verb, "release"))
        rc = scalr_email_queue_release(q, id, &n, &err);
    else
        rc = scalr_email_queue_purge(q, state, older_ms, &n, &err);
    if (rc != SCALR_EMAIL_OK)
        st = cli_report(&err);
    else
        printf("%s: %lld message%s\n", verb, n, n == 1 ? "" : "s");
    scalr_email_queue_close(q);
    return st;
}

int cli_queue(int argc, char **argv)
{
    if (argc < 2)
        return cli_usage_error("queue needs a command: add, work, status, list, show, retry, "
                               "cancel, hold, release or purge");
    const char *c = argv[1];
    if (!strcmp(c, "--help") || !strcmp(c, "-h") || !strcmp(c, "help"))
        return help();
    if (!strcmp(c, "add"))
        return q_add(argc - 1, argv + 1);
    if (!strcmp(c, "work"))
        return q_work(argc - 1, argv + 1);
    if (!strcmp(c, "status"))
        return q_status(argc - 1, argv + 1);
    if (!strcmp(c, "list"))
        return q_list(argc - 1, argv + 1);
    if (!strcmp(c, "show"))
        return q_show(argc - 1, argv + 1);
    if (!strcmp(c, "retry") || !strcmp(c, "cancel") || !strcmp(c, "hold") ||
        !strcmp(c, "release") || !strcmp(c, "purge"))
        return q_act(c, argc - 1, argv + 1);
    return cli_usage_error("unknown queue command '%s'", c);
}
