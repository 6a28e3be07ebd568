/* The inbox's web side: libmicrohttpd (one thread per connection, so an
 * open event stream never holds up other requests) serving the built-in UI,
 * the MailHog-compatible API (/api/v1, /api/v2), our own JSON API for the UI
 * (/api/scalr), the event stream and the chaos rules.  JSON with jansson.
 *
 * Browsers are the hostile party here: every response carries a
 * Content-Security-Policy and nosniff, mail HTML is only ever served under a
 * policy that forbids scripts and remote loads (and is framed sandboxed by
 * the UI), and state-changing requests from another origin, or reads through
 * a foreign DNS name pointing at us (DNS rebinding), are refused. */
#include "http.h"

#include <errno.h>
#include <iconv.h>
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

#define MAX_UPLOAD (64 * 1024)   /* chaos API bodies                       */
#define MAX_STREAMS 32           /* concurrent event streams               */
#define MAX_MH_DEPTH 16          /* MailHog MIME tree nesting               */
#define MAX_HTML_OUT (64u << 20) /* cid: images inlined into one HTML page  */
#define MAX_CID_IMAGES 64        /* image parts a page may refer to         */
#define MAX_CID_LOOKUPS 4096     /* "cid:" references resolved in one page  */
#define SSE_POLL_MS 250          /* how soon a stream notices a stop        */
#define SSE_KEEPALIVE_MS 15000

struct ib_http {
    struct MHD_Daemon *d;
    ib_store *st;
    ib_chaos *chaos;
    unsigned port;
    char host[256];
    atomic_int stopping;
    atomic_int streams;
};

typedef struct req {
    se_buf body;
    int too_big;
} req;

typedef enum { K_API, K_PAGE, K_FRAME, K_FILE } policy; /* which headers a response gets */

static const char CSP_PAGE[] = "default-src 'none'; script-src 'self'; style-src 'self'; "
                               "img-src 'self' data:; connect-src 'self'; frame-src 'self'; "
                               "base-uri 'none'; form-action 'none'; frame-ancestors 'none'";
static const char CSP_API[] = "default-src 'none'; frame-ancestors 'none'; sandbox";
/* Mail HTML: no scripts, nothing remote; inline styles and data: images. */
static const char CSP_FRAME[] =
    "default-src 'none'; img-src data: cid:; style-src 'unsafe-inline'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'self'; "
    "sandbox allow-popups allow-popups-to-escape-sandbox";

/* ---- strings ----------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at p (RFC 3629), 0 if invalid. */
static size_t utf8_len(const unsigned char *p, size_t n)
{
    if (p[0] < 0x80)
        return 1;
    size_t len = p[0] >= 0xc2 && p[0] <= 0xdf   ? 2
                 : p[0] >= 0xe0 && p[0] <= 0xef ? 3
                 : p[0] >= 0xf0 && p[0] <= 0xf4 ? 4
                                                : 0;
    if (len == 0 || len > n)
        return 0;
    for (size_t i = 1; i < len; i++)
        if ((p[i] & 0xc0) != 0x80)
            return 0;
    if ((p[0] == 0xe0 && p[1] < 0xa0) || (p[0] == 0xed && p[1] > 0x9f) ||
        (p[0] == 0xf0 && p[1] < 0x90) || (p[0] == 0xf4 && p[1] > 0x8f))
        return 0;
    return len;
}

/* A JSON string from arbitrary bytes: invalid UTF-8 becomes U+FFFD, as
 * MailHog's Go encoder does (jansson refuses invalid UTF-8 outright). */
static json_t *jstrn(const char *p, size_t n)
{
    if (!p)
        return json_null();
    json_t *j = json_stringn(p, n);
    if (j)
        return j;
    se_buf b = {0};
    const unsigned char *u = (const unsigned char *)p;
    for (size_t i = 0, k; i < n; i += k ? k : 1) {
        k = utf8_len(u + i, n - i);
        if (k)
            se_buf_append(&b, p + i, k);
        else
            se_buf_append(&b, "\xef\xbf\xbd", 3);
    }
    j = b.oom ? NULL : json_stringn(b.data ? b.data : "", b.len);
    se_buf_free(&b);
    return j;
}

static json_t *jstr(const char *s)
{
    return s ? jstrn(s, strlen(s)) : json_null();
}

static int has_prefix_ci(const char *s, const char *prefix)
{
    return strncasecmp(s, prefix, strlen(prefix)) == 0;
}

/* Text in `charset` as UTF-8; unknown charsets pass through (and are
 * cleaned by jstrn).  Only plain names reach iconv_open. */
static void to_utf8(se_buf *out, const char *charset, const char *p, size_t n)
{
    iconv_t cd = (iconv_t)-1;
    if (charset && strlen(charset) < 40 &&
        strspn(charset, "abcdefghijklmnopqrstuvwxyz0123456789-_.:") == strlen(charset) &&
        strcmp(charset, "utf-8") != 0 && strcmp(charset, "us-ascii") != 0)
        cd = iconv_open("UTF-8", charset);
    if (cd == (iconv_t)-1) {
        se_buf_append(out, p, n);
        return;
    }
    char *in = (char *)p;
    size_t left = n;
    while (left > 0 && se_buf_reserve(out, (left < 16384 ? left * 4 : 65536) + 16) == 0) {
        char *o = out->data + out->len;
        size_t room = out->cap - out->len - 1, before = room;
        size_t r = iconv(cd, &in, &left, &o, &room);
        out->len += before - room;
        out->data[out->len] = '\0';
        if (r == (size_t)-1 && errno != E2BIG) {
            se_buf_append(out, "\xef\xbf\xbd", 3);
            in++;
            left--;
        }
    }
    iconv_close(cd);
}

