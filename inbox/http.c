/* The inbox's web side: libmicrohttpd (one thread per connection, so an
 * open event stream never holds up other requests) serving the built-in UI,
 * the MailHog-compatible API (/api/v1, /api/v2), our own JSON API for the UI
 * (/api/scalr), the event stream and the chaos rules.  JSON with jansson.
 *
 * Browsers are the hostile party here: every response carries a
 * Content-Security-Policy and nosniff, mail HTML is only ever served under a
 * policy that forbids scripts and remote loads (and is framed sandboxed by
 * the UI), and state-changing requests from another origin, or reads through
 * a foreign DNS name pointing at us (DNS rebinding), are refused.
 *
 * This file: the server, the request guards, routing, the response helpers
 * and reading messages; the JSON of each API lives in http_mailhog.c and
 * http_ui.c. */
#include "http_int.h"
#include "http_queue.h"
#include "http_templates.h"

#include <errno.h>
#include <jansson.h>
#include <microhttpd.h>
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "assets.h"
#include "mimeparse.h"
#include "util/buf.h"

#define MAX_UPLOAD (64 * 1024) /* chaos API bodies */

static const char CSP_PAGE[] = "default-src 'none'; script-src 'self'; style-src 'self'; "
                               "img-src 'self' data:; connect-src 'self'; frame-src 'self'; "
                               "base-uri 'none'; form-action 'none'; frame-ancestors 'none'";
const char ib_http_csp_api[] = "default-src 'none'; frame-ancestors 'none'; sandbox";
/* Mail HTML: no scripts, nothing remote; inline styles and data: images. */
static const char CSP_FRAME[] =
    "default-src 'none'; img-src data: cid:; style-src 'unsafe-inline'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'self'; "
    "sandbox allow-popups allow-popups-to-escape-sandbox";

/* ---- strings ----------------------------------------------------------- */

/* A JSON string from arbitrary bytes: invalid UTF-8 becomes U+FFFD, as
 * MailHog's Go encoder does (jansson refuses invalid UTF-8 outright). */
json_t *ib_http_jstrn(const char *p, size_t n)
{
    if (!p)
        return json_null();
    json_t *j = json_stringn(p, n);
    if (j)
        return j;
    se_buf b = {0};
    const unsigned char *u = (const unsigned char *)p;
    for (size_t i = 0, k; i < n; i += k ? k : 1) {
        k = ib_utf8_seq(u + i, n - i);
        if (k)
            se_buf_append(&b, p + i, k);
        else
            se_buf_append(&b, "\xef\xbf\xbd", 3);
    }
    j = b.oom ? NULL : json_stringn(b.data ? b.data : "", b.len);
    se_buf_free(&b);
    return j;
}

json_t *ib_http_jstr(const char *s)
{
    return s ? ib_http_jstrn(s, strlen(s)) : json_null();
}

int ib_http_prefix_ci(const char *s, const char *prefix)
{
    return strncasecmp(s, prefix, strlen(prefix)) == 0;
}

void ib_http_rfc3339(char *out, size_t len, int64_t ms)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    size_t k = strftime(out, len, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + k, len - k, ".%03dZ", (int)(ms % 1000));
}

/* End of the header block (the first empty line) and start of the body. */
size_t ib_http_header_block(const char *p, size_t n, size_t *body)
{
    for (size_t i = 0; i < n;) {
        const char *nl = memchr(p + i, '\n', n - i);
        size_t end = nl ? (size_t)(nl - p) : n;
        if (end == i || (end == i + 1 && p[i] == '\r')) {
            *body = nl ? end + 1 : n;
            return i;
        }
        i = nl ? end + 1 : n;
    }
    *body = n;
    return n;
}

/* ---- responses ----------------------------------------------------------- */

