/* /api/scalr/queue: the durable queue as the inbox's Queue view shows it.
 *
 *   GET /api/scalr/queue                 {"enabled", "queue", "status", "providers"}
 *   GET /api/scalr/queue/messages        ?state=S|waiting&limit=N -> {"items": [...]}
 *   GET /api/scalr/queue/messages/ID     {"item": {...}, "attempts": [...]}
 *
 * Read-only, through the public API only.  A queue handle belongs to one
 * thread and libmicrohttpd runs a thread per connection, so every request
 * opens its own handle (cheap for SQLite, one connection for PostgreSQL). */
#include "http_queue.h"

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_int.h"

#define LIST_DEFAULT 200
#define LIST_MAX 1000

static char *queue_url;   /* set before the HTTP server starts, then read-only */
static char *queue_shown; /* the same without a password */

static const char *const states[] = {"queued",  "leased",    "sent", "failed",
                                     "expired", "cancelled", "held", "unknown"};
/* What "waiting" means in the view: not finished, not sent. */
static const char *const waiting[] = {"queued", "leased", "held", "unknown"};

/* A URL fit to show: the password of user:password@ and of password=
 * replaced by "***". */
static char *redact(const char *url)
{
    size_t n = strlen(url);
    char *out = malloc(n + 4 * 8 + 1);
    if (!out)
        return NULL;
    size_t o = 0;
    const char *scheme = strstr(url, "://");
    const char *at = scheme ? strchr(scheme + 3, '@') : NULL;
    const char *slash = scheme ? strchr(scheme + 3, '/') : NULL;
    if (at && (!slash || at < slash)) {
        const char *colon = memchr(scheme + 3, ':', (size_t)(at - scheme - 3));
        if (colon) {
            memcpy(out, url, (size_t)(colon + 1 - url));
            o = (size_t)(colon + 1 - url);
            memcpy(out + o, "***", 3);
            o += 3;
            url = at;
        }
    }
    while (*url) {
        if (strncmp(url, "password=", 9) == 0 &&
            (o == 0 || out[o - 1] == '?' || out[o - 1] == '&' || out[o - 1] == ' ')) {
            memcpy(out + o, "password=***", 12);
            o += 12;
            url += 9;
            while (*url && *url != '&' && *url != ' ')
                url++;
            continue;
        }
        out[o++] = *url++;
    }
    out[o] = '\0';
    return out;
}

scalr_email_code ib_http_queue_init(const char *url, char *why, size_t whylen)
{
    scalr_email_error err;
    scalr_email_queue *q = NULL;
    scalr_email_code rc = scalr_email_queue_open(&q, url, &err);
    if (rc != SCALR_EMAIL_OK) {
        snprintf(why, whylen, "--queue: %s", err.message);
        return rc;
    }
    scalr_email_queue_close(q);
    ib_http_queue_free();
    queue_url = strdup(url);
    queue_shown = redact(url);
    if (!queue_url || !queue_shown) {
        ib_http_queue_free();
        snprintf(why, whylen, "out of memory");
        return SCALR_EMAIL_ENOMEM;
    }
    return SCALR_EMAIL_OK;
}

void ib_http_queue_free(void)
{
    free(queue_url);
    free(queue_shown);
    queue_url = queue_shown = NULL;
}

static json_t *ms(long long v)
{
    return v > 0 ? json_integer(v) : json_null();
}

static json_t *item_json(const scalr_email_queue_item *it)
{
    json_t *rcpt = json_array();
    const char *p = it->rcpt_to ? it->rcpt_to : "";
    while (rcpt && *p) {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        json_array_append_new(rcpt, ib_http_jstrn(p, n));
        p += n + (nl != NULL);
    }
    json_t *j = json_object();
    if (!j || !rcpt) {
        json_decref(j);
        json_decref(rcpt);
        return NULL;
    }
    json_object_set_new(j, "id", json_integer(it->id));
    json_object_set_new(j, "state", ib_http_jstr(it->state));
    json_object_set_new(j, "lane", ib_http_jstr(it->lane));
    json_object_set_new(j, "tenant", ib_http_jstr(it->tenant));
    json_object_set_new(j, "provider", ib_http_jstr(it->provider));
    json_object_set_new(j, "idempotency_key", ib_http_jstr(it->idempotency_key));
    json_object_set_new(j, "mail_from", ib_http_jstr(it->mail_from));
    json_object_set_new(j, "rcpt_to", rcpt);
    json_object_set_new(j, "message_id", ib_http_jstr(it->message_id));
    json_object_set_new(j, "size", json_integer(it->size));
    json_object_set_new(j, "attempts", json_integer(it->attempts));
    json_object_set_new(j, "max_attempts",
                        it->max_attempts ? json_integer(it->max_attempts) : json_null());
    json_object_set_new(j, "created_at", ms(it->created_at));
    json_object_set_new(j, "run_at", ms(it->run_at));
    json_object_set_new(j, "expire_at", ms(it->expire_at));
    json_object_set_new(j, "updated_at", ms(it->updated_at));
    json_object_set_new(j, "finished_at", ms(it->finished_at));
    json_object_set_new(j, "lease_owner", ib_http_jstr(it->lease_owner));
    json_object_set_new(j, "lease_until", ms(it->lease_until));
    json_object_set_new(j, "last_error", ib_http_jstr(it->last_error));
    return j;
}