static void rfc3339(char *out, size_t len, int64_t ms)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    size_t k = strftime(out, len, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + k, len - k, ".%03dZ", (int)(ms % 1000));
}

/* ---- responses ----------------------------------------------------------- */

static enum MHD_Result respond(struct MHD_Connection *c, unsigned status, const char *ctype,
                               void *data, size_t len, int owned, policy k, const char *disp)
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
                                           : CSP_API);
    MHD_add_response_header(r, "Cache-Control", k == K_PAGE ? "no-cache" : "no-store");
    if (disp)
        MHD_add_response_header(r, "Content-Disposition", disp);
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

/* Consumes j. */
static enum MHD_Result send_json(struct MHD_Connection *c, unsigned status, json_t *j)
{
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (!s)
        return respond(c, 500, "application/json", "{\"error\":\"out of memory\"}", 25, 0, K_API,
                       NULL);
    return respond(c, status, "application/json", s, strlen(s), 1, K_API, NULL);
}

static enum MHD_Result send_error(struct MHD_Connection *c, unsigned status, const char *msg)
{
    return send_json(c, status, json_pack("{s:s}", "error", msg));
}

static enum MHD_Result send_empty(struct MHD_Connection *c, unsigned status)
{
    return respond(c, status, NULL, "", 0, 0, K_API, NULL);
}

static enum MHD_Result not_allowed(struct MHD_Connection *c, const char *allow)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(0, "", MHD_RESPMEM_PERSISTENT);
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, "Allow", allow);
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(r, "Content-Security-Policy", CSP_API);
    enum MHD_Result ret = MHD_queue_response(c, 405, r);
    MHD_destroy_response(r);
    return ret;
}

/* ---- request guards -------------------------------------------------------- */

/* DNS rebinding: a page on evil.example whose name resolves to 127.0.0.1
 * would be same-origin with us.  Allow IP literals, localhost, single-label
 * names (container names) and the name we were started with. */
static int host_allowed(const ib_http *h, const char *host)
{
    if (!host || !*host || host[0] == '[')
        return 1;
    char name[256];
    size_t n = strcspn(host, ":");
    if (n >= sizeof name)
        return 0;
    memcpy(name, host, n);
    name[n] = '\0';
    if (strspn(name, "0123456789.") == n || !strchr(name, '.'))
        return 1;
    if (strcasecmp(name, h->host) == 0 || strcasecmp(name, "localhost") == 0)
        return 1;
    return n > 10 && strcasecmp(name + n - 10, ".localhost") == 0;
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
    const char *rest = has_prefix_ci(origin, "http://")    ? origin + 7
                       : has_prefix_ci(origin, "https://") ? origin + 8
                                                           : NULL;
    return !host || !rest || strcasecmp(rest, host) != 0;
}

static int64_t arg_int(struct MHD_Connection *c, const char *name, int64_t dflt, int64_t max)
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

typedef struct meta {
    int64_t id, created_ms;
    size_t size;
    char *mail_from, *rcpt, *helo, *from, *to, *subject;
    int has_attachments;
} meta;

static void meta_free(meta *m)
{
    free(m->mail_from);
    free(m->rcpt);
    free(m->helo);
    free(m->from);
    free(m->to);
    free(m->subject);
}

static char *dup0(const char *s)
{
    return strdup(s ? s : "");
}

static int copy_meta(void *arg, const ib_summary *s)
{
    meta *m = arg;
    m->id = s->id;
    m->created_ms = s->created_ms;
    m->size = s->size;
    m->has_attachments = s->has_attachments;
    m->mail_from = dup0(s->mail_from);
    m->rcpt = dup0(s->rcpt);
    m->helo = dup0(s->helo);
    m->from = dup0(s->from);
    m->to = dup0(s->to);
    m->subject = dup0(s->subject);
    return 0;
}

typedef struct loaded {
    meta m;
    char *raw;
    size_t len;
} loaded;

/* 1 found, 0 not, -1 error. */
static int load(ib_http *h, int64_t id, loaded *l)
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

static void unload(loaded *l)
{
    meta_free(&l->m);
    free(l->raw);
}

static enum MHD_Result load_error(struct MHD_Connection *c, int rc)
{
    return rc == 0 ? send_error(c, 404, "no such message")
                   : send_error(c, 500, "cannot read the message store");
}

/* ---- MailHog's message JSON (MailHog data/message.go) ----------------------- */

/* Header names clients look up with a fixed spelling. */
/* clang-format off */
static const char *const CANON[] = {
    "Bcc", "Cc", "Content-Description", "Content-Disposition", "Content-ID",
    "Content-Transfer-Encoding", "Content-Type", "Date", "Delivered-To", "From", "In-Reply-To",
    "Message-ID", "MIME-Version", "Received", "References", "Reply-To", "Return-Path", "Sender",
    "Subject", "To", NULL};
/* clang-format on */

/* End of the header block (the first empty line) and start of the body. */
static size_t header_block(const char *p, size_t n, size_t *body)
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