enum MHD_Result ib_http_respond(struct MHD_Connection *c, unsigned status, const char *ctype,
                                void *data, size_t len, int owned, ib_http_policy k,
                                const char *disp)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(
        len, data, owned ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
    if (!r) {
        if (owned)
            free(data);
        return MHD_NO;
    }
    if (ctype)
        MHD_add_response_header(r, "Content-Type", ctype);
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
    MHD_add_response_header(r, "Cross-Origin-Resource-Policy", "same-origin");
    MHD_add_response_header(r, "Cross-Origin-Opener-Policy", "same-origin");
    MHD_add_response_header(r, "X-Frame-Options", k == K_FRAME ? "SAMEORIGIN" : "DENY");
    MHD_add_response_header(r, "Content-Security-Policy",
                            k == K_PAGE    ? CSP_PAGE
                            : k == K_FRAME ? CSP_FRAME
                                           : ib_http_csp_api);
    MHD_add_response_header(r, "Cache-Control", k == K_PAGE ? "no-cache" : "no-store");
    if (disp)
        MHD_add_response_header(r, "Content-Disposition", disp);
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

/* Consumes j. */
enum MHD_Result ib_http_send_json(struct MHD_Connection *c, unsigned status, json_t *j)
{
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (!s)
        return ib_http_respond(c, 500, "application/json", "{\"error\":\"out of memory\"}", 25, 0,
                               K_API, NULL);
    return ib_http_respond(c, status, "application/json", s, strlen(s), 1, K_API, NULL);
}

enum MHD_Result ib_http_send_error(struct MHD_Connection *c, unsigned status, const char *msg)
{
    return ib_http_send_json(c, status, json_pack("{s:s}", "error", msg));
}

static enum MHD_Result send_empty(struct MHD_Connection *c, unsigned status)
{
    return ib_http_respond(c, status, NULL, "", 0, 0, K_API, NULL);
}

enum MHD_Result ib_http_not_allowed(struct MHD_Connection *c, const char *allow)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(0, "", MHD_RESPMEM_PERSISTENT);
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, "Allow", allow);
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(r, "Content-Security-Policy", ib_http_csp_api);
    enum MHD_Result ret = MHD_queue_response(c, 405, r);
    MHD_destroy_response(r);
    return ret;
}

/* ---- request guards -------------------------------------------------------- */

/* DNS rebinding: a page on evil.example (or on any name a resolver can be
 * made to answer for, dotted or not, such as a search-domain name) whose
 * name resolves to 127.0.0.1 would be same-origin with us.  Only names we
 * know are ours: localhost, the loopback literals, the --http host and
 * each --allow-host. */
#define MAX_ALLOWED 32
static const char *allowed[MAX_ALLOWED];
static size_t n_allowed;

int ib_http_allow_host(const char *name)
{
    if (n_allowed == MAX_ALLOWED || !name || !*name || strlen(name) > 253)
        return -1;
    allowed[n_allowed++] = name;
    return 0;
}

/* The name in a Host header: "name[:port]" or "[v6][:port]"; 0 if malformed. */
static int host_name(const char *host, char *name, size_t len)
{
    size_t n;
    if (host[0] == '[') {
        const char *end = strchr(host, ']');
        if (!end)
            return 0;
        n = (size_t)(end - host) + 1;
        if (end[1] && end[1] != ':')
            return 0;
    } else {
        n = strcspn(host, ":");
        if (host[n] && strspn(host + n + 1, "0123456789") != strlen(host + n + 1))
            return 0;
    }
    if (n == 0 || n >= len)
        return 0;
    memcpy(name, host, n);
    name[n] = '\0';
    return 1;
}