typedef struct collect {
    json_t *items;    /* list */
    json_t *item;     /* show */
    json_t *attempts; /* show */
    json_t *providers;
    int oom;
} collect;

static void on_item(void *arg, const scalr_email_queue_item *it)
{
    collect *k = arg;
    json_t *j = item_json(it);
    if (!j) {
        k->oom = 1;
        return;
    }
    if (k->items) {
        json_array_append_new(k->items, j);
    } else {
        json_decref(k->item);
        k->item = j;
    }
}

static void on_attempt(void *arg, const scalr_email_queue_attempt *a)
{
    collect *k = arg;
    json_t *j = json_object();
    if (!j) {
        k->oom = 1;
        return;
    }
    json_object_set_new(j, "n", json_integer(a->n));
    json_object_set_new(j, "at", ms(a->at));
    json_object_set_new(j, "worker", ib_http_jstr(a->worker));
    json_object_set_new(j, "outcome", ib_http_jstr(a->outcome));
    json_object_set_new(j, "stage", ib_http_jstr(a->stage));
    json_object_set_new(j, "smtp_code", a->smtp_code ? json_integer(a->smtp_code) : json_null());
    json_object_set_new(j, "enhanced", ib_http_jstr(a->enhanced));
    json_object_set_new(j, "recipient", ib_http_jstr(a->recipient));
    json_object_set_new(j, "server_text", ib_http_jstr(a->server_text));
    json_object_set_new(j, "message", ib_http_jstr(a->message));
    json_array_append_new(k->attempts, j);
}

static void on_provider(void *arg, const char *provider, int held, long long paused_until,
                        const char *reason)
{
    collect *k = arg;
    json_t *j = json_object();
    if (!j) {
        k->oom = 1;
        return;
    }
    json_object_set_new(j, "provider", ib_http_jstr(provider));
    json_object_set_new(j, "held", json_boolean(held));
    json_object_set_new(j, "paused_until", ms(paused_until));
    json_object_set_new(j, "reason", ib_http_jstr(reason));
    json_array_append_new(k->providers, j);
}

/* 503 with the library's one line (it never holds a password). */
static enum MHD_Result queue_error(struct MHD_Connection *c, const scalr_email_error *err)
{
    return ib_http_send_json(
        c, err->code == SCALR_EMAIL_ENOTFOUND ? 404 : 503,
        json_pack("{s:s, s:s}", "error", err->message, "kind", scalr_email_strerror(err->code)));
}

static enum MHD_Result overview(struct MHD_Connection *c, scalr_email_queue *q)
{
    scalr_email_error err;
    scalr_email_queue_status st;
    memset(&st, 0, sizeof st);
    collect k = {.providers = json_array()};
    if (scalr_email_queue_get_status(q, &st, &err) != SCALR_EMAIL_OK ||
        scalr_email_queue_providers(q, on_provider, &k, &err) != SCALR_EMAIL_OK) {
        json_decref(k.providers);
        return queue_error(c, &err);
    }
    const long long n[] = {st.queued,  st.leased,    st.sent, st.failed,
                           st.expired, st.cancelled, st.held, st.unknown};
    json_t *counts = json_object();
    for (size_t i = 0; counts && i < sizeof states / sizeof states[0]; i++)
        json_object_set_new(counts, states[i], json_integer(n[i]));
    json_t *status = json_object();
    if (status && counts) {
        json_object_set_new(status, "counts", counts);
        counts = NULL;
        json_object_set_new(status, "oldest_queued_ms", json_integer(st.oldest_queued_ms));
        json_object_set_new(status, "next_run_at", ms(st.next_run_at));
        json_object_set_new(status, "sent_last_minute", json_integer(st.sent_last_minute));
        json_object_set_new(status, "now", json_integer(st.now));
    }
    json_decref(counts);
    if (!status || k.oom) {
        json_decref(status);
        json_decref(k.providers);
        return ib_http_send_error(c, 500, "out of memory");
    }
    return ib_http_send_json(c, 200,
                             json_pack("{s:b, s:s, s:o, s:o}", "enabled", 1, "queue", queue_shown,
                                       "status", status, "providers", k.providers));
}

