/* The MailHog-compatible API (/api/v1, /api/v2): message JSON shaped as
 * MailHog's data/message.go, so that clients and test suites written
 * against MailHog read our inbox unchanged.  Headers and MIME parts are
 * shown as stored (still transfer-encoded), as MailHog does. */
#include "http_int.h"

#include <jansson.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util/buf.h"

#define MAX_MH_DEPTH 16 /* MailHog MIME tree nesting */

/* ---- MailHog's message JSON (MailHog data/message.go) ----------------------- */

/* Header names clients look up with a fixed spelling. */
/* clang-format off */
static const char *const CANON[] = {
    "Bcc", "Cc", "Content-Description", "Content-Disposition", "Content-ID",
    "Content-Transfer-Encoding", "Content-Type", "Date", "Delivered-To", "From", "In-Reply-To",
    "Message-ID", "MIME-Version", "Received", "References", "Reply-To", "Return-Path", "Sender",
    "Subject", "To", NULL};
/* clang-format on */

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
    json_array_append_new(arr, ib_http_jstrn(val->data ? val->data : "", val->len));
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
        if (!ib_http_prefix_ci(p, "boundary="))
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
    size_t hl = ib_http_header_block(p, n, &body);
    se_buf ct = {0};
    json_t *o = json_pack("{s:o*, s:o*, s:I}", "Headers", mh_headers(p, hl, &ct), "Body",
                          ib_http_jstrn(p + body, n - body), "Size", (json_int_t)n);
    char bd[256];
    *mime_out = NULL;
    if (o && depth < MAX_MH_DEPTH && ct.data && ib_http_prefix_ci(ct.data, "multipart/") &&
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
    return json_pack("{s:n, s:o*, s:o*, s:s}", "Relays", "Mailbox", ib_http_jstrn(addr, ml),
                     "Domain", at ? ib_http_jstrn(at + 1, n - ml - 1) : json_string(""), "Params",
                     "");
}

static json_t *mh_message(const ib_http_loaded *l)
{
    json_t *to = json_array(), *rawto = json_array();
    for (const char *r = l->m.rcpt; *r && to && rawto;) {
        const char *sep = strstr(r, ", ");
        size_t n = sep ? (size_t)(sep - r) : strlen(r);
        json_array_append_new(to, mh_path(r, n));
        json_array_append_new(rawto, ib_http_jstrn(r, n));
        r += sep ? n + 2 : n;
    }
    char id[32], created[40];
    snprintf(id, sizeof id, "%lld", (long long)l->m.id);
    ib_http_rfc3339(created, sizeof created, l->m.created_ms);
    /* MailHog keeps DATA without the CRLF before the final dot; clients
     * written against it compare bodies with that in mind. */
    size_t len = l->len;
    if (len >= 2 && l->raw[len - 2] == '\r' && l->raw[len - 1] == '\n')
        len -= 2;
    json_t *mime = NULL;
    json_t *content = mh_content(l->raw, len, 0, &mime);
    json_t *raw =
        json_pack("{s:o*, s:o*, s:o*, s:o*}", "From", ib_http_jstr(l->m.mail_from), "To", rawto,
                  "Data", ib_http_jstrn(l->raw, len), "Helo", ib_http_jstr(l->m.helo));
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

enum MHD_Result ib_http_mh_list(ib_http *h, struct MHD_Connection *c, const char *kind, int v1)
{
    const char *query = NULL;
    if (kind) {
        query = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "query");
        if (strcmp(kind, "from") != 0 && strcmp(kind, "to") != 0 && strcmp(kind, "containing") != 0)
            return ib_http_send_error(c, 400, "kind must be from, to or containing");
    }
    int64_t start = v1 ? 0 : ib_http_arg_int(c, "start", 0, INT64_MAX / 2);
    int64_t limit = v1 ? 1000 : ib_http_arg_int(c, "limit", 50, 250);
    idlist ids = {0};
    int64_t total = 0;
    if (ib_store_list(h->st, kind, query ? query : "", start, limit, collect_id, &ids, &total) <
            0 ||
        ids.oom) {
        free(ids.v);
        return ib_http_send_error(c, 500, "cannot read the message store");
    }
    json_t *items = json_array();
    for (size_t i = 0; i < ids.n && items; i++) {
        ib_http_loaded l;
        if (ib_http_load(h, ids.v[i], &l) != 1)
            continue; /* deleted since the listing */
        json_t *m = mh_message(&l);
        ib_http_unload(&l);
        if (!m || json_array_append_new(items, m) != 0) {
            json_decref(items);
            items = NULL;
        }
    }
    free(ids.v);
    if (!items)
        return ib_http_send_error(c, 500, "out of memory");
    if (v1)
        return ib_http_send_json(c, 200, items);
    return ib_http_send_json(c, 200,
                             json_pack("{s:I, s:I, s:I, s:o}", "total", (json_int_t)total, "count",
                                       (json_int_t)json_array_size(items), "start",
                                       (json_int_t)start, "items", items));
}

enum MHD_Result ib_http_mh_get(ib_http *h, struct MHD_Connection *c, int64_t id)
{
    ib_http_loaded l;
    int rc = ib_http_load(h, id, &l);
    if (rc != 1)
        return ib_http_load_error(c, rc);
    json_t *m = mh_message(&l);
    ib_http_unload(&l);
    return ib_http_send_json(c, 200, m);
}