static int host_allowed(const ib_http *h, const char *host)
{
    if (!host) /* HTTP/1.0 without Host: no browser sends that */
        return 1;
    char name[300];
    if (!host_name(host, name, sizeof name))
        return 0;
    if (!strcasecmp(name, "localhost") || !strcmp(name, "127.0.0.1") || !strcmp(name, "[::1]"))
        return 1;
    if (!strcasecmp(name, h->host))
        return 1;
    if (name[0] == '[' && strlen(name) == strlen(h->host) + 2 &&
        !strncasecmp(name + 1, h->host, strlen(h->host)))
        return 1;
    for (size_t i = 0; i < n_allowed; i++)
        if (!strcasecmp(name, allowed[i]))
            return 1;
    return 0;
}

/* A state change from a page of another origin (CSRF) is refused. */
static int cross_site(struct MHD_Connection *c)
{
    const char *site = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Sec-Fetch-Site");
    if (site && strcmp(site, "same-origin") != 0 && strcmp(site, "none") != 0)
        return 1;
    const char *origin = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Origin");
    if (!origin)
        return 0;
    const char *host = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Host");
    const char *rest = ib_http_prefix_ci(origin, "http://")    ? origin + 7
                       : ib_http_prefix_ci(origin, "https://") ? origin + 8
                                                               : NULL;
    return !host || !rest || strcasecmp(rest, host) != 0;
}

int64_t ib_http_arg_int(struct MHD_Connection *c, const char *name, int64_t dflt, int64_t max)
{
    const char *v = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, name);
    if (!v || !*v)
        return dflt;
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (errno || *end || x < 0)
        return dflt;
    return x > max ? max : x;
}

/* "/prefix/123..." -> id 123 and *rest "..."; 0 when it does not match. */
static int match_id(const char *url, const char *prefix, int64_t *id, const char **rest)
{
    size_t pl = strlen(prefix);
    if (strncmp(url, prefix, pl) != 0)
        return 0;
    const char *p = url + pl;
    int64_t v = 0;
    int digits = 0;
    while (*p >= '0' && *p <= '9' && digits < 18) {
        v = v * 10 + (*p++ - '0');
        digits++;
    }
    if (!digits || (*p && *p != '/'))
        return 0;
    *id = v;
    *rest = p;
    return 1;
}

/* ---- reading messages from the store ------------------------------------- */

static void meta_free(ib_http_meta *m)
{
    free(m->mail_from);
    free(m->rcpt);
    free(m->helo);
    free(m->from);
    free(m->to);
    free(m->subject);
    free(m->tags);
    free(m->dkim);
}

static char *dup0(const char *s)
{
    return strdup(s ? s : "");
}

static int copy_meta(void *arg, const ib_summary *s)
{
    ib_http_meta *m = arg;
    m->id = s->id;
    m->created_ms = s->created_ms;
    m->size = s->size;
    m->has_attachments = s->has_attachments;
    m->bare_lf = s->bare_lf;
    m->bare_cr = s->bare_cr;
    m->mail_from = dup0(s->mail_from);
    m->rcpt = dup0(s->rcpt);
    m->helo = dup0(s->helo);
    m->from = dup0(s->from);
    m->to = dup0(s->to);
    m->subject = dup0(s->subject);
    m->seen = s->seen;
    m->tags = dup0(s->tags);
    m->dkim = s->dkim ? strdup(s->dkim) : NULL; /* NULL when out of memory: made again */
    return 0;
}

int ib_http_load(ib_http *h, int64_t id, ib_http_loaded *l)
{
    memset(l, 0, sizeof *l);
    int rc = ib_store_get(h->st, id, &l->raw, &l->len, copy_meta, &l->m);
    if (rc == 1 &&
        (!l->m.mail_from || !l->m.rcpt || !l->m.helo || !l->m.from || !l->m.to || !l->m.subject))
        rc = -1;
    if (rc != 1) {
        meta_free(&l->m);
        free(l->raw);
        l->raw = NULL;
    }
    return rc;
}

void ib_http_unload(ib_http_loaded *l)
{
    meta_free(&l->m);
    free(l->raw);
}