/* Add one field to the {Name: [values]} map; known names get one spelling. */
static void mh_add(json_t *o, const char *p, size_t nlen, const se_buf *val)
{
    char name[128];
    int ok = nlen > 0 && nlen < sizeof name;
    for (size_t k = 0; ok && k < nlen; k++) /* RFC 5322 2.2: printable ASCII */
        ok = p[k] > 32 && p[k] < 127;
    if (!ok)
        return;
    memcpy(name, p, nlen);
    name[nlen] = '\0';
    for (int k = 0; CANON[k]; k++)
        if (strcasecmp(name, CANON[k]) == 0)
            strcpy(name, CANON[k]);
    json_t *arr = json_object_get(o, name);
    if (!arr) {
        arr = json_array();
        json_object_set_new(o, name, arr);
    }
    json_array_append_new(arr, jstrn(val->data ? val->data : "", val->len));
}

/* Headers as {Name: [values]}: folded lines joined without their CRLF, as
 * MailHog does; repeated fields keep every value. */
static json_t *mh_headers(const char *p, size_t n, se_buf *ctype)
{
    json_t *o = json_object();
    se_buf val = {0};
    const char *name = NULL;
    size_t nlen = 0;
    for (size_t i = 0; o && i <= n;) {
        const char *nl = i < n ? memchr(p + i, '\n', n - i) : NULL;
        size_t end = nl ? (size_t)(nl - p) : n, next = nl ? end + 1 : n + 1;
        if (end > i && p[end - 1] == '\r')
            end--;
        if (i < n && (p[i] == ' ' || p[i] == '\t')) { /* a continuation line */
            if (name)
                se_buf_append(&val, p + i, end - i);
            i = next;
            continue;
        }
        if (name)
            mh_add(o, name, nlen, &val);
        name = NULL;
        const char *colon = i < n ? memchr(p + i, ':', end - i) : NULL;
        if (colon && colon > p + i) {
            name = p + i;
            nlen = (size_t)(colon - name);
            while (nlen > 0 && (name[nlen - 1] == ' ' || name[nlen - 1] == '\t'))
                nlen--;
            const char *v = colon + 1;
            while (v < p + end && (*v == ' ' || *v == '\t'))
                v++;
            se_buf_reset(&val);
            se_buf_append(&val, v, (size_t)(p + end - v));
        }
        i = next;
    }
    json_t *ct = json_array_get(json_object_get(o, "Content-Type"), 0);
    if (ct && ctype)
        se_buf_puts(ctype, json_string_value(ct));
    se_buf_free(&val);
    return o;
}

/* The boundary parameter of a Content-Type value, into bd. */
static int boundary_of(const char *ct, char *bd, size_t bdlen)
{
    for (const char *p = ct; (p = strchr(p, ';')) != NULL;) {
        p++;
        while (*p == ' ' || *p == '\t')
            p++;
        if (!has_prefix_ci(p, "boundary="))
            continue;
        p += 9;
        size_t n = *p == '"' ? strcspn(p + 1, "\"") : strcspn(p, "; \t");
        if (*p == '"')
            p++;
        if (n == 0 || n >= bdlen)
            return 0;
        memcpy(bd, p, n);
        bd[n] = '\0';
        return 1;
    }
    return 0;
}

static json_t *mh_content(const char *p, size_t n, int depth, json_t **mime_out);

/* MIME:{Parts:[...]}: each part between "--boundary" lines at a line start
 * (RFC 2046 5.1.1), headers and body still transfer-encoded. */
static json_t *mh_mime(const char *body, size_t n, const char *bd, int depth)
{
    json_t *parts = json_array();
    size_t bl = strlen(bd), start = 0;
    int open = 0;
    for (size_t i = 0; parts && i <= n;) {
        const char *nl = i < n ? memchr(body + i, '\n', n - i) : NULL;
        size_t end = nl ? (size_t)(nl - body) : n, next = nl ? end + 1 : n + 1;
        int delim = end - i >= 2 + bl && body[i] == '-' && body[i + 1] == '-' &&
                    memcmp(body + i + 2, bd, bl) == 0;
        if (delim) {
            size_t k = i + 2 + bl;
            int close = end - k >= 2 && body[k] == '-' && body[k + 1] == '-';
            while (!close && k < end && (body[k] == ' ' || body[k] == '\t' || body[k] == '\r'))
                k++;
            delim = close || k == end;
            if (delim && open) { /* the line break before a delimiter is part of it */
                size_t stop = i > start && body[i - 1] == '\n' ? i - 1 : i;
                if (stop > start && body[stop - 1] == '\r')
                    stop--;
                json_t *mime = NULL;
                json_t *part = mh_content(body + start, stop - start, depth + 1, &mime);
                json_object_set_new(part, "MIME", mime ? mime : json_null());
                json_array_append_new(parts, part);
            }
            open = !close;
            start = next;
            if (close)
                break;
        }
        i = next;
    }
    if (open && start < n) { /* no close delimiter: the last part runs to the end */
        json_t *mime = NULL;
        json_t *part = mh_content(body + start, n - start, depth + 1, &mime);
        json_object_set_new(part, "MIME", mime ? mime : json_null());
        json_array_append_new(parts, part);
    }
    return json_pack("{s:o*}", "Parts", parts);
}