static enum MHD_Result list(struct MHD_Connection *c, scalr_email_queue *q)
{
    const char *state = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "state");
    if (state && !*state)
        state = NULL;
    const char *const *which = NULL;
    size_t n_which = 1;
    if (state && strcmp(state, "waiting") == 0) {
        which = waiting;
        n_which = sizeof waiting / sizeof waiting[0];
    } else if (state) {
        size_t i = 0;
        while (i < sizeof states / sizeof states[0] && strcmp(states[i], state) != 0)
            i++;
        if (i == sizeof states / sizeof states[0])
            return ib_http_send_error(
                c, 400,
                "state must be queued, leased, sent, failed, expired, cancelled, held, unknown "
                "or waiting");
        which = &states[i];
    }
    size_t limit = (size_t)ib_http_arg_int(c, "limit", LIST_DEFAULT, LIST_MAX);
    if (limit == 0)
        limit = LIST_DEFAULT;
    collect k = {.items = json_array()};
    scalr_email_error err;
    for (size_t i = 0; k.items && i < n_which; i++) {
        size_t have = json_array_size(k.items);
        if (have >= limit)
            break;
        if (scalr_email_queue_list(q, which ? which[i] : NULL, limit - have, on_item, &k, &err) !=
            SCALR_EMAIL_OK) {
            json_decref(k.items);
            return queue_error(c, &err);
        }
    }
    if (!k.items || k.oom) {
        json_decref(k.items);
        return ib_http_send_error(c, 500, "out of memory");
    }
    return ib_http_send_json(c, 200,
                             json_pack("{s:o, s:o, s:i}", "items", k.items, "state",
                                       state ? json_string(state) : json_null(), "limit",
                                       (int)limit));
}

static enum MHD_Result show(struct MHD_Connection *c, scalr_email_queue *q, long long id)
{
    collect k = {.attempts = json_array()};
    scalr_email_error err;
    if (scalr_email_queue_show(q, id, on_item, on_attempt, &k, &err) != SCALR_EMAIL_OK) {
        json_decref(k.item);
        json_decref(k.attempts);
        return queue_error(c, &err);
    }
    if (!k.item || !k.attempts || k.oom) {
        json_decref(k.item);
        json_decref(k.attempts);
        return ib_http_send_error(c, k.item || k.oom ? 500 : 404,
                                  k.item || k.oom ? "out of memory" : "no such message");
    }
    return ib_http_send_json(c, 200,
                             json_pack("{s:o, s:o}", "item", k.item, "attempts", k.attempts));
}

/* "/123" -> 123; anything else (sign, junk, overflow) -> -1. */
static long long parse_id(const char *s)
{
    if (*s++ != '/' || *s < '1' || *s > '9')
        return -1;
    long long v = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9' || v > (INT64_MAX - 9) / 10)
            return -1;
        v = v * 10 + (*s - '0');
    }
    return v;
}

enum MHD_Result ib_http_queue(struct MHD_Connection *c, const char *url, const char *method)
{
    const char *rest = url + strlen("/api/scalr/queue");
    long long id = 0;
    int what;
    if (*rest == '\0')
        what = 0;
    else if (strcmp(rest, "/messages") == 0)
        what = 1;
    else if (strncmp(rest, "/messages/", 10) == 0 && (id = parse_id(rest + 9)) > 0)
        what = 2;
    else
        return ib_http_send_error(c, 404, "not found");
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        return ib_http_not_allowed(c, "GET, HEAD");
    if (!queue_url) {
        if (what == 0)
            return ib_http_send_json(c, 200, json_pack("{s:b}", "enabled", 0));
        return ib_http_send_error(c, 404, "no queue: start the inbox with --queue URL");
    }
    scalr_email_queue *q = NULL;
    scalr_email_error err;
    if (scalr_email_queue_open(&q, queue_url, &err) != SCALR_EMAIL_OK)
        return queue_error(c, &err);
    enum MHD_Result r = what == 0 ? overview(c, q) : what == 1 ? list(c, q) : show(c, q, id);
    scalr_email_queue_close(q);
    return r;
}