enum MHD_Result ib_http_load_error(struct MHD_Connection *c, int rc)
{
    return rc == 0 ? ib_http_send_error(c, 404, "no such message")
                   : ib_http_send_error(c, 500, "cannot read the message store");
}

static enum MHD_Result send_raw(ib_http *h, struct MHD_Connection *c, int64_t id, int download)
{
    ib_http_loaded l;
    int rc = ib_http_load(h, id, &l);
    if (rc != 1)
        return ib_http_load_error(c, rc);
    char disp[64];
    snprintf(disp, sizeof disp, "%s; filename=\"%lld.eml\"", download ? "attachment" : "inline",
             (long long)id);
    char *raw = l.raw;
    size_t len = l.len;
    l.raw = NULL;
    ib_http_unload(&l);
    return ib_http_respond(c, 200, download ? "message/rfc822" : "text/plain; charset=utf-8", raw,
                           len, 1, K_FILE, disp);
}

/* ---- routing ------------------------------------------------------------------- */

static int is_get(const char *m)
{
    return strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0;
}

static enum MHD_Result static_file(struct MHD_Connection *c, const char *url, const char *method)
{
    if (!is_get(method))
        return ib_http_not_allowed(c, "GET, HEAD");
    if (strcmp(url, "/") == 0)
        url = "/index.html";
    for (const ib_asset *a = ib_assets; a->path; a++)
        if (strcmp(a->path, url) == 0)
            return ib_http_respond(c, 200, a->content_type, (void *)a->data, a->len, 0, K_PAGE,
                                   NULL);
    return ib_http_respond(c, 404, "text/plain; charset=utf-8", "not found\n", 10, 0, K_API, NULL);
}

static enum MHD_Result messages(ib_http *h, struct MHD_Connection *c, const char *method,
                                int64_t id, const char *rest, int mailhog, ib_http_req *r)
{
    if (*rest == '\0') {
        if (strcmp(method, "DELETE") == 0) {
            int rc = ib_store_delete(h->st, id);
            return rc == 1   ? send_empty(c, 200)
                   : rc == 0 ? ib_http_send_error(c, 404, "no such message")
                             : ib_http_send_error(c, 500, "cannot delete the message");
        }
        if (!is_get(method))
            return ib_http_not_allowed(c, "GET, HEAD, DELETE");
        return mailhog ? ib_http_mh_get(h, c, id) : ib_http_scalr_get(h, c, id);
    }
    if (mailhog && strcmp(rest, "/release") == 0)
        return ib_http_send_error(c, 501, "releasing messages to another server is not supported");
    if (!mailhog && (strcmp(rest, "/read") == 0 || strcmp(rest, "/tags") == 0))
        return ib_http_state(h, c, method, r, id, rest + 1); /* http_state.c */
    if (!mailhog && (strcmp(rest, "/links") == 0 || strcmp(rest, "/links/check") == 0))
        return ib_http_links(h, c, method, id, rest[6] != '\0'); /* http_links.c */
    if (!mailhog && strcmp(rest, "/htmlcheck") == 0)
        return ib_http_htmlcheck(h, c, method, id); /* http_htmlcheck.c */
    if (!mailhog && strcmp(rest, "/release") == 0)
        return ib_http_release(h, c, method, r, id); /* http_release.c */
    if (!is_get(method))
        return ib_http_not_allowed(c, "GET, HEAD");
    if (mailhog && strcmp(rest, "/download") == 0)
        return send_raw(h, c, id, 1);
    if (!mailhog && strcmp(rest, "/raw") == 0)
        return send_raw(h, c, id, 0);
    if (!mailhog && strcmp(rest, "/dkim") == 0)
        return ib_http_scalr_dkim(h, c, id);
    if (!mailhog && strcmp(rest, "/html") == 0)
        return ib_http_scalr_html(h, c, id);
    if (!mailhog && strcmp(rest, "/deliverability") == 0)
        return ib_http_scalr_deliverability(h, c, id);
    if (!mailhog && strncmp(rest, "/attachments/", 13) == 0)
        return ib_http_scalr_attachment(h, c, id, rest + 13);
    return ib_http_send_error(c, 404, "not found");
}