/* {Headers, Body, Size, MIME}; a multipart's tree goes to *mime_out. */
static json_t *mh_content(const char *p, size_t n, int depth, json_t **mime_out)
{
    size_t body;
    size_t hl = header_block(p, n, &body);
    se_buf ct = {0};
    json_t *o = json_pack("{s:o*, s:o*, s:I}", "Headers", mh_headers(p, hl, &ct), "Body",
                          jstrn(p + body, n - body), "Size", (json_int_t)n);
    char bd[256];
    *mime_out = NULL;
    if (o && depth < MAX_MH_DEPTH && ct.data && has_prefix_ci(ct.data, "multipart/") &&
        boundary_of(ct.data, bd, sizeof bd))
        *mime_out = mh_mime(p + body, n - body, bd, depth);
    if (o)
        json_object_set_new(o, "MIME", json_null());
    se_buf_free(&ct);
    return o;
}

/* MailHog's Path: {Relays, Mailbox, Domain, Params}. */
static json_t *mh_path(const char *addr, size_t n)
{
    const char *at = NULL;
    for (size_t i = 0; i < n; i++)
        if (addr[i] == '@')
            at = addr + i;
    size_t ml = at ? (size_t)(at - addr) : n;
    return json_pack("{s:n, s:o*, s:o*, s:s}", "Relays", "Mailbox", jstrn(addr, ml), "Domain",
                     at ? jstrn(at + 1, n - ml - 1) : json_string(""), "Params", "");
}

static json_t *mh_message(const loaded *l)
{
    json_t *to = json_array(), *rawto = json_array();
    for (const char *r = l->m.rcpt; *r && to && rawto;) {
        const char *sep = strstr(r, ", ");
        size_t n = sep ? (size_t)(sep - r) : strlen(r);
        json_array_append_new(to, mh_path(r, n));
        json_array_append_new(rawto, jstrn(r, n));
        r += sep ? n + 2 : n;
    }
    char id[32], created[40];
    snprintf(id, sizeof id, "%lld", (long long)l->m.id);
    rfc3339(created, sizeof created, l->m.created_ms);
    /* MailHog keeps DATA without the CRLF before the final dot; clients
     * written against it compare bodies with that in mind. */
    size_t len = l->len;
    if (len >= 2 && l->raw[len - 2] == '\r' && l->raw[len - 1] == '\n')
        len -= 2;
    json_t *mime = NULL;
    json_t *content = mh_content(l->raw, len, 0, &mime);
    json_t *raw = json_pack("{s:o*, s:o*, s:o*, s:o*}", "From", jstr(l->m.mail_from), "To", rawto,
                            "Data", jstrn(l->raw, len), "Helo", jstr(l->m.helo));
    return json_pack("{s:s, s:o*, s:o*, s:o*, s:s, s:o*, s:o*}", "ID", id, "From",
                     mh_path(l->m.mail_from, strlen(l->m.mail_from)), "To", to, "Content", content,
                     "Created", created, "MIME", mime ? mime : json_null(), "Raw", raw);
}

/* ---- MailHog API --------------------------------------------------------- */

typedef struct idlist {
    int64_t *v;
    size_t n, cap;
    int oom;
} idlist;

static int collect_id(void *arg, const ib_summary *s)
{
    idlist *l = arg;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        int64_t *v = realloc(l->v, cap * sizeof *v);
        if (!v) {
            l->oom = 1;
            return 1;
        }
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = s->id;
    return 0;
}

static enum MHD_Result mh_list(ib_http *h, struct MHD_Connection *c, const char *kind, int v1)
{
    const char *query = NULL;
    if (kind) {
        query = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "query");
        if (strcmp(kind, "from") != 0 && strcmp(kind, "to") != 0 && strcmp(kind, "containing") != 0)
            return send_error(c, 400, "kind must be from, to or containing");
    }
    int64_t start = v1 ? 0 : arg_int(c, "start", 0, INT64_MAX / 2);
    int64_t limit = v1 ? 1000 : arg_int(c, "limit", 50, 250);
    idlist ids = {0};
    int64_t total = 0;
    if (ib_store_list(h->st, kind, query ? query : "", start, limit, collect_id, &ids, &total) <
            0 ||
        ids.oom) {
        free(ids.v);
        return send_error(c, 500, "cannot read the message store");
    }
    json_t *items = json_array();
    for (size_t i = 0; i < ids.n && items; i++) {
        loaded l;
        if (load(h, ids.v[i], &l) != 1)
            continue; /* deleted since the listing */
        json_t *m = mh_message(&l);
        unload(&l);
        if (!m || json_array_append_new(items, m) != 0) {
            json_decref(items);
            items = NULL;
        }
    }
    free(ids.v);
    if (!items)
        return send_error(c, 500, "out of memory");
    if (v1)
        return send_json(c, 200, items);
    return send_json(c, 200,
                     json_pack("{s:I, s:I, s:I, s:o}", "total", (json_int_t)total, "count",
                               (json_int_t)json_array_size(items), "start", (json_int_t)start,
                               "items", items));
}

static enum MHD_Result mh_get(ib_http *h, struct MHD_Connection *c, int64_t id)
{
    loaded l;
    int rc = load(h, id, &l);
    if (rc != 1)
        return load_error(c, rc);
    json_t *m = mh_message(&l);
    unload(&l);
    return send_json(c, 200, m);
}

static enum MHD_Result send_raw(ib_http *h, struct MHD_Connection *c, int64_t id, int download)
{
    loaded l;
    int rc = load(h, id, &l);
    if (rc != 1)
        return load_error(c, rc);
    char disp[64];
    snprintf(disp, sizeof disp, "%s; filename=\"%lld.eml\"", download ? "attachment" : "inline",
             (long long)id);
    char *raw = l.raw;
    size_t len = l.len;
    l.raw = NULL;
    unload(&l);
    return respond(c, 200, download ? "message/rfc822" : "text/plain; charset=utf-8", raw, len, 1,
                   K_FILE, disp);
}