static enum MHD_Result route(ib_http *h, struct MHD_Connection *c, const char *url,
                             const char *method, ib_http_req *r)
{
    const char *host = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Host");
    if (!host_allowed(h, host)) {
        char msg[700], name[300];
        if (!host_name(host, name, sizeof name))
            snprintf(name, sizeof name, "?");
        for (char *p = name; *p; p++) /* shown back: printable ASCII only */
            if (*p < 0x21 || *p > 0x7e || *p == '<' || *p == '>' || *p == '&' || *p == '"')
                *p = '?';
        int n = snprintf(msg, sizeof msg,
                         "unknown Host name '%.200s' (DNS rebinding protection): to reach the "
                         "inbox by this name, start it with --allow-host %.200s",
                         name, name);
        if (strncmp(url, "/api/", 5) == 0)
            return ib_http_send_error(c, 403, msg);
        msg[n++] = '\n'; /* a page for a browser: plain text, nothing to run */
        return ib_http_respond(c, 403, "text/plain; charset=utf-8", strndup(msg, (size_t)n),
                               (size_t)n, 1, K_API, NULL);
    }
    if (!is_get(method) && cross_site(c))
        return ib_http_send_error(c, 403, "cross-site request refused");
    if (strncmp(url, "/api/", 5) != 0)
        return static_file(c, url, method);
    int64_t id;
    const char *rest;
    if (strcmp(url, "/api/v2/messages") == 0 || strcmp(url, "/api/v2/search") == 0) {
        if (!is_get(method))
            return ib_http_not_allowed(c, "GET, HEAD");
        const char *kind = NULL;
        if (url[8] == 's') {
            kind = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "kind");
            if (!kind)
                return ib_http_send_error(c, 400, "kind must be from, to or containing");
        }
        return ib_http_mh_list(h, c, kind, 0);
    }
    if (strcmp(url, "/api/v1/messages") == 0 || strcmp(url, "/api/scalr/messages") == 0) {
        if (strcmp(method, "DELETE") == 0)
            return ib_store_delete_all(h->st) < 0
                       ? ib_http_send_error(c, 500, "cannot delete messages")
                       : send_empty(c, 200);
        if (!is_get(method))
            return ib_http_not_allowed(c, "GET, HEAD, DELETE");
        return url[5] == 'v' ? ib_http_mh_list(h, c, NULL, 1) : ib_http_scalr_list(h, c);
    }
    if (match_id(url, "/api/v1/messages/", &id, &rest))
        return messages(h, c, method, id, rest, 1, r);
    if (match_id(url, "/api/scalr/messages/", &id, &rest))
        return messages(h, c, method, id, rest, 0, r);
    if (strcmp(url, "/api/scalr/events") == 0)
        return is_get(method) ? ib_http_events(h, c) : ib_http_not_allowed(c, "GET, HEAD");
    if (strcmp(url, "/api/scalr/release") == 0)
        return is_get(method) ? ib_http_release_info(c) : ib_http_not_allowed(c, "GET, HEAD");
    if (strcmp(url, "/api/scalr/chaos") == 0)
        return ib_http_chaos(h, c, method, r);
    if (strncmp(url, "/api/scalr/queue", 16) == 0 && (url[16] == '\0' || url[16] == '/'))
        return ib_http_queue(c, url, method); /* http_queue.c */
    if (strncmp(url, "/api/scalr/templates", 20) == 0 && (url[20] == '\0' || url[20] == '/'))
        return ib_http_templates(c, url, method); /* http_templates.c */
    return ib_http_send_error(c, 404, "not found");
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_len, void **state)
{
    (void)version;
    ib_http_req *r = *state;
    if (!r) { /* first call: headers only */
        r = calloc(1, sizeof *r);
        *state = r;
        return r ? MHD_YES : MHD_NO;
    }
    if (*upload_len) {
        if (r->body.len + *upload_len > MAX_UPLOAD || r->too_big)
            r->too_big = 1;
        else if (se_buf_append(&r->body, upload, *upload_len) < 0)
            r->too_big = 1;
        *upload_len = 0;
        return MHD_YES;
    }
    return route(cls, c, url, method, r);
}

static void on_done(void *cls, struct MHD_Connection *c, void **state,
                    enum MHD_RequestTerminationCode why)
{
    (void)cls;
    (void)c;
    (void)why;
    ib_http_req *r = *state;
    if (r) {
        se_buf_free(&r->body);
        free(r);
        *state = NULL;
    }
}

/* ---- start and stop ------------------------------------------------------------ */

static int listen_on(const char *host, unsigned port, int *v6, char *why, size_t whylen)
{
    char name[256], service[16];
    size_t n = strlen(host);
    if (n >= 2 && host[0] == '[' && host[n - 1] == ']') { /* "[::1]" */
        host++;
        n -= 2;
    }
    if (n >= sizeof name) {
        snprintf(why, whylen, "host name too long");
        return -1;
    }
    memcpy(name, host, n);
    name[n] = '\0';
    snprintf(service, sizeof service, "%u", port);
    struct addrinfo hints = {
        .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
    struct addrinfo *res;
    int rc = getaddrinfo(n ? name : NULL, service, &hints, &res);
    if (rc != 0) {
        snprintf(why, whylen, "%s: %s", name, gai_strerror(rc));
        return -1;
    }
    int fd = -1, err = 0;
    for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        int one = 1;
        if (fd >= 0 && setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) == 0 &&
            bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && listen(fd, 128) == 0) {
            *v6 = ai->ai_family == AF_INET6;
            break;
        }
        err = errno;
        if (fd >= 0)
            close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0)
        snprintf(why, whylen, "%s:%u: %s", name, port, strerror(err));
    return fd;
}

int ib_http_start(ib_http **out, const char *host, unsigned port, ib_store *st, ib_chaos *chaos,
                  char *why, size_t whylen)
{
    *out = NULL;
    if (!host)
        host = "127.0.0.1";
    ib_http *h = calloc(1, sizeof *h);
    if (!h) {
        snprintf(why, whylen, "out of memory");
        return -1;
    }
    h->st = st;
    h->chaos = chaos;
    snprintf(h->host, sizeof h->host, "%s", host);
    int v6 = 0;
    int fd = listen_on(host, port, &v6, why, whylen);
    if (fd < 0) {
        free(h);
        return -1;
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
        h->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                 : ((struct sockaddr_in *)&ss)->sin_port);
    json_object_seed(0); /* before any thread builds JSON */
    unsigned flags =
        MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_THREAD_PER_CONNECTION | (v6 ? MHD_USE_IPv6 : 0);
    h->d = MHD_start_daemon(flags, 0, NULL, NULL, on_request, h, MHD_OPTION_LISTEN_SOCKET, fd,
                            MHD_OPTION_NOTIFY_COMPLETED, on_done, h, MHD_OPTION_CONNECTION_LIMIT,
                            (unsigned)256, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)120,
                            MHD_OPTION_END);
    if (!h->d) {
        close(fd);
        free(h);
        snprintf(why, whylen, "cannot start the HTTP server on %s:%u", host, port);
        return -1;
    }
    *out = h;
    return 0;
}

unsigned ib_http_port(const ib_http *h)
{
    return h->port;
}

void ib_http_stop(ib_http *h)
{
    if (!h)
        return;
    atomic_store(&h->stopping, 1); /* event streams end within SSE_POLL_MS (http_ui.c) */
    MHD_stop_daemon(h->d);
    free(h);
}