/* ---- our API for the UI ---------------------------------------------------- */

static int summary_json(void *arg, const ib_summary *s)
{
    char created[40];
    rfc3339(created, sizeof created, s->created_ms);
    json_t *o = json_pack(
        "{s:I, s:s, s:I, s:I, s:o*, s:o*, s:o*, s:o*, s:o*, s:b}", "id", (json_int_t)s->id,
        "created", created, "created_ms", (json_int_t)s->created_ms, "size", (json_int_t)s->size,
        "from", jstr(s->from), "to", jstr(s->to), "subject", jstr(s->subject), "mail_from",
        jstr(s->mail_from), "rcpt", jstr(s->rcpt), "has_attachments", s->has_attachments);
    return !o || json_array_append_new(arg, o) != 0;
}

static enum MHD_Result scalr_list(ib_http *h, struct MHD_Connection *c)
{
    const char *kind = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "kind");
    const char *query = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "query");
    if (kind && !*kind)
        kind = NULL;
    if (!query || !*query)
        kind = NULL;
    else if (!kind)
        kind = "containing";
    if (kind && strcmp(kind, "from") != 0 && strcmp(kind, "to") != 0 &&
        strcmp(kind, "containing") != 0)
        return send_error(c, 400, "kind must be from, to or containing");
    int64_t start = arg_int(c, "start", 0, INT64_MAX / 2), limit = arg_int(c, "limit", 50, 500);
    json_t *items = json_array();
    int64_t total = 0;
    if (!items || ib_store_list(h->st, kind, query ? query : "", start, limit, summary_json, items,
                                &total) < 0) {
        json_decref(items);
        return send_error(c, 500, "cannot read the message store");
    }
    return send_json(c, 200,
                     json_pack("{s:I, s:I, s:I, s:I, s:o}", "total", (json_int_t)total, "count",
                               (json_int_t)json_array_size(items), "start", (json_int_t)start,
                               "version", (json_int_t)ib_store_version(h->st), "items", items));
}

typedef struct parsed {
    loaded l;
    ib_part *parts;
    size_t n;
    long text, html; /* chosen body parts, -1 when absent */
} parsed;

static int parse_message(ib_http *h, int64_t id, parsed *pm)
{
    memset(pm, 0, sizeof *pm);
    int rc = load(h, id, &pm->l);
    if (rc != 1)
        return rc;
    if (ib_mime_parts(pm->l.raw, pm->l.len, &pm->parts, &pm->n) != 0) {
        unload(&pm->l);
        return -1;
    }
    pm->text = pm->html = -1;
    for (size_t i = 0; i < pm->n; i++) {
        const ib_part *p = &pm->parts[i];
        if (p->is_attachment)
            continue;
        if (pm->text < 0 && strcmp(p->content_type, "text/plain") == 0)
            pm->text = (long)i;
        if (pm->html < 0 && strcmp(p->content_type, "text/html") == 0)
            pm->html = (long)i;
    }
    return 1;
}

static void parsed_free(parsed *pm)
{
    ib_mime_parts_free(pm->parts, pm->n);
    unload(&pm->l);
}

static json_t *body_json(const parsed *pm, long idx)
{
    if (idx < 0)
        return json_null();
    const ib_part *p = &pm->parts[idx];
    se_buf b = {0};
    to_utf8(&b, p->charset, p->body, p->body_len);
    json_t *j = b.oom ? NULL : jstrn(b.data ? b.data : "", b.len);
    se_buf_free(&b);
    return j;
}

static json_t *header_json(const parsed *pm, const char *name)
{
    char *v = ib_header_get(pm->l.raw, pm->l.len, name);
    json_t *j = jstr(v);
    free(v);
    return j;
}

/* Every header field in order, values decoded (RFC 2047) for reading. */
static json_t *header_list(const char *raw, size_t len)
{
    size_t body;
    size_t hl = header_block(raw, len, &body);
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < hl;) {
        const char *nl = memchr(raw + i, '\n', hl - i);
        size_t next = nl ? (size_t)(nl - raw) + 1 : hl;
        while (next < hl && (raw[next] == ' ' || raw[next] == '\t')) {
            nl = memchr(raw + next, '\n', hl - next);
            next = nl ? (size_t)(nl - raw) + 1 : hl;
        }
        const char *colon = memchr(raw + i, ':', next - i);
        if (colon && colon > raw + i && raw[i] != ' ' && raw[i] != '\t') {
            const char *v = colon + 1;
            while (v < raw + next && (*v == ' ' || *v == '\t'))
                v++;
            char *dv = ib_decode_header(v, (size_t)(raw + next - v));
            size_t dl = dv ? strlen(dv) : 0;
            while (dl > 0 && dv[dl - 1] == ' ')
                dv[--dl] = '\0';
            json_array_append_new(arr, json_pack("{s:o*, s:o*}", "name",
                                                 jstrn(raw + i, (size_t)(colon - (raw + i))),
                                                 "value", jstr(dv)));
            free(dv);
        }
        i = next;
    }
    return arr;
}

static enum MHD_Result scalr_get(ib_http *h, struct MHD_Connection *c, int64_t id)
{
    parsed pm;
    int rc = parse_message(h, id, &pm);
    if (rc != 1)
        return load_error(c, rc);
    json_t *atts = json_array(), *rcpt = json_array();
    for (size_t i = 0; atts && i < pm.n; i++) {
        const ib_part *p = &pm.parts[i];
        if ((long)i == pm.text || (long)i == pm.html)
            continue;
        json_array_append_new(atts, json_pack("{s:I, s:o*, s:s, s:I, s:o*, s:b}", "index",
                                              (json_int_t)i, "filename", jstr(p->filename), "type",
                                              p->content_type, "size", (json_int_t)p->body_len,
                                              "content_id", jstr(p->content_id), "inline",
                                              !p->is_attachment && p->content_id));
    }
    for (const char *r = pm.l.m.rcpt; *r && rcpt;) {
        const char *sep = strstr(r, ", ");
        size_t n = sep ? (size_t)(sep - r) : strlen(r);
        json_array_append_new(rcpt, jstrn(r, n));
        r += sep ? n + 2 : n;
    }
    char created[40];
    rfc3339(created, sizeof created, pm.l.m.created_ms);
    json_t *o = json_pack(
        "{s:I, s:s, s:I, s:I, s:o*, s:o*, s:o*, s:o*, s:o*, s:o*, s:o*, s:o*, s:o*, s:o*, s:o*, "
        "s:o*, s:o*}",
        "id", (json_int_t)id, "created", created, "created_ms", (json_int_t)pm.l.m.created_ms,
        "size", (json_int_t)pm.l.len, "mail_from", jstr(pm.l.m.mail_from), "rcpt", rcpt, "helo",
        jstr(pm.l.m.helo), "subject", header_json(&pm, "Subject"), "from", header_json(&pm, "From"),
        "to", header_json(&pm, "To"), "cc", header_json(&pm, "Cc"), "date",
        header_json(&pm, "Date"), "message_id", header_json(&pm, "Message-ID"), "headers",
        header_list(pm.l.raw, pm.l.len), "text", body_json(&pm, pm.text), "html",
        body_json(&pm, pm.html), "attachments", atts);
    parsed_free(&pm);
    return send_json(c, 200, o);
}

static int sane_type(const char *t)
{
    size_t n = strlen(t), slash = strcspn(t, "/");
    return n > 2 && n < 100 && slash > 0 && slash < n - 1 && !strchr(t + slash + 1, '/') &&
           strspn(t, "abcdefghijklmnopqrstuvwxyz0123456789!#$&^_.+-/") == n;
}

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static void b64_put(se_buf *out, const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i += 3) {
        unsigned v =
            (unsigned)p[i] << 16 | (i + 1 < n ? p[i + 1] << 8 : 0) | (i + 2 < n ? p[i + 2] : 0);
        char q[4] = {B64[v >> 18 & 63], B64[v >> 12 & 63], i + 1 < n ? B64[v >> 6 & 63] : '=',
                     i + 2 < n ? B64[v & 63] : '='};
        se_buf_append(out, q, 4);
    }
}

/* The HTML part with cid: references (RFC 2392) to the message's own images
 * turned into data: URLs, since a sandboxed frame can fetch nothing. */
static void inline_cids(se_buf *out, const parsed *pm, const char *html, size_t n)
{
    const ib_part *img[MAX_CID_IMAGES];
    size_t nimg = 0, lookups = 0, i = 0, lit = 0;
    for (size_t k = 0; k < pm->n && nimg < MAX_CID_IMAGES; k++)
        if (pm->parts[k].content_id && strncmp(pm->parts[k].content_type, "image/", 6) == 0 &&
            sane_type(pm->parts[k].content_type))
            img[nimg++] = &pm->parts[k];
    while (nimg && i + 4 < n && lookups < MAX_CID_LOOKUPS && out->len < MAX_HTML_OUT) {
        if (strncasecmp(html + i, "cid:", 4) != 0) {
            i++;
            continue;
        }
        size_t s = i + 4, e = s;
        while (e < n && e - s < 256 && !strchr("\"'()<> \t\r\n", html[e]))
            e++;
        const ib_part *hit = NULL;
        lookups++;
        for (size_t k = 0; k < nimg && !hit; k++)
            if (strlen(img[k]->content_id) == e - s &&
                memcmp(img[k]->content_id, html + s, e - s) == 0)
                hit = img[k];
        if (hit) {
            se_buf_append(out, html + lit, i - lit);
            se_buf_printf(out, "data:%s;base64,", hit->content_type);
            b64_put(out, (const unsigned char *)hit->body, hit->body_len);
            lit = e;
        }
        i = e;
    }
    se_buf_append(out, html + lit, n - lit);
}

static enum MHD_Result scalr_html(ib_http *h, struct MHD_Connection *c, int64_t id)
{
    parsed pm;
    int rc = parse_message(h, id, &pm);
    if (rc != 1)
        return load_error(c, rc);
    if (pm.html < 0) {
        parsed_free(&pm);
        return send_error(c, 404, "this message has no HTML part");
    }
    const ib_part *p = &pm.parts[pm.html];
    se_buf out = {0};
    inline_cids(&out, &pm, p->body, p->body_len);
    char ctype[80] = "text/html; charset=utf-8";
    if (p->charset && strlen(p->charset) < 40 &&
        strspn(p->charset, "abcdefghijklmnopqrstuvwxyz0123456789-_.:") == strlen(p->charset))
        snprintf(ctype, sizeof ctype, "text/html; charset=%s", p->charset);
    parsed_free(&pm);
    if (out.oom) {
        se_buf_free(&out);
        return send_error(c, 500, "out of memory");
    }
    size_t len = out.len;
    char *body = se_buf_steal(&out, NULL);
    return respond(c, 200, ctype, body ? body : "", len, body != NULL, K_FRAME, NULL);
}

/* Content-Disposition for a download: an ASCII fallback and the exact name
 * as RFC 6266 / RFC 8187 filename*. */
static void disposition(char *out, size_t len, const char *name, size_t index)
{
    char fallback[128], ext[512];
    size_t f = 0, e = 0;
    if (!name || !*name) {
        snprintf(out, len, "attachment; filename=\"part-%zu\"", index);
        return;
    }
    for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
        if (f + 1 < sizeof fallback && (*p & 0xc0) != 0x80) /* one '_' per character */
            fallback[f++] = *p < 0x20 || *p >= 0x7f || strchr("\"\\/;%", *p) ? '_' : (char)*p;
        if (e + 4 < sizeof ext) {
            if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
                strchr("!#$&+-.^_`|~", *p))
                ext[e++] = (char)*p;
            else
                e += (size_t)snprintf(ext + e, sizeof ext - e, "%%%02X", *p);
        }
    }
    fallback[f] = ext[e] = '\0';
    snprintf(out, len, "attachment; filename=\"%s\"; filename*=UTF-8''%s", fallback, ext);
}

static enum MHD_Result scalr_attachment(ib_http *h, struct MHD_Connection *c, int64_t id,
                                        const char *index)
{
    char *end;
    unsigned long k = strtoul(index, &end, 10);
    if (!*index || *end || index[0] == '-' || index[0] == '+')
        return send_error(c, 404, "no such attachment");
    parsed pm;
    int rc = parse_message(h, id, &pm);
    if (rc != 1)
        return load_error(c, rc);
    if (k >= pm.n) {
        parsed_free(&pm);
        return send_error(c, 404, "no such attachment");
    }
    ib_part *p = &pm.parts[k];
    char disp[800], ctype[128] = "application/octet-stream";
    disposition(disp, sizeof disp, p->filename, k);
    if (sane_type(p->content_type))
        snprintf(ctype, sizeof ctype, "%s", p->content_type);
    char *body = p->body;
    size_t len = p->body_len;
    p->body = NULL;
    parsed_free(&pm);
    return respond(c, 200, ctype, body, len, 1, K_FILE, disp);
}

/* ---- event stream (server-sent events) --------------------------------- */

typedef struct stream {
    ib_http *h;
    uint64_t seen;
    unsigned idle_ms;
    int started;
} stream;

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    stream *s = cls;
    (void)pos;
    if (!s->started) {
        s->started = 1;
        s->seen = ib_store_version(s->h->st);
        return snprintf(buf, max, "retry: 2000\nevent: hello\ndata: {\"version\":%llu}\n\n",
                        (unsigned long long)s->seen);
    }
    while (!atomic_load(&s->h->stopping)) {
        uint64_t v = ib_store_wait(s->h->st, s->seen, SSE_POLL_MS);
        if (v != s->seen) {
            s->seen = v;
            s->idle_ms = 0;
            return snprintf(buf, max, "event: change\ndata: {\"version\":%llu}\n\n",
                            (unsigned long long)v);
        }
        s->idle_ms += SSE_POLL_MS;
        if (s->idle_ms >= SSE_KEEPALIVE_MS) { /* also finds clients that left */
            s->idle_ms = 0;
            return snprintf(buf, max, ": keepalive\n\n");
        }
    }
    return MHD_CONTENT_READER_END_OF_STREAM;
}

static void stream_free(void *cls)
{
    stream *s = cls;
    atomic_fetch_sub(&s->h->streams, 1);
    free(s);
}

static enum MHD_Result events(ib_http *h, struct MHD_Connection *c)
{
    if (atomic_fetch_add(&h->streams, 1) >= MAX_STREAMS) {
        atomic_fetch_sub(&h->streams, 1);
        return send_error(c, 503, "too many event streams");
    }
    stream *s = calloc(1, sizeof *s);
    struct MHD_Response *r =
        s ? MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 1024, stream_read, s, stream_free)
          : NULL;
    if (!r) {
        atomic_fetch_sub(&h->streams, 1);
        free(s);
        return send_error(c, 500, "out of memory");
    }
    s->h = h;
    MHD_add_response_header(r, "Content-Type", "text/event-stream");
    MHD_add_response_header(r, "Cache-Control", "no-store");
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(r, "Content-Security-Policy", CSP_API);
    enum MHD_Result ret = MHD_queue_response(c, 200, r);
    MHD_destroy_response(r);
    return ret;
}

/* ---- chaos rules ------------------------------------------------------------- */

static json_t *chaos_rules(ib_http *h)
{
    char *s = ib_chaos_json(h->chaos);
    json_t *arr = s ? json_loads(s, 0, NULL) : NULL;
    free(s);
    return json_pack("{s:o*}", "rules", arr);
}

static enum MHD_Result chaos(ib_http *h, struct MHD_Connection *c, const char *method, req *r)
{
    if (!h->chaos)
        return send_error(c, 404, "fault injection is not available");
    if (strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0)
        return send_json(c, 200, chaos_rules(h));
    if (strcmp(method, "DELETE") == 0) {
        ib_chaos_clear(h->chaos);
        return send_json(c, 200, chaos_rules(h));
    }
    if (strcmp(method, "POST") != 0)
        return not_allowed(c, "GET, POST, DELETE");
    const char *ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Type");
    if (!ct || !has_prefix_ci(ct, "application/json")) /* forces a CORS preflight */
        return send_error(c, 415, "send application/json");
    if (r->too_big)
        return send_error(c, 413, "request body too large");
    json_t *j = json_loadb(r->body.data ? r->body.data : "", r->body.len, 0, NULL);
    json_t *one = json_object_get(j, "rule"), *many = json_object_get(j, "rules");
    if (!json_is_string(one) && !json_is_array(many)) {
        json_decref(j);
        return send_error(c, 400, "expected {\"rule\": \"STAGE:ACTION...\"} or {\"rules\": [...]}");
    }
    size_t n = one ? 1 : json_array_size(many);
    for (size_t i = 0; i < n; i++) {
        json_t *rule = one ? one : json_array_get(many, i);
        char why[256] = "rule must be a string";
        if (!json_is_string(rule) ||
            ib_chaos_add(h->chaos, json_string_value(rule), why, sizeof why) != 0) {
            json_decref(j);
            return send_json(c, 400, json_pack("{s:s, s:I}", "error", why, "added", (json_int_t)i));
        }
    }
    json_decref(j);
    return send_json(c, 200, chaos_rules(h));
}

/* ---- routing ------------------------------------------------------------------- */

static int is_get(const char *m)
{
    return strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0;
}

static enum MHD_Result static_file(struct MHD_Connection *c, const char *url, const char *method)
{
    if (!is_get(method))
        return not_allowed(c, "GET, HEAD");
    if (strcmp(url, "/") == 0)
        url = "/index.html";
    for (const ib_asset *a = ib_assets; a->path; a++)
        if (strcmp(a->path, url) == 0)
            return respond(c, 200, a->content_type, (void *)a->data, a->len, 0, K_PAGE, NULL);
    return respond(c, 404, "text/plain; charset=utf-8", "not found\n", 10, 0, K_API, NULL);
}

static enum MHD_Result messages(ib_http *h, struct MHD_Connection *c, const char *method,
                                int64_t id, const char *rest, int mailhog)
{
    if (*rest == '\0') {
        if (strcmp(method, "DELETE") == 0) {
            int rc = ib_store_delete(h->st, id);
            return rc == 1   ? send_empty(c, 200)
                   : rc == 0 ? send_error(c, 404, "no such message")
                             : send_error(c, 500, "cannot delete the message");
        }
        if (!is_get(method))
            return not_allowed(c, "GET, HEAD, DELETE");
        return mailhog ? mh_get(h, c, id) : scalr_get(h, c, id);
    }
    if (mailhog && strcmp(rest, "/release") == 0)
        return send_error(c, 501, "releasing messages to another server is not supported");
    if (!is_get(method))
        return not_allowed(c, "GET, HEAD");
    if (mailhog && strcmp(rest, "/download") == 0)
        return send_raw(h, c, id, 1);
    if (!mailhog && strcmp(rest, "/raw") == 0)
        return send_raw(h, c, id, 0);
    if (!mailhog && strcmp(rest, "/html") == 0)
        return scalr_html(h, c, id);
    if (!mailhog && strncmp(rest, "/attachments/", 13) == 0)
        return scalr_attachment(h, c, id, rest + 13);
    return send_error(c, 404, "not found");
}

static enum MHD_Result route(ib_http *h, struct MHD_Connection *c, const char *url,
                             const char *method, req *r)
{
    if (!host_allowed(h, MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Host")))
        return send_error(c, 403, "unknown Host name (DNS rebinding protection)");
    if (!is_get(method) && cross_site(c))
        return send_error(c, 403, "cross-site request refused");
    if (strncmp(url, "/api/", 5) != 0)
        return static_file(c, url, method);
    int64_t id;
    const char *rest;
    if (strcmp(url, "/api/v2/messages") == 0 || strcmp(url, "/api/v2/search") == 0) {
        if (!is_get(method))
            return not_allowed(c, "GET, HEAD");
        const char *kind = NULL;
        if (url[8] == 's') {
            kind = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "kind");
            if (!kind)
                return send_error(c, 400, "kind must be from, to or containing");
        }
        return mh_list(h, c, kind, 0);
    }
    if (strcmp(url, "/api/v1/messages") == 0 || strcmp(url, "/api/scalr/messages") == 0) {
        if (strcmp(method, "DELETE") == 0)
            return ib_store_delete_all(h->st) < 0 ? send_error(c, 500, "cannot delete messages")
                                                  : send_empty(c, 200);
        if (!is_get(method))
            return not_allowed(c, "GET, HEAD, DELETE");
        return url[5] == 'v' ? mh_list(h, c, NULL, 1) : scalr_list(h, c);
    }
    if (match_id(url, "/api/v1/messages/", &id, &rest))
        return messages(h, c, method, id, rest, 1);
    if (match_id(url, "/api/scalr/messages/", &id, &rest))
        return messages(h, c, method, id, rest, 0);
    if (strcmp(url, "/api/scalr/events") == 0)
        return is_get(method) ? events(h, c) : not_allowed(c, "GET, HEAD");
    if (strcmp(url, "/api/scalr/chaos") == 0)
        return chaos(h, c, method, r);
    return send_error(c, 404, "not found");
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_len, void **state)
{
    (void)version;
    req *r = *state;
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
    req *r = *state;
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
    atomic_store(&h->stopping, 1); /* event streams end within SSE_POLL_MS */
    MHD_stop_daemon(h->d);
    free(h);
}
